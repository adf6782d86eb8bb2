package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/loadgen"
	"github.com/microshop/microshop/internal/localrun"
)

// results is everything one run measured.
type results struct {
	Settings settings
	Machine  machine
	Started  time.Time
	Finished time.Time
	Ceiling  []*ceilingRow
	Modes    []*modeResult
}

type machine struct {
	Cores       int
	Model       string
	GoVersion   string
	Kernel      string
	MemTotal    int64
	HostID      string
	LoadBefore  [3]float64
	LoadWaited  time.Duration
	LoadAtStart [3]float64
	LoadAfter   [3]float64
}

func describeMachine(goVersion string) machine {
	if goVersion == "" {
		goVersion = runtime.Version() + " (benchrun's)"
	}
	kernel := "unknown"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	return machine{Cores: runtime.NumCPU(), Model: cpuModel(), GoVersion: strings.TrimSpace(goVersion), Kernel: kernel,
		MemTotal: memTotal(), HostID: hostID()}
}

// hostID is the first 8 hex digits of the SHA-256 of /etc/machine-id, or
// of the hostname when there is none: it names the machine in the
// results' file name without saying what it is.
func hostID() string {
	src, err := os.ReadFile("/etc/machine-id")
	if err != nil || len(strings.TrimSpace(string(src))) == 0 {
		h, _ := os.Hostname()
		src = []byte(h)
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(string(src))))
	return hex.EncodeToString(sum[:])[:8]
}

// --- the ceiling ---

type ceilingRow struct {
	Name     string
	Workers  int
	Sat      hits
	CPUPerOp float64 // ms of CPU of the server processes per request
	LoadGen  float64 // cores the load generator used during saturation
	OpenRate float64
	Open     hits
	Procs    []procFig
}

// procFig is one process's figures in one phase set.
type procFig struct {
	Label             string
	PID               int
	RSSIdle, RSSLoad  int64
	AnonLoad, PssLoad int64   // the process's own memory, and its proportional share, under load
	IdleCores         float64 // CPU while idle, in cores
	CPUPerCheckout    float64 // ms
	CPUPerBrowse      float64 // ms per product-list request
}

// startCeiling starts the ceiling binary and returns its base URL.
func startCeiling(ctx context.Context, bin string, args ...string) (url string, pid int, stop func(), err error) {
	cmd := exec.Command(bin, append([]string{"--addr", "127.0.0.1:0"}, args...)...)
	localrun.DieWithParent(cmd)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	exited := make(chan struct{})
	stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(exited) }()
	select {
	case l := <-lines:
		u, ok := strings.CutPrefix(l, "listening ")
		if !ok {
			stop()
			return "", 0, nil, fmt.Errorf("ceiling said %q", l)
		}
		return u, cmd.Process.Pid, stop, nil
	case <-exited:
		return "", 0, nil, errors.New("the ceiling server exited at start")
	case <-time.After(15 * time.Second):
		stop()
		return "", 0, nil, errors.New("the ceiling server did not start within 15s")
	case <-ctx.Done():
		stop()
		return "", 0, nil, ctx.Err()
	}
}

