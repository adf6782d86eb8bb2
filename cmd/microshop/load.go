package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/microshop/microshop/internal/loadgen"
)

const loadUsage = `Usage: microshop load --duration D (--rate R | --concurrency C) --scenario S [flags]

Puts a measured load on a running microshop through its gateway, as
shoppers would, and prints per operation the count, the errors by kind,
the rate and the latency percentiles (HDR histograms).

  --rate R         open loop: R operations a second, each due at a fixed
                   interval whatever the answers; latency counts from when
                   an operation was due, so a stall cannot hide itself
  --concurrency C  closed loop: C shoppers, each sending its next operation
                   when the last one is answered

Scenarios:
  browse    list catalog pages, search, read products (no account)
  checkout  register and log in --users customers first (setup, not in the
            figures), then place orders: 95% with 4242 4242 4242 4242, which
            must end CONFIRMED, 5% with 4000 0000 0000 0002, which must end
            REJECTED (payment_declined); a 202 is polled until final
  mixed     mostly browsing, some logins, order history and checkouts

With MICROSHOP_ADMIN_EMAIL and MICROSHOP_ADMIN_PASSWORD set (or
--admin-email and the password variable), checkout and mixed first top up
every product's stock so that no checkout fails for want of it.

It only sends to --target, follows no redirect, and stops by itself after
--duration; Ctrl-C stops it early and prints what it measured. See
docs/load.md.

Flags:
`

func load(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("microshop load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		target      = fs.String("target", "http://127.0.0.1:8080", "the gateway's base URL")
		duration    = fs.Duration("duration", 30*time.Second, "how long to start operations for")
		rate        = fs.Float64("rate", 0, "open loop: operations a second")
		concurrency = fs.Int("concurrency", 0, "closed loop: shoppers each waiting for their last answer")
		scenario    = fs.String("scenario", "", "browse, checkout or mixed")
		users       = fs.Int("users", loadgen.DefaultUsers, "customers to register and log in for checkout and mixed")
		asJSON      = fs.Bool("json", false, "print the result as one JSON object (progress goes to stderr)")
		seed        = fs.Uint64("seed", 0, "seed of the choice of operations, products and cards (0: pick one and print it)")
		timeout     = fs.Duration("timeout", loadgen.DefaultTimeout, "bound of one operation, a checkout's polls included")
		maxInFlight = fs.Int("max-in-flight", loadgen.DefaultMaxInFlight, "open loop: bound of the operations in flight")
		adminEmail  = fs.String("admin-email", getenv("MICROSHOP_ADMIN_EMAIL"), "admin account that restocks before checkouts; the password comes from $MICROSHOP_ADMIN_PASSWORD ($MICROSHOP_ADMIN_EMAIL)")
	)
	fs.Usage = func() {
		fmt.Fprint(stderr, loadUsage)
		fs.PrintDefaults()
	}
	if helped, err := parseFlags(fs, args); helped || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "microshop load: unexpected arguments %q\n", fs.Args())
		return errUsage
	}
	if *scenario == "" {
		fmt.Fprintf(stderr, "microshop load: give a --scenario: %s\n", strings.Join(loadgen.Scenarios(), ", "))
		return errUsage
	}
	password := ""
	if *adminEmail != "" {
		password = getenv("MICROSHOP_ADMIN_PASSWORD")
		if password == "" {
			return errors.New("--admin-email needs the admin's password in $MICROSHOP_ADMIN_PASSWORD")
		}
	}

	// Progress goes where people look; with --json stdout holds the JSON
	// alone.
	progress := stdout
	if *asJSON {
		progress = stderr
	}
	term := isTerminal(progress)
	var mu sync.Mutex // Progress and the final lines never interleave
	cfg := loadgen.Config{
		Target: *target, Scenario: *scenario, Duration: *duration, Rate: *rate, Concurrency: *concurrency,
		Users: *users, Seed: *seed, Timeout: *timeout, MaxInFlight: *maxInFlight,
		AdminEmail: *adminEmail, AdminPassword: password,
		Started: func(s loadgen.Setup) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintln(progress, setupLine(s))
		},
		Progress: func(p loadgen.Progress) {
			mu.Lock()
			defer mu.Unlock()
			line := fmt.Sprintf("%6s  %8d requests  %8.1f/s  %6d errors  p99 %s",
				p.Elapsed.Round(time.Second), p.Operations, p.Rate, p.Errors, fmtMS(float64(p.P99)/1e6))
			if term {
				fmt.Fprint(progress, "\r\x1b[K"+line)
			} else {
				fmt.Fprintln(progress, line)
			}
		},
	}
	if err := cfg.Check(); err != nil {
		return err
	}
	fmt.Fprintf(progress, "microshop load: %s against %s for %s, %s; setting up...\n",
		*scenario, *target, *duration, loopDescription(*rate, *concurrency))
	res, err := loadgen.Run(ctx, cfg)
	mu.Lock()
	defer mu.Unlock()
	if term {
		fmt.Fprintln(progress) // end the updating line
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	writeReport(stdout, res)
	return nil
}

