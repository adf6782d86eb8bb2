package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/loadgen"
)

// The results file: a Markdown page of tables. Each table has a fixed
// heading and a fixed number of label columns on the left; every other
// cell is a number, or one of the words in okWords. checkResults holds a
// file to that, and the test in this folder checks it on a real run.

// tables are the headings of the tables, with their label columns.
var tables = []struct {
	heading  string
	labels   int
	optional bool // checked only when present
}{
	{"## Targets (issue 8)", 1, false},
	{"## Ceiling", 1, false},
	{"## Browse: the product list through the gateway", 1, false},
	{"## Browse scenario of microshop load", 1, false},
	{"## Checkout", 1, false},
	{"## Processes: memory and CPU", 3, false},
	{"## Consumers' lag", 1, false},
	{"## Ratios", 1, false},
	{pgHeading, 1, true},
}

const pgHeading = "## PostgreSQL: what the postgres mode cost the server"

var okWords = map[string]bool{"yes": true, "no": true, "pass": true, "miss": true, "n/a": true}

const machineHeading = "## Machine"

const mib = 1 << 20

func render(r *results) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	kind := "full run"
	if r.Settings.Quick {
		kind = "quick run (--quick: a few seconds per phase; it checks that everything runs, its figures mean little)"
	}
	p("# microshop benchmark, %s\n\n", r.Started.Format("2006-01-02"))
	p("Written by `bench/run` (%s) from %s to %s (%s). Every figure below was measured in this one run, on this one machine, "+
		"with the load generator on the same machine (it takes CPU from the system it measures; its share is shown).\n\n",
		kind, r.Started.Format("15:04:05 MST"), r.Finished.Format("15:04:05 MST"), r.Finished.Sub(r.Started).Round(time.Second))

	m := r.Machine
	p("%s\n\n| | |\n|---|---|\n", machineHeading)
	p("| cores | %d |\n| CPU | %s |\n| memory | %.1f GiB |\n| Go | %s |\n| kernel | %s |\n| host id | %s |\n",
		m.Cores, m.Model, float64(m.MemTotal)/(1<<30), m.GoVersion, m.Kernel, m.HostID)
	p("| load average before (1, 5, 15 min) | %s |\n", fmtLoad(m.LoadBefore))
	if m.LoadWaited > 0 {
		p("| waited for the load to drop | %s |\n", m.LoadWaited.Round(time.Second))
	}
	p("| load average at start | %s |\n| load average at the end | %s |\n\n", fmtLoad(m.LoadAtStart), fmtLoad(m.LoadAfter))
	if m.LoadAtStart[0] > float64(m.Cores)/2 {
		p("The machine was shared: other work kept the load average at %.1f on %d cores when this run started, so "+
			"these figures are lower, and noisier, than the same code reaches on a quiet machine.\n\n", m.LoadAtStart[0], m.Cores)
	}

	ms, mono, pg := r.mode("microservices"), r.mode("monolith"), r.mode(postgresMode)

	// Targets.
	p("## Targets (issue 8)\n\nThe targets are for a 2-core machine with the load generator on it; this machine has %d cores.\n\n", m.Cores)
	p("| target | goal | measured | result |\n|---|---|---|---|\n")
	for _, t := range targets(ms, mono, pg) {
		p("| %s | %s | %s | %s |\n", t.name, num(t.goal, 0), t.measuredCell(), t.result())
	}
	p("\n")

	// Ceiling.
	p("## Ceiling\n\nbenchrun's own closed loop (keep-alive, one connection per worker) for throughput, then an open loop at half of it for latency, counted from when each request was due.\n\n")
	p("| chain | concurrency | requests/s | errors | CPU ms per request | load generator, cores | open-loop rate/s | p50 ms | p99 ms | RSS idle MiB | RSS under load MiB |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range r.Ceiling {
		var idle, load int64
		for _, f := range c.Procs {
			idle += f.RSSIdle
			load += f.RSSLoad
		}
		p("| %s | %d | %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", c.Name, c.Workers, num(c.Sat.Rate, 0), c.Sat.Errors+c.Open.Errors,
			num(c.CPUPerOp, 3), num(c.LoadGen, 2), num(c.OpenRate, 0), num(c.Open.Lat.P50, 2), num(c.Open.Lat.P99, 2),
			num(float64(idle)/mib, 1), num(float64(load)/mib, 1))
	}
	p("\n")

	// Browse.
	p("## Browse: the product list through the gateway\n\n`GET %s` with the same load generator as the ceiling: the gateway forwards it to inventory, which reads SQLite.\n\n", productList)
	p("| mode | concurrency | requests/s | errors | CPU ms per request | load generator, cores | open-loop rate/s | p50 ms | p99 ms | open-loop errors |\n")
	p("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, mr := range r.Modes {
		if !mr.measured() {
			p("| %s | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |\n", mr.Mode)
			continue
		}
		p("| %s | %d | %s | %d | %s | %s | %s | %s | %s | %d |\n", mr.Mode, r.Settings.BrowseWorkers, num(mr.Browse.Rate, 0), mr.Browse.Errors,
			num(mr.BrowseCPU, 3), num(mr.BrowseLoadGen, 2), num(mr.BrowseOpenRate, 0), num(mr.BrowseOpen.Lat.P50, 2),
			num(mr.BrowseOpen.Lat.P99, 2), mr.BrowseOpen.Errors+mr.BrowseOpen.Unsent)
	}
	p("\n")

	p("## Browse scenario of microshop load\n\n`microshop load --scenario browse` (as a library): 35%% catalog pages (the first half the time), 25%% searches, 40%% single products; closed loop.\n\n")
	p("| mode | concurrency | operations/s | errors | CPU ms per operation | p50 ms | p99 ms |\n|---|---|---|---|---|---|---|\n")
	for _, mr := range r.Modes {
		if !mr.measured() || mr.Mix == nil {
			p("| %s | n/a | n/a | n/a | n/a | n/a | n/a |\n", mr.Mode)
			continue
		}
		t := mr.Mix.Totals
		p("| %s | %d | %s | %d | %s | %s | %s |\n", mr.Mode, r.Settings.BrowseWorkers, num(t.RatePerSecond, 0), t.Errors,
			num(mr.MixCPU, 3), num(t.LatencyMS.P50, 2), num(t.LatencyMS.P99, 2))
	}
	p("\n")

	// Checkout.
	p("## Checkout\n\n`microshop load --scenario checkout` (as a library) with %d customers, stock topped up by the admin first: "+
		"95%% of orders with 4242 4242 4242 4242 (must end CONFIRMED), 5%% with 4000 0000 0000 0002 (must end REJECTED, payment_declined). "+
		"A confirmed checkout has its order, stock, payment, ledger and events committed. Closed loop for throughput, then open loop at half "+
		"of it; latency is the customer's wait for the final state (polls included). CPU per confirmed checkout is the CPU of every process of "+
		"the system from the start of the closed loop until its consumers had drained, divided by the confirmed checkouts.\n\n", r.Settings.Users)
	p("| mode | concurrency | confirmed/s | checkouts/s | errors | p50 ms | p99 ms | CPU ms per confirmed checkout | load generator, cores | open-loop rate/s | open-loop p50 ms | open-loop p99 ms | open-loop errors |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, mr := range r.Modes {
		if !mr.measured() || mr.Checkout == nil || mr.CheckoutOpen == nil {
			p("| %s |%s\n", mr.Mode, strings.Repeat(" n/a |", 12))
			continue
		}
		co, op := mr.Checkout, opResult(mr.CheckoutOpen, loadgen.OpCheckout)
		sat := opResult(co, loadgen.OpCheckout)
		p("| %s | %d | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %d |\n", mr.Mode, r.Settings.CheckoutWorkers,
			num(co.ConfirmedCheckoutsPerSecond, 0), num(co.Totals.RatePerSecond, 0), co.Totals.Errors,
			num(sat.LatencyMS.P50, 1), num(sat.LatencyMS.P99, 1), num(mr.CheckoutCPU, 2), num(mr.CheckoutLoadGen, 2),
			num(mr.CheckoutOpenRate, 0), num(op.LatencyMS.P50, 1), num(op.LatencyMS.P99, 1), mr.CheckoutOpen.Totals.Errors+mr.CheckoutOpen.Unsent)
	}
	p("\n")

	// Processes.
	p("## Processes: memory and CPU\n\nEvery process in run.json, and `run` itself (its supervisor, mail server and trace collector). RSS is VmRSS; under load is the highest seen during the load phases (sampled every 250 ms; for checkout from a second after its setup, which registers and logs in customers, a burst of password hashing). " +
		"RSS counts the pages of the binary each process maps (the same 60 MB file for all): anon is the process's own memory (heap, stacks, SQLite's caches), and PSS shares the binary's pages among the processes that map them, so PSS adds up to what the system holds. CPU is utime+stime.\n\n")
	p("| mode | process | pid | RSS idle MiB | RSS under load MiB | anon under load MiB | PSS under load MiB | CPU idle, %% of a core | CPU ms per product-list request | CPU ms per confirmed checkout |\n")
	p("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, mr := range r.Modes {
		if !mr.measured() {
			p("| %s | all | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |\n", mr.Mode)
			continue
		}
		var idle, load, anon, pss int64
		var ic, cb, cc float64
		for _, f := range mr.Procs {
			p("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", mr.Mode, f.Label, f.PID, num(float64(f.RSSIdle)/mib, 1), num(float64(f.RSSLoad)/mib, 1),
				num(float64(f.AnonLoad)/mib, 1), num(float64(f.PssLoad)/mib, 1), num(f.IdleCores*100, 1), num(f.CPUPerBrowse, 3), num(f.CPUPerCheckout, 3))
			idle += f.RSSIdle
			load += f.RSSLoad
			anon += f.AnonLoad
			pss += f.PssLoad
			ic += f.IdleCores
			cb += f.CPUPerBrowse
			cc += f.CPUPerCheckout
		}
		p("| %s | total | - | %s | %s | %s | %s | %s | %s | %s |\n", mr.Mode, num(float64(idle)/mib, 1), num(float64(load)/mib, 1),
			num(float64(anon)/mib, 1), num(float64(pss)/mib, 1), num(ic*100, 1), num(cb, 3), num(cc, 3))
	}
	p("\n")

	// PostgreSQL.
	if pg != nil && pg.PG != nil {
		p("%s\n\nThe postgres mode is microservices mode with every service's database on the machine's PostgreSQL (`microshop run --db`), in databases made for this run and dropped after. "+
			"Commits are pg_stat_database's xact_commit summed over those databases: a statement sent outside a transaction counts as one too. Backends are pg_stat_activity's rows for them. "+
			"Their CPU (from /proc, sampled every 250 ms) is counted in the mode's CPU per confirmed checkout above, since on SQLite the same work is done inside the services; the server's shared processes (WAL writer, checkpointer) are not.\n\n", pgHeading)
		f := pg.PG
		p("| figure | value |\n|---|---|\n")
		p("| commits/s across the databases, idle (over %s s) | %s |\n", num(f.IdleSeconds, 0), num(f.IdleCommits, 2))
		p("| backends, idle | %d |\n", f.IdleBackends)
		p("| backends, most at once in the checkout closed loop | %d |\n", f.PeakBackends)
		p("| commits per confirmed checkout | %s |\n", num(f.CommitsPer, 1))
		p("| backends' CPU ms per confirmed checkout | %s |\n", num(f.BackendCPUPer, 2))
		p("| services' CPU ms per confirmed checkout (every process of run) | %s |\n\n", num(pg.CheckoutCPU-f.BackendCPUPer, 2))
	}

	// Lag.
	p("## Consumers' lag\n\nThe sum over every durable consumer of its pending and unacknowledged events (GET /api/telemetry/streams through the gateway, as the admin), right after the checkout closed loop and again at the end; each is waited on (at most %s) until it drains.\n\n", r.Settings.LagWait)
	p("| mode | lag after checkout saturation | drained | seconds to drain | lag at the end | drained at the end |\n|---|---|---|---|---|---|\n")
	for _, mr := range r.Modes {
		if !mr.measured() {
			p("| %s | n/a | n/a | n/a | n/a | n/a |\n", mr.Mode)
			continue
		}
		p("| %s | %d | %s | %s | %d | %s |\n", mr.Mode, mr.LagAtEnd.total(), yes(mr.LagDrained), num(mr.LagDrainTook.Seconds(), 1),
			mr.FinalLag.total(), yes(mr.FinalDrained))
	}
	p("\n")

	// Ratios.
	p("## Ratios\n\n")
	p("| ratio | value |\n|---|---|\n")
	for _, q := range ratios(r, ms, mono) {
		p("| %s | %s |\n", q.name, q.cell())
	}
	p("\n")

	// Notes and settings.
	p("## Notes\n\n")
	var notes []string
	for _, mr := range r.Modes {
		if mr.Skipped != "" {
			notes = append(notes, mr.Mode+": skipped: "+mr.Skipped+".")
		}
		if mr.Failed != "" {
			notes = append(notes, mr.Mode+": failed: "+oneLine(mr.Failed))
		}
		if mr.LagError != "" {
			notes = append(notes, mr.Mode+": reading the consumers' lag: "+oneLine(mr.LagError))
		}
		if mr.measured() {
			if k := mr.Browse.ByKind; len(k) > 0 {
				notes = append(notes, fmt.Sprintf("%s browse errors: %s.", mr.Mode, loadgen.Kinds(k)))
			}
			if mr.Checkout != nil && mr.Checkout.Totals.Errors > 0 {
				notes = append(notes, fmt.Sprintf("%s checkout errors: %s.", mr.Mode, loadgen.Kinds(mr.Checkout.Totals.ErrorsByKind)))
			}
			if mr.CheckoutOpen != nil && mr.CheckoutOpen.Totals.Errors > 0 {
				notes = append(notes, fmt.Sprintf("%s open-loop checkout errors: %s.", mr.Mode, loadgen.Kinds(mr.CheckoutOpen.Totals.ErrorsByKind)))
			}
			for _, n := range mr.Notes {
				notes = append(notes, mr.Mode+": "+n)
			}
			notes = append(notes, fmt.Sprintf("%s: ready %.1fs after `microshop run` started; idle, the system used %.1f%% of a core.", mr.Mode, mr.StartSeconds, mr.IdleCores*100))
		}
	}
	if len(notes) == 0 {
		notes = append(notes, "none")
	}
	for _, n := range notes {
		p("- %s\n", n)
	}
	s := r.Settings
	p("\n## How this was measured\n\n")
	p("- Saturation: closed loops of %s (checkout %s) after a %s warm-up; ceiling and browse at %d workers, checkout at %d customers in flight.\n",
		s.Saturate, s.CheckoutPhase, s.Warmup, s.BrowseWorkers, s.CheckoutWorkers)
	p("- Latency: open loops of %s at half the saturated rate; an operation's latency runs from when it was due, so queueing is not hidden.\n", s.Open)
	p("- The postgres mode (when --modes has it and the server at --postgres answers): microservices mode with `--db` on that server and a fresh `--db-prefix`, its databases dropped at the end; commits with no traffic counted over %s.\n", s.PGIdle)
	p("- `microshop run` as shipped (SQLite files, embedded NATS, tracing to run's collector, log level info), with the rate limits off (MICROSHOP_RATE_LIMIT=0, MICROSHOP_LOGIN_RATE_IP=0, MICROSHOP_REGISTER_RATE_IP=0, MICROSHOP_LOGIN_RATE_ACCOUNT=0) and an admin to restock; a fresh data directory per mode.\n")
	p("- Reproduce: `bench/run` (about 10 minutes, more when it waits for a busy machine; `bench/run --quick` for a smoke test). Profiles and what each optimisation bought: bench/NOTES.md.\n")
	return b.String()
}

