// Command benchrun measures microshop on this machine and writes the
// figures to bench/results/<date>-<host id>.md. bench/run builds the
// binaries and runs it; see bench/run --help.
//
// In one run it measures:
//
//   - the ceiling: a minimal Go HTTP server answering 50 bytes, and a
//     two-hop chain (server A calls server B over loopback and answers),
//     with benchrun's own load generator;
//   - `microshop run` in microservices mode and in --mode monolith, each
//     for browse (the product list through the gateway, with the same load
//     generator as the ceiling; and the browse scenario of microshop load)
//     and for checkout (microshop load's checkout scenario): the
//     throughput at saturation (closed loop), then p50/p99 in open loop at
//     half of that rate; the RSS of every process idle and under load; the
//     CPU seconds per confirmed checkout (utime+stime of every process,
//     before and after, divided by the confirmed checkouts); and the
//     consumers' lag at the end, waited on until it drains.
//   - the postgres mode: microservices mode again with every service's
//     database on the machine's PostgreSQL (--postgres; fresh databases,
//     dropped after), the same phases, plus the server's side: commits a
//     second with no traffic, backends, commits and the backends' CPU per
//     confirmed checkout (postgres.go).
//
// Every target is on the loopback, every loop and wait is bounded.
//
// It needs Linux: each process's memory and CPU time come from /proc.
// The microshop binary itself runs on macOS and Windows too.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	path, err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stdout, path)
}

// settings are one run's sizes and durations.
type settings struct {
	Quick           bool
	CeilingWorkers  int
	BrowseWorkers   int
	CheckoutWorkers int
	Warmup          time.Duration
	Saturate        time.Duration // each closed-loop phase
	CheckoutPhase   time.Duration // the checkout closed loop
	Open            time.Duration // each open-loop phase
	Idle            time.Duration // settling before the idle RSS and CPU
	Users           int
	LagWait         time.Duration
	MaxLoad         float64
	LoadWait        time.Duration
	Phases          map[string]bool
	Profile         string
	Postgres        string        // the server of the postgres mode
	PGIdle          time.Duration // the window that counts the postgres mode's idle commits
}

func (s settings) complete() bool {
	return s.Phases["ceiling"] && s.Phases["browse"] && s.Phases["checkout"]
}

func fullSettings() settings {
	return settings{CeilingWorkers: 48, BrowseWorkers: 48, CheckoutWorkers: 32,
		Warmup: 3 * time.Second, Saturate: 20 * time.Second, CheckoutPhase: 30 * time.Second, Open: 20 * time.Second,
		Idle: 5 * time.Second, PGIdle: 30 * time.Second, Users: 40, LagWait: 2 * time.Minute, LoadWait: 10 * time.Minute}
}

