package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/reports/reportsapi"
)

const reportsUsage = `Usage: microshop reports <command> [flags]

Works with the reports service of a running system, through its gateway,
as an admin.

Commands:
  rebuild   wipe the reports read model and replay every event stream

Run "microshop reports <command> --help" for a command's flags.
`

const rebuildUsage = `Usage: microshop reports rebuild [flags]

Wipes the reports read model and replays every event of the orders,
payments and inventory streams from the first, as an admin through the
gateway. Shows the progress (events replayed of the streams' total) until
the rebuild ends, then prints the summary it arrived at. If a rebuild is
already running, follows that one.

The admin's email and password come from --email and --password, or from
MICROSHOP_ADMIN_EMAIL and MICROSHOP_ADMIN_PASSWORD.

Flags:
`

func reportsCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, reportsUsage)
		return errUsage
	}
	switch args[0] {
	case "rebuild":
		return rebuildReports(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, reportsUsage)
		return nil
	default:
		fmt.Fprintf(stderr, "microshop reports: unknown command %q\n\n%s", args[0], reportsUsage)
		return errUsage
	}
}

func rebuildReports(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("microshop reports rebuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		url      = fs.String("url", "http://127.0.0.1:8080", "the gateway's base URL")
		email    = fs.String("email", "", "the admin's email (default $MICROSHOP_ADMIN_EMAIL)")
		password = fs.String("password", "", "the admin's password (default $MICROSHOP_ADMIN_PASSWORD)")
		timeout  = fs.Duration("timeout", time.Hour, "how long to follow the rebuild before giving up (it keeps running)")
		every    = fs.Duration("interval", 250*time.Millisecond, "how often to ask for progress")
	)
	fs.Usage = func() {
		fmt.Fprint(stderr, rebuildUsage)
		fs.PrintDefaults()
	}
	if helped, err := parseFlags(fs, args); helped || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "microshop reports rebuild: unexpected arguments %q\n", fs.Args())
		return errUsage
	}
	if *email == "" {
		*email = getenv("MICROSHOP_ADMIN_EMAIL")
	}
	if *password == "" {
		*password = getenv("MICROSHOP_ADMIN_PASSWORD")
	}
	if *email == "" || *password == "" {
		return errors.New("reports rebuild needs an admin: give --email and --password, or set MICROSHOP_ADMIN_EMAIL and MICROSHOP_ADMIN_PASSWORD")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	shop, err := shopclient.New(*url, shopclient.Options{Timeout: 30 * time.Second, UserAgent: "microshop-reports"})
	if err != nil {
		return err
	}
	// The session logs in again when its token expires: a long rebuild
	// outlives one.
	admin, err := shop.Login(ctx, *email, *password)
	if err != nil {
		return fmt.Errorf("logging in as %s at %s: %w", *email, shop.URL(), err)
	}

	var rb reportsapi.Rebuild
	_, err = admin.Do(ctx, shopclient.Request{Method: http.MethodPost, Path: "/api/reports/rebuild"}, &rb)
	switch {
	case shopclient.StatusOf(err) == http.StatusConflict:
		// One is running already: follow it.
		if err := admin.Get(ctx, "/api/reports/rebuild", &rb); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "A rebuild is already running (%s); following it.\n", rb.ID)
	case err != nil:
		return fmt.Errorf("starting the rebuild: %w", err)
	default:
		fmt.Fprintf(stdout, "Rebuild %s started: replaying the event streams.\n", rb.ID)
	}
	id := rb.ID
	term := isTerminal(stdout)
	lastLine := time.Time{}
	for rb.ID == id && rb.State == reportsapi.RebuildRunning {
		if term {
			fmt.Fprint(stdout, "\r\x1b[K"+progressLine(rb))
		} else if time.Since(lastLine) >= time.Second {
			fmt.Fprintln(stdout, progressLine(rb))
			lastLine = time.Now()
		}
		select {
		case <-ctx.Done():
			if term {
				fmt.Fprintln(stdout)
			}
			return fmt.Errorf("stopped following rebuild %s (it keeps running; see GET /api/reports/rebuild): %w", id, ctx.Err())
		case <-time.After(*every):
		}
		if err := admin.Get(ctx, "/api/reports/rebuild", &rb); err != nil {
			if term {
				fmt.Fprintln(stdout)
			}
			return fmt.Errorf("following the rebuild: %w", err)
		}
	}
	if term {
		fmt.Fprint(stdout, "\r\x1b[K")
	}
	fmt.Fprintln(stdout, progressLine(rb))
	if rb.ID != id {
		return fmt.Errorf("rebuild %s was replaced by rebuild %s before it ended", id, rb.ID)
	}
	if rb.State != reportsapi.RebuildDone {
		return fmt.Errorf("rebuild %s %s: %s", id, rb.State, rb.Error)
	}
	sum, err := admin.Summary(ctx, "")
	if err != nil {
		return fmt.Errorf("reading the summary: %w", err)
	}
	fmt.Fprintln(stdout)
	writeSummary(stdout, sum)
	return nil
}

// progressLine says how far a rebuild is.
func progressLine(rb reportsapi.Rebuild) string {
	line := fmt.Sprintf("rebuild %s: %s", rb.ID, rb.State)
	switch {
	case rb.Total > 0:
		line += fmt.Sprintf(", %d/%d events (%.1f%%)", rb.Applied, rb.Total, 100*float64(rb.Applied)/float64(rb.Total))
	case rb.State == reportsapi.RebuildRunning:
		line += ", wiping the model and reading the streams"
	default:
		line += ", the streams held no events"
	}
	if rb.StartedAt != nil {
		end := time.Now()
		if rb.FinishedAt != nil {
			end = *rb.FinishedAt
		}
		line += fmt.Sprintf(" in %s", end.Sub(*rb.StartedAt).Round(10*time.Millisecond))
	}
	return line
}

func writeSummary(w io.Writer, s reportsapi.Summary) {
	money := func(cents int64) string {
		sign := ""
		if cents < 0 {
			sign, cents = "-", -cents
		}
		return fmt.Sprintf("%s%d.%02d %s", sign, cents/100, cents%100, s.Currency)
	}
	for _, row := range []struct{ name, value string }{
		{"orders confirmed", fmt.Sprint(s.OrdersConfirmed)},
		{"orders rejected", fmt.Sprint(s.OrdersRejected)},
		{"orders cancelled", fmt.Sprint(s.OrdersCancelled)},
		{"revenue", money(s.RevenueCents)},
		{"refunds", money(s.RefundsCents)},
		{"net", money(s.NetCents)},
		{"captured", money(s.CapturedCents)},
		{"payments failed", fmt.Sprint(s.PaymentsFailed)},
		{"reservations expired", fmt.Sprint(s.ReservationsExpired)},
		{"low-stock alerts", fmt.Sprint(s.LowStockAlerts)},
		{"events applied", fmt.Sprint(s.EventsApplied)},
		{"events dead-lettered", fmt.Sprint(s.EventsDeadLettered)},
	} {
		fmt.Fprintf(w, "  %-22s %16s\n", row.name, row.value)
	}
}
