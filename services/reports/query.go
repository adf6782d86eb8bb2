package reports

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/microshop/microshop/internal/platform/validation"
	"github.com/microshop/microshop/services/reports/reportsapi"
)

// Limits of a report's range.
const (
	// DefaultRange is the range of a report that names neither end.
	DefaultRange = 30 * 24 * time.Hour
	// MaxRange is the longest range a report may cover.
	MaxRange = 366 * 24 * time.Hour
)

// epoch is the earliest time a report may start: the model's times are
// unix milliseconds and buckets are computed from them.
var epoch = time.Unix(0, 0).UTC()

// bucket is a bucket size of the sales report, in unix milliseconds.
// Buckets start at multiples of size after -offset: weeks start on
// Monday, and 1970-01-01 was a Thursday, three days after one.
type bucket struct {
	name         string
	size, offset int64
}

var buckets = map[string]bucket{
	reportsapi.BucketHour: {reportsapi.BucketHour, int64(time.Hour / time.Millisecond), 0},
	reportsapi.BucketDay:  {reportsapi.BucketDay, int64(24 * time.Hour / time.Millisecond), 0},
	reportsapi.BucketWeek: {reportsapi.BucketWeek, int64(7 * 24 * time.Hour / time.Millisecond), int64(3 * 24 * time.Hour / time.Millisecond)},
}

// start returns the start of the bucket holding ms (ms >= 0).
func (b bucket) start(ms int64) int64 { return (ms+b.offset)/b.size*b.size - b.offset }

// Range is a report's time range, [From, To), in UTC.
type Range struct{ From, To time.Time }

func (r Range) fromMS() int64 { return r.From.UnixMilli() }
func (r Range) toMS() int64   { return r.To.UnixMilli() }

// SalesQuery asks for the sales report.
type SalesQuery struct {
	Range
	Bucket   string
	Currency string
}

// TopQuery asks for the best-selling products.
type TopQuery struct {
	Range
	Currency string
	Limit    int
}

// parseTime reads an RFC 3339 time or a date (YYYY-MM-DD, midnight UTC).
// endOfDay makes a date mean the end of that day: "to=2025-01-31"
// includes the 31st.
func parseTime(s string, endOfDay bool) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC().Truncate(time.Millisecond), true
	}
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		if endOfDay {
			d = d.AddDate(0, 0, 1)
		}
		return d, true
	}
	return time.Time{}, false
}

// parseRange reads from and to. Either may be omitted: to defaults to now
// and from to DefaultRange before to.
func parseRange(q url.Values, now time.Time) (Range, []validation.FieldError) {
	var errs []validation.FieldError
	r := Range{To: now.UTC().Truncate(time.Millisecond)}
	if v := q.Get("to"); v != "" {
		t, ok := parseTime(v, true)
		if !ok {
			errs = append(errs, validation.FieldError{Field: "to", Reason: "must be an RFC 3339 time or a date (YYYY-MM-DD)"})
		}
		r.To = t
	}
	r.From = r.To.Add(-DefaultRange)
	if v := q.Get("from"); v != "" {
		t, ok := parseTime(v, false)
		if !ok {
			errs = append(errs, validation.FieldError{Field: "from", Reason: "must be an RFC 3339 time or a date (YYYY-MM-DD)"})
		}
		r.From = t
	}
	if len(errs) > 0 {
		return r, errs
	}
	switch {
	case r.From.Before(epoch):
		errs = append(errs, validation.FieldError{Field: "from", Reason: "must not be before 1970-01-01"})
	case r.From.After(r.To):
		errs = append(errs, validation.FieldError{Field: "from", Reason: "must not be after to"})
	case r.To.Sub(r.From) > MaxRange:
		errs = append(errs, validation.FieldError{Field: "to", Reason: "the range may span at most 366 days"})
	}
	return r, errs
}

func parseCurrency(q url.Values, def string) (string, []validation.FieldError) {
	c := q.Get("currency")
	if c == "" {
		return def, nil
	}
	if why := validation.Currency(c); why != "" {
		return "", []validation.FieldError{{Field: "currency", Reason: why}}
	}
	return c, nil
}

func parseLimit(q url.Values, def, max int) (int, []validation.FieldError) {
	v := q.Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, []validation.FieldError{{Field: "limit", Reason: fmt.Sprintf("must be an integer from 1 to %d", max)}}
	}
	return n, nil
}

// ParseSalesQuery reads the sales report's query parameters; defaults
// are the last 30 days by day, in currency def.
func ParseSalesQuery(q url.Values, now time.Time, def string) (SalesQuery, []validation.FieldError) {
	r, errs := parseRange(q, now)
	sq := SalesQuery{Range: r, Bucket: reportsapi.BucketDay}
	if v := q.Get("bucket"); v != "" {
		if _, ok := buckets[v]; !ok {
			errs = append(errs, validation.FieldError{Field: "bucket", Reason: "must be hour, day or week"})
		}
		sq.Bucket = v
	}
	c, cerrs := parseCurrency(q, def)
	sq.Currency = c
	return sq, append(errs, cerrs...)
}

// ParseTopQuery reads the top-products query parameters.
func ParseTopQuery(q url.Values, now time.Time, def string) (TopQuery, []validation.FieldError) {
	r, errs := parseRange(q, now)
	c, cerrs := parseCurrency(q, def)
	n, lerrs := parseLimit(q, 10, 100)
	return TopQuery{Range: r, Currency: c, Limit: n}, append(append(errs, cerrs...), lerrs...)
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
