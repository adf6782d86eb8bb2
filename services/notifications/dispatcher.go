package notifications

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/internal/platform/ids"
)

// dispatcher sends the deliveries the event handler recorded. Any number
// of replicas run one each on the same database: a delivery is sent by
// the replica whose claim leased it, and the lease outlives the longest
// try, so two never send it at once. A replica that dies mid-try leaves
// its lease to run out; then another tries again.
type dispatcher struct {
	s        *Service
	mailer   *mailer
	webhooks *webhooks
	log      *slog.Logger
	// workers bounds the tries underway at once.
	workers int
	// interval is how often the dispatcher looks for due deliveries when
	// nothing woke it and the last look found some; with nothing to do it
	// looks less and less often, up to every idleMax.
	interval, idleMax time.Duration
	// lease is how long a claim holds a delivery: longer than any try.
	lease time.Duration

	sent *prometheus.CounterVec

	mu sync.Mutex
	// retryAt is the earliest retry this process scheduled and has not
	// looked for yet (zero: none).
	retryAt time.Time
}

// idleMax bounds the dispatcher's wait between looks when idle: the look
// that finds the deliveries nothing here announced (another replica's
// lease that ran out). On Postgres each look is a transaction.
const idleMax = 5 * time.Second

func newDispatcher(s *Service, m *mailer, w *webhooks, workers int, interval, lease time.Duration, reg prometheus.Registerer) *dispatcher {
	d := &dispatcher{s: s, mailer: m, webhooks: w, log: s.log.With("component", "dispatcher"),
		workers: workers, interval: interval, idleMax: max(interval, idleMax), lease: lease,
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "notifications_delivery_tries_total",
			Help: "Tries to deliver a notification, by channel kind (email, webhook) and outcome (sent, failed, dead).",
		}, []string{"channel", "outcome"})}
	if reg != nil {
		reg.MustRegister(d.sent)
	}
	return d
}

// Run sends due deliveries until ctx is done, then waits for the tries
// underway: they finish (each has its own deadline) and record their
// outcome, which keeps a stop from leaving a sent message unrecorded.
func (d *dispatcher) Run(ctx context.Context) error {
	// Once the last try has ended, the kept SMTP sessions say QUIT.
	defer d.mailer.close()
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, d.workers)
	done := make(chan struct{}, d.workers)
	wait := d.interval
	for {
		if d.pass(ctx, &wg, slots, done) {
			wait = d.interval
		} else {
			wait = min(2*wait, d.idleMax)
		}
		timer := time.NewTimer(d.untilRetry(wait))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		case <-done:
			// A try ended: a worker is free for deliveries this pass
			// could not take.
			timer.Stop()
		case <-d.s.wake:
			timer.Stop()
			wait = d.interval
			// The handler pokes from inside its transaction; give the
			// commit a moment so this look finds the rows.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
}

// untilRetry is wait, or less when a retry this process scheduled falls
// due sooner.
func (d *dispatcher) untilRetry(wait time.Duration) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.retryAt.IsZero() {
		return wait
	}
	until := time.Until(d.retryAt)
	if until <= wait {
		d.retryAt = time.Time{} // the look after this wait finds it
		return max(until, 0)
	}
	return wait
}

// retryLater notes a retry due at t.
func (d *dispatcher) retryLater(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.retryAt.IsZero() || t.Before(d.retryAt) {
		d.retryAt = t
	}
}

// pass claims as many due deliveries as there are free workers and starts
// a try for each. It reports whether there was work: tries underway or
// deliveries due.
func (d *dispatcher) pass(ctx context.Context, wg *sync.WaitGroup, slots chan struct{}, done chan struct{}) bool {
	free := cap(slots) - len(slots)
	if free == 0 {
		return true
	}
	now := time.Now()
	// Look at more than we can take: another replica may claim some first.
	due, err := d.s.store.due(ctx, now, free*2)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("looking for due deliveries failed", "err", err)
		}
		return false
	}
	started := 0
	for _, id := range due {
		if started == free || ctx.Err() != nil {
			break
		}
		o, ok, err := d.s.store.claim(ctx, id, ids.New(), now, now.Add(d.lease))
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("claiming a delivery failed", "delivery_id", id, "err", err)
			}
			continue
		}
		if !ok {
			continue // another replica took it
		}
		slots <- struct{}{}
		started++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				<-slots
				select {
				case done <- struct{}{}:
				default:
				}
			}()
			d.try(ctx, o)
		}()
	}
	return len(due) > 0 || len(slots) > 0
}

// try sends one claimed delivery and records the outcome. It is not cut
// short by ctx (the service stopping): a try has its own deadline, and
// finishing it keeps the window between "accepted" and "recorded" small.
func (d *dispatcher) try(ctx context.Context, o outgoing) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.lease/2)
	defer cancel()
	kind := "email"
	var err error
	if o.Channel == ChannelEmail {
		err = d.mailer.send(ctx, email{
			MessageID: messageID(o.EventID, o.Channel), To: o.Recipient, Subject: o.Subject,
			Text: o.Body, HTML: o.HTML, Date: o.CreatedAt, Boundary: "microshop-" + o.ID,
		})
	} else {
		kind = "webhook"
		err = d.webhooks.send(ctx, o)
	}
	// Here is the one window no protocol closes: the receiver has the
	// message, and a crash before the next statement leaves it pending.
	// The lease runs out, another try sends it again, with the same
	// Message-ID or Microshop-Event-Id, which the receiver uses to drop it.
	now := time.Now()
	res := outcome{Tries: o.Tries + 1}
	switch {
	case err == nil:
		res.Status, res.SentAt = StatusSent, now
	case isPermanent(err) || res.Tries >= d.s.cfg.MaxTries:
		res.Status, res.LastError = StatusDead, truncate(err.Error(), maxLastErrorLength)
	default:
		res.Status, res.LastError = StatusFailed, truncate(err.Error(), maxLastErrorLength)
		res.Next = now.Add(backoff(d.s.cfg.RetryBase, d.s.cfg.RetryMax, res.Tries))
	}
	d.sent.WithLabelValues(kind, res.Status).Inc()
	log := d.log.With("delivery_id", o.ID, "event_id", o.EventID, "channel", o.Channel, "try", res.Tries)
	switch res.Status {
	case StatusSent:
		log.Info("notification sent")
	case StatusDead:
		log.Error("notification is dead: no more tries", "err", err)
	default:
		log.Warn("notification failed; it will be retried", "err", err, "retry_at", res.Next.UTC().Format(time.RFC3339Nano))
	}
	ok, rerr := d.s.store.record(ctx, o.ID, o.Claim, res)
	if rerr != nil {
		log.Error("recording the outcome failed; the lease will run out and the delivery be tried again", "err", rerr)
	} else if !ok {
		log.Info("the delivery was replayed during the try; its outcome is not recorded")
	} else if res.Status == StatusFailed {
		d.retryLater(res.Next)
	}
}

// backoff is the wait after try n (1, 2, ...): exponential with full
// jitter, a random duration in [0, min(max, base × 2^(n-1))]. Full jitter
// spreads the retries of many deliveries that failed together (a receiver
// that was down) instead of sending them back in waves.
func backoff(base, max time.Duration, n int) time.Duration {
	ceiling := base
	for i := 1; i < n && ceiling < max; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, max)
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling + 1)
}

// permanentError marks a failure no retry can fix: the delivery is dead
// at once.
type permanentError struct{ error }

func (p permanentError) Unwrap() error { return p.error }

func permanent(err error) error { return permanentError{err} }

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := strings.ToValidUTF8(s[:n], "")
	return fmt.Sprintf("%s…", cut)
}
