package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/internal/mailbox"
	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/reports/reportsapi"
)

// fakeSystem records kills and starts instead of doing them.
type fakeSystem struct {
	mu      sync.Mutex
	procs   []localrun.Process
	calls   []string
	noStart string // a process that refuses to start
}

func newFake(names ...string) *fakeSystem {
	f := &fakeSystem{}
	for i, n := range names {
		f.procs = append(f.procs, localrun.Process{Name: n, PID: 100 + i, URL: "http://127.0.0.1:1", Running: true})
	}
	return f
}

func (f *fakeSystem) Processes() ([]localrun.Process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.procs), nil
}

func (f *fakeSystem) set(name string, running bool) {
	for i := range f.procs {
		if f.procs[i].Name == name {
			f.procs[i].Running = running
		}
	}
}

func (f *fakeSystem) ServiceClient(string) *http.Client {
	return &http.Client{Timeout: 2 * time.Second}
}

func (f *fakeSystem) Kill(name string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "kill "+name)
	f.set(name, false)
	return 1, nil
}

func (f *fakeSystem) Start(_ context.Context, name string) (localrun.Process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "start "+name)
	if name == f.noStart {
		return localrun.Process{}, errors.New("it will not start")
	}
	f.set(name, true)
	return localrun.Process{Name: name, Running: true}, nil
}

