package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/microshop/microshop/internal/invariants"
	"github.com/microshop/microshop/internal/mailbox"
	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/reports/reportsapi"
)

// check lets the system settle after the faults and checks everything
// it promises, recording each broken promise as a violation.
func (e *engine) check(ctx context.Context, admin *shopclient.Session) error {
	res := e.res
	e.phase("settling: waiting until every order is final")
	chk := &invariants.Checker{Admin: admin}
	l := e.load
	exp := invariants.Expect{Received: l.received, Accepted: l.run.Accepted(), Keys: l.run.Keys()}
	var rep invariants.Report
	err := retry(ctx, 30*time.Second, func() error {
		var err error
		rep, err = chk.Settle(ctx, e.cfg.SettleTimeout, exp)
		return err
	})
	if err != nil {
		return fmt.Errorf("checking the invariants: %w", err)
	}
	for _, v := range rep.Violations {
		res.violate("invariant: %s", v)
	}
	res.InvariantViolations = len(rep.Violations)
	var all []ordersapi.Order
	if err := retry(ctx, 30*time.Second, func() error {
		var err error
		all, err = chk.Orders(ctx)
		return err
	}); err != nil {
		return fmt.Errorf("listing the orders: %w", err)
	}
	for _, o := range all {
		switch o.Status {
		case ordersapi.StatusConfirmed:
			res.Confirmed++
		case ordersapi.StatusRejected:
			res.Rejected++
			res.RejectReasons[o.Reason]++
		case ordersapi.StatusCancelled:
			res.Cancelled++
		case ordersapi.StatusPending:
			res.Pending++
		}
	}
	res.Orders = len(all)

	e.phase("settling: waiting for the outboxes and the consumers' lag to drain")
	e.waitDrained(ctx, admin)

	e.phase("checking the mailbox")
	if err := e.checkMail(ctx, admin, all); err != nil {
		return err
	}
	if res.ReportsRunning {
		e.phase("checking reports")
		e.checkReports(ctx, admin, all)
	}

	e.metrics.scrapeAll(ctx)
	res.Consumed = e.metrics.consumed()
	for svc, outcomes := range res.Consumed {
		if n := outcomes["dead_letter"]; n > 0 {
			res.violate("%s dead-lettered %.0f events", svc, n)
		}
	}
	return nil
}

// retry calls f until it succeeds or d passes.
func retry(ctx context.Context, d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		sleepUntil(ctx, time.Now().Add(time.Second))
	}
}

// waitDrained waits until no outbox holds an event and no consumer has
// lag or unacknowledged events, twice in a row a second apart.
func (e *engine) waitDrained(ctx context.Context, admin *shopclient.Session) {
	deadline := time.Now().Add(e.cfg.SettleTimeout)
	calm := 0
	var left []string
	for {
		left = e.undrained(ctx, admin)
		if len(left) == 0 {
			calm++
		} else {
			calm = 0
		}
		if calm == 2 {
			return
		}
		if time.Now().After(deadline) || !sleepUntil(ctx, time.Now().Add(time.Second)) {
			break
		}
	}
	for _, what := range left {
		e.res.violate("events still waiting %s after the system settled: %s", e.cfg.SettleTimeout, what)
	}
}

// undrained lists the outboxes and consumers with events waiting.
func (e *engine) undrained(ctx context.Context, admin *shopclient.Session) []string {
	var left []string
	for svc, n := range e.metrics.scrapeAll(ctx) {
		switch {
		case n < 0:
			left = append(left, fmt.Sprintf("%s's metrics could not be read", svc))
		case n > 0:
			left = append(left, fmt.Sprintf("%s's outbox holds %.0f", svc, n))
		}
	}
	read := admin.Streams
	if e.cfg.Streams != nil {
		read = e.cfg.Streams
	}
	streams, err := read(ctx)
	if err != nil {
		return append(left, "the streams could not be read: "+err.Error())
	}
	for _, s := range streams {
		for _, c := range s.Consumers {
			if c.Lag > 0 || c.AckPending > 0 {
				left = append(left, fmt.Sprintf("consumer %s of %s: lag %d, unacknowledged %d", c.Name, s.Name, c.Lag, c.AckPending))
			}
		}
	}
	return left
}

