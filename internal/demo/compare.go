package demo

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/microshop/microshop/internal/loadgen"
	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/orders/ordersapi"
)

// monolith-vs-microservices: the same binary run both ways, one after the
// other, each for a short while, and what a team would weigh side by
// side: throughput, latency, CPU and memory, what a deploy of one
// service costs, and what one service's crash does to the rest.

// compareEnv gives orders a short step timeout, so that a checkout that
// needs the crashed payments gets its answer (REJECTED
// payment_unavailable) within the demo's wait rather than after the
// default's.
var compareEnv = []string{"MICROSHOP_STEP_TIMEOUT=2s"}

// DefaultCompareDuration is how long each mode is loaded when
// Options.Duration is zero.
const DefaultCompareDuration = 10 * time.Second

// compareVictim is the service that is deployed anew and then crashed.
const compareVictim = "payments"

// modeFigures are what one mode measured.
type modeFigures struct {
	mode      string
	readyIn   time.Duration
	load      loadgen.Counts
	loadFor   time.Duration
	p99       time.Duration // of the confirmed checkouts
	cpuMS     float64       // per confirmed checkout, every process of the system; 0 when unknown
	pss, rss  int64         // highest seen during the load, every process of the system
	deploy    deployFigures
	crashSays []probeResult
}

func (m modeFigures) perSecond() float64 {
	if m.loadFor <= 0 {
		return 0
	}
	return float64(m.load.Confirmed) / m.loadFor.Seconds()
}

// deployFigures are what a deploy of a change to one service cost.
type deployFigures struct {
	how                  string
	took                 time.Duration
	unavailable          time.Duration // the longest run of failed probes
	probes, probesFailed int
	load                 loadgen.Counts
}

// probeResult is what one thing a customer does gave after the crash.
type probeResult struct {
	what   string
	works  bool
	answer string
}

// monolithVsMicroservices runs both modes in turn and prints them side by
// side.
func monolithVsMicroservices(ctx context.Context, opts Options, r *reporter) (Verdict, error) {
	var v Verdict
	dur := opts.Duration
	if dur <= 0 {
		dur = DefaultCompareDuration
	}
	var figs []modeFigures
	for _, mode := range []string{localrun.Monolith, localrun.Microservices} {
		f, err := measureMode(ctx, opts, r, mode, dur)
		if err != nil {
			return v, fmt.Errorf("%s: %w", mode, err)
		}
		figs = append(figs, f)
	}
	mono, micro := figs[0], figs[1]

	r.step("Side by side")
	rows := compareRows(mono, micro)
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\tmonolith\tmicroservices")
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", row[0], row[1], row[2])
	}
	tw.Flush()
	r.plain(b.String())
	for _, row := range rows {
		v.figure(row[0], "monolith: %s | microservices: %s", row[1], row[2])
	}

	works := func(f modeFigures, what string) bool {
		for _, p := range f.crashSays {
			if p.what == what {
				return p.works
			}
		}
		return false
	}
	anyWorks := func(f modeFigures) bool {
		return slices.ContainsFunc(f.crashSays, func(p probeResult) bool { return p.works })
	}
	for _, f := range figs {
		v.check(f.load.Confirmed > 0, "%s: no checkout was confirmed under load", f.mode)
		v.check(f.pss > 0 && f.rss > 0, "%s: its memory could not be read", f.mode)
		v.check(f.deploy.probes > 0, "%s: nothing probed the system during the deploy", f.mode)
	}
	v.check(!anyWorks(mono), "the monolith's process died with payments, yet something still answered")
	v.check(works(micro, "browse the catalog"), "with payments crashed, the microservices' catalog did not answer")
	v.check(micro.deploy.probesFailed == 0 && micro.deploy.load.Failed == 0,
		"the rolling restart of payments cost %d failed probes and %d failed requests", micro.deploy.probesFailed, micro.deploy.load.Failed)
	v.decide(fmt.Sprintf("one binary, two shapes: the monolith did %.1fx the confirmed checkouts a second; the microservices replaced payments "+
		"with 0 failed requests where the monolith was unavailable for %.1fs, and kept the catalog, logins and orders up when payments crashed, "+
		"where the monolith went down whole",
		ratio(mono.perSecond(), micro.perSecond()), mono.deploy.unavailable.Seconds()),
		"a measurement is missing, or a mode did not behave as its shape promises")
	return v, nil
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// compareRows are the table's rows: a name, then the monolith's cell and
// the microservices'.
func compareRows(mono, micro modeFigures) [][3]string {
	both := func(name string, cell func(modeFigures) string) [3]string {
		return [3]string{name, cell(mono), cell(micro)}
	}
	rows := [][3]string{
		both("ready after start, s", func(f modeFigures) string { return fmt.Sprintf("%.1f", f.readyIn.Seconds()) }),
		both("confirmed checkouts/s", func(f modeFigures) string { return fmt.Sprintf("%.1f", f.perSecond()) }),
		both("checkout p99, ms", func(f modeFigures) string { return fmt.Sprintf("%.1f", float64(f.p99.Microseconds())/1000) }),
		both("CPU per confirmed checkout, ms", func(f modeFigures) string {
			if f.cpuMS <= 0 {
				return "n/a"
			}
			return fmt.Sprintf("%.2f", f.cpuMS)
		}),
		both("memory under load, PSS MiB (RSS MiB)", func(f modeFigures) string {
			return fmt.Sprintf("%.1f (%.1f)", float64(f.pss)/(1<<20), float64(f.rss)/(1<<20))
		}),
		both("deploy a change to "+compareVictim, func(f modeFigures) string { return f.deploy.how }),
		both("  took, s", func(f modeFigures) string { return fmt.Sprintf("%.1f", f.deploy.took.Seconds()) }),
		both("  unavailable, s (longest run of failed probes)", func(f modeFigures) string {
			return fmt.Sprintf("%.1f", f.deploy.unavailable.Seconds())
		}),
		both("  failed probes", func(f modeFigures) string { return fmt.Sprintf("%d of %d", f.deploy.probesFailed, f.deploy.probes) }),
		both("  failed requests of shoppers who retry", func(f modeFigures) string {
			return fmt.Sprintf("%d of %d", f.deploy.load.Failed, f.deploy.load.Requests)
		}),
	}
	for i, p := range mono.crashSays {
		row := [3]string{"after " + compareVictim + " crashes: " + p.what, p.answer, ""}
		if i < len(micro.crashSays) {
			row[2] = micro.crashSays[i].answer
		}
		rows = append(rows, row)
	}
	return rows
}

