//go:build linux

package netlab

import (
	"context"
	"fmt"
	"time"

	"github.com/microshop/microshop/internal/chaos"
)

// RunConfig is one partitions run: the shop on a lab, faults under load,
// then the chaos checks.
type RunConfig struct {
	Binary, Data              string
	Seed                      uint64
	Duration                  time.Duration
	Shoppers                  int
	AdminEmail, AdminPassword string
	// Env is added to every service's environment.
	Env []string
	// The faults' ranges (see Partitions).
	MinGap, MaxGap, MinLast, MaxLast, FreezeFor time.Duration
	SettleTimeout, ProgressEvery                time.Duration
	// Prefix and Subnet place the lab ("msl" and 0 when zero).
	Prefix string
	Subnet int
	// Progress and Logf as in chaos.Config.
	Progress func(chaos.Progress)
	Logf     func(format string, args ...any)
}

// Margin is how much later than its deadline an answer may come: the
// gateway's own work and a loaded machine's scheduling.
const Margin = 2 * time.Second

// RunPartitions builds the lab, starts the shop on it, injects the
// faults under the shoppers' load, heals everything, checks the system
// and tears it all down. An error means the run could not be carried out;
// what the system got wrong is the result's violations.
func RunPartitions(ctx context.Context, c RunConfig) (*chaos.Result, error) {
	logf := c.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	lab, err := New(ctx, Options{Prefix: c.Prefix, Subnet: c.Subnet})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := lab.Close(); err != nil {
			logf("removing the lab: %v", err)
		}
	}()
	began := time.Now()
	logf("starting the shop across %d hosts in 198.18.%d.0/24", len(hostNames()), c.Subnet)
	shop, err := StartShop(ctx, lab, ShopOptions{Binary: c.Binary, Data: c.Data, AdminEmail: c.AdminEmail,
		AdminPassword: c.AdminPassword, Env: c.Env, Logf: logf})
	if err != nil {
		return nil, fmt.Errorf("starting the shop: %w", err)
	}
	defer shop.Stop()
	logf("the shop is ready at %s (in %s); the shoppers run on %s", shop.Gateway, time.Since(began).Round(time.Millisecond), shop.Load().IP)

	inj := &healing{Partitions: &Partitions{Shop: shop, Seed: c.Seed, MinGap: c.MinGap, MaxGap: c.MaxGap,
		MinLast: c.MinLast, MaxLast: c.MaxLast, FreezeFor: c.FreezeFor, Logf: logf}}
	return chaos.Run(ctx, chaos.Config{
		System:        shop,
		Gateway:       shop.Gateway,
		AdminEmail:    c.AdminEmail,
		AdminPassword: c.AdminPassword,
		MailboxFile:   shop.MailboxFile,
		Seed:          c.Seed,
		Duration:      c.Duration,
		Shoppers:      c.Shoppers,
		SettleTimeout: c.SettleTimeout,
		Injector:      inj,
		Dial:          shop.Load().DialContext,
		Streams:       shop.Streams,
		// A shopper waits past the deadline, so that a late answer is
		// measured rather than cut off.
		RequestTimeout: UpstreamTimeout + 3*Margin,
		Deadline:       UpstreamTimeout,
		// A fifth of the checkouts pay with the slow card, so that sagas
		// stay in flight for SlowCardDelay and faults catch them midway.
		SlowCards:     20,
		Margin:        Margin,
		Progress:      c.Progress,
		ProgressEvery: c.ProgressEvery,
		Logf:          logf,
	})
}

// healing is Partitions that also heals whatever is left once the faults
// are over, so the checks meet a whole network.
type healing struct{ *Partitions }

func (h *healing) Inject(ctx context.Context, start time.Time, d time.Duration, record func(chaos.Fault)) {
	h.Partitions.Inject(ctx, start, d, record)
	if err := h.Shop.Heal(context.WithoutCancel(ctx)); err != nil {
		h.Logf("healing the network: %v", err)
	}
	h.Logf("%7s  every fault is healed", time.Since(start).Round(100*time.Millisecond))
}
