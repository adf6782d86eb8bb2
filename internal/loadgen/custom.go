package loadgen

import (
	"context"
	"maps"
	mathrand "math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/orders/ordersapi"
)

// Custom is a closed-loop load whose operations the caller writes, as the
// demos and chaos do: Workers shoppers, each doing Op, pausing, and doing
// it again until the load is stopped. Each shopper has its own random
// source, so the same Seed makes the same choices.
type Custom struct {
	Workers int
	Seed    uint64
	// Op does one operation as w: any number of calls of the API, each
	// through w.Call so that it is counted and retried.
	Op func(ctx context.Context, w *Worker)
	// Think, when set, is the pause before each operation.
	Think func(rng *mathrand.Rand) time.Duration
	// MaxOps stops starting operations once this many were started, by
	// all the workers together (0: no limit).
	MaxOps int64
	// RetryFor bounds the tries of one call (10s when zero).
	RetryFor time.Duration
	// Outages says that parts of the system are expected to be down at
	// times, as under chaos: a safe call is retried after any 5xx, not
	// only a 503, and a call given up for want of an answer or with a 503
	// is counted but not kept among the samples.
	Outages bool
}

// Counts are a custom load's figures so far.
type Counts struct {
	// Requests are calls as a client sees them: a call that was retried
	// counts once. Retries are attempts sent again; RetriedOK calls were
	// answered well after at least one retry. FailedAttempts are attempts
	// that met no answer or a 5xx, retried or not; Failed are calls that
	// got no usable answer in the end.
	Requests, Retries, RetriedOK, FailedAttempts, Failed int64
	// Placed are the distinct orders the API accepted. Checkouts finished
	// Confirmed, Rejected (out of stock, declined) or CheckoutFailed (an
	// error, or still pending when the shopper stopped waiting).
	Placed, Checkouts, Confirmed, Rejected, CheckoutFailed int64
}

// Sub is the counts since o was read.
func (c Counts) Sub(o Counts) Counts {
	return Counts{Requests: c.Requests - o.Requests, Retries: c.Retries - o.Retries, RetriedOK: c.RetriedOK - o.RetriedOK,
		FailedAttempts: c.FailedAttempts - o.FailedAttempts, Failed: c.Failed - o.Failed,
		Placed: c.Placed - o.Placed, Checkouts: c.Checkouts - o.Checkouts, Confirmed: c.Confirmed - o.Confirmed,
		Rejected: c.Rejected - o.Rejected, CheckoutFailed: c.CheckoutFailed - o.CheckoutFailed}
}

// Order is an order the API accepted, as its shopper last saw it, with
// the Idempotency-Key it was placed under.
type Order struct {
	Key string
	ordersapi.Order
}

// Load is a custom load underway.
type Load struct {
	cfg     Custom
	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup

	mu       sync.Mutex
	counts   Counts
	started  int64
	attempts map[string]int // failed attempts by kind
	gaveUp   map[string]int // calls given up by the kind of their last failure
	samples  []string
	answered []time.Duration // how long each attempt that got an answer took
	orders   []Order
	index    map[string]int // order id -> its place in orders
	keys     map[string][]string
}

// Worker is one shopper of a custom load. It runs in its own goroutine.
type Worker struct {
	ID int
	// Rand is the worker's own random source, seeded from Custom.Seed.
	Rand *mathrand.Rand
	// N counts the operations the worker started, this one included.
	N int
	l *Load
}

// Start starts the workers. They run until Stop, or until ctx ends.
func Start(ctx context.Context, cfg Custom) *Load {
	if cfg.RetryFor == 0 {
		cfg.RetryFor = 10 * time.Second
	}
	l := &Load{cfg: cfg, stop: make(chan struct{}), attempts: map[string]int{}, gaveUp: map[string]int{},
		index: map[string]int{}, keys: map[string][]string{}}
	for id := range cfg.Workers {
		w := &Worker{ID: id, Rand: mathrand.New(mathrand.NewPCG(cfg.Seed, 1<<63|uint64(id))), l: l}
		l.wg.Go(func() { l.work(ctx, w) })
	}
	return l
}

func (l *Load) work(ctx context.Context, w *Worker) {
	for {
		pause := time.Duration(0)
		if l.cfg.Think != nil {
			pause = l.cfg.Think(w.Rand)
		}
		t := time.NewTimer(pause)
		select {
		case <-l.stop:
			t.Stop()
			return
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if l.cfg.MaxOps > 0 && !l.take() {
			select { // the budget is spent: wait for the end
			case <-l.stop:
			case <-ctx.Done():
			}
			return
		}
		w.N++
		l.cfg.Op(ctx, w)
	}
}

// take counts one more operation against MaxOps, if the budget allows.
func (l *Load) take() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.started++
	return l.started <= l.cfg.MaxOps
}

// Stop lets every worker finish what it is doing, then returns. Calling
// it again only waits.
func (l *Load) Stop() {
	l.stopped.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// Counts returns the figures so far.
func (l *Load) Counts() Counts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts
}

// Kinds returns the failed attempts by kind (refused, reset, timeout,
// http 503, ...) and the calls given up by the kind of their last failure.
func (l *Load) Kinds() (attempts, gaveUp map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.attempts), maps.Clone(l.gaveUp)
}

// Samples returns the first ten failures, described.
func (l *Load) Samples() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.samples...)
}