// measureMode starts a system in mode, measures it, and stops it.
func measureMode(ctx context.Context, opts Options, r *reporter, mode string, dur time.Duration) (modeFigures, error) {
	f := modeFigures{mode: mode}
	r.step("%s: start microshop run --mode %s", title(mode), mode)
	if opts.DataDir != "" {
		opts.DataDir = filepath.Join(opts.DataDir, mode)
	}
	sys, err := startSystemWith(ctx, opts, compareEnv, []string{"--mode", mode})
	if err != nil {
		return f, err
	}
	defer func() { sys.Close() }()
	f.readyIn = sys.ReadyIn
	r.logf("ready in %.1fs: gateway %s", f.readyIn.Seconds(), sys.Gateway)
	shop, err := shopclient.New(sys.Gateway, shopclient.Options{Conns: 64, Timeout: 30 * time.Second, UserAgent: "microshop-demo"})
	if err != nil {
		return f, err
	}
	defer shop.Close()
	admin, err := shop.Login(ctx, sys.AdminEmail, sys.AdminPassword)
	if err != nil {
		return f, fmt.Errorf("logging in as the admin: %w", err)
	}
	sku := "DEMO-CMP-" + strings.ToUpper(mode[:4])
	if err := createProduct(ctx, admin, sku, "Demo Cup", 700, 1_000_000); err != nil {
		return f, err
	}
	custs, err := customers(ctx, shop, "cmp-"+mode[:4], 8)
	if err != nil {
		return f, err
	}
	r.logf("product %s and %d customers; letting the balancers probe (%s)", sku, len(custs), settle)
	if err := sleep(ctx, settle); err != nil {
		return f, err
	}

	r.step("%s: sixteen shoppers check out without pause (%s)", title(mode), dur)
	pids, err := systemPIDs(ctx, sys)
	if err != nil {
		return f, err
	}
	peak := sampleMemory(pids)
	cpu0 := cpuOf(pids)
	lat := &latencies{}
	l := startLoad(shop, loadConfig{Shoppers: 16, Customers: custs, SKU: sku, Card: shopclient.CardApproved, Key: "cmp-" + mode, latencies: lat})
	m := watch(r, l)
	start := time.Now()
	err = sleep(ctx, dur)
	m.Stop()
	l.Stop()
	f.loadFor, f.load = time.Since(start), l.Counts()
	cpu1 := cpuOf(pids)
	f.pss, f.rss = peak.stop()
	if err != nil {
		return f, err
	}
	f.p99 = lat.p99()
	if cpu := sumDelta(cpu0, cpu1); cpu > 0 && f.load.Confirmed > 0 {
		f.cpuMS = cpu * 1000 / float64(f.load.Confirmed)
	}
	r.logf("%d checkouts confirmed in %.1fs (%.1f/s), p99 %.1f ms; CPU %.2f ms per confirmed checkout; memory PSS %.1f MiB, RSS %.1f MiB",
		f.load.Confirmed, f.loadFor.Seconds(), f.perSecond(), float64(f.p99.Microseconds())/1000, f.cpuMS,
		float64(f.pss)/(1<<20), float64(f.rss)/(1<<20))

	// A deploy of a change to payments: four shoppers keep checking out
	// (retrying as careful clients do) while a prober asks for the
	// catalog every 50ms, once, without retrying.
	if mode == localrun.Monolith {
		r.step("Monolith: deploy a change to %s: the whole process is stopped (draining) and started again", compareVictim)
	} else {
		r.step("Microservices: deploy a change to %s: rolling restart (start new, wait ready, drain old); the rest untouched", compareVictim)
	}
	probe := startProber(sys.Gateway)
	dl := startLoad(shop, loadConfig{Shoppers: 4, Customers: custs, SKU: sku, Card: shopclient.CardApproved, Key: "cmp-deploy-" + mode,
		Pause: 50 * time.Millisecond})
	if err := sleep(ctx, time.Second); err != nil {
		dl.Stop()
		probe.stop()
		return f, err
	}
	before := dl.Counts()
	t0 := time.Now()
	if mode == localrun.Monolith {
		f.deploy.how = "whole restart"
		next, err := sys.Relaunch(ctx)
		if err != nil {
			dl.Stop()
			probe.stop()
			return f, fmt.Errorf("restarting the monolith: %w", err)
		}
		sys.System = next
	} else {
		f.deploy.how = "rolling restart of " + compareVictim
		if _, err := sys.Restart(ctx, compareVictim); err != nil {
			dl.Stop()
			probe.stop()
			return f, fmt.Errorf("restarting %s: %w", compareVictim, err)
		}
	}
	f.deploy.took = time.Since(t0)
	err = sleep(ctx, time.Second)
	dl.Stop()
	f.deploy.load = dl.Counts().Sub(before)
	f.deploy.probes, f.deploy.probesFailed, f.deploy.unavailable = probe.stop()
	if err != nil {
		return f, err
	}
	r.logf("took %.1fs; unavailable for %.1fs: %d of %d probes failed; shoppers: %d requests, %d retried then succeeded, %d failed",
		f.deploy.took.Seconds(), f.deploy.unavailable.Seconds(), f.deploy.probesFailed, f.deploy.probes,
		f.deploy.load.Requests, f.deploy.load.RetriedOK, f.deploy.load.Failed)

	// The crash.
	if mode == localrun.Monolith {
		r.step("Monolith: %s crashes: it runs in the one process, so the process dies (SIGKILL)", compareVictim)
		pid := sys.Cmd.Process.Pid
		if err := sys.Cmd.Process.Kill(); err != nil {
			return f, fmt.Errorf("killing the monolith: %w", err)
		}
		select {
		case <-sys.Exited():
		case <-time.After(10 * time.Second):
			return f, errors.New("the monolith's process did not die within 10s of SIGKILL")
		}
		r.logf("killed pid %d", pid)
	} else {
		r.step("Microservices: %s crashes (SIGKILL of its process)", compareVictim)
		killed, err := sys.KillAll(ctx, compareVictim)
		if err != nil {
			return f, err
		}
		r.logf("killed %s (pid %v)", compareVictim, killed)
	}
	if err := sleep(ctx, time.Second); err != nil {
		return f, err
	}
	f.crashSays = afterCrash(ctx, sys.Gateway, custs[0], sys.AdminEmail, sys.AdminPassword, sku)
	for _, p := range f.crashSays {
		r.logf("%-22s %s", p.what+":", p.answer)
	}
	return f, nil
}