func (r *results) mode(name string) *modeResult {
	for _, m := range r.Modes {
		if m.Mode == name {
			return m
		}
	}
	return nil
}

func (mr *modeResult) measured() bool {
	return mr != nil && mr.Skipped == "" && mr.Failed == "" && mr.Checkout != nil
}

// --- targets ---

type target struct {
	name     string
	goal     float64
	measured float64
	have     bool // measured at all
	pass     bool
}

func (t target) measuredCell() string {
	if !t.have {
		return "n/a"
	}
	return num(t.measured, 1)
}

func (t target) result() string {
	switch {
	case !t.have:
		return "n/a"
	case t.pass:
		return "pass"
	}
	return "miss"
}

func targets(ms, mono, pg *modeResult) []target {
	var out []target
	atLeast := func(name string, goal float64, mr *modeResult, f func(*modeResult) float64) {
		t := target{name: name, goal: goal}
		if mr.measured() {
			t.measured, t.have = f(mr), true
			t.pass = t.measured >= goal
		}
		out = append(out, t)
	}
	under := func(name string, goal float64, mr *modeResult, f func(*modeResult) float64) {
		t := target{name: name, goal: goal}
		if mr.measured() {
			t.measured, t.have = f(mr), true
			t.pass = t.measured < goal
		}
		out = append(out, t)
	}
	atLeast("microservices: confirmed checkouts/s at saturation, at least", 700, ms,
		func(m *modeResult) float64 { return m.Checkout.ConfirmedCheckoutsPerSecond })
	t := target{name: "microservices: checkout p99 ms in open loop at 350/s, under (measured at half of saturation: a miss when that is below 350/s)", goal: 50}
	if ms.measured() {
		t.measured, t.have = opResult(ms.CheckoutOpen, loadgen.OpCheckout).LatencyMS.P99, true
		t.pass = t.measured < 50 && ms.CheckoutOpenRate >= 350
	}
	out = append(out, t)
	atLeast("microservices: product list requests/s through the gateway, at least", 4000, ms,
		func(m *modeResult) float64 { return m.Browse.Rate })
	atLeast("monolith: confirmed checkouts/s at saturation, at least", 1500, mono,
		func(m *modeResult) float64 { return m.Checkout.ConfirmedCheckoutsPerSecond })
	under("microservices: largest service process RSS under load, MiB, under", 40, ms, func(m *modeResult) float64 {
		return float64(largestService(m)) / mib
	})
	under("microservices: run itself (supervisor, mailbox, trace collector) RSS under load, MiB, under", 40, ms, func(m *modeResult) float64 {
		return float64(runRSS(m)) / mib
	})
	if pg != nil {
		t := target{name: "postgres: confirmed checkouts/s, % of microservices mode's on SQLite in this run, at least", goal: 60}
		if pg.measured() && ms.measured() && ms.Checkout.ConfirmedCheckoutsPerSecond > 0 {
			t.measured, t.have = 100*pg.Checkout.ConfirmedCheckoutsPerSecond/ms.Checkout.ConfirmedCheckoutsPerSecond, true
			t.pass = t.measured >= t.goal
		}
		out = append(out, t)
		under("postgres: commits/s across every database when idle, under", 5, pg, func(m *modeResult) float64 { return m.PG.IdleCommits })
		t = target{name: "postgres: failed checkouts, closed and open loop (must be 0)", goal: 0}
		if pg.measured() {
			t.measured, t.have = float64(pg.Checkout.Totals.Errors+pg.CheckoutOpen.Totals.Errors+pg.CheckoutOpen.Unsent), true
			t.pass = t.measured == 0
		}
		out = append(out, t)
	}
	for _, mr := range []*modeResult{ms, mono} {
		name := "microservices"
		if mr == mono {
			name = "monolith"
		}
		under(name+": whole system RSS under load (every process, run and NATS included), MiB, under", 250, mr, func(m *modeResult) float64 {
			var sum int64
			for _, f := range m.Procs {
				sum += f.RSSLoad
			}
			return float64(sum) / mib
		})
		under(name+": whole system PSS under load (the binary's shared pages counted once), MiB, under", pssGoal, mr, func(m *modeResult) float64 {
			return float64(wholePSS(m)) / mib
		})
		t := target{name: name + ": consumers' lag at the end, events (it must drain to 0)", goal: 0}
		if mr.measured() {
			t.measured, t.have = float64(mr.FinalLag.total()), true
			t.pass = mr.FinalDrained && mr.FinalLag.total() == 0
		}
		out = append(out, t)
	}
	return out
}

