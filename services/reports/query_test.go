package reports

import (
	"net/url"
	"testing"
	"time"
)

func TestBucketStarts(t *testing.T) {
	at := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UnixMilli()
	}
	cases := []struct{ bucket, at, want string }{
		{"hour", "2025-03-04T10:59:59.999Z", "2025-03-04T10:00:00Z"},
		{"hour", "2025-03-04T11:00:00Z", "2025-03-04T11:00:00Z"},
		{"day", "2025-03-04T23:59:59.999Z", "2025-03-04T00:00:00Z"},
		{"day", "2025-03-05T00:00:00Z", "2025-03-05T00:00:00Z"},
		// A UTC offset is only another way to write the instant.
		{"day", "2025-03-05T01:30:00+02:00", "2025-03-04T00:00:00Z"},
		// Weeks start on Monday: 2025-03-03 is one, 2025-03-09 a Sunday.
		{"week", "2025-03-09T23:59:59.999Z", "2025-03-03T00:00:00Z"},
		{"week", "2025-03-10T00:00:00Z", "2025-03-10T00:00:00Z"},
		{"week", "2025-03-03T00:00:00Z", "2025-03-03T00:00:00Z"},
		{"week", "1970-01-01T00:00:00Z", "1969-12-29T00:00:00Z"},
		{"week", "2024-12-31T12:00:00Z", "2024-12-30T00:00:00Z"},
	}
	for _, c := range cases {
		got := msTime(buckets[c.bucket].start(at(c.at))).Format(time.RFC3339)
		if got != c.want {
			t.Errorf("%s bucket of %s starts at %s, want %s", c.bucket, c.at, got, c.want)
		}
	}
}

func TestParseSalesQuery(t *testing.T) {
	now := time.Date(2025, 3, 4, 10, 30, 0, 0, time.UTC)
	cases := []struct {
		query            string
		from, to, bucket string
		bad              string // the field refused, if any
	}{
		{query: "", from: "2025-02-02T10:30:00Z", to: "2025-03-04T10:30:00Z", bucket: "day"},
		{query: "from=2025-01-01&to=2025-01-31&bucket=week", from: "2025-01-01T00:00:00Z", to: "2025-02-01T00:00:00Z", bucket: "week"},
		{query: "from=2025-01-01T12:00:00%2B01:00&to=2025-01-02T00:00:00Z&bucket=hour", from: "2025-01-01T11:00:00Z", to: "2025-01-02T00:00:00Z", bucket: "hour"},
		{query: "to=2025-01-31", from: "2025-01-02T00:00:00Z", to: "2025-02-01T00:00:00Z", bucket: "day"},
		{query: "from=2025-03-04&to=2025-03-04", from: "2025-03-04T00:00:00Z", to: "2025-03-05T00:00:00Z", bucket: "day"},
		{query: "from=2024-01-01&to=2024-12-31", from: "2024-01-01T00:00:00Z", to: "2025-01-01T00:00:00Z", bucket: "day"}, // 366 days: a leap year
		{query: "from=2024-01-01&to=2025-01-01", bad: "to"},
		{query: "from=2025-02-01&to=2025-01-01", bad: "from"},
		{query: "from=yesterday", bad: "from"},
		{query: "to=2025-13-01", bad: "to"},
		{query: "bucket=month", bad: "bucket"},
		{query: "currency=usd", bad: "currency"},
		{query: "from=1969-12-31&to=1970-01-02", bad: "from"},
	}
	for _, c := range cases {
		q, err := url.ParseQuery(c.query)
		if err != nil {
			t.Fatal(err)
		}
		sq, errs := ParseSalesQuery(q, now, "USD")
		if c.bad != "" {
			if len(errs) != 1 || errs[0].Field != c.bad {
				t.Errorf("%q: errors %v, want one on %s", c.query, errs, c.bad)
			}
			continue
		}
		if len(errs) > 0 {
			t.Errorf("%q: %v", c.query, errs)
			continue
		}
		if got := sq.From.Format(time.RFC3339); got != c.from {
			t.Errorf("%q: from %s, want %s", c.query, got, c.from)
		}
		if got := sq.To.Format(time.RFC3339); got != c.to {
			t.Errorf("%q: to %s, want %s", c.query, got, c.to)
		}
		if sq.Bucket != c.bucket || sq.Currency != "USD" {
			t.Errorf("%q: bucket %s currency %s", c.query, sq.Bucket, sq.Currency)
		}
	}
}

func TestPrefersCSV(t *testing.T) {
	cases := []struct {
		accept string
		csv    bool
	}{
		{"", false},
		{"text/csv", true},
		{"application/json", false},
		{"text/csv, application/json", true},
		{"application/json, text/csv", false},
		{"application/json;q=0.5, text/csv", true},
		{"text/csv;q=0.2, */*", false},
		{"text/csv;q=0", false},
		{"text/html", false},
	}
	for _, c := range cases {
		if got := prefersCSV([]string{c.accept}); got != c.csv {
			t.Errorf("Accept %q: csv %v, want %v", c.accept, got, c.csv)
		}
	}
}

func TestCSVText(t *testing.T) {
	for in, want := range map[string]string{"SKU-1": "SKU-1", "=HYPERLINK(1)": "'=HYPERLINK(1)", "+1": "'+1", "-x": "'-x", "@a": "'@a", "": ""} {
		if got := text(in); got != want {
			t.Errorf("text(%q) = %q, want %q", in, got, want)
		}
	}
}
