// Package loadgen puts a measured load on a running microshop through its
// public API, the way shoppers do: browsing the catalog, logging in,
// checking out and reading their order history.
//
// It runs open loop or closed loop. Open loop (Config.Rate) starts an
// operation at every fixed interval whatever the system answers, and
// measures each operation's latency from the moment it was due, not from
// the moment it could be sent: a system that stalls cannot hide the stall
// by holding the load back (no coordinated omission). Closed loop
// (Config.Concurrency) runs a fixed number of shoppers, each starting its
// next operation when the last one is answered; it finds the throughput
// at that concurrency. Latencies go into an HDR histogram per operation.
//
// It talks to the one target it is given and nothing else: it follows no
// redirect and polls no Location on another host.
package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mathrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/microshop/microshop/internal/shopclient"
)

// Defaults for the zero values of Config.
const (
	DefaultUsers       = 20
	DefaultTimeout     = 10 * time.Second
	DefaultMaxInFlight = 1000
)

// Config is one load run.
type Config struct {
	// Target is the gateway's base URL, such as http://127.0.0.1:8080.
	Target string
	// Scenario is browse, checkout or mixed.
	Scenario string
	// Duration is how long operations are started for. Operations in
	// flight at the end are allowed to finish (each within Timeout).
	Duration time.Duration
	// Rate runs open loop: this many operations a second, each due at a
	// fixed interval. Exactly one of Rate and Concurrency is set.
	Rate float64
	// Concurrency runs closed loop: this many shoppers, each sending its
	// next operation when the previous one is answered.
	Concurrency int
	// Users is the number of customers that checkout and mixed register
	// and log in before the load starts (DefaultUsers when zero).
	Users int
	// Seed makes the choice of operations, products and cards repeatable;
	// zero picks one, which Result.Parameters reports.
	Seed uint64
	// Timeout bounds one operation, a checkout's polls included
	// (DefaultTimeout when zero).
	Timeout time.Duration
	// MaxInFlight bounds the operations in flight in open loop
	// (DefaultMaxInFlight when zero). Operations due while all are busy
	// start late, and their latency counts from when they were due.
	MaxInFlight int
	// AdminEmail and AdminPassword, when set, let checkout and mixed top
	// up every product's stock before the load, so that no checkout fails
	// for want of stock.
	AdminEmail, AdminPassword string

	// Started, when set, is called once setup is done and the load begins.
	Started func(Setup)
	// Progress, when set, is called about once a second during the load.
	Progress func(Progress)
	// Observe, when set, is called after every operation.
	Observe func(Sample)
}

// Progress is the state of a run so far.
type Progress struct {
	Elapsed    time.Duration
	Operations int64
	Errors     int64
	// Rate is operations finished per second over the last interval.
	Rate float64
	// P99 is the 99th percentile latency of every operation so far.
	P99 time.Duration
}

// Sample is one finished operation.
type Sample struct {
	Op string
	// Kind is "" for a success, else the kind of error (see Kind*).
	Kind string
	// Intended is when the operation was due; Sent when it started; Done
	// when it ended. Latency is Done - Intended. In closed loop Intended
	// equals Sent.
	Intended, Sent, Done time.Time
}

// Latency is Done - Intended: what a shopper who arrived when the
// operation was due would have waited.
func (s Sample) Latency() time.Duration { return s.Done.Sub(s.Intended) }

// runner is one run: the configuration, the HTTP client, what setup
// learned, and the figures.
type runner struct {
	cfg   Config
	shop  *shopclient.Client
	scen  *scenario
	runID string // makes emails and idempotency keys unique to this run

	keys   atomic.Uint64 // idempotency key sequence
	logins atomic.Uint64 // round robin over customers for the login operation

	catalog   catalog
	customers []*shopclient.Session
	stats     *stats
}