// The subjects of the emails notifications sends
// (services/notifications/templates).
func rejectedSubject(order string) string {
	return "We could not complete your microshop order " + order
}
func refundSubject(order string) string {
	return "Your microshop order " + order + " was cancelled and refunded"
}
func welcomeSubject(name string) string { return "Welcome to microshop, " + name }

// mailExpectation is one email that must arrive exactly once.
type mailExpectation struct {
	what    string // for the violation, e.g. "receipt of order X"
	subject string
	to      string // "" when any recipient will do
}

// checkMail waits until every expected email has arrived, lets a little
// more time pass so that anything doubled lands too, and then requires
// each exactly once, no email for an order that should have none, and no
// Message-ID twice.
func (e *engine) checkMail(ctx context.Context, admin *shopclient.Session, all []ordersapi.Order) error {
	res := e.res
	l := e.load
	var want []mailExpectation
	never := map[string]string{} // subject -> why it must not arrive
	for _, o := range all {
		owner := l.owner[o.ID]
		switch o.Status {
		case ordersapi.StatusConfirmed, ordersapi.StatusCancelled:
			want = append(want, mailExpectation{"the receipt of order " + o.ID, shopclient.ReceiptSubject(o.ID), owner})
			never[rejectedSubject(o.ID)] = "order " + o.ID + " was confirmed, yet a rejection notice arrived"
			if o.Status == ordersapi.StatusCancelled {
				want = append(want, mailExpectation{"the refund notice of order " + o.ID, refundSubject(o.ID), owner})
			}
		case ordersapi.StatusRejected:
			want = append(want, mailExpectation{"the rejection notice of order " + o.ID, rejectedSubject(o.ID), owner})
			never[shopclient.ReceiptSubject(o.ID)] = "order " + o.ID + " was rejected, yet a receipt arrived"
		}
	}
	for email, name := range l.registered {
		want = append(want, mailExpectation{"the welcome of " + email, welcomeSubject(name), email})
	}

	deadline := time.Now().Add(e.cfg.SettleTimeout)
	var box []mailbox.Message
	for {
		var err error
		box, err = e.readMailbox(ctx, admin)
		if err != nil {
			return fmt.Errorf("reading the mailbox: %w", err)
		}
		if len(missing(box, want)) == 0 || time.Now().After(deadline) {
			break
		}
		if !sleepUntil(ctx, time.Now().Add(time.Second)) {
			return ctx.Err()
		}
	}
	// Anything sent twice would have landed by now.
	sleepUntil(ctx, time.Now().Add(e.mailGrace))
	box, err := e.readMailbox(ctx, admin)
	if err != nil {
		return fmt.Errorf("reading the mailbox: %w", err)
	}

	bySubject := map[string][]mailbox.Message{}
	byMessageID := map[string][]mailbox.Message{}
	for _, m := range box {
		bySubject[m.Subject] = append(bySubject[m.Subject], m)
		if m.MessageID != "" {
			byMessageID[m.MessageID] = append(byMessageID[m.MessageID], m)
		}
		if _, ok := shopclient.ReceiptOf(m); ok {
			res.Receipts++
		}
	}
	res.Emails = len(box)
	// A copy sent again because notifications was killed after the mail
	// server took it and before it recorded so is the one window
	// docs/notifications.md documents: the same Message-ID, which
	// receivers use to drop it. Any other copy is a violation.
	inWindow := map[string]bool{}
	kills := e.res.killsOf("notifications")
	for _, id := range slices.Sorted(maps.Keys(byMessageID)) {
		copies := byMessageID[id]
		if len(copies) < 2 {
			continue
		}
		if k, ok := crashWindow(copies, kills); ok {
			inWindow[id] = true
			res.CrashWindowCopies += len(copies) - 1
			res.note("mail: Message-ID %s arrived %d times, the first at %s, %s before notifications was killed: "+
				"the documented window between sending and recording (same Message-ID, dropped by receivers)",
				id, len(copies), copies[0].ReceivedAt.Format("15:04:05.000"), k.Sub(copies[0].ReceivedAt).Round(time.Millisecond))
			continue
		}
		res.violate("mail: Message-ID %s arrived %d times (at %s) with no kill of notifications in between to explain it",
			id, len(copies), receivedTimes(copies))
	}
	for _, w := range want {
		got := bySubject[w.subject]
		switch {
		case len(got) == 0:
			res.violate("mail: %s never arrived", w.what)
		case len(got) > 1 && !(sameMessageID(got) && inWindow[got[0].MessageID]):
			res.violate("mail: %s arrived %d times (Message-IDs %s, at %s)", w.what, len(got), messageIDsOf(got), receivedTimes(got))
		case w.to != "" && !strings.Contains(strings.ToLower(strings.Join(got[0].To, ",")), strings.ToLower(w.to)):
			res.violate("mail: %s went to %v, not %s", w.what, got[0].To, w.to)
		}
	}
	for subject, why := range never {
		if len(bySubject[subject]) > 0 {
			res.violate("mail: %s", why)
		}
	}
	return nil
}

