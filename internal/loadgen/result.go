package loadgen

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Result is what a run measured. It encodes as the JSON of
// `microshop load --json`.
type Result struct {
	Parameters     Parameters `json:"parameters"`
	Start          time.Time  `json:"start"`
	End            time.Time  `json:"end"`
	ElapsedSeconds float64    `json:"elapsed_seconds"`
	// Interrupted: the run was stopped before its duration (Ctrl-C).
	Interrupted bool  `json:"interrupted"`
	Setup       Setup `json:"setup"`
	// Operations has one entry per operation the scenario ran.
	Operations []OpResult `json:"operations"`
	Totals     OpResult   `json:"totals"`
	// Unsent counts open-loop operations that were due before the end but
	// never sent because every one of MaxInFlight was busy.
	Unsent                      int64   `json:"unsent"`
	ConfirmedCheckouts          int64   `json:"confirmed_checkouts"`
	ConfirmedCheckoutsPerSecond float64 `json:"confirmed_checkouts_per_second"`
	// Notes explain figures that need it: rate limits, stock, unsent.
	Notes []string `json:"notes,omitempty"`
}

// Parameters are the run's settings.
type Parameters struct {
	Target   string `json:"target"`
	Scenario string `json:"scenario"`
	// Mode is "open" (a fixed rate) or "closed" (a fixed concurrency).
	Mode            string  `json:"mode"`
	Rate            float64 `json:"rate,omitempty"`
	Concurrency     int     `json:"concurrency,omitempty"`
	Duration        string  `json:"duration"`
	DurationSeconds float64 `json:"duration_seconds"`
	Users           int     `json:"users,omitempty"`
	Seed            uint64  `json:"seed"`
	Timeout         string  `json:"timeout"`
	MaxInFlight     int     `json:"max_in_flight,omitempty"`
}

// Setup is what was done before the load, outside its figures.
type Setup struct {
	Seconds  float64 `json:"seconds"`
	Requests int64   `json:"requests"`
	// Products is the size of the catalog read.
	Products int `json:"products"`
	// Customers were registered and logged in.
	Customers int `json:"customers"`
	// Restocked products were topped up (with admin credentials).
	Restocked int `json:"restocked_products"`
}

// OpResult is the figures of one operation, or of all of them.
type OpResult struct {
	Name   string `json:"name"`
	Count  int64  `json:"count"`
	Errors int64  `json:"errors"`
	// ErrorsByKind: "status_503", "timeout", "connection", "bad_response",
	// "wrong_outcome:REJECTED/out_of_stock", ...
	ErrorsByKind  map[string]int64 `json:"errors_by_kind"`
	RatePerSecond float64          `json:"rate_per_second"`
	// LatencyMS covers every operation, answered or failed, from when it
	// was due to when it ended.
	LatencyMS Latency `json:"latency_ms"`
	// HTTPRequests (totals only) counts the requests sent, a checkout's
	// polls included.
	HTTPRequests int64 `json:"http_requests,omitempty"`
}

// Latency is a latency distribution in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// Error kinds besides "status_NNN" and "wrong_outcome:...".
const (
	KindTimeout     = AttemptTimeout
	KindConnection  = "connection"
	KindBadResponse = "bad_response"
	// KindCancelled: the run was interrupted; never recorded.
	KindCancelled = AttemptCancelled
)

// Kinds lists errors by kind, the most frequent first, as in
// "status_503 4, timeout 1" ("-" for none).
func Kinds(m map[string]int64) string {
	if len(m) == 0 {
		return "-"
	}
	names := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		return cmp.Or(cmp.Compare(m[b], m[a]), strings.Compare(a, b))
	})
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// Histograms hold microseconds from 1µs to an hour, to three significant
// digits.
const maxMicros = int64(time.Hour / time.Microsecond)

type opStats struct {
	count, errors int64
	kinds         map[string]int64
	hist          *hdrhistogram.Histogram
}

func newOpStats() *opStats {
	return &opStats{kinds: make(map[string]int64), hist: hdrhistogram.New(1, maxMicros, 3)}
}