// The memory goals of issue 15, microservices mode under checkout load:
// the whole system's PSS, `run` itself, and each service process.
const (
	pssGoal     = 200
	runRSSGoal  = 40
	serviceGoal = 40
)

// wholePSS is the sum of every process's PSS under load: what the system
// holds, the binary's shared pages counted once.
func wholePSS(m *modeResult) int64 {
	var sum int64
	for _, f := range m.Procs {
		sum += f.PssLoad
	}
	return sum
}

// largestService is the highest RSS under load of a service process.
func largestService(m *modeResult) int64 {
	var worst int64
	for _, f := range m.Procs {
		if isService(f.Label) {
			worst = max(worst, f.RSSLoad)
		}
	}
	return worst
}

// runRSS is the RSS under load of run's own process (in monolith mode,
// the whole system).
func runRSS(m *modeResult) int64 {
	for _, f := range m.Procs {
		if strings.HasPrefix(f.Label, "run") {
			return f.RSSLoad
		}
	}
	return 0
}

// memoryVerdicts are the memory figures of a measured mode against the
// goals, one line each, for benchrun to print as it goes.
func memoryVerdicts(m *modeResult) []string {
	if !m.measured() {
		return nil
	}
	verdict := func(v int64, goal float64) string {
		if float64(v)/mib <= goal {
			return "pass"
		}
		return "miss"
	}
	lines := []string{fmt.Sprintf("whole system PSS under load %.1f MiB (goal <= %d, microservices): %s", float64(wholePSS(m))/mib, pssGoal, verdict(wholePSS(m), pssGoal))}
	if m.Mode != "microservices" {
		return lines
	}
	lines = append(lines, fmt.Sprintf("run (supervisor, mailbox, collector) RSS under load %.1f MiB (goal <= %d): %s", float64(runRSS(m))/mib, runRSSGoal, verdict(runRSS(m), runRSSGoal)))
	for _, f := range m.Procs {
		if isService(f.Label) || f.Label == "nats" {
			goal := fmt.Sprintf("goal <= %d", serviceGoal)
			v := verdict(f.RSSLoad, serviceGoal)
			if f.Label == "nats" {
				goal, v = "no goal of its own", "-"
			}
			lines = append(lines, fmt.Sprintf("%s RSS under load %.1f MiB (anon %.1f, PSS %.1f; %s): %s", f.Label, float64(f.RSSLoad)/mib,
				float64(f.AnonLoad)/mib, float64(f.PssLoad)/mib, goal, v))
		}
	}
	return lines
}

