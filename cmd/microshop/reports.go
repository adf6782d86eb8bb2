package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/services/reports/reportsapi"
	"github.com/microshop/microshop/services/users/usersapi"
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
	c := &adminClient{base: strings.TrimRight(*url, "/"), email: *email, password: *password,
		http: &http.Client{Timeout: 30 * time.Second}}
	if err := c.login(ctx); err != nil {
		return err
	}

	var rb reportsapi.Rebuild
	status, err := c.do(ctx, http.MethodPost, "/api/reports/rebuild", &rb)
	switch {
	case status == http.StatusConflict:
		// One is running already: follow it.
		if _, err := c.do(ctx, http.MethodGet, "/api/reports/rebuild", &rb); err != nil {
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
		if _, err := c.do(ctx, http.MethodGet, "/api/reports/rebuild", &rb); err != nil {
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
	var sum reportsapi.Summary
	if _, err := c.do(ctx, http.MethodGet, "/api/reports/summary", &sum); err != nil {
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

// adminClient calls the gateway as an admin, logging in again when the
// access token expires (a long rebuild outlives one).
type adminClient struct {
	base, email, password string
	token                 string
	http                  *http.Client
}

func (c *adminClient) login(ctx context.Context) error {
	body, _ := json.Marshal(map[string]string{"email": c.email, "password": c.password})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/api/users/login", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	var tok usersapi.Tokens
	if _, err := c.send(req, &tok); err != nil {
		return fmt.Errorf("logging in as %s at %s: %w", c.email, c.base, err)
	}
	c.token = tok.AccessToken
	return nil
}

// do sends a request without a body and decodes a 2xx answer into out.
// It returns the status with any error.
func (c *adminClient) do(ctx context.Context, method, path string, out any) (int, error) {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Accept", "application/json")
		status, err := c.send(req, out)
		if status == http.StatusUnauthorized && attempt == 0 {
			if err := c.login(ctx); err != nil {
				return status, err
			}
			continue
		}
		return status, err
	}
}

func (c *adminClient) send(req *http.Request, out any) (int, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		var p problem.Problem
		if json.Unmarshal(b, &p) == nil && p.Title != "" {
			return resp.StatusCode, &p
		}
		return resp.StatusCode, fmt.Errorf("%s %s answered %s", req.Method, req.URL.Path, resp.Status)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return resp.StatusCode, fmt.Errorf("decoding the answer of %s %s: %w", req.Method, req.URL.Path, err)
	}
	return resp.StatusCode, nil
}