// crashWindow reports whether every repeated copy of one message follows
// a kill of notifications that came within crashWindowSpan after the
// copy before it, and returns the first such kill.
func crashWindow(copies []mailbox.Message, kills []time.Time) (time.Time, bool) {
	copies = slices.Clone(copies)
	slices.SortFunc(copies, func(a, b mailbox.Message) int { return a.ReceivedAt.Compare(b.ReceivedAt) })
	var first time.Time
	for i := 1; i < len(copies); i++ {
		prev, next := copies[i-1].ReceivedAt, copies[i].ReceivedAt
		found := false
		for _, k := range kills {
			if !k.Before(prev) && k.Sub(prev) <= crashWindowSpan && k.Before(next) {
				found = true
				if first.IsZero() {
					first = k
				}
				break
			}
		}
		if !found {
			return time.Time{}, false
		}
	}
	return first, true
}

// crashWindowSpan bounds the time from the mail server taking a message
// to notifications recording it as sent: the QUIT, a log line, and the
// wait for SQLite's one writer.
const crashWindowSpan = 2 * time.Second

func sameMessageID(msgs []mailbox.Message) bool {
	for _, m := range msgs {
		if m.MessageID != msgs[0].MessageID {
			return false
		}
	}
	return true
}

func receivedTimes(msgs []mailbox.Message) string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.ReceivedAt.Format("15:04:05.000"))
	}
	return strings.Join(out, ", ")
}

func missing(box []mailbox.Message, want []mailExpectation) []mailExpectation {
	have := map[string]bool{}
	for _, m := range box {
		have[m.Subject] = true
	}
	var out []mailExpectation
	for _, w := range want {
		if !have[w.subject] {
			out = append(out, w)
		}
	}
	return out
}

func messageIDsOf(msgs []mailbox.Message) string {
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.MessageID)
	}
	return strings.Join(ids, ", ")
}

// readMailbox returns every message the built-in mailbox received: from
// its file when the config names it (it holds them all), else through the
// gateway (the last 1000).
func (e *engine) readMailbox(ctx context.Context, admin *shopclient.Session) ([]mailbox.Message, error) {
	if e.cfg.MailboxFile != "" {
		b, err := os.ReadFile(e.cfg.MailboxFile)
		if err != nil {
			return nil, err
		}
		var out []mailbox.Message
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		for sc.Scan() {
			var m mailbox.Message
			if json.Unmarshal(sc.Bytes(), &m) == nil { // a line being written is skipped
				out = append(out, m)
			}
		}
		return out, sc.Err()
	}
	box, err := admin.Mailbox(ctx, shopclient.MailFilter{Limit: 1000})
	if err != nil {
		return nil, err
	}
	if len(box) == 1000 {
		e.res.MailboxPartial = true
	}
	return box, nil
}

// checkReports waits until reports' summary agrees with the orders, and
// records each figure that still differs after the settle timeout.
func (e *engine) checkReports(ctx context.Context, admin *shopclient.Session, all []ordersapi.Order) {
	var want reportsapi.Summary
	for _, o := range all {
		switch o.Status {
		case ordersapi.StatusConfirmed:
			want.OrdersConfirmed++
			want.RevenueCents += o.TotalCents
			want.NetCents += o.TotalCents
		case ordersapi.StatusCancelled:
			want.OrdersCancelled++
			want.RevenueCents += o.TotalCents
			want.RefundsCents += o.TotalCents
		case ordersapi.StatusRejected:
			want.OrdersRejected++
		}
	}
	want.CapturedCents = want.RevenueCents
	deadline := time.Now().Add(e.cfg.SettleTimeout)
	var diffs []string
	for {
		got, err := admin.Summary(ctx, "")
		if err == nil {
			e.res.Reports = &got
			diffs = summaryDiffs(got, want)
		} else {
			diffs = []string{"the summary could not be read: " + err.Error()}
		}
		if len(diffs) == 0 || time.Now().After(deadline) || !sleepUntil(ctx, time.Now().Add(time.Second)) {
			break
		}
	}
	e.res.ReportsWant = &want
	for _, d := range diffs {
		e.res.violate("reports: %s", d)
	}
}

