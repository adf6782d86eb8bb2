//go:build linux

package netlab

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/microshop/microshop/internal/chaos"
)

// The kinds of fault Partitions injects.
const (
	FaultCut       = "cut"        // a host's link down
	FaultPartition = "partition"  // two hosts cannot reach each other
	FaultOneWay    = "one-way"    // one host's packets to another dropped
	FaultNATSSplit = "nats-split" // a NATS node cut from its peers, not its clients
	FaultNoDB      = "no-db"      // a replica cannot reach PostgreSQL
	FaultSqueeze   = "squeeze"    // a host's bandwidth squeezed (tc tbf)
	FaultFreeze    = "freeze"     // a process stopped (SIGSTOP), then continued
)

// Partitions injects seeded random network faults into a Shop under
// load (a chaos.Injector). Each fault lasts MinLast to MaxLast, a freeze
// FreezeFor, which is longer than every timeout of the system; the next
// comes MinGap to MaxGap after the last, and faults overlap, though never
// two on one host at once.
type Partitions struct {
	Shop *Shop
	Seed uint64
	// The ranges (4s-10s, 3s-12s when zero) and the freeze (40s: longer
	// than the gateway's upstream timeout, AckWait and the saga lease,
	// 30s each, plus the 5s between takeover sweeps).
	MinGap, MaxGap, MinLast, MaxLast, FreezeFor time.Duration
	// Logf receives a line for each fault and each heal.
	Logf func(format string, args ...any)
}

// fault is one planned fault: what to do, on which hosts, and its undo.
type fault struct {
	At, Last time.Duration
	Kind     string
	What     string
	hosts    []string
	apply    func(ctx context.Context) error
	heal     func(ctx context.Context) error
}

func (p *Partitions) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&p.MinGap, 4*time.Second)
	def(&p.MaxGap, 10*time.Second)
	def(&p.MinLast, 3*time.Second)
	def(&p.MaxLast, 12*time.Second)
	def(&p.FreezeFor, 40*time.Second)
	if p.Logf == nil {
		p.Logf = func(string, ...any) {}
	}
}

// sagaWait bounds the wait for a saga before an orders replica is frozen.
const sagaWait = 15 * time.Second

func between(r *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
}

// plan draws the faults of a run of d from the seed alone, so a replay
// meets the same faults at the same times.
func (p *Partitions) plan(d time.Duration) []fault {
	p.defaults()
	r := rand.New(rand.NewPCG(p.Seed, 13))
	var out []fault
	for at := between(r, p.MinGap, p.MaxGap); at < d; at += between(r, p.MinGap, p.MaxGap) {
		f := p.draw(r)
		f.At = at
		if f.Kind == FaultFreeze {
			f.Last = p.FreezeFor
		} else {
			f.Last = between(r, p.MinLast, p.MaxLast)
		}
		out = append(out, f)
	}
	// Every run freezes a replica of orders once, for longer than its
	// saga lease, whatever else the seed drew: the other replica must
	// take its unfinished sagas over, and the frozen one, continued, must
	// find it no longer holds them.
	frozenOrders := func(f fault) bool { return f.Kind == FaultFreeze && strings.HasPrefix(f.What, "orders ") }
	if len(out) > 0 && !slices.ContainsFunc(out, frozenOrders) {
		f := p.freeze("orders", r.IntN(2))
		f.At, f.Last = out[0].At, p.FreezeFor
		out[0] = f
	}
	return out
}

// replicaHost is a random replica's host of a random replicated service.
func replicaHost(r *rand.Rand) (svc string, replica int, host string) {
	svc = Replicated[r.IntN(len(Replicated))]
	replica = r.IntN(2)
	return svc, replica, hostOf(svc, replica)
}

// draw picks one fault.
func (p *Partitions) draw(r *rand.Rand) fault {
	lab := p.Shop.Lab
	kinds := []string{FaultCut, FaultPartition, FaultPartition, FaultOneWay, FaultNATSSplit, FaultNoDB, FaultNoDB, FaultSqueeze, FaultFreeze}
	switch kind := kinds[r.IntN(len(kinds))]; kind {
	case FaultCut:
		// Any service replica or a NATS node; a single-replica service
		// (users, notifications, reports) too: its work waits for it.
		choices := []string{"nats1", "nats2", "nats3", "notifications", "reports", "users"}
		for _, s := range Replicated {
			choices = append(choices, s+"1", s+"2")
		}
		h := choices[r.IntN(len(choices))]
		return fault{Kind: kind, What: h, hosts: []string{h},
			apply: func(ctx context.Context) error { return lab.Cut(ctx, h) },
			heal:  func(ctx context.Context) error { return lab.Uncut(ctx, h) }}
	case FaultPartition, FaultOneWay:
		a, b := pair(r)
		oneWay := kind == FaultOneWay
		arrow := " <-/-> "
		if oneWay {
			arrow = " -/-> "
		}
		return fault{Kind: kind, What: a + arrow + b, hosts: []string{a, b},
			apply: func(ctx context.Context) error { return lab.Block(ctx, a, b, oneWay) },
			heal:  func(ctx context.Context) error { return lab.Unblock(ctx, a, b, oneWay) }}
	case FaultNATSSplit:
		k := r.IntN(3)
		node := hostOf("nats", k)
		var peers []string
		for i := range 3 {
			if i != k {
				peers = append(peers, hostOf("nats", i))
			}
		}
		return fault{Kind: kind, What: node + " <-/-> " + strings.Join(peers, ", ") + " (clients still reach it)", hosts: []string{node},
			apply: func(ctx context.Context) error {
				for _, q := range peers {
					if err := lab.Block(ctx, node, q, false); err != nil {
						return err
					}
				}
				return nil
			},
			heal: func(ctx context.Context) error {
				for _, q := range peers {
					if err := lab.Unblock(ctx, node, q, false); err != nil {
						return err
					}
				}
				return nil
			}}
	case FaultNoDB:
		_, _, h := replicaHost(r)
		return fault{Kind: kind, What: fmt.Sprintf("%s -/-> postgres:%d", h, PostgresPort), hosts: []string{h},
			apply: func(ctx context.Context) error { return lab.BlockPort(ctx, h, "postgres", PostgresPort) },
			heal:  func(ctx context.Context) error { return lab.UnblockPort(ctx, h, "postgres", PostgresPort) }}
	case FaultSqueeze:
		choices := []string{"nats1", "nats2", "nats3", "postgres"}
		for _, s := range Replicated {
			choices = append(choices, s+"1", s+"2")
		}
		h := choices[r.IntN(len(choices))]
		const rate = "256kbit"
		return fault{Kind: kind, What: h + " to " + rate, hosts: []string{h},
			apply: func(ctx context.Context) error { return lab.Squeeze(ctx, h, rate) },
			heal:  func(ctx context.Context) error { return lab.Unsqueeze(ctx, h) }}
	default: // FaultFreeze
		name, replica := "nats", r.IntN(3)
		if r.IntN(3) > 0 {
			name, replica, _ = replicaHost(r)
		}
		return p.freeze(name, replica)
	}
}

