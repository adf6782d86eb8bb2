// Package chaos breaks a running microshop on purpose and proves it
// heals. Under a steady mix of shoppers browsing, registering, checking
// out and cancelling, it kills a random process of the system with
// SIGKILL (the broker included, never `microshop run` itself) at random
// intervals and starts it again after a random pause. Then it lets the
// system settle and checks, from the outside, that nothing was lost or
// done twice:
//
//   - the invariant checker (internal/invariants) finds nothing: every
//     order final, stock conserved, one capture per confirmed order, the
//     ledger balanced, one order per Idempotency-Key;
//   - every order that was confirmed has exactly one receipt in the
//     mailbox, every rejected one one rejection notice, every cancelled
//     one one refund notice, every registration one welcome, and no
//     Message-ID arrived twice;
//   - when reports runs, its summary equals the orders' own figures once
//     its consumers have no lag;
//   - no event was dead-lettered.
//
// Every random choice comes from one seed (PCG), printed with the
// result, so a failing run's faults and shoppers can be replayed.
//
// The engine drives the system through the small System interface;
// localrun.System (a launched `microshop run`) is one. It is used by
// internal/chaos's test and by `microshop chaos`.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/internal/shopclient"
)

// System is what chaos needs of a running system: its processes, and a
// way to kill one and to start it again.
type System interface {
	// Processes lists the processes (name, pid, URL, running).
	Processes() ([]localrun.Process, error)
	// Kill sends SIGKILL to the named process and waits until it is gone.
	Kill(process string) (pid int, err error)
	// Start starts the named process again and waits until it is ready.
	Start(ctx context.Context, process string) (localrun.Process, error)
	// ServiceClient reaches the named process at its URL, to read its
	// /metrics (under mutual TLS, with run's own certificate).
	ServiceClient(process string) *http.Client
}

// Config is one chaos run.
type Config struct {
	System System
	// Gateway is the system's public base URL.
	Gateway string
	// AdminEmail and AdminPassword log in the admin that reads the system
	// for the checks.
	AdminEmail, AdminPassword string
	// MailboxFile, when set, is the built-in mailbox's JSON-lines file
	// (<data>/mailbox.jsonl), which holds every message; otherwise the
	// mailbox is read through the gateway, which shows the last 1000.
	MailboxFile string

	// Seed makes every random choice; the same seed gives the same faults
	// in the same order and the same shoppers' choices.
	Seed uint64
	// Duration is how long faults are injected under load.
	Duration time.Duration
	// Shoppers is how many shoppers run at once (6 when zero).
	Shoppers int
	// Targets are the processes that may be killed; every process of
	// the system when empty.
	Targets []string
	// MinGap and MaxGap bound the time from one kill to the next (2s and
	// 8s when zero). Faults overlap when a pause outlasts the gap.
	MinGap, MaxGap time.Duration
	// MinDown and MaxDown bound how long a killed process stays down
	// before it is started again (200ms and 5s when zero).
	MinDown, MaxDown time.Duration
	// SettleTimeout bounds each wait after the faults: orders final, lag
	// drained, mail delivered, reports caught up (90s when zero).
	SettleTimeout time.Duration

	// Injector, when set, injects the faults instead of the kills: the
	// partitions of internal/netlab. Targets, the gaps and the pauses
	// are then the injector's business.
	Injector Injector
	// Dial, when set, opens the shoppers' connections to the gateway
	// (from the load generator's own host in internal/netlab).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Streams, when set, reads the broker's streams and their consumers'
	// lag for the drain check, instead of run's telemetry API through
	// the gateway.
	Streams func(ctx context.Context) ([]shopclient.Stream, error)
	// RequestTimeout bounds one request of a shopper, its answer
	// included (20s when zero).
	RequestTimeout time.Duration
	// Deadline, when set, is the documented deadline of a request
	// through the gateway: an answer that took longer than Deadline plus
	// Margin is a violation. The figures (p50, p99, max, requests that
	// got no answer by kind) are printed either way.
	Deadline, Margin time.Duration
	// SlowCards is the percentage of checkouts that pay with the slow
	// test card (shopclient.CardSlow), whose authorization takes the
	// payments' --slow-card-delay: sagas then stay in flight long enough
	// for a fault to catch them midway. 0 (the default) uses none, and
	// leaves every other choice of a seed as it was.
	SlowCards int

	// Progress, when set, is called every ProgressEvery (5s when zero)
	// while faults run, and with each phase of the settling.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// Logf, when set, receives a line per fault and per phase.
	// Progress and Logf may be called from several goroutines at once.
	Logf func(format string, args ...any)
}

