package chaos

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/microshop/microshop/services/reports/reportsapi"
)

// Result is what a run did and found.
type Result struct {
	Seed      uint64
	Shoppers  int
	Duration  time.Duration // asked for
	ChaosTook time.Duration // faults and load, until the last restart
	Targets   []string

	// What the shoppers did and saw.
	Requests, Retried int64
	Registrations     int
	Placed            int // orders the API accepted (201 or 202), distinct
	// ErrorAttempts are failed attempts by kind (refused, reset, timeout,
	// http 503, ...), retried or not; GaveUp are requests that got no
	// usable answer, by the kind of their last failure.
	ErrorAttempts, GaveUp map[string]int
	Samples               []string
	// Latencies are how long each attempt that got an answer took;
	// Deadline and Margin the bound they were held to (none when zero).
	Latencies        []time.Duration
	Deadline, Margin time.Duration

	// The system once settled.
	Orders, Confirmed, Rejected, Cancelled, Pending int
	RejectReasons                                   map[string]int
	InvariantViolations                             int
	Emails, Receipts                                int
	// CrashWindowCopies are emails sent again, with the same Message-ID,
	// because notifications was killed between sending and recording.
	CrashWindowCopies    int
	MailboxPartial       bool
	ReportsRunning       bool
	Reports, ReportsWant *reportsapi.Summary
	// Consumed is, per service, the events its consumers received by
	// outcome, summed over its processes as last scraped: a "duplicate"
	// is a redelivery the inbox turned away.
	Consumed map[string]map[string]float64

	mu         sync.Mutex
	Faults     []Fault
	Violations []string
	// Notes are findings that break no promise, such as a copy sent again
	// in notifications' documented crash window.
	Notes []string
}

func newResult(cfg Config) *Result {
	return &Result{Seed: cfg.Seed, Shoppers: cfg.Shoppers, Duration: cfg.Duration, RejectReasons: map[string]int{},
		ErrorAttempts: map[string]int{}, GaveUp: map[string]int{}}
}

func (r *Result) violate(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
}

func (r *Result) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// killsOf returns when process was killed.
func (r *Result) killsOf(process string) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Time
	for _, f := range r.Faults {
		if f.Process == process && !f.Killed.IsZero() {
			out = append(out, f.Killed)
		}
	}
	return out
}

func (r *Result) addFault(f Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Faults = append(r.Faults, f)
}

// failedStart reports whether a fault could not start process again.
func (r *Result) failedStart(process string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.Faults {
		if f.Process == process && strings.HasPrefix(f.Err, "start:") {
			return true
		}
	}
	return false
}

// FaultsBy counts the faults injected into each process, or of each
// kind for an Injector's faults.
func (r *Result) FaultsBy() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, f := range r.Faults {
		if f.Err == "" || strings.HasPrefix(f.Err, "start:") {
			name := f.Process
			if f.Kind != "" {
				name = f.Kind
			}
			out[name]++
		}
	}
	return out
}

// Percentile returns the p-th percentile (0 to 100) of the answered
// attempts' latencies, and 0 when there are none.
func (r *Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	sorted := slices.Clone(r.Latencies)
	slices.Sort(sorted)
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

// Timeouts counts the attempts that got no answer in time, by kind: the
// shopper's own timeout, and the gateway's 504 (its deadline to a
// service passed).
func (r *Result) Timeouts() map[string]int {
	out := map[string]int{}
	for k, n := range r.ErrorAttempts {
		if k == "timeout" || k == "http 504" {
			out[k] = n
		}
	}
	return out
}

// checkLatency records a violation for every answer that came later than
// deadline plus margin.
func (r *Result) checkLatency(deadline, margin time.Duration) {
	r.Deadline, r.Margin = deadline, margin
	if deadline <= 0 {
		return
	}
	late := 0
	for _, d := range r.Latencies {
		if d > deadline+margin {
			late++
		}
	}
	if late > 0 {
		r.violate("%d answers took longer than the deadline of %s plus %s (the longest %s)", late, deadline, margin, r.Percentile(100).Round(time.Millisecond))
	}
}

// OK reports whether the run found nothing wrong.
func (r *Result) OK() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.Violations) == 0
}

