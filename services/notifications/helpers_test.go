package notifications_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/microshop/microshop/internal/mailbox"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/ids"
	"github.com/microshop/microshop/internal/platform/openapi/openapitest"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/notifications"
	"github.com/microshop/microshop/services/notifications/notificationsapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/users"
	"github.com/microshop/microshop/services/users/usersapi"
)

// shop is a servicetest.Shop with what notifications talks to besides
// users: the producers' streams on its NATS, and an SMTP server (the
// mailbox `microshop run` uses) that keeps what it receives.
type shop struct {
	*servicetest.Shop
	// CustomerID is the shop's customer's id: notifications learns their
	// address from users' internal route when an order event names them.
	CustomerID string
	SMTPURL    string
	Mailbox    *mailbox.Mailbox
	JS         jetstream.JetStream
}

func newShop(t *testing.T) *shop {
	t.Helper()
	return newShopOn(t, "")
}

// newShopOn is newShop with the NATS server at natsURL.
func newShopOn(t *testing.T, natsURL string) *shop {
	t.Helper()
	e := &shop{Shop: servicetest.NewShop(t, users.Spec(), servicetest.ShopOptions{NATS: natsURL, Keys: []string{"notifications"}})}
	var me usersapi.User
	servicetest.Call(t, "GET", e.Users.URL+"/api/users/me", e.Customer, nil).JSON(t, &me)
	e.CustomerID = me.ID
	mb, err := mailbox.Open(filepath.Join(t.TempDir(), "mailbox.jsonl"), 100000, 64<<20, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mb.ListenSMTP(ln)
	t.Cleanup(func() { mb.Close() })
	e.Mailbox, e.SMTPURL = mb, "smtp://"+ln.Addr().String()

	// The producers' streams, as their services make them.
	e.JS = e.JetStream(t, "users", "orders", "payments", "inventory")
	return e
}

// notif is a running notifications service.
type notif struct {
	// URL is the service behind the OpenAPI checker; tests use it.
	URL     string
	Checker *openapitest.Checker
	Service *servicetest.Service
}

// start runs notifications with short retry timings and args on top.
func (e *shop) start(t *testing.T, args ...string) *notif {
	t.Helper()
	full := append([]string{"--smtp-url", e.SMTPURL,
		"--retry-base", "10ms", "--retry-max", "40ms", "--dispatch-interval", "50ms"}, args...)
	svc := e.Start(t, notifications.Spec(), full, nil)
	u, checker := openapitest.Proxy(t, notifications.OpenAPI(), svc.URL)
	return &notif{URL: u, Checker: checker, Service: svc}
}

// publish sends body as its producer's relay does: in an event envelope,
// with the event id as the broker's de-duplication id.
func (e *shop) publish(t *testing.T, body events.Body) events.Event {
	t.Helper()
	ev := newEvent(t, body, time.Now())
	e.publishAs(t, ev, ev.ID)
	return ev
}

func newEvent(t *testing.T, body events.Body, at time.Time) events.Event {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return events.Event{ID: ids.New(), Type: body.EventType(), Version: body.EventVersion(), Time: at.UTC(), Data: data}
}

// publishAs publishes ev with msgID as the broker's de-duplication id: a
// new one makes the broker keep a second copy of the same event.
func (e *shop) publishAs(t *testing.T, ev events.Event, msgID string) {
	t.Helper()
	msg, err := events.NewMsg(ev)
	if err != nil {
		t.Fatal(err)
	}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.JS.PublishMsg(ctx, msg); err != nil {
		t.Fatalf("publishing %s: %v", ev.Type, err)
	}
}

// emailOf waits for the email of event id and returns it.
func (e *shop) emailOf(t *testing.T, eventID string) mailbox.Message {
	t.Helper()
	var got mailbox.Message
	waitFor(t, "the email of event "+eventID, func() bool {
		for _, m := range e.Mailbox.Messages() {
			if m.MessageID == eventID+".email@microshop" {
				got = m
				return true
			}
		}
		return false
	})
	return got
}

// countEmails counts the received emails per Message-ID, for those of ids.
func (e *shop) countEmails(ids []string) map[string]int {
	want := map[string]bool{}
	for _, id := range ids {
		want[id+".email@microshop"] = true
	}
	out := map[string]int{}
	for _, m := range e.Mailbox.Messages() {
		if want[m.MessageID] {
			out[m.MessageID]++
		}
	}
	return out
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// delivery is a delivery as the API shows it.
type delivery = notificationsapi.Delivery

type deliveryList struct {
	Items         []delivery `json:"items"`
	NextPageToken string     `json:"next_page_token"`
}

// deliveries lists deliveries with the query q (e.g. "order_id=o1").
func (n *notif) deliveries(t *testing.T, token, q string) deliveryList {
	t.Helper()
	r := servicetest.Call(t, "GET", n.URL+"/api/notifications/deliveries?"+q, token, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET deliveries?%s: %d %s", q, r.Status, r.Body)
	}
	var l deliveryList
	r.JSON(t, &l)
	return l
}

// deliveriesOf returns every delivery of event ev (of type typ).
func (n *notif) deliveriesOf(t *testing.T, token string, ev events.Event) []delivery {
	t.Helper()
	var out []delivery
	q := url.Values{"event_type": {ev.Type}, "limit": {"100"}}
	for {
		l := n.deliveries(t, token, q.Encode())
		for _, d := range l.Items {
			if d.EventID == ev.ID {
				out = append(out, d)
			}
		}
		if l.NextPageToken == "" {
			return out
		}
		q.Set("page_token", l.NextPageToken)
	}
}

// awaitDelivery waits until ev's delivery on channel has status.
func (n *notif) awaitDelivery(t *testing.T, token string, ev events.Event, channel, status string) delivery {
	t.Helper()
	var last []delivery
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		last = n.deliveriesOf(t, token, ev)
		for _, d := range last {
			if d.Channel == channel && d.Status == status {
				return d
			}
		}
		time.Sleep(30 * time.Millisecond)
	}
	t.Fatalf("event %s: no %s delivery on %s within 20s; deliveries: %+v", ev.ID, status, channel, last)
	return delivery{}
}

// webhook is a registered endpoint as the API answers.
type webhook = notificationsapi.Webhook

func (n *notif) register(t *testing.T, token, url string, types ...string) webhook {
	t.Helper()
	r := servicetest.Call(t, "POST", n.URL+"/api/notifications/webhooks", token,
		map[string]any{"url": url, "event_types": types, "description": "test receiver"})
	if r.Status != http.StatusCreated {
		t.Fatalf("registering %s: %d %s", url, r.Status, r.Body)
	}
	var w webhook
	r.JSON(t, &w)
	if w.Secret == "" || w.ID == "" || w.URL != url {
		t.Fatalf("registered %+v", w)
	}
	return w
}

// receiver is a webhook receiver: answer decides each request's status
// from its number (1, 2, ...).
type receiver struct {
	URL string

	mu     sync.Mutex
	got    []received
	answer func(n int) int
}

type received struct {
	Header http.Header
	Body   []byte
}

func newReceiver(t *testing.T, answer func(n int) int) *receiver {
	t.Helper()
	rc := &receiver{answer: answer}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, received{Header: r.Header.Clone(), Body: body})
		n, answer := len(rc.got), rc.answer
		rc.mu.Unlock()
		w.WriteHeader(answer(n))
	}))
	t.Cleanup(srv.Close)
	rc.URL = srv.URL + "/hooks/microshop"
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

