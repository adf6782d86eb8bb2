package reports

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/ids"
	"github.com/microshop/microshop/services/reports/reportsapi"
)

// rebuilder throws the read model away and builds it again from the
// streams, which keep every event.
//
// A rebuild wipes the model and the inbox rows of reports' consumers in
// one transaction, then notes each stream's last sequence and replays
// every message up to it through an ordered (ephemeral) consumer, handing
// each event to the durable consumer's own inbox-guarded HandleEvent. The
// durable consumers keep running meanwhile: an event they apply after the
// wipe is in the inbox, so the replay skips it, and an event they applied
// before it was wiped is replayed. Whatever the interleaving, each event
// ends up applied once.
//
// The state lives in the report_rebuild row, so every replica shows the
// same progress, and a rebuild whose process died (no heartbeat for
// StaleRebuild) is run again from the start by the next replica that
// notices.
type rebuilder struct {
	store     store
	js        jetstream.JetStream
	log       *slog.Logger
	owner     string // this process, unique
	streams   []string
	bySubject map[string]*events.Consumer
	names     []string
	stale     time.Duration
	beatEvery time.Duration
	wake      chan struct{}
}

func newRebuilder(st store, js jetstream.JetStream, log *slog.Logger, subs []subscription, consumers []*events.Consumer,
	owner string, stale time.Duration) *rebuilder {
	r := &rebuilder{store: st, js: js, log: log.With("component", "rebuild"), owner: owner,
		bySubject: map[string]*events.Consumer{}, stale: stale, beatEvery: 250 * time.Millisecond,
		wake: make(chan struct{}, 1)}
	seen := map[string]bool{}
	for i, sub := range subs {
		r.bySubject[sub.subject] = consumers[i]
		r.names = append(r.names, consumers[i].Name)
		if s := events.StreamName(sub.service); !seen[s] {
			seen[s] = true
			r.streams = append(r.streams, s)
		}
	}
	return r
}

// start claims the rebuild for a new id and wakes run.
func (r *rebuilder) start(ctx context.Context) (reportsapi.Rebuild, error) {
	now := time.Now()
	ok, err := r.store.claimRebuild(ctx, ids.New(), r.owner, now.UnixMilli(), now.Add(-r.stale).UnixMilli())
	if err != nil {
		return reportsapi.Rebuild{}, err
	}
	st, serr := r.status(ctx)
	if !ok {
		return st, errors.Join(ErrRebuildRunning, serr)
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return st, serr
}

func (r *rebuilder) status(ctx context.Context) (reportsapi.Rebuild, error) {
	row, err := r.store.rebuild(ctx)
	if err != nil {
		return reportsapi.Rebuild{}, err
	}
	if row.id == "" {
		return reportsapi.Rebuild{State: reportsapi.RebuildIdle}, nil
	}
	out := reportsapi.Rebuild{ID: row.id, State: row.state, Applied: row.applied, Total: row.total, Error: row.err}
	started := msTime(row.startedAt)
	out.StartedAt = &started
	if row.finishedAt > 0 {
		finished := msTime(row.finishedAt)
		out.FinishedAt = &finished
	}
	return out, nil
}

// run waits for rebuilds to run: one this process started, or one whose
// process died. It runs them one at a time.
func (r *rebuilder) run(ctx context.Context) error {
	tick := time.NewTicker(r.stale / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-tick.C:
		}
		// A cheap read first: most ticks find nothing to do.
		row, err := r.store.rebuild(ctx)
		if err != nil || row.state != reportsapi.RebuildRunning {
			continue
		}
		now := time.Now()
		if row.owner != r.owner && row.heartbeatAt >= now.Add(-r.stale).UnixMilli() {
			continue // another process runs it and is alive
		}
		id, err := r.store.takeRebuild(ctx, r.owner, now.UnixMilli(), now.Add(-r.stale).UnixMilli())
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("looking for a rebuild to run failed", "err", err)
			}
			continue
		}
		if id != "" {
			r.rebuild(ctx, id)
		}
	}
}

// replayPlan is one stream to replay, up to the last message it held.
type replayPlan struct {
	stream  string
	lastSeq uint64
}