func measureCeiling(ctx context.Context, bin string, set settings, say func(string, ...any)) ([]*ceilingRow, error) {
	var rows []*ceilingRow
	for _, hops := range []int{1, 2} {
		row := &ceilingRow{Workers: set.CeilingWorkers}
		var pids []int
		var labels []string
		var stops []func()
		b, pid, stop, err := startCeiling(ctx, bin)
		if err != nil {
			return nil, err
		}
		stops = append(stops, stop)
		pids, labels = append(pids, pid), append(labels, "server")
		target := b
		row.Name = "one hop: a Go server answering 50 bytes"
		if hops == 2 {
			a, pidA, stopA, err := startCeiling(ctx, bin, "--next", b, "--conns", fmt.Sprint(4*set.CeilingWorkers))
			if err != nil {
				stop()
				return nil, err
			}
			stops = append(stops, stopA)
			pid = pidA
			pids, labels = append(pids, pid), []string{"server B", "server A (calls B)"}
			target = a
			row.Name = "two hops: A calls B over loopback and answers"
		}
		func() {
			defer func() {
				for i := len(stops) - 1; i >= 0; i-- {
					stops[i]()
				}
			}()
			idle := rssOf(pids)
			closedLoop(ctx, target+"/", set.CeilingWorkers, set.Warmup)
			sampler := sampleRSS(pids, 250*time.Millisecond, 0)
			before, lgBefore := cpuOf(pids), mustCPU(os.Getpid())
			row.Sat = closedLoop(ctx, target+"/", set.CeilingWorkers, set.Saturate)
			after, lgAfter := cpuOf(pids), mustCPU(os.Getpid())
			row.CPUPerOp = perOp(sumDelta(before, after), row.Sat.Requests)
			row.LoadGen = (lgAfter - lgBefore) / row.Sat.Seconds
			row.OpenRate = row.Sat.Rate / 2
			row.Open = openLoop(ctx, target+"/", row.OpenRate, set.Open, 4*set.CeilingWorkers)
			peak := sampler.Stop()
			for i, p := range pids {
				row.Procs = append(row.Procs, procFig{Label: labels[i], PID: p, RSSIdle: idle[p].RSS, RSSLoad: peak[p].RSS,
					AnonLoad: peak[p].Anon, PssLoad: peak[p].Pss})
			}
		}()
		say("ceiling %d hop(s): %.0f req/s at %d, p99 %.2f ms at %.0f/s", hops, row.Sat.Rate, row.Workers, row.Open.Lat.P99, row.OpenRate)
		rows = append(rows, row)
	}
	return rows, nil
}

// --- microshop ---

type modeResult struct {
	Mode    string
	Skipped string
	Failed  string

	StartSeconds float64
	Procs        []procFig
	IdleCores    float64

	Browse         hits // the product list, closed loop
	BrowseCPU      float64
	BrowseLoadGen  float64
	BrowseOpenRate float64
	BrowseOpen     hits

	Mix    *loadgen.Result // microshop load --scenario browse, closed loop
	MixCPU float64

	Checkout         *loadgen.Result // closed loop
	CheckoutCPU      float64         // ms per confirmed checkout
	CheckoutLoadGen  float64
	LagAtEnd         lag
	LagDrainTook     time.Duration
	LagDrained       bool
	CheckoutOpenRate float64
	CheckoutOpen     *loadgen.Result

	PG *pgFigs // the postgres mode's figures from the server

	FinalLag      lag
	FinalTook     time.Duration
	FinalDrained  bool
	LagError      string
	Notes         []string
	productListOp string
}

// productList is the page browse asks the gateway for.
const productList = "/api/inventory/products?limit=10"

func measureMode(ctx context.Context, bin, workDir string, set settings, mr *modeResult, say func(string, ...any)) error {
	var pg *pgServer
	if mr.Mode == postgresMode {
		var err error
		if pg, err = openPG(ctx, set.Postgres); err != nil {
			mr.Skipped = err.Error()
			return nil
		}
		mr.PG = &pgFigs{}
		defer func() {
			if err := pg.drop(); err != nil {
				say("postgres: dropping this run's databases (%s*): %v", pg.prefix, err)
			}
		}()
	}
	start := time.Now()
	sys, err := startSystem(ctx, bin, mr.Mode, workDir, 2*time.Minute, set.Profile != "", pg)
	if err != nil {
		return err
	}
	defer sys.stop()
	sys.pg = pg
	mr.StartSeconds = time.Since(start).Seconds()
	pids := sys.pids()
	figs := map[int]*procFig{}
	for _, p := range sys.procs {
		f := &procFig{Label: p.label(), PID: p.PID}
		figs[p.PID] = f
	}
	defer func() {
		for _, p := range sys.procs {
			mr.Procs = append(mr.Procs, *figs[p.PID])
		}
	}()

	// Idle: let start-up settle, then measure memory and what idling costs.
	sleep(ctx, set.Idle)
	c0 := cpuOf(pids)
	sleep(ctx, set.Idle)
	c1 := cpuOf(pids)
	for p, r := range rssOf(pids) {
		figs[p].RSSIdle = r.RSS
		figs[p].IdleCores = (c1[p] - c0[p]) / set.Idle.Seconds()
	}
	mr.IdleCores = sumDelta(c0, c1) / set.Idle.Seconds()
	if pg != nil {
		pg.measureIdle(ctx, set.PGIdle, mr.PG)
		say("postgres idle: %.2f commits/s across the databases over %.0fs, %d backends", mr.PG.IdleCommits, mr.PG.IdleSeconds, mr.PG.IdleBackends)
	}

	pk := &peaks{pids: pids, max: map[int]memory{}}
	defer func() {
		pk.stop()
		for p, r := range pk.max {
			figs[p].RSSLoad, figs[p].AnonLoad, figs[p].PssLoad = r.RSS, r.Anon, r.Pss
		}
	}()

	if set.Phases["browse"] {
		if err := measureBrowse(ctx, sys, set, mr, figs, pk, say); err != nil {
			return err
		}
	}
	if set.Phases["checkout"] {
		return measureCheckout(ctx, sys, set, mr, figs, pk, say)
	}
	return nil
}