func loopDescription(rate float64, concurrency int) string {
	if concurrency > 0 {
		return fmt.Sprintf("closed loop at %d in flight", concurrency)
	}
	return fmt.Sprintf("open loop at %g/s", rate)
}

func setupLine(s loadgen.Setup) string {
	var parts []string
	parts = append(parts, fmt.Sprintf("%d products read", s.Products))
	if s.Restocked > 0 {
		parts = append(parts, fmt.Sprintf("%d restocked", s.Restocked))
	}
	if s.Customers > 0 {
		parts = append(parts, fmt.Sprintf("%d customers registered and logged in", s.Customers))
	}
	return fmt.Sprintf("setup: %s; %d requests in %.1fs, not in the figures. Load running...",
		strings.Join(parts, ", "), s.Requests, s.Seconds)
}

// isTerminal reports whether w is a terminal, where progress can update
// one line in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// writeReport prints res as a table, one row per operation.
func writeReport(w io.Writer, res *loadgen.Result) {
	p := res.Parameters
	fmt.Fprintf(w, "\n%s, %s, %s against %s (seed %d)\n", p.Scenario, loopDescription(p.Rate, p.Concurrency),
		time.Duration(res.ElapsedSeconds*float64(time.Second)).Round(time.Millisecond), p.Target, p.Seed)
	fmt.Fprintf(w, "latency from when each operation was due to its answer (a checkout: to its final state)\n\n")

	rows := [][]string{{"OPERATION", "COUNT", "ERRORS", "RATE/S", "P50", "P90", "P99", "P99.9", "MAX", "ERRORS BY KIND"}}
	for _, o := range append(slices.Clone(res.Operations), res.Totals) {
		l := o.LatencyMS
		rows = append(rows, []string{o.Name, fmt.Sprint(o.Count), fmt.Sprint(o.Errors), fmt.Sprintf("%.1f", o.RatePerSecond),
			fmtMS(l.P50), fmtMS(l.P90), fmtMS(l.P99), fmtMS(l.P999), fmtMS(l.Max), loadgen.Kinds(o.ErrorsByKind)})
	}
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for n, r := range rows {
		if n == len(rows)-1 {
			fmt.Fprintln(w)
		}
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-len([]rune(c)))
			switch {
			case i == 0:
				b.WriteString(c + pad)
			case i == len(r)-1:
				b.WriteString("  " + c)
			default:
				b.WriteString("  " + pad + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	fmt.Fprintf(w, "\n%d HTTP requests for %d operations (a checkout's polls are part of its operation)\n",
		res.Totals.HTTPRequests, res.Totals.Count)
	if res.ConfirmedCheckouts > 0 || slices.ContainsFunc(res.Operations, func(o loadgen.OpResult) bool { return o.Name == loadgen.OpCheckout }) {
		fmt.Fprintf(w, "confirmed checkouts: %d (%.1f/s)\n", res.ConfirmedCheckouts, res.ConfirmedCheckoutsPerSecond)
	}
	for _, n := range res.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}

// fmtMS prints a latency in milliseconds in a unit that suits it.
func fmtMS(ms float64) string {
	switch {
	case ms == 0:
		return "-"
	case ms < 1:
		return fmt.Sprintf("%.0fµs", ms*1000)
	case ms < 10:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.1fms", ms)
	default:
		return fmt.Sprintf("%.2fs", ms/1000)
	}
}