// Run sets up (reads the catalog; for checkout and mixed also registers
// and logs in the customers and, with admin credentials, restocks), then
// runs the load for cfg.Duration and returns its figures. Setup is not
// part of the figures; Result.Setup describes it.
//
// When ctx is cancelled during the load, Run stops, lets nothing new
// start, and returns what it measured so far with Interrupted set. An
// error means the configuration is wrong or setup failed.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	r, err := newRunner(cfg)
	if err != nil {
		return nil, err
	}
	defer r.shop.Close()

	setupStart := time.Now()
	setup, err := r.setup(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("interrupted during setup: %w", ctx.Err())
		}
		return nil, err
	}
	setup.Seconds = time.Since(setupStart).Seconds()
	setup.Requests = r.shop.Requests()
	if cfg.Started != nil {
		cfg.Started(setup)
	}
	return r.load(ctx, setup), nil
}

// Check reports what is wrong with c, and sets the defaults of its zero
// values. Run calls it too.
func (c *Config) Check() error {
	// The client checks the URL as it would before any load.
	if _, err := shopclient.New(c.Target, shopclient.Options{}); err != nil {
		return err
	}
	if scenarios[c.Scenario] == nil {
		return fmt.Errorf("scenario %q: want browse, checkout or mixed", c.Scenario)
	}
	if c.Duration <= 0 {
		return errors.New("the duration must be positive: a load always ends by itself")
	}
	switch {
	case c.Rate < 0 || c.Concurrency < 0:
		return errors.New("the rate and the concurrency cannot be negative")
	case c.Rate > 0 && c.Concurrency > 0:
		return errors.New("give a rate (open loop) or a concurrency (closed loop), not both")
	case c.Rate == 0 && c.Concurrency == 0:
		return errors.New("give a rate (open loop) or a concurrency (closed loop)")
	case c.Rate > 1e6:
		return errors.New("the rate is at most 1000000 a second")
	case c.Concurrency > 100000:
		return errors.New("the concurrency is at most 100000")
	}
	if c.Users < 0 || c.Timeout < 0 || c.MaxInFlight < 0 {
		return errors.New("users, timeout and max in flight cannot be negative")
	}
	if c.Users == 0 {
		c.Users = DefaultUsers
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if (c.AdminEmail == "") != (c.AdminPassword == "") {
		return errors.New("give the admin's email and password together, or neither")
	}
	if c.Seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		c.Seed = binary.LittleEndian.Uint64(b[:]) | 1
	}
	return nil
}

func newRunner(cfg Config) (*runner, error) {
	var id [4]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	// Every worker keeps its connection alive; Go's default of two idle
	// connections per host would make the others dial for each request,
	// and that cost would dominate the figures.
	conns := cfg.Concurrency
	if cfg.Rate > 0 {
		conns = cfg.MaxInFlight
	}
	shop, err := shopclient.New(cfg.Target, shopclient.Options{Conns: conns + setupParallel, UserAgent: "microshop-load"})
	if err != nil {
		return nil, err
	}
	return &runner{
		cfg:   cfg,
		shop:  shop,
		scen:  scenarios[cfg.Scenario],
		runID: hex.EncodeToString(id[:]),
		stats: newStats(),
	}, nil
}

// load runs the operations from now for the configured duration and
// returns the figures.
func (r *runner) load(ctx context.Context, setup Setup) *Result {
	requestsBefore := r.shop.Requests()
	start := time.Now()
	end := start.Add(r.cfg.Duration)

	stopProgress := make(chan struct{})
	var progressDone sync.WaitGroup
	if r.cfg.Progress != nil {
		progressDone.Go(func() { r.progress(start, stopProgress) })
	}

	var unsent int64
	if r.cfg.Rate > 0 {
		unsent = r.openLoop(ctx, start, end)
	} else {
		r.closedLoop(ctx, end)
	}
	finished := time.Now()
	close(stopProgress)
	progressDone.Wait()

	res := r.stats.result(r.scen.order, finished.Sub(start))
	res.Parameters = r.parameters()
	res.Start, res.End = start, finished
	res.ElapsedSeconds = finished.Sub(start).Seconds()
	res.Interrupted = ctx.Err() != nil
	res.Setup = setup
	res.Unsent = unsent
	res.Totals.HTTPRequests = r.shop.Requests() - requestsBefore
	if res.ElapsedSeconds > 0 {
		res.ConfirmedCheckoutsPerSecond = float64(res.ConfirmedCheckouts) / res.ElapsedSeconds
	}
	res.Notes = notes(res)
	return res
}