func (rc *receiver) setAnswer(f func(n int) int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.answer = f
}

// verify checks a webhook request as a receiver should (see
// docs/notifications.md): the signature over "<t>.<body>" with the
// endpoint's secret, a recent t, and the event headers.
func verify(secret string, r received, ev events.Event) error {
	sig := r.Header.Get("Microshop-Signature")
	var ts, v1 string
	for _, part := range strings.Split(sig, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			v1 = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return fmt.Errorf("signature %q has no recent t", sig)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(r.Body)
	if !hmac.Equal([]byte(v1), []byte(hex.EncodeToString(mac.Sum(nil)))) {
		return fmt.Errorf("signature %q does not match the body", sig)
	}
	if r.Header.Get("Microshop-Event-Id") != ev.ID || r.Header.Get("Microshop-Event-Type") != ev.Type ||
		r.Header.Get("Content-Type") != "application/json" {
		return fmt.Errorf("headers %v for event %s", r.Header, ev.ID)
	}
	var got events.Event
	if err := json.Unmarshal(r.Body, &got); err != nil || got.ID != ev.ID || got.Type != ev.Type || got.Version != ev.Version {
		return fmt.Errorf("body %s is not the envelope of %s: %v", r.Body, ev.ID, err)
	}
	return nil
}

// confirmed is an order of the customer userID, confirmed.
func confirmed(userID string) ordersapi.OrderConfirmed {
	return ordersapi.OrderConfirmed{
		OrderID: ids.New(), UserID: userID,
		Lines: []ordersapi.Line{
			{SKU: "MUG-CERAMIC-12", Quantity: 2, PriceCents: 1400},
			{SKU: "KETTLE-GOOSENECK", Quantity: 1, PriceCents: 5900},
		},
		TotalCents: 8700, Currency: "USD", PaymentID: "pay1", ConfirmedAt: time.Now().UTC(),
	}
}

// handled reads the service's metrics: how many events consumer handled
// (duplicates not counted).
func (n *notif) handled(t *testing.T, consumer string) int {
	t.Helper()
	r := servicetest.Call(t, "GET", n.Service.URL+"/metrics", "", nil)
	total := 0
	for _, line := range strings.Split(string(r.Body), "\n") {
		if strings.HasPrefix(line, "events_consumed_total{") && strings.Contains(line, `consumer="`+consumer+`"`) &&
			strings.Contains(line, `outcome="handled"`) {
			v, _ := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
			total += int(v)
		}
	}
	return total
}

// systemNATS starts the nats-server found on PATH (the machine's own, which
// may be older than the embedded one) on a free port with its own store,
// or skips t when there is none.
func systemNATS(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		t.Skip("no nats-server on PATH; skipping the run against the machine's NATS version")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", port, "-js", "-sd", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	waitFor(t, "nats-server to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	out, _ := exec.Command(bin, "--version").Output()
	t.Logf("running against %s", strings.TrimSpace(string(out)))
	return "nats://" + addr
}
