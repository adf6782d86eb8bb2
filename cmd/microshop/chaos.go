package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/microshop/microshop/internal/chaos"
	"github.com/microshop/microshop/internal/loadgen"
	"github.com/microshop/microshop/internal/localrun"
)

const chaosUsage = `Usage: microshop chaos [--duration D] [--seed S] [--shoppers N] [flags]
       microshop chaos --partitions [--duration D] [--seed S] [flags]

Runs a fresh system ("microshop run" from this same binary, in a temporary
data directory) and breaks it on purpose: while shoppers browse, register,
check out and cancel, it kills a random process with SIGKILL (NATS
included, never run itself) at random intervals and starts it again after
a random pause. Then it lets the system settle and checks that nothing was
lost or done twice: the checkout invariants (orders final, stock conserved,
one capture per confirmed order, ledger balanced, one order per
Idempotency-Key), exactly one receipt per confirmed order and one email per
event, no Message-ID twice, reports' totals equal to the orders' when
reports runs, and no event dead-lettered.

It prints progress every few seconds, then the faults and a table of what
happened. Every random choice comes from --seed (printed when picked), so a
failing run can be replayed. The exit status is 1 when anything was found
wrong; the data directory (databases, logs, mailbox) is then kept.

With --partitions (Linux, as root) the system runs across machines
instead: one network namespace per host on a bridge in 198.18.0.0/24
(internal/netlab), PostgreSQL on a host of its own with a database per
service, a three-node NATS JetStream cluster with streams at three
replicas, every service replica on its own host (two of orders,
inventory and payments), the gateway on its own and the shoppers on
another. The faults are then the network's, seeded and random: a host
cut off (link down), two hosts partitioned both ways or one way
(nftables), a NATS node cut from its peers but not its clients, a
replica cut from PostgreSQL, bandwidth squeezed (tc tbf), and a process
frozen (SIGSTOP) for longer than every timeout (--freeze; every run
freezes a replica of orders once, so the other must take its sagas
over). Each fault and
heal is printed; then everything heals and the same checks run, and
every answer must come within the gateway's deadline (30s) plus 2s
(p99, max and the requests that got no answer are printed). --gap is
then the time between faults (default 4s-10s), --down how long each
lasts (default 3s-12s). See docs/partitions.md.

Flags:
`