// openLoop starts operation i at start + i×interval for every i due before
// end. MaxInFlight workers take the slots in order; a worker that takes a
// slot whose time has passed (all were busy) sends at once, and the
// operation's latency still counts from its slot, so queueing in this
// process or in the system shows in the figures. It returns the number of
// slots that were due but never sent because the run ended while every
// worker was busy.
func (r *runner) openLoop(ctx context.Context, start, end time.Time) (unsent int64) {
	rate := r.cfg.Rate
	due := func(i int64) time.Time { return start.Add(time.Duration(float64(i) * float64(time.Second) / rate)) }
	// The slots due before d: every i with i/rate < d. The epsilon keeps
	// 3s at 60/s from rounding up to a 181st slot.
	dueBefore := func(d time.Duration) int64 { return int64(math.Ceil(d.Seconds()*rate - 1e-9)) }
	slots := dueBefore(r.cfg.Duration)
	workers := min(int64(r.cfg.MaxInFlight), slots)

	var next, sent atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(end) {
				i := next.Add(1) - 1
				if i >= slots {
					return
				}
				intended := due(i)
				if !sleepUntil(ctx, intended) {
					return
				}
				sent.Add(1)
				// One generator per slot: the same seed gives the same
				// operations in the same slots, whatever the timing.
				rng := mathrand.New(mathrand.NewPCG(r.cfg.Seed, uint64(i)))
				r.runOp(ctx, rng, intended)
			}
		})
	}
	interrupted := make(chan time.Time, 1)
	stop := context.AfterFunc(ctx, func() { interrupted <- time.Now() })
	wg.Wait()
	stoppedAt := end
	if !stop() { // interrupted: what was due after that was not meant to be sent
		if t := <-interrupted; t.Before(end) {
			stoppedAt = t
		}
	}
	return max(0, min(slots, dueBefore(stoppedAt.Sub(start)))-sent.Load())
}

// closedLoop runs Concurrency workers, each sending its next operation
// when the previous one is answered, until end.
func (r *runner) closedLoop(ctx context.Context, end time.Time) {
	l := Start(ctx, Custom{Workers: r.cfg.Concurrency, Seed: r.cfg.Seed, Op: func(ctx context.Context, w *Worker) {
		r.runOp(ctx, w.Rand, time.Now())
	}})
	sleepUntil(ctx, end)
	l.Stop()
}

// runOp picks and runs one operation due at intended, and records it.
func (r *runner) runOp(ctx context.Context, rng *mathrand.Rand, intended time.Time) {
	op := r.scen.pick(rng)
	sent := time.Now()
	octx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	out := op(octx, r, rng)
	cancel()
	done := time.Now()
	if out.kind != "" && ctx.Err() != nil {
		return // it failed because the run was interrupted: not the system's doing
	}
	s := Sample{Op: out.op, Kind: out.kind, Intended: intended, Sent: sent, Done: done}
	r.stats.add(s, out.confirmed)
	if r.cfg.Observe != nil {
		r.cfg.Observe(s)
	}
}

// progress calls cfg.Progress every second until stop is closed.
func (r *runner) progress(start time.Time, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last, lastAt := int64(0), start
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			p := r.stats.progress()
			p.Elapsed = now.Sub(start)
			if dt := now.Sub(lastAt).Seconds(); dt > 0 {
				p.Rate = float64(p.Operations-last) / dt
			}
			last, lastAt = p.Operations, now
			r.cfg.Progress(p)
		}
	}
}

func (r *runner) parameters() Parameters {
	p := Parameters{
		Target:          r.shop.URL(),
		Scenario:        r.cfg.Scenario,
		Duration:        r.cfg.Duration.String(),
		DurationSeconds: r.cfg.Duration.Seconds(),
		Seed:            r.cfg.Seed,
		Timeout:         r.cfg.Timeout.String(),
	}
	if r.scen.customers {
		p.Users = r.cfg.Users
	}
	if r.cfg.Rate > 0 {
		p.Mode, p.Rate, p.MaxInFlight = "open", r.cfg.Rate, r.cfg.MaxInFlight
	} else {
		p.Mode, p.Concurrency = "closed", r.cfg.Concurrency
	}
	return p
}

// sleepUntil waits until t, reporting false if ctx ends first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
