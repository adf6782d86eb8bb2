package chaos_test

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/chaos"
	"github.com/microshop/microshop/test/systemtest"
)

// defaultSeed is the run CI makes; MICROSHOP_CHAOS_SEED replays another.
const defaultSeed = 20260401

// TestChaos kills random processes of `microshop run` (the broker
// included) with SIGKILL under a steady load for about 100 seconds, then
// requires the system to settle with nothing lost and nothing doubled.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos test runs the whole system for minutes; skipped with -short")
	}
	seed := uint64(defaultSeed)
	if v := os.Getenv("MICROSHOP_CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("MICROSHOP_CHAOS_SEED=%q: want a number", v)
		}
		seed = n
	}
	duration := 100 * time.Second
	if v := os.Getenv("MICROSHOP_CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("MICROSHOP_CHAOS_DURATION=%q: %v", v, err)
		}
		duration = d
	}
	t.Logf("chaos seed %d (replay with MICROSHOP_CHAOS_SEED=%d)", seed, seed)

	s := systemtest.Start(t, systemtest.ShopEnv()...)
	ctx, cancel := context.WithTimeout(context.Background(), duration+150*time.Second)
	defer cancel()
	res, err := chaos.Run(ctx, chaos.Config{
		System:        s.System,
		Gateway:       s.Gateway,
		AdminEmail:    systemtest.AdminEmail,
		AdminPassword: systemtest.AdminPassword,
		MailboxFile:   filepath.Join(s.Data, "mailbox.jsonl"),
		Seed:          seed,
		Duration:      duration,
		SettleTimeout: 60 * time.Second,
		Logf:          t.Logf,
	})
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	var table, faults strings.Builder
	res.WriteTable(&table)
	res.WriteFaults(&faults)
	t.Logf("faults:\n%s", faults.String())
	t.Logf("result:\n%s", table.String())
	if !res.OK() {
		t.Errorf("seed %d: %d violations (replay with MICROSHOP_CHAOS_SEED=%d)", seed, len(res.Violations), seed)
		// The test's data directory goes when it ends; keep a copy of the
		// databases, logs and mailbox to look into.
		kept := filepath.Join(os.TempDir(), fmt.Sprintf("microshop-chaos-%d-%d", seed, time.Now().Unix()))
		if err := copyFiles(s.Data, kept); err != nil {
			t.Logf("keeping the data directory: %v", err)
		} else {
			t.Logf("the system's data directory is kept in %s", kept)
		}
	}
	if res.Confirmed == 0 {
		t.Errorf("seed %d: no order was confirmed", seed)
	}
	if len(res.FaultsBy()) == 0 {
		t.Errorf("seed %d: no fault was injected", seed)
	}
}

// copyFiles copies the regular files under src to dst.
func copyFiles(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o750)
		}
		if !d.Type().IsRegular() {
			return nil // the control socket
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}
