package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/microshop/microshop/internal/chaos"
	"github.com/microshop/microshop/internal/loadgen"
	"github.com/microshop/microshop/internal/netlab"
)

// runPartitions runs the shop across a netlab network and injects
// network faults under load, then checks it as chaos does.
func runPartitions(ctx context.Context, r partitionsRun, stdout io.Writer) error {
	if err := netlab.Available(); err != nil {
		return fmt.Errorf("--partitions: %w", err)
	}
	exe, data, adminEmail, adminPassword, say, err := chaosSetup("microshop-partitions-", stdout)
	if err != nil {
		return err
	}
	say("microshop chaos --partitions: seed %d, %s of faults, %d shoppers (replay: microshop chaos --partitions --seed %d --duration %s --shoppers %d)",
		r.seed, r.duration, r.shoppers, r.seed, r.duration, r.shoppers)
	res, err := netlab.RunPartitions(ctx, netlab.RunConfig{
		Binary: exe, Data: data, Seed: r.seed, Duration: r.duration, Shoppers: r.shoppers,
		AdminEmail: adminEmail, AdminPassword: adminPassword, Env: loadgen.Unlimited(),
		MinGap: r.minGap, MaxGap: r.maxGap, MinLast: r.minLast, MaxLast: r.maxLast, FreezeFor: r.freeze,
		SettleTimeout: r.settle, ProgressEvery: r.every,
		Progress: func(p chaos.Progress) {
			say("%6s  %s: %d requests, %d checkouts placed (%d confirmed), %d faults, %d failed attempts",
				p.Elapsed, p.Phase, p.Requests, p.Placed, p.Confirmed, p.Faults, p.Errors)
		},
		Logf: func(format string, args ...any) { say("        "+format, args...) },
	})
	if err != nil {
		return fmt.Errorf("partitions run with seed %d: %w (the data and logs are in %s)", r.seed, err, data)
	}
	fmt.Fprintln(stdout)
	res.WriteFaults(stdout)
	fmt.Fprintln(stdout)
	res.WriteTable(stdout)
	fmt.Fprintln(stdout)
	if !res.OK() {
		fmt.Fprintf(stdout, "verdict: FAIL (%d violations)\n", len(res.Violations))
		return fmt.Errorf("%d violations with seed %d; the data and logs are in %s", len(res.Violations), r.seed, data)
	}
	fmt.Fprintln(stdout, "verdict: PASS: nothing lost, nothing doubled, every answer within its deadline")
	if r.keep {
		fmt.Fprintf(stdout, "\nthe data directory is kept: %s\n", data)
		return nil
	}
	return os.RemoveAll(data)
}