func quickSettings() settings {
	return settings{Quick: true, CeilingWorkers: 16, BrowseWorkers: 16, CheckoutWorkers: 8,
		Warmup: 500 * time.Millisecond, Saturate: 2 * time.Second, CheckoutPhase: 3 * time.Second, Open: 2 * time.Second,
		Idle: time.Second, PGIdle: 2 * time.Second, Users: 4, LagWait: 30 * time.Second, LoadWait: 0}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (string, error) {
	fs := flag.NewFlagSet("benchrun", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		bin     = fs.String("bin", "", "the microshop binary to measure (required)")
		ceiling = fs.String("ceiling", "", "the ceiling server binary (bench/cmd/ceiling; required)")
		outDir  = fs.String("out", "", "directory of the results file (default bench/results; with --quick a temporary directory)")
		quick   = fs.Bool("quick", false, "a few seconds per phase, small concurrency: for CI, checks that everything runs, not the numbers")
		modes   = fs.String("modes", "microservices,monolith,postgres", "which modes of microshop run to measure; postgres is microservices mode with every database on --postgres (skipped when that server does not answer)")
		pgURL   = fs.String("postgres", envOr("MICROSHOP_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"),
			"the PostgreSQL server of the postgres mode: each run makes its own databases there and drops them after ($MICROSHOP_BENCH_POSTGRES)")
		pgIdle   = fs.Duration("postgres-idle", 0, "how long the postgres mode counts commits with no traffic (default 30s, --quick 2s)")
		maxLoad  = fs.Float64("max-load", 0, "wait until the 1-minute load average is below this before measuring (default: the number of cores)")
		loadWait = fs.Duration("load-wait", -1, "how long to wait at most for the load average (default 10m, --quick 0)")
		work     = fs.String("work", "", "directory for the systems' data (default: a temporary directory)")
		goVer    = fs.String("go-version", "", "the Go toolchain that built the binaries (bench/run passes `go version`)")
		phases   = fs.String("phases", "ceiling,browse,checkout", "which phases to run; a results file is complete only with all three")
		profile  = fs.String("profile", "", "start the systems with MICROSHOP_PPROF=true and save each service's CPU profile of the checkout closed loop in this directory")
		seconds  = fs.Duration("checkout-duration", 0, "length of the checkout closed loop (default 30s, --quick 3s)")
	)
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if *bin == "" || *ceiling == "" {
		return "", fmt.Errorf("--bin and --ceiling are required (bench/run passes them)")
	}
	if runtime.GOOS != "linux" {
		return "", fmt.Errorf("benchrun needs Linux: it reads each process's memory and CPU time from /proc, which %s does not have", runtime.GOOS)
	}
	set := fullSettings()
	if *quick {
		set = quickSettings()
	}
	set.Phases = map[string]bool{}
	for _, p := range splitList(*phases) {
		set.Phases[p] = true
	}
	set.Profile = *profile
	set.Postgres = *pgURL
	if *pgIdle > 0 {
		set.PGIdle = *pgIdle
	}
	if *seconds > 0 {
		set.CheckoutPhase = *seconds
	}
	if *loadWait >= 0 {
		set.LoadWait = *loadWait
	}
	m := describeMachine(*goVer)
	set.MaxLoad = *maxLoad
	if set.MaxLoad <= 0 {
		set.MaxLoad = float64(m.Cores)
	}
	if *outDir == "" {
		if *quick {
			d, err := os.MkdirTemp("", "microshop-bench-quick-")
			if err != nil {
				return "", err
			}
			*outDir = d
		} else {
			*outDir = filepath.Join("bench", "results")
		}
	}
	workDir := *work
	if workDir == "" {
		d, err := os.MkdirTemp("", "microshop-bench-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(d)
		workDir = d
	}
	say := func(format string, a ...any) { fmt.Fprintf(stderr, "benchrun: "+format+"\n", a...) }

	res := &results{Settings: set, Machine: m, Started: time.Now()}
	res.Machine.LoadBefore = loadAverage()
	// A shared machine: wait (bounded) for other work to calm down.
	if la := res.Machine.LoadBefore[0]; la > set.MaxLoad && set.LoadWait > 0 {
		say("load average %.2f is above %.2f; waiting up to %s for it to drop", la, set.MaxLoad, set.LoadWait)
		start := time.Now()
		for time.Since(start) < set.LoadWait && loadAverage()[0] > set.MaxLoad && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
		}
		res.Machine.LoadWaited = time.Since(start)
	}
	res.Machine.LoadAtStart = loadAverage()
	if ctx.Err() != nil {
		return "", ctx.Err()
	}

	if set.Phases["ceiling"] {
		say("ceiling: one hop, then two")
		c, err := measureCeiling(ctx, *ceiling, set, say)
		if err != nil {
			return "", fmt.Errorf("ceiling: %w", err)
		}
		res.Ceiling = c
	}

	for _, mode := range splitList(*modes) {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		mr := &modeResult{Mode: mode}
		res.Modes = append(res.Modes, mr)
		if mode == "monolith" && !monolithSupported(*bin) {
			mr.Skipped = "this build of microshop has no `run --mode monolith` yet; the monolith rows are empty and its targets not judged"
			say("monolith: skipped (%s)", mr.Skipped)
			continue
		}
		say("%s: starting microshop run", mode)
		if err := measureMode(ctx, *bin, workDir, set, mr, say); err != nil {
			mr.Failed = err.Error()
			say("%s: %v", mode, err)
		}
		if mr.Skipped != "" {
			say("%s: skipped (%s)", mode, mr.Skipped)
		}
		for _, l := range memoryVerdicts(mr) {
			say("%s memory: %s", mode, l)
		}
	}
	res.Machine.LoadAfter = loadAverage()
	res.Finished = time.Now()

	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return "", err
	}
	name := res.Started.Format("2006-01-02") + "-" + m.HostID
	if set.Quick {
		name += "-quick"
	}
	path := filepath.Join(*outDir, name+".md")
	doc := render(res)
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		return "", err
	}
	if problems := checkResults(doc); len(problems) > 0 && set.complete() {
		return path, fmt.Errorf("the results file %s is malformed: %v", path, problems)
	}
	for _, mr := range res.Modes {
		if mr.Failed != "" {
			return path, fmt.Errorf("%s mode failed: %s", mr.Mode, mr.Failed)
		}
	}
	return path, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