func title(mode string) string { return strings.ToUpper(mode[:1]) + mode[1:] }

// afterCrash tries what a customer does, each once and without retrying,
// and says what answered.
func afterCrash(ctx context.Context, gateway string, cust *shopclient.Session, email, password, sku string) []probeResult {
	shop, err := shopclient.New(gateway, shopclient.Options{Conns: 4, Timeout: 5 * time.Second, UserAgent: "microshop-demo-probe"})
	if err != nil {
		return nil
	}
	defer shop.Close()
	s := shop.As(cust.Token())
	down := func(err error) string {
		if st := shopclient.StatusOf(err); st > 0 {
			return fmt.Sprintf("fails: HTTP %d", st)
		}
		if strings.Contains(err.Error(), "connection refused") {
			return "fails: connection refused"
		}
		return "fails: " + oneLine(err.Error(), 60)
	}
	var out []probeResult
	try := func(what string, do func(context.Context) (string, error)) {
		answer, err := do(ctx)
		if err != nil {
			out = append(out, probeResult{what: what, answer: down(err)})
			return
		}
		out = append(out, probeResult{what: what, works: true, answer: answer})
	}
	try("browse the catalog", func(ctx context.Context) (string, error) {
		p, err := shop.Products(ctx, shopclient.ProductQuery{Limit: 20})
		return fmt.Sprintf("works: %d products", len(p.Items)), err
	})
	try("log in", func(ctx context.Context) (string, error) {
		_, err := shop.Login(ctx, email, password)
		return "works", err
	})
	try("read order history", func(ctx context.Context) (string, error) {
		p, err := s.Orders(ctx, 5, "")
		return fmt.Sprintf("works: %d orders", len(p.Items)), err
	})
	try("check out", func(ctx context.Context) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, 6*time.Second)
		defer cancel()
		o, _, err := s.PlaceOrder(ctx, fmt.Sprintf("cmp-crash-%d", time.Now().UnixNano()), shopclient.Checkout(shopclient.CardApproved, line(sku, 1)))
		if err != nil {
			return "", err
		}
		for o.Status == ordersapi.StatusPending && ctx.Err() == nil {
			if err := sleep(ctx, 200*time.Millisecond); err != nil {
				break
			}
			if got, err := s.Order(ctx, o.ID); err == nil {
				o = got
			}
		}
		switch o.Status {
		case ordersapi.StatusConfirmed:
			return "works: CONFIRMED", nil
		case ordersapi.StatusRejected:
			return "", fmt.Errorf("order accepted, then REJECTED %s", o.Reason)
		default:
			return "", fmt.Errorf("order accepted, still %s after 6s", o.Status)
		}
	})
	return out
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