// Progress is a snapshot of a run underway.
type Progress struct {
	Elapsed   time.Duration
	Phase     string
	Requests  int64
	Placed    int64
	Confirmed int64
	Faults    int
	Errors    int64
	// Down names the processes that are down now, if any.
	Down string
}

// Injector injects faults of its own kind under the shoppers' load.
type Injector interface {
	// Inject injects faults from start until start plus d, calling
	// record with each one once it is healed, and returns once every
	// fault is healed.
	Inject(ctx context.Context, start time.Time, d time.Duration, record func(Fault))
}

// Fault is one process killed and started again, or, with Kind set, a
// fault of an Injector (Process then says what it hit, Down how long it
// lasted and Restart how long healing it took).
type Fault struct {
	Kind    string
	At      time.Duration // since the faults began
	Killed  time.Time     // when the kill returned: the process was gone
	Process string
	PID     int
	Down    time.Duration // planned pause before the start
	Restart time.Duration // how long the start took until ready
	Err     string        // the kill or the start failed
}

func (c *Config) defaults() error {
	if c.System == nil || c.Gateway == "" {
		return errors.New("chaos: a System and its Gateway are required")
	}
	if c.Duration <= 0 {
		return errors.New("chaos: Duration must be positive")
	}
	if c.Shoppers == 0 {
		c.Shoppers = 6
	}
	if c.Shoppers < 1 || c.Shoppers > 100 {
		return fmt.Errorf("chaos: %d shoppers; want 1 to 100", c.Shoppers)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.MinGap, 2*time.Second)
	def(&c.MaxGap, 8*time.Second)
	def(&c.MinDown, 200*time.Millisecond)
	def(&c.MaxDown, 5*time.Second)
	def(&c.SettleTimeout, 90*time.Second)
	def(&c.ProgressEvery, 5*time.Second)
	def(&c.RequestTimeout, 20*time.Second)
	def(&c.Margin, 2*time.Second)
	if c.MaxGap < c.MinGap || c.MaxDown < c.MinDown {
		return errors.New("chaos: a maximum is below its minimum")
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return nil
}

// engine is the state of one run.
type engine struct {
	cfg    Config
	shop   *shopclient.Client
	res    *Result
	start  time.Time
	faults atomic.Int32

	mu   sync.Mutex
	down []string // the processes down now

	metrics *scraper
	load    *load
	// startPause is the wait between tries to start a process again.
	startPause time.Duration
	// mailGrace is how long the mail check waits, once every expected
	// email arrived, for copies that should not come.
	mailGrace time.Duration
}

// Run injects faults under load for cfg.Duration, lets the system
// settle, checks it and returns what it found. An error means the run
// could not be carried out (the system could not be set up or read); the
// system's own faults are Result.Violations.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	e := &engine{cfg: cfg, res: newResult(cfg), startPause: 500 * time.Millisecond, mailGrace: 3 * time.Second}
	e.shop = shopclient.MustNew(strings.TrimRight(cfg.Gateway, "/"), shopclient.Options{Conns: 4 * cfg.Shoppers, Timeout: cfg.RequestTimeout, UserAgent: "microshop-chaos", DialContext: cfg.Dial})
	defer e.shop.Close()
	procs, err := cfg.System.Processes()
	if err != nil {
		return nil, fmt.Errorf("listing the processes: %w", err)
	}
	targets, err := chooseTargets(procs, cfg.Targets)
	if err != nil {
		return nil, err
	}
	e.res.Targets = targets
	for _, p := range procs {
		if p.Name == "reports" {
			e.res.ReportsRunning = true
		}
	}

	cfg.Logf("seed %d: %d shoppers, faults for %s among %s", cfg.Seed, cfg.Shoppers, cfg.Duration, strings.Join(targets, ", "))
	admin, err := e.shop.Login(ctx, cfg.AdminEmail, cfg.AdminPassword)
	if err != nil {
		return nil, fmt.Errorf("logging in the admin: %w", err)
	}
	e.load, err = newLoad(ctx, e.shop, cfg.Seed, cfg.Shoppers, cfg.SlowCards, admin)
	if err != nil {
		return nil, err
	}
	e.metrics = newScraper(cfg.System)

	e.start = time.Now()
	runCtx, stopAll := context.WithCancel(ctx)
	defer stopAll()
	var wg sync.WaitGroup
	wg.Go(func() { e.metrics.run(runCtx, 2*time.Second) })
	e.load.start(runCtx)
	wg.Go(func() { e.progress(runCtx) })

	if cfg.Injector != nil {
		cfg.Injector.Inject(ctx, e.start, cfg.Duration, func(f Fault) {
			e.faults.Add(1)
			e.res.addFault(f)
		})
	} else {
		e.inject(ctx, targets)
	}
	e.res.ChaosTook = time.Since(e.start)
	// The shoppers finish what they are doing, retrying through any
	// process that is still down, while the checks below start it.
	shoppersDone := make(chan struct{})
	go func() { e.load.run.Stop(); close(shoppersDone) }()
	if ctx.Err() != nil {
		stopAll()
		wg.Wait()
		return nil, ctx.Err()
	}
	// Everything runs again before the checks, whatever happened above.
	e.ensureRunning(ctx, targets)
	e.phase("waiting for the shoppers' last requests")
	select {
	case <-shoppersDone:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	stopAll()
	wg.Wait()
	e.load.summarize(e.res)
	e.res.checkLatency(cfg.Deadline, cfg.Margin)

	if err := e.check(ctx, admin); err != nil {
		return nil, err
	}
	return e.res, nil
}

// chooseTargets returns the processes that may be killed, in run's order.
func chooseTargets(procs []localrun.Process, want []string) ([]string, error) {
	var names []string
	for _, p := range procs {
		if p.Replica == 0 && !slices.Contains(names, p.Name) {
			names = append(names, p.Name)
		}
	}
	if len(want) == 0 {
		if len(names) == 0 {
			return nil, errors.New("chaos: the system lists no processes")
		}
		return names, nil
	}
	for _, w := range want {
		if !slices.Contains(names, w) {
			return nil, fmt.Errorf("chaos: %q is not a process of the system; the processes are %s", w, strings.Join(names, ", "))
		}
	}
	return want, nil
}

// between returns a random duration in [lo, hi].
func between(r *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
}

// planned is one fault of the schedule: kill Process At (since the
// faults began) and start it again Down later.
type planned struct {
	At      time.Duration
	Process string
	Down    time.Duration
}

// schedule draws the faults of a run from the seed alone, so a replay
// meets the same faults at the same times: when the next kill comes
// (MinGap to MaxGap after the last), which process, and how long it
// stays down (MinDown to MaxDown). Faults overlap when a pause outlasts
// the gap.
func schedule(seed uint64, targets []string, cfg Config) []planned {
	r := rand.New(rand.NewPCG(seed, 0))
	var out []planned
	at := time.Duration(0)
	for {
		at += between(r, cfg.MinGap, cfg.MaxGap)
		p := planned{At: at, Process: targets[r.IntN(len(targets))], Down: between(r, cfg.MinDown, cfg.MaxDown)}
		if at >= cfg.Duration {
			return out
		}
		out = append(out, p)
	}
}

// inject carries out the schedule: it kills each process at its time and
// starts it again after its pause, and returns once every killed process
// runs again. A fault whose process is still down from an earlier one is
// skipped.
func (e *engine) inject(ctx context.Context, targets []string) {
	var restarts sync.WaitGroup
	defer restarts.Wait()
	for _, p := range schedule(e.cfg.Seed, targets, e.cfg) {
		if !sleepUntil(ctx, e.start.Add(p.At)) {
			return
		}
		target, down := p.Process, p.Down
		if !e.markDown(target) {
			continue
		}
		f := Fault{At: time.Since(e.start).Round(time.Millisecond), Process: target, Down: down}
		pid, err := e.cfg.System.Kill(target)
		f.PID, f.Killed = pid, time.Now()
		if err != nil {
			f.Err = "kill: " + err.Error()
			e.res.violate("fault injection: killing %s failed: %v", target, err)
			e.res.addFault(f)
			e.markUp(target)
			continue
		}
		e.faults.Add(1)
		e.cfg.Logf("%7s  killed %s (pid %d); starting it again in %s", f.At, target, pid, down.Round(time.Millisecond))
		restarts.Go(func() {
			defer e.markUp(target)
			if !sleepUntil(ctx, time.Now().Add(down)) {
				return
			}
			began := time.Now()
			if err := e.startAgain(ctx, target); err != nil {
				f.Err = "start: " + err.Error()
				e.res.violate("%s did not start again after it was killed: %v", target, err)
			}
			f.Restart = time.Since(began)
			e.res.addFault(f)
			e.cfg.Logf("%7s  %s is back (ready in %s)", time.Since(e.start).Round(time.Millisecond), target, f.Restart.Round(time.Millisecond))
		})
	}
}

// markDown records process as down, unless it is already.
func (e *engine) markDown(process string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if slices.Contains(e.down, process) {
		return false
	}
	e.down = append(e.down, process)
	return true
}

func (e *engine) markUp(process string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.down = slices.DeleteFunc(e.down, func(p string) bool { return p == process })
}

func (e *engine) downNow() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.down, " and ")
}