func summaryDiffs(got, want reportsapi.Summary) []string {
	var out []string
	cmp := func(name string, g, w int64) {
		if g != w {
			out = append(out, fmt.Sprintf("%s is %d, the orders say %d", name, g, w))
		}
	}
	cmp("orders_confirmed", got.OrdersConfirmed, want.OrdersConfirmed)
	cmp("orders_rejected", got.OrdersRejected, want.OrdersRejected)
	cmp("orders_cancelled", got.OrdersCancelled, want.OrdersCancelled)
	cmp("revenue_cents", got.RevenueCents, want.RevenueCents)
	cmp("refunds_cents", got.RefundsCents, want.RefundsCents)
	cmp("net_cents", got.NetCents, want.NetCents)
	cmp("captured_cents", got.CapturedCents, want.CapturedCents)
	if got.EventsDeadLettered != 0 {
		out = append(out, fmt.Sprintf("%d events were dead-lettered", got.EventsDeadLettered))
	}
	if got.Rebuilding {
		out = append(out, "a rebuild is still running")
	}
	return out
}

// scraper reads every service's /metrics while the faults run, so the
// figures of a process that is killed later are kept: counters start
// again at zero in the new process.
type scraper struct {
	sys System

	mu sync.Mutex
	// last holds each process's latest figures by process name and pid.
	last map[processKey]figures
}

type processKey struct {
	name string
	pid  int
}

type figures struct {
	consumed map[string]float64 // outcome -> events
	backlog  float64
	hasOut   bool
}

func newScraper(sys System) *scraper {
	return &scraper{sys: sys, last: map[processKey]figures{}}
}

func (s *scraper) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.scrapeAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

var (
	metricLine = regexp.MustCompile(`^(\w+)(?:\{([^}]*)\})? (\S+)$`)
	labelPair  = regexp.MustCompile(`(\w+)="([^"]*)"`)
)

func (s *scraper) scrape(ctx context.Context, name, base string) (figures, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return figures{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := s.sys.ServiceClient(name).Do(req.WithContext(ctx))
	if err != nil {
		return figures{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return figures{}, fmt.Errorf("GET %s/metrics: %d", base, resp.StatusCode)
	}
	f := figures{consumed: map[string]float64{}}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		m := metricLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			continue
		}
		switch m[1] {
		case "events_consumed_total":
			for _, lp := range labelPair.FindAllStringSubmatch(m[2], -1) {
				if lp[1] == "outcome" {
					f.consumed[lp[2]] += v
				}
			}
		case "outbox_backlog":
			f.backlog += v
			f.hasOut = true
		}
	}
	return f, sc.Err()
}

// consumed sums, per service, the events its consumers received by
// outcome over every process it ran as.
func (s *scraper) consumed() map[string]map[string]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]map[string]float64{}
	for k, f := range s.last {
		for outcome, n := range f.consumed {
			if out[k.name] == nil {
				out[k.name] = map[string]float64{}
			}
			out[k.name][outcome] += n
		}
	}
	return out
}

// scrapeAll reads every running service's metrics once and keeps them.
// It returns each service's outbox backlog now, -1 for a service with a
// process that did not answer.
func (s *scraper) scrapeAll(ctx context.Context) map[string]float64 {
	out := map[string]float64{}
	procs, err := s.sys.Processes()
	if err != nil {
		return out
	}
	for _, p := range procs {
		if !p.Running || !strings.HasPrefix(p.URL, "http") {
			continue
		}
		f, err := s.scrape(ctx, p.Name, p.URL)
		if err != nil {
			out[p.Name] = -1
			continue
		}
		s.mu.Lock()
		s.last[processKey{p.Name, p.PID}] = f
		s.mu.Unlock()
		if f.hasOut {
			out[p.Name] += f.backlog
		}
	}
	return out
}