func runChaos(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("microshop chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		duration = fs.Duration("duration", 2*time.Minute, "how long to inject faults under load")
		seed     = fs.Uint64("seed", 0, "seed of every random choice (0: pick one and print it)")
		shoppers = fs.Int("shoppers", 6, "shoppers at once (1 to 100)")
		targets  = fs.String("targets", "", "comma-separated processes that may be killed, e.g. orders,nats (default: every process)")
		settle   = fs.Duration("settle-timeout", 90*time.Second, "bound of each wait once the faults stop (orders final, events drained, mail, reports)")
		every    = fs.Duration("progress", 5*time.Second, "how often to print progress")
		keep     = fs.Bool("keep", false, "keep the data directory even when every check passed")
		gap      = fs.String("gap", "2s-8s", "range of the time from one kill to the next (faults overlap when a process stays down longer)")
		down     = fs.String("down", "200ms-5s", "range of how long a killed process stays down")
		parts    = fs.Bool("partitions", false, "run across network namespaces and inject network faults instead of kills (Linux, root)")
		freeze   = fs.Duration("freeze", 40*time.Second, "with --partitions: how long a frozen process stays stopped (longer than every timeout); every run freezes an orders replica once")
	)
	fs.Usage = func() {
		fmt.Fprint(stderr, chaosUsage)
		fs.PrintDefaults()
	}
	if helped, err := parseFlags(fs, args); helped || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "microshop chaos: unexpected arguments %q\n", fs.Args())
		return errUsage
	}
	switch {
	case *duration <= 0:
		return fmt.Errorf("--duration %s: want a positive duration", *duration)
	case *shoppers < 1 || *shoppers > 100:
		return fmt.Errorf("--shoppers %d: want 1 to 100", *shoppers)
	case *settle <= 0 || *every <= 0:
		return errors.New("--settle-timeout and --progress must be positive")
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *parts {
		if !set["gap"] {
			*gap = "4s-10s"
		}
		if !set["down"] {
			*down = "3s-12s"
		}
	}
	minGap, maxGap, err := durationRange("--gap", *gap)
	if err != nil {
		return err
	}
	minDown, maxDown, err := durationRange("--down", *down)
	if err != nil {
		return err
	}
	if *seed == 0 {
		*seed = mathrand.Uint64()
	}
	var only []string
	for _, t := range strings.Split(*targets, ",") {
		if t = strings.TrimSpace(t); t != "" {
			only = append(only, t)
		}
	}

	if *parts {
		if *targets != "" {
			return errors.New("--targets chooses processes to kill; --partitions chooses its faults itself")
		}
		return runPartitions(ctx, partitionsRun{seed: *seed, duration: *duration, shoppers: *shoppers, settle: *settle,
			every: *every, keep: *keep, minGap: minGap, maxGap: maxGap, minLast: minDown, maxLast: maxDown, freeze: *freeze}, stdout)
	}
	exe, data, adminEmail, adminPassword, say, err := chaosSetup("microshop-chaos-", stdout)
	if err != nil {
		return err
	}
	say("microshop chaos: seed %d, %s of faults, %d shoppers (replay: microshop chaos --seed %d --duration %s --shoppers %d)",
		*seed, *duration, *shoppers, *seed, *duration, *shoppers)
	say("starting the system in %s", data)
	sys, err := localrun.Launch(ctx, localrun.LaunchOptions{Binary: exe, Data: data,
		Env: append(loadgen.Unlimited(), "MICROSHOP_ADMIN_EMAIL="+adminEmail, "MICROSHOP_ADMIN_PASSWORD="+adminPassword)})
	if err != nil {
		return fmt.Errorf("starting the system (its data is in %s): %w", data, err)
	}
	say("the system is ready at %s (in %s)", sys.Gateway, sys.ReadyIn.Round(time.Millisecond))

	res, err := chaos.Run(ctx, chaos.Config{
		System:        sys,
		Gateway:       sys.Gateway,
		AdminEmail:    adminEmail,
		AdminPassword: adminPassword,
		MailboxFile:   filepath.Join(data, "mailbox.jsonl"),
		Seed:          *seed,
		Duration:      *duration,
		Shoppers:      *shoppers,
		Targets:       only,
		SettleTimeout: *settle,
		MinGap:        minGap,
		MaxGap:        maxGap,
		MinDown:       minDown,
		MaxDown:       maxDown,
		ProgressEvery: *every,
		Progress: func(p chaos.Progress) {
			down := ""
			if p.Down != "" {
				down = "; down: " + p.Down
			}
			say("%6s  %s: %d requests, %d checkouts placed (%d confirmed), %d faults, %d failed attempts%s",
				p.Elapsed, p.Phase, p.Requests, p.Placed, p.Confirmed, p.Faults, p.Errors, down)
		},
		Logf: func(format string, args ...any) { say("        "+format, args...) },
	})
	stopErr := sys.Stop(30 * time.Second)
	if stopErr != nil {
		sys.Close()
	}
	if err != nil {
		return fmt.Errorf("chaos run with seed %d: %w (the system's data and logs are in %s)", *seed, err, data)
	}
	fmt.Fprintln(stdout)
	res.WriteFaults(stdout)
	fmt.Fprintln(stdout)
	res.WriteTable(stdout)
	if !res.OK() {
		return fmt.Errorf("%d violations with seed %d; the system's data and logs are in %s", len(res.Violations), *seed, data)
	}
	if stopErr != nil {
		return fmt.Errorf("the system did not stop cleanly: %w (its data and logs are in %s)", stopErr, data)
	}
	if *keep {
		fmt.Fprintf(stdout, "\nthe data directory is kept: %s\n", data)
		return nil
	}
	return os.RemoveAll(data)
}

// durationRange reads "MIN-MAX", such as "200ms-5s".
func durationRange(flag, s string) (lo, hi time.Duration, err error) {
	a, b, ok := strings.Cut(s, "-")
	if ok {
		lo, err = time.ParseDuration(strings.TrimSpace(a))
		if err == nil {
			hi, err = time.ParseDuration(strings.TrimSpace(b))
		}
	}
	if !ok || err != nil || lo <= 0 || hi < lo {
		return 0, 0, fmt.Errorf("%s %q: want a range MIN-MAX of positive durations, such as 200ms-5s", flag, s)
	}
	return lo, hi, nil
}

// chaosSetup is what both kinds of chaos run need before they start a
// system: this binary to run the services with, a fresh data directory
// (named with prefix), an admin account of its own, and a say that
// writes a line of progress at a time, since progress and fault lines
// come from several goroutines.
func chaosSetup(prefix string, stdout io.Writer) (exe, data, adminEmail, adminPassword string, say func(string, ...any), err error) {
	if exe, err = os.Executable(); err != nil {
		return "", "", "", "", nil, fmt.Errorf("finding this binary to run the system: %w", err)
	}
	if data, err = os.MkdirTemp("", prefix); err != nil {
		return "", "", "", "", nil, err
	}
	pw := make([]byte, 15)
	if _, err := rand.Read(pw); err != nil {
		return "", "", "", "", nil, err
	}
	var mu sync.Mutex
	say = func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stdout, format+"\n", args...)
	}
	return exe, data, "chaos-admin@microshop.local", base64.RawURLEncoding.EncodeToString(pw), say, nil
}