// startAgain starts process through the system, trying again for a
// while: run may not have noticed the death yet ("already running").
func (e *engine) startAgain(ctx context.Context, process string) error {
	var err error
	for try := 0; try < 10; try++ {
		if _, err = e.cfg.System.Start(ctx, process); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if running(e.cfg.System, process) {
			return nil
		}
		time.Sleep(e.startPause)
	}
	return err
}

func running(sys System, process string) bool {
	procs, err := sys.Processes()
	if err != nil {
		return false
	}
	for _, p := range procs {
		if p.Name == process && p.Replica == 0 && p.Running {
			return true
		}
	}
	return false
}

// ensureRunning starts any target that is not running.
func (e *engine) ensureRunning(ctx context.Context, targets []string) {
	for _, t := range targets {
		if running(e.cfg.System, t) {
			continue
		}
		// Every fault ends with its process ready again, so this one
		// stopped by itself.
		if !e.res.failedStart(t) {
			e.res.violate("%s stopped by itself during the run (it was not running once the faults ended)", t)
		}
		e.cfg.Logf("%s is not running after the faults; starting it", t)
		if err := e.startAgain(ctx, t); err != nil {
			e.res.violate("%s is not running after the faults and could not be started: %v", t, err)
		}
	}
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

func (e *engine) snapshot(phase string) Progress {
	p := e.load.progress()
	p.Elapsed = time.Since(e.start).Round(time.Second)
	p.Phase = phase
	p.Faults = int(e.faults.Load())
	p.Down = e.downNow()
	return p
}

func (e *engine) progress(ctx context.Context) {
	if e.cfg.Progress == nil {
		return
	}
	t := time.NewTicker(e.cfg.ProgressEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			phase := "chaos"
			if time.Since(e.start) > e.cfg.Duration {
				phase = "last fault"
			}
			e.cfg.Progress(e.snapshot(phase))
		}
	}
}

func (e *engine) phase(name string) {
	e.cfg.Logf("%s", name)
	if e.cfg.Progress != nil {
		e.cfg.Progress(e.snapshot(name))
	}
}