// rebuild runs rebuild id to its end and records how it ended. If ctx
// ends first (the service stops), the rebuild stays "running" and the
// next process takes it over once its heartbeat is stale.
func (r *rebuilder) rebuild(ctx context.Context, id string) {
	log := r.log.With("rebuild_id", id)
	log.Info("rebuild started: wiping the read model")
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var applied, total atomic.Int64
	errLost := errors.New("another process took the rebuild over")

	finish := func(err error) {
		state, reason := reportsapi.RebuildDone, ""
		if err != nil {
			if errors.Is(context.Cause(ctx), errLost) || (ctx.Err() != nil && context.Cause(ctx) == context.Canceled) {
				log.Warn("rebuild stopped before its end", "cause", context.Cause(ctx))
				return
			}
			state, reason = reportsapi.RebuildFailed, err.Error()
		}
		if ferr := r.store.finishRebuild(context.WithoutCancel(ctx), id, r.owner, state, reason,
			applied.Load(), total.Load(), time.Now().UnixMilli()); ferr != nil {
			log.Error("recording the end of the rebuild failed", "err", ferr)
		}
		if err != nil {
			log.Error("rebuild failed", "err", err, "applied", applied.Load(), "total", total.Load())
		} else {
			log.Info("rebuild done", "applied", applied.Load(), "total", total.Load())
		}
	}

	// Wipe first, then note where the streams end: an event applied
	// before the wipe was published before it, so the replay reaches it.
	if err := r.store.wipe(ctx, r.names); err != nil {
		finish(err)
		return
	}
	var plans []replayPlan
	for _, name := range r.streams {
		s, err := r.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue // that service never published: nothing to replay
		}
		if err != nil {
			finish(fmt.Errorf("reading stream %s: %w", name, err))
			return
		}
		st := s.CachedInfo().State
		if st.Msgs == 0 {
			continue
		}
		plans = append(plans, replayPlan{stream: name, lastSeq: st.LastSeq})
		total.Add(int64(st.Msgs))
	}

	// The heartbeat shows progress and notices a takeover.
	beatDone := make(chan struct{})
	go func() {
		defer close(beatDone)
		t := time.NewTicker(r.beatEvery)
		defer t.Stop()
		for {
			ok, err := r.store.beat(ctx, id, r.owner, applied.Load(), total.Load(), time.Now().UnixMilli())
			if err == nil && !ok {
				cancel(errLost)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()

	var wg sync.WaitGroup
	errs := make([]error, len(plans))
	for i, p := range plans {
		wg.Go(func() {
			errs[i] = r.replay(ctx, p, &applied)
			if errs[i] != nil {
				cancel(errs[i])
			}
		})
	}
	wg.Wait()
	err := errors.Join(errs...)
	if err != nil && context.Cause(ctx) != nil && !errors.Is(context.Cause(ctx), context.Canceled) {
		err = context.Cause(ctx)
	}
	cancel(nil)
	<-beatDone
	finish(err)
}

// replay hands every message of p's stream, up to p.lastSeq, to the
// consumer of its subject.
func (r *rebuilder) replay(ctx context.Context, p replayPlan, applied *atomic.Int64) error {
	cons, err := r.js.OrderedConsumer(ctx, p.stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return fmt.Errorf("replaying %s: %w", p.stream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("replaying %s: %w", p.stream, err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("replaying %s: %w", p.stream, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("replaying %s: %w", p.stream, err)
		}
		if err := r.apply(ctx, msg); err != nil {
			return err
		}
		applied.Add(1)
		// NumPending is 0 when the messages up to lastSeq were deleted.
		if md.Sequence.Stream >= p.lastSeq || md.NumPending == 0 {
			return nil
		}
	}
}

// apply hands one message to its consumer, retrying what may pass. An
// event no retry can fix is skipped: the durable consumer of its subject
// puts it in the dead letters.
func (r *rebuilder) apply(ctx context.Context, msg jetstream.Msg) error {
	c := r.bySubject[msg.Subject()]
	if c == nil {
		return nil // a subject reports does not read
	}
	var e events.Event
	if err := json.Unmarshal(msg.Data(), &e); err != nil || e.ID == "" {
		r.log.Warn("replay skipped a message that is not an event", "subject", msg.Subject())
		return nil
	}
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		_, err := c.HandleEvent(ctx, e)
		switch {
		case err == nil:
			return nil
		case events.IsPermanent(err):
			r.log.Warn("replay skipped an event no retry can apply", "event_id", e.ID, "type", e.Type, "err", err)
			return nil
		case attempt == 8 || ctx.Err() != nil:
			return fmt.Errorf("replaying %s %s: %w", e.Type, e.ID, err)
		}
		r.log.Warn("replaying an event failed; retrying", "event_id", e.ID, "type", e.Type, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}