// peaks records the highest memory of each process during the load
// phases, not during their setup (registering customers hashes their
// passwords, a burst that is not the load being measured).
type peaks struct {
	pids []int
	max  map[int]memory
	cur  *rssSampler
}

// start samples from after on: a second into a phase that follows a
// setup, so that what the setup's burst left behind has gone back.
func (p *peaks) start(after time.Duration) {
	if p.cur == nil {
		p.cur = sampleRSS(p.pids, 250*time.Millisecond, after)
	}
}

func (p *peaks) stop() {
	if p.cur == nil {
		return
	}
	for pid, r := range p.cur.Stop() {
		m := p.max[pid]
		p.max[pid] = memory{RSS: max(m.RSS, r.RSS), Anon: max(m.Anon, r.Anon), Pss: max(m.Pss, r.Pss)}
	}
	p.cur = nil
}

func measureBrowse(ctx context.Context, sys *system, set settings, mr *modeResult, figs map[int]*procFig, pk *peaks, say func(string, ...any)) error {
	pids := sys.pids()
	// Browse: the product list through the gateway.
	url := sys.gateway + productList
	closedLoop(ctx, url, set.BrowseWorkers, set.Warmup)
	pk.start(0)
	before, lg := cpuOf(pids), mustCPU(os.Getpid())
	mr.Browse = closedLoop(ctx, url, set.BrowseWorkers, set.Saturate)
	after := cpuOf(pids)
	mr.BrowseLoadGen = (mustCPU(os.Getpid()) - lg) / mr.Browse.Seconds
	mr.BrowseCPU = perOp(sumDelta(before, after), mr.Browse.Requests)
	for p := range figs {
		figs[p].CPUPerBrowse = perOp(after[p]-before[p], mr.Browse.Requests)
	}
	mr.BrowseOpenRate = max(1, mr.Browse.Rate/2)
	mr.BrowseOpen = openLoop(ctx, url, mr.BrowseOpenRate, set.Open, 4*set.BrowseWorkers)
	pk.stop()
	say("%s browse: %.0f req/s at %d; p50 %.2f p99 %.2f ms at %.0f/s", mr.Mode, mr.Browse.Rate, set.BrowseWorkers,
		mr.BrowseOpen.Lat.P50, mr.BrowseOpen.Lat.P99, mr.BrowseOpenRate)

	// The browse scenario of microshop load: list, search, one product.
	var mixBefore map[int]float64
	mix, err := loadgen.Run(ctx, loadgen.Config{Target: sys.gateway, Scenario: "browse", Duration: set.Saturate,
		Concurrency: set.BrowseWorkers, Seed: 1, Started: func(loadgen.Setup) { pk.start(0); mixBefore = cpuOf(pids) }})
	pk.stop()
	if err != nil {
		return fmt.Errorf("browse scenario: %w", err)
	}
	mr.Mix = mix
	mr.MixCPU = perOp(sumDelta(mixBefore, cpuOf(pids)), mix.Totals.Count)
	say("%s browse scenario: %.0f ops/s", mr.Mode, mix.Totals.RatePerSecond)
	mr.Notes = append(mr.Notes, mix.Notes...)
	return nil
}