// latencies keeps the time each confirmed checkout took, from placing
// it to seeing it final.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.d = append(l.d, d)
}

func (l *latencies) p99() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Clone(l.d)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, (len(s)*99+99)/100-1)]
}

// prober asks the gateway for the catalog every 50ms, once each time,
// with a 1s timeout, and keeps the longest run of failures.
type prober struct {
	done chan struct{}
	wg   sync.WaitGroup

	mu             sync.Mutex
	probes, failed int
	longest        time.Duration
}

func startProber(gateway string) *prober {
	p := &prober{done: make(chan struct{})}
	shop := shopclient.MustNew(gateway, shopclient.Options{Conns: 2, Timeout: time.Second, UserAgent: "microshop-demo-probe"})
	var downSince time.Time
	p.wg.Go(func() {
		defer shop.Close()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := shop.Products(ctx, shopclient.ProductQuery{Limit: 5})
			cancel()
			now := time.Now()
			p.mu.Lock()
			p.probes++
			if err != nil {
				p.failed++
				if downSince.IsZero() {
					downSince = now
				}
				p.longest = max(p.longest, now.Sub(downSince))
			} else {
				downSince = time.Time{}
			}
			p.mu.Unlock()
		}
	})
	return p
}

func (p *prober) stop() (probes, failed int, longest time.Duration) {
	close(p.done)
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.probes, p.failed, p.longest
}

// systemPIDs are run's process and every process it started.
func systemPIDs(ctx context.Context, sys *system) ([]int, error) {
	procs, err := sys.processes(ctx)
	if err != nil {
		return nil, err
	}
	pids := []int{sys.Cmd.Process.Pid}
	for _, p := range procs {
		if p.Running && !slices.Contains(pids, p.PID) {
			pids = append(pids, p.PID)
		}
	}
	return pids, nil
}
