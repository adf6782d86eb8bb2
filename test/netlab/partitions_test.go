//go:build linux

// Package netlab runs `microshop chaos --partitions` as CI does: the shop
// across network namespaces (PostgreSQL, a three-node NATS cluster, every
// service replica on its own host), seeded network faults under checkout
// load for about 75 seconds, then every invariant and every answer's
// deadline checked.
package netlab

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/loadgen"
	"github.com/microshop/microshop/internal/netlab"
)

// defaultSeed is CI's run; MICROSHOP_PARTITIONS_SEED replays another.
const defaultSeed = 7

func TestPartitions(t *testing.T) {
	if testing.Short() {
		t.Skip("the partitions test runs the shop across network namespaces for about two minutes; skipped with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the partitions test needs Linux network namespaces")
	}
	if err := netlab.Available(); err != nil {
		t.Skipf("skipping the partitions test: %v", err)
	}
	seed := uint64(defaultSeed)
	if v := os.Getenv("MICROSHOP_PARTITIONS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("MICROSHOP_PARTITIONS_SEED=%q: want a number", v)
		}
		seed = n
	}
	duration := 75 * time.Second
	if v := os.Getenv("MICROSHOP_PARTITIONS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("MICROSHOP_PARTITIONS_DURATION=%q: %v", v, err)
		}
		duration = d
	}
	bin := filepath.Join(t.TempDir(), "microshop")
	build := exec.Command("go", "build", "-o", bin, "github.com/microshop/microshop/cmd/microshop")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building microshop: %v\n%s", err, out)
	}
	data := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), duration+4*time.Minute)
	defer cancel()
	t.Logf("partitions seed %d (replay with MICROSHOP_PARTITIONS_SEED=%d, or microshop chaos --partitions --seed %d)", seed, seed, seed)
	res, err := netlab.RunPartitions(ctx, netlab.RunConfig{
		Binary: bin, Data: data, Seed: seed, Duration: duration, Shoppers: 6,
		AdminEmail: "partitions-admin@microshop.local", AdminPassword: "partitions admin password",
		Env: loadgen.Unlimited(), SettleTimeout: 60 * time.Second,
		// A subnet and prefix of its own, so it never meets a
		// `microshop chaos --partitions` running beside it.
		Prefix: "mslci", Subnet: 7,
		Logf: t.Logf,
	})
	if err != nil {
		t.Fatalf("seed %d: %v (logs in %s)", seed, err, filepath.Join(data, "logs"))
	}
	var faults, table strings.Builder
	res.WriteFaults(&faults)
	res.WriteTable(&table)
	t.Logf("faults:\n%s", faults.String())
	t.Logf("result:\n%s", table.String())
	// What the freeze of an orders replica did to the sagas: the other
	// replica takes over those whose lease ran out, and the frozen one,
	// continued, finds it no longer holds them.
	for _, name := range []string{"orders1", "orders2"} {
		if b, err := os.ReadFile(filepath.Join(data, "logs", name+".log")); err == nil {
			t.Logf("%s: %d sagas taken over (resumed), %d given up as their lease was lost", name,
				strings.Count(string(b), `"msg":"resuming saga"`), strings.Count(string(b), "lost the saga lease"))
		}
	}
	if !res.OK() {
		t.Errorf("seed %d: %d violations (replay with MICROSHOP_PARTITIONS_SEED=%d)", seed, len(res.Violations), seed)
		for _, name := range []string{"orders1", "orders2", "payments1", "nats1"} {
			if b, err := os.ReadFile(filepath.Join(data, "logs", name+".log")); err == nil {
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				t.Logf("last lines of %s's log:\n%s", name, strings.Join(lines[max(0, len(lines)-15):], "\n"))
			}
		}
	}
	if res.Confirmed == 0 {
		t.Errorf("seed %d: no order was confirmed", seed)
	}
	if len(res.FaultsBy()) == 0 {
		t.Errorf("seed %d: no fault was injected", seed)
	}
}