func isService(label string) bool {
	switch label {
	case "gateway", "users", "inventory", "orders", "payments", "notifications", "reports":
		return true
	}
	return false
}

// --- ratios ---

type ratio struct {
	name string
	a, b float64
}

func (q ratio) cell() string {
	if q.a <= 0 || q.b <= 0 || math.IsNaN(q.a/q.b) {
		return "n/a"
	}
	return num(q.a/q.b, 2)
}

func ratios(r *results, ms, mono *modeResult) []ratio {
	var out []ratio
	val := func(mr *modeResult, f func(*modeResult) float64) float64 {
		if !mr.measured() {
			return 0
		}
		return f(mr)
	}
	browse := func(mr *modeResult) float64 { return mr.Browse.Rate }
	confirmed := func(mr *modeResult) float64 { return mr.Checkout.ConfirmedCheckoutsPerSecond }
	cpu := func(mr *modeResult) float64 { return mr.CheckoutCPU }
	p99 := func(mr *modeResult) float64 { return opResult(mr.CheckoutOpen, loadgen.OpCheckout).LatencyMS.P99 }
	browseP99 := func(mr *modeResult) float64 { return mr.BrowseOpen.Lat.P99 }
	rss := func(mr *modeResult) float64 {
		var s int64
		for _, f := range mr.Procs {
			s += f.RSSLoad
		}
		return float64(s)
	}
	out = append(out,
		ratio{"microservices/monolith: product list requests/s", val(ms, browse), val(mono, browse)},
		ratio{"microservices/monolith: confirmed checkouts/s", val(ms, confirmed), val(mono, confirmed)},
		ratio{"microservices/monolith: CPU per confirmed checkout", val(ms, cpu), val(mono, cpu)},
		ratio{"microservices/monolith: checkout p99 at half of each one's saturation", val(ms, p99), val(mono, p99)},
		ratio{"microservices/monolith: RSS of the whole system under load", val(ms, rss), val(mono, rss)},
	)
	if pg := r.mode(postgresMode); pg != nil {
		out = append(out,
			ratio{"postgres/microservices (SQLite): confirmed checkouts/s", val(pg, confirmed), val(ms, confirmed)},
			ratio{"postgres/microservices (SQLite): CPU per confirmed checkout, the server's backends included", val(pg, cpu), val(ms, cpu)},
			ratio{"postgres/microservices (SQLite): product list requests/s", val(pg, browse), val(ms, browse)},
		)
	}
	var one, two *ceilingRow
	if len(r.Ceiling) > 0 {
		one = r.Ceiling[0]
	}
	if len(r.Ceiling) > 1 {
		two = r.Ceiling[1]
	}
	for _, mr := range []*modeResult{ms, mono} {
		name := "microservices"
		if mr == mono {
			name = "monolith"
		}
		if one != nil {
			out = append(out, ratio{name + "/ceiling (one hop): product list requests/s", val(mr, browse), one.Sat.Rate})
			out = append(out, ratio{name + "/ceiling (one hop): CPU per product-list request", val(mr, func(m *modeResult) float64 { return m.BrowseCPU }), one.CPUPerOp})
		}
		if two != nil {
			out = append(out, ratio{name + "/ceiling (two hops): product list requests/s", val(mr, browse), two.Sat.Rate})
			out = append(out, ratio{name + "/ceiling (two hops): product list p99 at half of saturation", val(mr, browseP99), two.Open.Lat.P99})
		}
	}
	if one != nil && two != nil {
		out = append(out, ratio{"ceiling: two hops/one hop, requests/s", two.Sat.Rate, one.Sat.Rate})
		out = append(out, ratio{"ceiling: two hops/one hop, CPU per request", two.CPUPerOp, one.CPUPerOp})
	}
	return out
}