func measureCheckout(ctx context.Context, sys *system, set settings, mr *modeResult, figs map[int]*procFig, pk *peaks, say func(string, ...any)) error {
	pids := sys.pids()
	var profiles func()

	// Checkout: saturation, then the consumers catch up; CPU counts both.
	var coBefore map[int]float64
	var lgBefore float64
	var backends *backendWatch
	co, err := loadgen.Run(ctx, loadgen.Config{Target: sys.gateway, Scenario: "checkout", Duration: set.CheckoutPhase,
		Concurrency: set.CheckoutWorkers, Users: set.Users, Seed: 2, AdminEmail: sys.admin, AdminPassword: sys.password,
		Started: func(loadgen.Setup) {
			pk.start(time.Second)
			if sys.pg != nil {
				backends = sys.pg.watch(ctx)
			}
			coBefore, lgBefore = cpuOf(pids), mustCPU(os.Getpid())
			if set.Profile != "" {
				profiles = sys.profile(ctx, set.Profile, set.CheckoutPhase-time.Second, say)
			}
		}})
	pk.stop()
	if profiles != nil {
		profiles()
	}
	if err != nil {
		if backends != nil {
			backends.finish(ctx, 0, mr.PG)
		}
		return fmt.Errorf("checkout: %w", err)
	}
	mr.Checkout = co
	mr.CheckoutLoadGen = (mustCPU(os.Getpid()) - lgBefore) / co.ElapsedSeconds
	mr.LagAtEnd, mr.LagDrainTook, mr.LagDrained, err = sys.drain(ctx, set.LagWait)
	if err != nil {
		mr.LagError = err.Error()
	}
	coAfter := cpuOf(pids)
	mr.CheckoutCPU = perOp(sumDelta(coBefore, coAfter), co.ConfirmedCheckouts)
	if backends != nil {
		// The server's work is part of what a checkout costs: on SQLite
		// the same work is done inside the services' processes.
		backends.finish(ctx, co.ConfirmedCheckouts, mr.PG)
		mr.CheckoutCPU += mr.PG.BackendCPUPer
		say("postgres checkout: %.1f commits per confirmed checkout, %d backends at most (%d seen), their CPU %.2f ms per confirmed checkout",
			mr.PG.CommitsPer, mr.PG.PeakBackends, mr.PG.BackendsSeen, mr.PG.BackendCPUPer)
	}
	for p := range figs {
		figs[p].CPUPerCheckout = perOp(coAfter[p]-coBefore[p], co.ConfirmedCheckouts)
	}
	say("%s checkout: %.0f confirmed/s at %d (%d errors); lag %d drained=%v in %s", mr.Mode, co.ConfirmedCheckoutsPerSecond,
		set.CheckoutWorkers, co.Totals.Errors, mr.LagAtEnd.total(), mr.LagDrained, mr.LagDrainTook.Round(time.Millisecond))

	mr.CheckoutOpenRate = max(1, co.Totals.RatePerSecond/2)
	op, err := loadgen.Run(ctx, loadgen.Config{Target: sys.gateway, Scenario: "checkout", Duration: set.Open,
		Rate: mr.CheckoutOpenRate, Users: set.Users, Seed: 3, AdminEmail: sys.admin, AdminPassword: sys.password,
		Started: func(loadgen.Setup) { pk.start(time.Second) }})
	pk.stop()
	if err != nil {
		return fmt.Errorf("checkout, open loop: %w", err)
	}
	mr.CheckoutOpen = op
	c := opResult(op, loadgen.OpCheckout)
	say("%s checkout open loop at %.0f/s: p50 %.1f p99 %.1f ms (%d errors)", mr.Mode, mr.CheckoutOpenRate, c.LatencyMS.P50, c.LatencyMS.P99, op.Totals.Errors)

	_, mr.FinalTook, mr.FinalDrained, err = sys.drain(ctx, set.LagWait)
	if err != nil && mr.LagError == "" {
		mr.LagError = err.Error()
	}
	if token, err := sys.adminToken(ctx); err == nil {
		mr.FinalLag, _ = sys.consumerLag(ctx, token)
	}
	for _, r := range []*loadgen.Result{co, op} {
		mr.Notes = append(mr.Notes, r.Notes...)
	}
	return nil
}

// opResult is the figures of one operation of a load result.
func opResult(r *loadgen.Result, name string) loadgen.OpResult {
	if r == nil {
		return loadgen.OpResult{}
	}
	for _, o := range r.Operations {
		if o.Name == name {
			return o
		}
	}
	return loadgen.OpResult{Name: name}
}

func sumDelta(before, after map[int]float64) float64 {
	var s float64
	for p, a := range after {
		s += a - before[p]
	}
	return s
}

// perOp is ms of CPU per operation.
func perOp(seconds float64, n int64) float64 {
	if n <= 0 {
		return 0
	}
	return seconds * 1000 / float64(n)
}

func mustCPU(pid int) float64 {
	s, _ := cpuSeconds(pid)
	return s
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