// Latencies returns how long each attempt that got an answer (any
// status) took, in the order they ended. Attempts that got none are
// counted by kind in Kinds instead.
func (l *Load) Latencies() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Duration(nil), l.answered...)
}

// Orders returns the orders the API accepted, in the order it did.
func (l *Load) Orders() []Order {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Order(nil), l.orders...)
}

// Accepted returns the ids of the orders the API accepted.
func (l *Load) Accepted() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := make([]string, len(l.orders))
	for i, o := range l.orders {
		ids[i] = o.ID
	}
	return ids
}

// Keys maps each Idempotency-Key to the order ids it was answered with,
// once per answer.
func (l *Load) Keys() map[string][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string][]string, len(l.keys))
	for k, v := range l.keys {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// Call makes one call of the API the way a careful client does, and
// counts it. A call whose connection was refused never reached the
// system, so it is sent again whatever it is; a safe call (a GET, or a
// POST whose repetition changes nothing: an Idempotency-Key, a cancel) is
// sent again after any failure to get an answer or a 503 (any 5xx with
// Outages), with backoff, for up to RetryFor. Any other answer than the
// call wants, such as a 4xx, is given up at once: these loads send only
// requests the API should take.
func (w *Worker) Call(ctx context.Context, safe bool, call func(context.Context) error) error {
	l := w.l
	l.mu.Lock()
	l.counts.Requests++
	l.mu.Unlock()
	deadline := time.Now().Add(l.cfg.RetryFor)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			backoff := min(100*time.Millisecond<<min(attempt-1, 4), time.Second)
			backoff = backoff/2 + time.Duration(w.Rand.Int64N(int64(backoff/2)+1))
			if !sleepUntil(ctx, time.Now().Add(backoff)) {
				l.failed(AttemptCancelled, ctx.Err(), true)
				return ctx.Err()
			}
		}
		began := time.Now()
		err := call(ctx)
		if took := time.Since(began); err == nil || shopclient.StatusOf(err) > 0 {
			l.mu.Lock()
			l.answered = append(l.answered, took)
			l.mu.Unlock()
		}
		if err == nil {
			if attempt > 0 {
				l.mu.Lock()
				l.counts.RetriedOK++
				l.mu.Unlock()
			}
			return nil
		}
		kind, status := attemptKind(err), shopclient.StatusOf(err)
		answered := status > 0 && status < 500 || kind == AttemptBadAnswer
		outage := status == 0 || status == http.StatusServiceUnavailable || status >= 500 && l.cfg.Outages
		retry := !answered && (kind == AttemptRefused || safe && outage) && time.Now().Before(deadline) && ctx.Err() == nil
		l.failed(kind, err, !retry)
		if !retry {
			return err
		}
	}
}

// failed counts a failed attempt, and a call given up when final.
func (l *Load) failed(kind string, err error, final bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts.FailedAttempts++
	l.attempts[kind]++
	if !final {
		l.counts.Retries++
		return
	}
	l.counts.Failed++
	l.gaveUp[kind]++
	status := shopclient.StatusOf(err)
	if len(l.samples) < 10 && (!l.cfg.Outages || status > 0 && status != http.StatusServiceUnavailable || kind == AttemptBadAnswer) {
		l.samples = append(l.samples, truncate(err.Error(), 300))
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// Place places an order as s under key through Call, and records it when
// the API accepts it; placing it again under the same key records the
// answer again.
func (w *Worker) Place(ctx context.Context, s *shopclient.Session, key string, o shopclient.NewOrder) (ordersapi.Order, bool) {
	var order ordersapi.Order
	if err := w.Call(ctx, true, func(ctx context.Context) (err error) {
		order, _, err = s.PlaceOrder(ctx, key, o)
		return err
	}); err != nil {
		return order, false
	}
	l := w.l
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keys[key] = append(l.keys[key], order.ID)
	if _, ok := l.index[order.ID]; !ok {
		l.index[order.ID] = len(l.orders)
		l.orders = append(l.orders, Order{Key: key, Order: order})
		l.counts.Placed++
	}
	return order, true
}

// Finished counts a checkout that is over: o is its order as last seen,
// accepted whether the API took it at all.
func (w *Worker) Finished(o ordersapi.Order, accepted bool) {
	l := w.l
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts.Checkouts++
	switch {
	case accepted && o.Status == ordersapi.StatusConfirmed:
		l.counts.Confirmed++
	case accepted && o.Status == ordersapi.StatusRejected:
		l.counts.Rejected++
	default:
		l.counts.CheckoutFailed++
	}
	if i, ok := l.index[o.ID]; ok && accepted {
		l.orders[i].Order = o
	}
}

// Follow polls an accepted order through w.Call every pause until it is
// no longer PENDING, for up to patience. It reports whether it read the
// order's last state; o is the order as last seen.
func (w *Worker) Follow(ctx context.Context, s *shopclient.Session, o ordersapi.Order, pause, patience time.Duration) (ordersapi.Order, bool) {
	for deadline := time.Now().Add(patience); o.Status == ordersapi.StatusPending && time.Now().Before(deadline); {
		if !sleepUntil(ctx, time.Now().Add(pause)) {
			return o, false
		}
		if err := w.Call(ctx, true, func(ctx context.Context) error {
			got, err := s.Order(ctx, o.ID)
			if err == nil {
				o = got
			}
			return err
		}); err != nil {
			return o, false
		}
	}
	return o, true
}