// --- cells ---

func num(v float64, decimals int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', decimals, 64)
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func fmtLoad(l [3]float64) string {
	return fmt.Sprintf("%.2f %.2f %.2f", l[0], l[1], l[2])
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 600 {
		s = s[:600] + "..."
	}
	return s
}

// checkResults lists what is wrong with a results file: a missing
// section, a table without rows, a cell that should be a number and is
// not.
func checkResults(doc string) []string {
	var problems []string
	lines := strings.Split(doc, "\n")
	section := func(heading string) (int, bool) {
		for i, l := range lines {
			if strings.TrimSpace(l) == heading {
				return i, true
			}
		}
		return 0, false
	}
	// The machine.
	if i, ok := section(machineHeading); !ok {
		problems = append(problems, "no machine section")
	} else {
		rows := tableAfter(lines, i)
		seen := map[string]string{}
		for _, r := range rows {
			if len(r) == 2 {
				seen[r[0]] = r[1]
			}
		}
		for _, k := range []string{"cores", "CPU", "Go", "kernel", "load average at start"} {
			if seen[k] == "" {
				problems = append(problems, "the machine section has no "+k)
			}
		}
		if _, err := strconv.Atoi(seen["cores"]); err != nil {
			problems = append(problems, "cores is not a number")
		}
	}
	for _, t := range tables {
		i, ok := section(t.heading)
		if !ok && t.optional {
			continue
		}
		if !ok {
			problems = append(problems, "no table "+t.heading)
			continue
		}
		rows := tableAfter(lines, i)
		if len(rows) == 0 {
			problems = append(problems, "the table "+t.heading+" has no rows")
		}
		numeric := 0
		for _, r := range rows {
			for j, c := range r {
				if j < t.labels {
					continue
				}
				if _, err := strconv.ParseFloat(c, 64); err == nil {
					numeric++
					continue
				}
				if !okWords[c] {
					problems = append(problems, fmt.Sprintf("%s: cell %q is not a number", t.heading, c))
				}
			}
		}
		if numeric == 0 {
			problems = append(problems, "the table "+t.heading+" has no numbers")
		}
	}
	return problems
}

// tableAfter returns the data rows of the first table after line i.
func tableAfter(lines []string, i int) [][]string {
	var rows [][]string
	started := false
	for _, l := range lines[i+1:] {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "## ") {
			break
		}
		if !strings.HasPrefix(l, "|") {
			if started {
				break
			}
			continue
		}
		if !started {
			started = true // the header
			continue
		}
		if strings.HasPrefix(l, "|---") || strings.HasPrefix(l, "|-") {
			continue
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		for k := range cells {
			cells[k] = strings.TrimSpace(cells[k])
		}
		rows = append(rows, cells)
	}
	return rows
}