// faults runs only the fault injector against a fake system, with the
// gaps and pauses of timing.
func faults(t *testing.T, sys *fakeSystem, seed uint64, d time.Duration, timing Config) *engine {
	t.Helper()
	cfg := Config{System: sys, Gateway: "http://gateway", Seed: seed, Duration: d,
		MinGap: timing.MinGap, MaxGap: timing.MaxGap, MinDown: timing.MinDown, MaxDown: timing.MaxDown}
	if err := cfg.defaults(); err != nil {
		t.Fatal(err)
	}
	e := &engine{cfg: cfg, res: newResult(cfg), start: time.Now(), startPause: time.Millisecond}
	procs, _ := sys.Processes()
	targets, err := chooseTargets(procs, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.inject(context.Background(), targets)
	return e
}

func TestTheFaultsFollowTheSeed(t *testing.T) {
	names := []string{"nats", "users", "inventory", "orders", "payments", "notifications", "reports", "gateway"}
	cfg := Config{Duration: 100 * time.Second}
	if err := (&cfg).defaultsForTest(); err != nil {
		t.Fatal(err)
	}
	a, b, c := schedule(42, names, cfg), schedule(42, names, cfg), schedule(43, names, cfg)
	if !slices.Equal(a, b) {
		t.Errorf("one seed gave two schedules:\n%v\n%v", a, b)
	}
	if slices.Equal(a, c) {
		t.Errorf("seeds 42 and 43 gave the same schedule %v", a)
	}
	// 2s to 8s apart over 100s.
	if len(a) < 100/8 || len(a) > 100/2 {
		t.Errorf("%d faults in 100s", len(a))
	}
	seen := map[string]bool{}
	last := time.Duration(0)
	for _, f := range a {
		seen[f.Process] = true
		if gap := f.At - last; gap < cfg.MinGap || gap > cfg.MaxGap || f.Down < cfg.MinDown || f.Down > cfg.MaxDown || f.At >= cfg.Duration {
			t.Errorf("fault %+v: gap %s out of bounds", f, gap)
		}
		last = f.At
	}
	if len(seen) < 6 {
		t.Errorf("the faults hit only %v", seen)
	}
}

func TestEveryKilledProcessIsStartedAgain(t *testing.T) {
	sys := newFake("nats", "orders", "gateway")
	// Pauses longer than the gaps: faults overlap.
	faults(t, sys, 7, 100*time.Millisecond, Config{MinGap: time.Millisecond, MaxGap: 3 * time.Millisecond, MinDown: 2 * time.Millisecond, MaxDown: 8 * time.Millisecond})
	last := map[string]string{}
	overlapped, down := false, 0
	for _, c := range sys.calls {
		verb, name, _ := strings.Cut(c, " ")
		if last[name] == verb {
			t.Fatalf("%s twice in a row: %v", c, sys.calls)
		}
		last[name] = verb
		if verb == "kill" {
			down++
		} else {
			down--
		}
		overlapped = overlapped || down > 1
	}
	for _, p := range sys.procs {
		if !p.Running {
			t.Errorf("%s was left down", p.Name)
		}
	}
	if !overlapped {
		t.Errorf("no two faults overlapped in %v", sys.calls)
	}
}

func TestAProcessThatDoesNotStartAgainIsAViolation(t *testing.T) {
	sys := newFake("orders")
	sys.noStart = "orders"
	e := faults(t, sys, 1, 30*time.Millisecond, Config{MinGap: time.Millisecond, MaxGap: 3 * time.Millisecond, MinDown: time.Millisecond, MaxDown: 2 * time.Millisecond})
	if e.res.OK() || !strings.Contains(strings.Join(e.res.Violations, "\n"), "orders did not start again") {
		t.Errorf("violations = %q, want orders not starting again", e.res.Violations)
	}
	// At the end it is not reported as having stopped by itself too.
	e.ensureRunning(context.Background(), []string{"orders"})
	if v := strings.Join(e.res.Violations, "\n"); strings.Contains(v, "stopped by itself") {
		t.Errorf("violations = %q", v)
	}
}

func TestAProcessThatStoppedByItselfIsAViolation(t *testing.T) {
	sys := newFake("orders", "payments")
	sys.set("payments", false)
	e := &engine{cfg: Config{System: sys, Logf: t.Logf}, res: newResult(Config{}), startPause: time.Millisecond}
	e.ensureRunning(context.Background(), []string{"orders", "payments"})
	if len(e.res.Violations) != 1 || !strings.Contains(e.res.Violations[0], "payments stopped by itself") {
		t.Errorf("violations = %q", e.res.Violations)
	}
	if !running(sys, "payments") {
		t.Error("payments was not started again")
	}
}

// defaultsForTest fills in the defaults without a system.
func (c *Config) defaultsForTest() error {
	c.System, c.Gateway = newFake("x"), "http://gateway"
	return c.defaults()
}

func TestTargets(t *testing.T) {
	procs := []localrun.Process{{Name: "nats"}, {Name: "orders"}, {Name: "orders", Replica: 1}, {Name: "gateway"}}
	got, err := chooseTargets(procs, nil)
	if err != nil || !slices.Equal(got, []string{"nats", "orders", "gateway"}) {
		t.Errorf("every process = %v, %v", got, err)
	}
	if _, err := chooseTargets(procs, []string{"run"}); err == nil {
		t.Error("run itself was accepted as a target")
	}
	if got, err := chooseTargets(procs, []string{"orders"}); err != nil || !slices.Equal(got, []string{"orders"}) {
		t.Errorf("orders only = %v, %v", got, err)
	}
}

func TestMetricsAreSummedOverEveryProcessAServiceRanAs(t *testing.T) {
	body := `# HELP events_consumed_total Events received.
# TYPE events_consumed_total counter
events_consumed_total{consumer="notifications-orders-confirmed",outcome="handled",type="orders.confirmed"} 12
events_consumed_total{consumer="notifications-orders-confirmed",outcome="duplicate",type="orders.confirmed"} 2
events_consumed_total{consumer="notifications-users-registered",outcome="handled",type="users.registered"} 3
outbox_backlog 4
`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			fmt.Fprint(w, body)
		}
	}))
	defer srv.Close()
	sys := newFake("notifications")
	sys.procs[0].URL = srv.URL
	s := newScraper(sys)
	s.scrapeAll(context.Background())
	// The process is killed and runs again under another pid.
	sys.procs[0].PID = 999
	s.scrapeAll(context.Background())
	got := s.consumed()["notifications"]
	if got["handled"] != 30 || got["duplicate"] != 4 {
		t.Errorf("consumed = %v, want 30 handled and 4 duplicates over the two processes", got)
	}
	if b := s.scrapeAll(context.Background()); b["notifications"] != 4 {
		t.Errorf("backlogs = %v", b)
	}
}

func TestSummaryDiffs(t *testing.T) {
	want := reportsapi.Summary{OrdersConfirmed: 2, RevenueCents: 300, NetCents: 200, RefundsCents: 100, OrdersCancelled: 1, CapturedCents: 300}
	if d := summaryDiffs(want, want); len(d) != 0 {
		t.Errorf("equal summaries differ: %v", d)
	}
	got := want
	got.RevenueCents, got.EventsDeadLettered = 400, 1
	d := summaryDiffs(got, want)
	if len(d) != 2 || !strings.Contains(d[0], "revenue_cents is 400, the orders say 300") {
		t.Errorf("diffs = %q", d)
	}
}