// WriteTable prints the run's figures and every violation.
func (r *Result) WriteTable(w io.Writer) {
	faults := r.FaultsBy()
	total := 0
	for _, n := range faults {
		total += n
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	row("seed\t%d\t(replay: --seed %d --duration %s --shoppers %d)", r.Seed, r.Seed, r.Duration, r.Shoppers)
	row("chaos\t%s\tunder %d shoppers", r.ChaosTook.Round(time.Second), r.Shoppers)
	row("requests\t%d\t(%d attempts retried)", r.Requests, r.Retried)
	row("registrations\t%d\t", r.Registrations)
	row("checkouts placed\t%d\t(accepted by the API; %d orders in the system)", r.Placed, r.Orders)
	row("  confirmed\t%d\t(%d more confirmed, then cancelled)", r.Confirmed, r.Cancelled)
	row("  rejected\t%d\t%s", r.Rejected, countsLine(r.RejectReasons))
	if r.Pending > 0 {
		row("  still pending\t%d\t", r.Pending)
	}
	row("faults injected\t%d\t%s", total, countsLine(faults))
	if len(r.Latencies) > 0 {
		bound := "no deadline checked"
		if r.Deadline > 0 {
			bound = fmt.Sprintf("deadline %s + %s margin", r.Deadline, r.Margin)
		}
		row("latency	p99 %s	p50 %s, max %s over %d answers (%s); no answer in time: %s", r.Percentile(99).Round(time.Millisecond),
			r.Percentile(50).Round(time.Millisecond), r.Percentile(100).Round(time.Millisecond), len(r.Latencies), bound, countsLine(r.Timeouts()))
	}
	attempts := 0
	for _, n := range r.ErrorAttempts {
		attempts += n
	}
	row("client errors\t%d\tfailed attempts by kind (requests given up)", attempts)
	kinds := map[string]bool{}
	for k := range r.ErrorAttempts {
		kinds[k] = true
	}
	for k := range r.GaveUp {
		kinds[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		row("  %s\t%d\t(%d given up)", k, r.ErrorAttempts[k], r.GaveUp[k])
	}
	row("emails\t%d\t(%d receipts; %d sent again in the documented crash window)%s", r.Emails, r.Receipts, r.CrashWindowCopies,
		map[bool]string{true: " only the mailbox's last 1000 were read", false: ""}[r.MailboxPartial])
	for _, svc := range slices.Sorted(maps.Keys(r.Consumed)) {
		c := r.Consumed[svc]
		row("events consumed: %s\t%.0f\thandled; %.0f duplicate (turned away by the inbox), %.0f retried, %.0f dead-lettered",
			svc, c["handled"], c["duplicate"], c["retry"], c["dead_letter"])
	}
	switch {
	case !r.ReportsRunning:
		row("reports\t-\tnot running in this system: not checked")
	case r.Reports != nil:
		row("reports\t%d\tconfirmed, revenue %d, refunds %d, net %d cents (orders say %d, %d, %d, %d)",
			r.Reports.OrdersConfirmed, r.Reports.RevenueCents, r.Reports.RefundsCents, r.Reports.NetCents,
			r.ReportsWant.OrdersConfirmed, r.ReportsWant.RevenueCents, r.ReportsWant.RefundsCents, r.ReportsWant.NetCents)
	}
	r.mu.Lock()
	violations := append([]string(nil), r.Violations...)
	notes := append([]string(nil), r.Notes...)
	r.mu.Unlock()
	row("invariant violations\t%d\t(the checker's: %d)", len(violations), r.InvariantViolations)
	tw.Flush()
	for _, v := range violations {
		fmt.Fprintf(w, "  VIOLATION: %s\n", v)
	}
	for _, n := range notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	if len(r.Samples) > 0 {
		fmt.Fprintln(w, "answers the shoppers did not expect (first few):")
		for _, s := range r.Samples {
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
}

// sortedFaults returns the faults in the order they were injected.
func (r *Result) sortedFaults() []Fault {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]Fault(nil), r.Faults...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// WriteFaults prints the faults in the order they were injected.
func (r *Result) WriteFaults(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	faults := r.sortedFaults()
	if len(faults) > 0 && faults[0].Kind != "" {
		fmt.Fprintln(tw, "AT\tFAULT\tON\tLASTED\tHEALED IN\t")
		for _, f := range faults {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.At.Round(100*time.Millisecond), f.Kind, f.Process,
				f.Down.Round(100*time.Millisecond), f.Restart.Round(time.Millisecond), f.Err)
		}
		tw.Flush()
		return
	}
	fmt.Fprintln(tw, "AT\tKILLED\tPID\tDOWN\tREADY AFTER\t")
	for _, f := range faults {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", f.At.Round(100*time.Millisecond), f.Process, f.PID,
			f.Down.Round(10*time.Millisecond), f.Restart.Round(10*time.Millisecond), f.Err)
	}
	tw.Flush()
}

func countsLine(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		name := k
		if name == "" {
			name = "(none)"
		}
		parts = append(parts, fmt.Sprintf("%s %d", name, m[k]))
	}
	return strings.Join(parts, ", ")
}