// freeze stops a process with SIGSTOP; its heal continues it. A replica
// of orders is stopped while it holds a saga (waiting up to
// sagaWait for one), so that the freeze leaves a saga midway for the
// other replica to take over.
func (p *Partitions) freeze(name string, replica int) fault {
	shop := p.Shop
	h := hostOf(name, replica)
	return fault{Kind: FaultFreeze, What: name + " on " + h, hosts: []string{h},
		apply: func(ctx context.Context) error {
			if name == "orders" {
				held := 0
				for end := time.Now().Add(sagaWait); held == 0 && time.Now().Before(end) && ctx.Err() == nil; {
					held, _ = shop.SagasHeld(ctx, replica)
					if held == 0 {
						time.Sleep(20 * time.Millisecond)
					}
				}
				p.Logf("        %s holds %d unfinished sagas as it is frozen", h, held)
			}
			_, err := shop.Freeze(name, replica)
			return err
		},
		heal: func(context.Context) error {
			_, err := shop.Thaw(name, replica)
			return err
		}}
}

// pair picks two hosts that talk to each other: a caller and a callee,
// a service and a NATS node, or the gateway and a service.
func pair(r *rand.Rand) (a, b string) {
	rep := func(s string) string { return hostOf(s, r.IntN(2)) }
	nats := hostOf("nats", r.IntN(3))
	switch r.IntN(5) {
	case 0:
		return rep("orders"), rep("payments")
	case 1:
		return rep("orders"), rep("inventory")
	case 2:
		_, _, h := replicaHost(r)
		return "gateway", h
	case 3:
		_, _, h := replicaHost(r)
		return h, nats
	default:
		services := []string{"notifications", "reports", "users"}
		return services[r.IntN(len(services))], nats
	}
}

// Inject carries out the plan (chaos.Injector): each fault at its time
// unless one of its hosts is still under another, healed after its
// length. It returns once every fault is healed.
func (p *Partitions) Inject(ctx context.Context, start time.Time, d time.Duration, record func(chaos.Fault)) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		busy []string
	)
	defer wg.Wait()
	since := func() time.Duration { return time.Since(start).Round(100 * time.Millisecond) }
	for _, f := range p.plan(d) {
		if !sleepUntil(ctx, start.Add(f.At)) {
			return
		}
		mu.Lock()
		clash := slices.ContainsFunc(f.hosts, func(h string) bool { return slices.Contains(busy, h) })
		if !clash {
			busy = append(busy, f.hosts...)
		}
		mu.Unlock()
		if clash {
			p.Logf("%7s  skipped %s %s: a fault is on its host already", since(), f.Kind, f.What)
			continue
		}
		cf := chaos.Fault{Kind: f.Kind, Process: f.What, At: since(), Down: f.Last}
		if err := f.apply(ctx); err != nil {
			cf.Err = "apply: " + err.Error()
			p.Logf("%7s  %s %s FAILED: %v", since(), f.Kind, f.What, err)
			_ = f.heal(context.WithoutCancel(ctx))
			record(cf)
			mu.Lock()
			busy = slices.DeleteFunc(busy, func(h string) bool { return slices.Contains(f.hosts, h) })
			mu.Unlock()
			continue
		}
		p.Logf("%7s  fault: %s %s for %s", since(), f.Kind, f.What, f.Last.Round(100*time.Millisecond))
		wg.Go(func() {
			sleepUntil(ctx, time.Now().Add(f.Last))
			began := time.Now()
			// Healing must happen even when the run is cancelled.
			if err := f.heal(context.WithoutCancel(ctx)); err != nil {
				cf.Err = "heal: " + err.Error()
			}
			cf.Restart = time.Since(began)
			p.Logf("%7s  healed: %s %s%s", since(), f.Kind, f.What, map[bool]string{true: " (" + cf.Err + ")", false: ""}[cf.Err != ""])
			record(cf)
			mu.Lock()
			busy = slices.DeleteFunc(busy, func(h string) bool { return slices.Contains(f.hosts, h) })
			mu.Unlock()
		})
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