// checkMailbox runs the mail check over msgs, with notifications killed
// at the given times, and returns the violations and notes.
func checkMailbox(t *testing.T, all []ordersapi.Order, msgs []mailbox.Message, kills ...time.Time) ([]string, []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mailbox.jsonl")
	var b []byte
	for _, m := range msgs {
		line, _ := json.Marshal(m)
		b = append(append(b, line...), '\n')
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{MailboxFile: path, SettleTimeout: 10 * time.Millisecond}
	e := &engine{cfg: cfg, res: newResult(cfg), load: &load{owner: map[string]string{}, registered: map[string]string{}}}
	for _, k := range kills {
		e.res.addFault(Fault{Process: "notifications", Killed: k})
	}
	if err := e.checkMail(context.Background(), nil, all); err != nil {
		t.Fatal(err)
	}
	return e.res.Violations, e.res.Notes
}

func TestMailCheck(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 1, 37, 40, 0, time.UTC)
	all := []ordersapi.Order{{ID: "A", Status: ordersapi.StatusConfirmed}, {ID: "B", Status: ordersapi.StatusRejected}, {ID: "C", Status: ordersapi.StatusCancelled}}
	mail := func(subject, id string, at time.Time) mailbox.Message {
		return mailbox.Message{Subject: subject, MessageID: id, ReceivedAt: at, To: []string{"x@example.com"}}
	}
	good := []mailbox.Message{
		mail(shopclient.ReceiptSubject("A"), "a.email@microshop", t0),
		mail(rejectedSubject("B"), "b.email@microshop", t0),
		mail(shopclient.ReceiptSubject("C"), "c.email@microshop", t0),
		mail(refundSubject("C"), "c2.email@microshop", t0),
	}
	if v, n := checkMailbox(t, all, good); len(v) != 0 || len(n) != 0 {
		t.Errorf("one email each: violations %q, notes %q", v, n)
	}

	// Sent, then notifications killed 50ms later, before it recorded the
	// send: the same message again once its lease ran out.
	again := append(slices.Clone(good), mail(shopclient.ReceiptSubject("A"), "a.email@microshop", t0.Add(70*time.Second)))
	if v, n := checkMailbox(t, all, again, t0.Add(50*time.Millisecond)); len(v) != 0 || len(n) != 1 {
		t.Errorf("a copy in the crash window: violations %q, notes %q; want one note", v, n)
	}
	// The same copy with no kill to explain it, or a kill long after.
	for _, kills := range [][]time.Time{nil, {t0.Add(10 * time.Second)}, {t0.Add(-time.Second)}} {
		if v, _ := checkMailbox(t, all, again, kills...); len(v) != 2 {
			t.Errorf("kills %v: violations %q, want the Message-ID and the receipt twice", kills, v)
		}
	}
	// Two receipts under two Message-IDs: two events, whatever was killed.
	twice := append(slices.Clone(good), mail(shopclient.ReceiptSubject("A"), "other.email@microshop", t0.Add(time.Second)))
	if v, _ := checkMailbox(t, all, twice, t0.Add(50*time.Millisecond)); len(v) != 1 || !strings.Contains(v[0], "receipt of order A arrived 2 times") {
		t.Errorf("two Message-IDs: violations %q", v)
	}
	// Missing, and an email that must not come.
	wrong := []mailbox.Message{good[0], good[2], good[3], mail(shopclient.ReceiptSubject("B"), "b.email@microshop", t0)}
	v, _ := checkMailbox(t, all, wrong)
	if len(v) != 2 || !strings.Contains(strings.Join(v, "\n"), "rejection notice of order B never arrived") ||
		!strings.Contains(strings.Join(v, "\n"), "B was rejected, yet a receipt arrived") {
		t.Errorf("violations %q", v)
	}
}

func TestAnAnswerLaterThanTheDeadlineIsAViolation(t *testing.T) {
	r := &Result{Latencies: []time.Duration{time.Second, 3 * time.Second, 31 * time.Second}, ErrorAttempts: map[string]int{"timeout": 2, "http 504": 1, "refused": 4}}
	r.checkLatency(30*time.Second, 2*time.Second)
	if !r.OK() {
		t.Errorf("an answer after 31s is within a deadline of 30s plus 2s, yet: %q", r.Violations)
	}
	r = &Result{Latencies: []time.Duration{time.Second, 3 * time.Second, 33 * time.Second}}
	r.checkLatency(30*time.Second, 2*time.Second)
	if r.OK() || len(r.Violations) != 1 {
		t.Errorf("an answer after 33s against 30s plus 2s: violations %q, want one", r.Violations)
	}
	if got := r.Percentile(100); got != 33*time.Second {
		t.Errorf("max = %s, want 33s", got)
	}
	if got := (&Result{ErrorAttempts: map[string]int{"timeout": 2, "http 504": 1, "refused": 4}}).Timeouts(); len(got) != 2 || got["timeout"] != 2 || got["http 504"] != 1 {
		t.Errorf("Timeouts() = %v, want timeout 2 and http 504 1", got)
	}
}