func (o *opStats) add(latency time.Duration, kind string) {
	us := min(max(latency.Microseconds(), 1), maxMicros)
	_ = o.hist.RecordValue(us) // in range by construction
	o.count++
	if kind != "" {
		o.errors++
		o.kinds[kind]++
	}
}

func (o *opStats) result(name string, elapsed time.Duration) OpResult {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	res := OpResult{
		Name:         name,
		Count:        o.count,
		Errors:       o.errors,
		ErrorsByKind: make(map[string]int64, len(o.kinds)),
		LatencyMS: Latency{
			P50:  ms(o.hist.ValueAtQuantile(50)),
			P90:  ms(o.hist.ValueAtQuantile(90)),
			P99:  ms(o.hist.ValueAtQuantile(99)),
			P999: ms(o.hist.ValueAtQuantile(99.9)),
			Max:  ms(o.hist.Max()),
			Mean: o.hist.Mean() / 1000,
		},
	}
	for k, n := range o.kinds {
		res.ErrorsByKind[k] = n
	}
	if s := elapsed.Seconds(); s > 0 {
		res.RatePerSecond = float64(o.count) / s
	}
	return res
}

// stats gathers the samples of a run.
type stats struct {
	mu        sync.Mutex
	ops       map[string]*opStats
	total     *opStats
	confirmed int64
}

func newStats() *stats {
	return &stats{ops: make(map[string]*opStats), total: newOpStats()}
}

func (s *stats) add(smp Sample, confirmed bool) {
	lat := smp.Latency()
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.ops[smp.Op]
	if o == nil {
		o = newOpStats()
		s.ops[smp.Op] = o
	}
	o.add(lat, smp.Kind)
	s.total.add(lat, smp.Kind)
	if confirmed {
		s.confirmed++
	}
}

func (s *stats) progress() Progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Progress{
		Operations: s.total.count,
		Errors:     s.total.errors,
		P99:        time.Duration(s.total.hist.ValueAtQuantile(99)) * time.Microsecond,
	}
}

// result lists the operations in the scenario's order, then any others by
// name.
func (s *stats) result(order []string, elapsed time.Duration) *Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.ops))
	for name := range s.ops {
		names = append(names, name)
	}
	rank := func(n string) int {
		if i := slices.Index(order, n); i >= 0 {
			return i
		}
		return len(order)
	}
	slices.SortFunc(names, func(a, b string) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	res := &Result{Operations: []OpResult{}, ConfirmedCheckouts: s.confirmed}
	for _, n := range names {
		res.Operations = append(res.Operations, s.ops[n].result(n, elapsed))
	}
	res.Totals = s.total.result("total", elapsed)
	return res
}

// notes explains what in res needs explaining.
func notes(res *Result) []string {
	var out []string
	kinds := res.Totals.ErrorsByKind
	if kinds["status_429"] > 0 {
		out = append(out, fmt.Sprintf("%d operations were refused with 429 Too Many Requests: the system's rate limits, not its capacity, "+
			"set these figures. For a load test start it with MICROSHOP_RATE_LIMIT=0 MICROSHOP_LOGIN_RATE_IP=0 MICROSHOP_REGISTER_RATE_IP=0 "+
			"(and MICROSHOP_LOGIN_RATE_ACCOUNT=0, or more --users, for long mixed runs).",
			kinds["status_429"]))
	}
	if n := kinds[outcomeKind("REJECTED", "out_of_stock")]; n > 0 {
		out = append(out, fmt.Sprintf("%d checkouts were rejected out of stock: give the admin's credentials "+
			"(MICROSHOP_ADMIN_EMAIL and MICROSHOP_ADMIN_PASSWORD) so that load restocks before it starts.", n))
	}
	if res.Unsent > 0 {
		out = append(out, fmt.Sprintf("%d operations were due but never sent: all %d in flight were busy when the run ended. "+
			"The system could not keep up with the rate; raise --max-in-flight or lower --rate.", res.Unsent, res.Parameters.MaxInFlight))
	}
	if res.Interrupted {
		out = append(out, "The run was interrupted: the figures cover the time until then.")
	}
	return out
}
