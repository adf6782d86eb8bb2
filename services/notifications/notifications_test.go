package notifications_test

import (
	"flag"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/mailbox"
	"github.com/microshop/microshop/internal/platform/database/dbtest"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/ids"
	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/notifications"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/payments/paymentsapi"
	"github.com/microshop/microshop/services/users/usersapi"
)

// TestNotifications runs one real notifications service (SQLite, embedded
// NATS, a real users service, a real SMTP server) through every event and
// route, and checks that the OpenAPI document covers all it was asked.
func TestNotifications(t *testing.T) {
	e := newShop(t)
	n := e.start(t, "--webhook-allow-private", "--max-tries", "4", "--admin-alert-email", "ops@example.com")
	t.Run("emails", func(t *testing.T) { testEmails(t, e, n) })
	t.Run("same event twice", func(t *testing.T) { testSameEventTwice(t, e, n) })
	t.Run("webhook retried until delivered", func(t *testing.T) { testWebhookRetries(t, e, n) })
	t.Run("webhook dead then replayed", func(t *testing.T) { testDeadAndReplay(t, e, n) })
	t.Run("webhook admin", func(t *testing.T) { testWebhookAdmin(t, e, n) })
	t.Run("ssrf guard", func(t *testing.T) { testSSRF(t, e, n) })
	t.Run("access", func(t *testing.T) { testAccess(t, e, n) })
	t.Run("bad input", func(t *testing.T) { testBadInput(t, e, n) })
	t.Run("pages", func(t *testing.T) { testPages(t, e, n) })
	if run := flag.Lookup("test.run").Value.String(); !strings.Contains(run, "/") {
		n.Checker.RequireCoverage(notifications.OpenAPI())
	}
}

// TestOnPostgres runs two replicas on one Postgres database (skipped
// unless MICROSHOP_TEST_POSTGRES_URL is set).
func TestOnPostgres(t *testing.T) {
	e := newShop(t)
	db := dbtest.PostgresURL(t)
	key := "--webhook-signing-key=" + strings.Repeat("QUJD", 11) // 33 bytes, base64
	n := e.start(t, "--db", db, key, "--webhook-allow-private", "--max-tries", "4", "--admin-alert-email", "ops@example.com")
	t.Run("emails", func(t *testing.T) { testEmails(t, e, n) })
	t.Run("webhook retried until delivered", func(t *testing.T) { testWebhookRetries(t, e, n) })
	t.Run("webhook dead then replayed", func(t *testing.T) { testDeadAndReplay(t, e, n) })
	t.Run("replicas", func(t *testing.T) {
		other := e.start(t, "--db", db, key, "--webhook-allow-private")
		testReplicas(t, e, n, other)
	})
}

// TestOnSystemNATS runs against the machine's own nats-server (2.9 here),
// which takes one filter subject per consumer: notifications makes one
// durable consumer per event type.
func TestOnSystemNATS(t *testing.T) {
	e := newShopOn(t, systemNATS(t))
	n := e.start(t, "--admin-alert-email", "ops@example.com")
	t.Run("emails", func(t *testing.T) { testEmails(t, e, n) })
}

// TestReplicas runs two replicas on one SQLite file (the same --data) and
// checks that each event is emailed, and each webhook posted, once.
func TestReplicas(t *testing.T) {
	e := newShop(t)
	data := t.TempDir()
	a := e.start(t, "--data", data, "--webhook-allow-private")
	b := e.start(t, "--data", data, "--webhook-allow-private")
	testReplicas(t, e, a, b)
}

func testReplicas(t *testing.T, e *shop, a, b *notif) {
	var hits atomic.Int64
	rc := newReceiver(t, func(int) int { hits.Add(1); return http.StatusOK })
	hook := a.register(t, e.Admin, rc.URL, "orders.confirmed")
	var sent []events.Event
	for range 30 {
		sent = append(sent, e.publish(t, confirmed(e.CustomerID)))
	}
	var idsSent []string
	for _, ev := range sent {
		idsSent = append(idsSent, ev.ID)
	}
	waitFor(t, "30 receipts and 30 webhooks", func() bool {
		return len(e.countEmails(idsSent)) == 30 && hits.Load() >= 30
	})
	// Both replicas' dispatchers poll every 50ms: give a second send time
	// to show, then count.
	time.Sleep(300 * time.Millisecond)
	for id, count := range e.countEmails(idsSent) {
		if count != 1 {
			t.Errorf("%s was emailed %d times", id, count)
		}
	}
	if got := hits.Load(); got != 30 {
		t.Errorf("the webhook receiver got %d requests for 30 events", got)
	}
	perEvent := map[string]int{}
	for _, r := range rc.requests() {
		perEvent[r.Header.Get("Microshop-Event-Id")]++
		if err := verify(hook.Secret, r, events.Event{ID: r.Header.Get("Microshop-Event-Id"), Type: "orders.confirmed", Version: 2}); err != nil {
			t.Error(err)
		}
	}
	for _, ev := range sent {
		if perEvent[ev.ID] != 1 {
			t.Errorf("event %s was posted %d times", ev.ID, perEvent[ev.ID])
		}
	}
	// Either replica answers for the shared database.
	for _, n := range []*notif{a, b} {
		if ds := n.deliveriesOf(t, e.Admin, sent[0]); len(ds) != 2 {
			t.Errorf("replica %s shows %d deliveries of one event, want 2", n.URL, len(ds))
		}
	}
	t.Logf("replica a sent %d, replica b sent %d", strings.Count(a.Service.Logs.String(), `"notification sent"`),
		strings.Count(b.Service.Logs.String(), `"notification sent"`))
	servicetest.Call(t, "DELETE", a.URL+"/api/notifications/webhooks/"+hook.ID, e.Admin, nil)
}

// TestRestart stops notifications, publishes 20 orders meanwhile, and
// starts it again on the same data and address: each order gets its
// receipt, once.
func TestRestart(t *testing.T) {
	e := newShop(t)
	n := e.start(t)
	// Something handled before the stop, so the restart resumes a
	// consumer rather than starting a new one.
	first := e.publish(t, confirmed(e.CustomerID))
	e.emailOf(t, first.ID)
	n.Service.Stop()

	var idsSent []string
	for range 20 {
		ev := e.publish(t, confirmed(e.CustomerID))
		idsSent = append(idsSent, ev.ID)
	}
	time.Sleep(200 * time.Millisecond)
	if got := e.countEmails(idsSent); len(got) != 0 {
		t.Fatalf("emails while notifications was stopped: %v", got)
	}
	n.Service.Restart(t)
	waitFor(t, "20 receipts", func() bool { return len(e.countEmails(idsSent)) == 20 })
	time.Sleep(300 * time.Millisecond)
	counts := e.countEmails(append(idsSent, first.ID))
	total := 0
	for id, c := range counts {
		total += c
		if c != 1 {
			t.Errorf("%s received %d times", id, c)
		}
	}
	if len(counts) != 21 || total != 21 {
		t.Errorf("%d distinct Message-IDs, %d emails; want 21 and 21", len(counts), total)
	}
}

func testEmails(t *testing.T, e *shop, n *notif) {
	tag := ids.New()[18:]
	ada := "ada-" + tag + "@example.com"

	// The real users service published users.registered for the customer
	// the shop registered: welcomed.
	waitFor(t, "the customer's welcome email", func() bool {
		return slices.ContainsFunc(e.Mailbox.Messages(), func(m mailbox.Message) bool {
			return slices.Equal(m.To, []string{servicetest.CustomerEmail}) && m.Subject == "Welcome to microshop, "+servicetest.CustomerName
		})
	})

	reg := e.publish(t, usersapi.UserRegistered{UserID: "u-" + tag, Email: ada, Name: "Ada", RegisteredAt: time.Now().UTC()})
	m := e.emailOf(t, reg.ID)
	if m.Subject != "Welcome to microshop, Ada" || !slices.Equal(m.To, []string{ada}) || m.From != "shop@microshop.local" ||
		!strings.Contains(m.Text, "Hello Ada,") || !strings.Contains(m.HTML, "Welcome, Ada!") {
		t.Errorf("welcome: %+v", m)
	}

	conf := confirmed("u-" + tag) // the customer welcomed above
	confEv := e.publish(t, conf)
	m = e.emailOf(t, confEv.ID)
	for _, want := range []string{"Order " + conf.OrderID + " is confirmed and paid.", "2 × MUG-CERAMIC-12 at $14.00: $28.00",
		"1 × KETTLE-GOOSENECK at $59.00: $59.00", "Total: $87.00"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("receipt text lacks %q:\n%s", want, m.Text)
		}
	}
	if m.Subject != "Your microshop order "+conf.OrderID+" is confirmed" || !slices.Equal(m.To, []string{ada}) ||
		!strings.Contains(m.HTML, "<strong>$87.00</strong>") || !strings.Contains(m.HTML, "MUG-CERAMIC-12") {
		t.Errorf("receipt: %+v", m)
	}

	for reason, sentence := range map[string]string{
		ordersapi.ReasonPaymentDeclined: "Your card was declined",
		ordersapi.ReasonOutOfStock:      "out of stock",
		ordersapi.ReasonInterrupted:     "interrupted",
	} {
		rej := e.publish(t, ordersapi.OrderRejected{OrderID: ids.New(), UserID: "u-" + tag, Reason: reason,
			Lines: conf.Lines, TotalCents: 8700, Currency: "USD", RejectedAt: time.Now().UTC()})
		m = e.emailOf(t, rej.ID)
		if !strings.HasPrefix(m.Subject, "We could not complete your microshop order") || !strings.Contains(m.Text, sentence) ||
			!strings.Contains(m.Text, "($87.00)") {
			t.Errorf("rejected (%s): %+v", reason, m)
		}
	}

	// A cancellation: one refund notice, from orders.cancelled; the refund
	// payments publishes for it makes no second email.
	cancel := e.publish(t, ordersapi.OrderCancelled{OrderID: conf.OrderID, UserID: "u-" + tag, Lines: conf.Lines,
		TotalCents: 8700, RefundedCents: 8700, Currency: "USD", CancelledAt: time.Now().UTC()})
	refund := e.publish(t, paymentsapi.PaymentRefunded{PaymentID: "pay1", OrderID: conf.OrderID, AmountCents: 8700,
		RefundedCentsTotal: 8700, Currency: "USD"})
	m = e.emailOf(t, cancel.ID)
	if m.Subject != "Your microshop order "+conf.OrderID+" was cancelled and refunded" || !strings.Contains(m.Text, "We refunded $87.00 to your card") {
		t.Errorf("refund notice: %+v", m)
	}

	low := e.publish(t, inventoryapi.LowStock{SKU: "MUG-CERAMIC-12", Name: "Ceramic Coffee Mug", Available: 3, Threshold: 5})
	m = e.emailOf(t, low.ID)
	if !slices.Equal(m.To, []string{"ops@example.com"}) || m.Subject != "Low stock: MUG-CERAMIC-12 has 3 left" ||
		!strings.Contains(m.Text, "Ceramic Coffee Mug (MUG-CERAMIC-12) fell below 5: 3 available") {
		t.Errorf("low stock alert: %+v", m)
	}

	// An event older than --max-event-age (24h) is not notified.
	old := newEvent(t, usersapi.UserRegistered{UserID: "u-old", Email: "old-" + tag + "@example.com", Name: "Old"}, time.Now().Add(-48*time.Hour))
	e.publishAs(t, old, old.ID)
	marker := e.publish(t, usersapi.UserRegistered{UserID: "u-marker", Email: "marker-" + tag + "@example.com", Name: "Marker"})
	e.emailOf(t, marker.ID) // handled in stream order: the old one was handled before
	if c := e.countEmails([]string{old.ID}); len(c) != 0 {
		t.Errorf("an event two days old was emailed")
	}

	// The refund event was handled, yet made no delivery: no email, and
	// no webhook subscribes to it here.
	waitFor(t, "payments.refunded to be handled", func() bool {
		return n.handled(t, "notifications-payments-refunded") >= 1
	})
	if ds := n.deliveriesOf(t, e.Admin, refund); len(ds) != 0 {
		t.Errorf("payments.refunded made deliveries: %+v", ds)
	}

	// The deliveries, as the API shows them.
	l := n.deliveries(t, e.Admin, "order_id="+conf.OrderID)
	if len(l.Items) != 2 {
		t.Fatalf("deliveries of order %s: %+v", conf.OrderID, l.Items)
	}
	byType := map[string]delivery{}
	for _, d := range l.Items {
		byType[d.EventType] = d
	}
	d := byType["orders.confirmed"]
	if d.EventID != confEv.ID || d.Channel != "email" || d.Recipient != ada || d.Status != "sent" || d.Tries != 1 ||
		d.Subject != "Your microshop order "+conf.OrderID+" is confirmed" || d.SentAt == nil || d.OrderID != conf.OrderID ||
		d.LastError != "" || d.NextAttemptAt != nil {
		t.Errorf("receipt delivery: %+v", d)
	}
	if c := byType["orders.cancelled"]; c.EventID != cancel.ID || c.Status != "sent" {
		t.Errorf("refund notice delivery: %+v", c)
	}
	r := servicetest.Call(t, "GET", n.URL+"/api/notifications/deliveries/"+d.ID, e.Admin, nil)
	var one delivery
	r.JSON(t, &one)
	if r.Status != http.StatusOK || one.ID != d.ID || one.Status != "sent" {
		t.Errorf("GET delivery: %d %s", r.Status, r.Body)
	}
	for _, q := range []string{"event_type=inventory.low_stock&status=sent", "status=sent&event_type=users.registered"} {
		for _, d := range n.deliveries(t, e.Admin, q).Items {
			if !strings.Contains(q, d.EventType) || d.Status != "sent" {
				t.Errorf("?%s listed %+v", q, d)
			}
		}
	}
	if l := n.deliveries(t, e.Admin, "event_type=users.registered&order_id="+conf.OrderID); len(l.Items) != 0 {
		t.Errorf("filters combine with AND: %+v", l.Items)
	}
}

// testSameEventTwice publishes one event twice under different broker
// message ids, so the broker keeps both copies: the inbox makes it one email.
func testSameEventTwice(t *testing.T, e *shop, n *notif) {
	ev := newEvent(t, confirmed(e.CustomerID), time.Now())
	e.publishAs(t, ev, ev.ID)
	e.publishAs(t, ev, ev.ID+"-again")
	// Events are handled in stream order: once a later one is emailed,
	// both copies have been handled.
	marker := e.publish(t, confirmed(e.CustomerID))
	e.emailOf(t, marker.ID)
	time.Sleep(150 * time.Millisecond)
	if c := e.countEmails([]string{ev.ID}); c[ev.ID+".email@microshop"] != 1 {
		t.Errorf("the event published twice was emailed %v times", c)
	}
	if ds := n.deliveriesOf(t, e.Admin, ev); len(ds) != 1 {
		t.Errorf("deliveries of the event published twice: %+v", ds)
	}
}

// testWebhookRetries: a receiver that fails three times gets the event a
// fourth time and then no more, every request validly signed.
func testWebhookRetries(t *testing.T, e *shop, n *notif) {
	rc := newReceiver(t, func(n int) int {
		if n <= 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	hook := n.register(t, e.Admin, rc.URL, "orders.confirmed", "users.registered")
	ev := e.publish(t, confirmed(e.CustomerID))
	d := n.awaitDelivery(t, e.Admin, ev, "webhook:"+hook.ID, "sent")
	time.Sleep(200 * time.Millisecond) // nothing more may come
	reqs := rc.requests()
	if len(reqs) != 4 {
		t.Fatalf("the receiver got %d requests, want 4", len(reqs))
	}
	for i, r := range reqs {
		if err := verify(hook.Secret, r, ev); err != nil {
			t.Errorf("request %d: %v", i+1, err)
		}
		if string(r.Body) != string(reqs[0].Body) {
			t.Errorf("request %d has another body than the first", i+1)
		}
	}
	if d.Tries != 4 || d.Recipient != rc.URL || d.OrderID == "" || d.SentAt == nil || d.LastError != "" {
		t.Errorf("delivery %+v", d)
	}
	// The email went too, on its own channel.
	e.emailOf(t, ev.ID)
	if ds := n.deliveriesOf(t, e.Admin, ev); len(ds) != 2 {
		t.Errorf("deliveries of the event: %+v", ds)
	}
	servicetest.Call(t, "DELETE", n.URL+"/api/notifications/webhooks/"+hook.ID, e.Admin, nil)
}

// testDeadAndReplay: a receiver that always fails makes the delivery dead
// after --max-tries (4); a replay makes it pending again, and it is sent.
func testDeadAndReplay(t *testing.T, e *shop, n *notif) {
	rc := newReceiver(t, func(int) int { return http.StatusInternalServerError })
	hook := n.register(t, e.Admin, rc.URL, "inventory.low_stock")
	ev := e.publish(t, inventoryapi.LowStock{SKU: "KETTLE-GOOSENECK", Name: "Kettle", Available: 1, Threshold: 5})
	d := n.awaitDelivery(t, e.Admin, ev, "webhook:"+hook.ID, "dead")
	if d.Tries != 4 || !strings.Contains(d.LastError, "500") || d.SentAt != nil || d.NextAttemptAt != nil {
		t.Errorf("dead delivery %+v", d)
	}
	time.Sleep(100 * time.Millisecond)
	if got := len(rc.requests()); got != 4 {
		t.Errorf("the receiver got %d requests, want 4", got)
	}
	if l := n.deliveries(t, e.Admin, "status=dead&event_type=inventory.low_stock"); !slices.ContainsFunc(l.Items, func(x delivery) bool { return x.ID == d.ID }) {
		t.Errorf("status=dead does not list it: %+v", l.Items)
	}

	rc.setAnswer(func(int) int { return http.StatusOK })
	r := servicetest.Call(t, "POST", n.URL+"/api/notifications/deliveries/"+d.ID+"/replay", e.Admin, nil)
	var replayed delivery
	r.JSON(t, &replayed)
	if r.Status != http.StatusOK || replayed.Status != "pending" || replayed.Tries != 0 || replayed.NextAttemptAt == nil {
		t.Fatalf("replay: %d %s", r.Status, r.Body)
	}
	sent := n.awaitDelivery(t, e.Admin, ev, "webhook:"+hook.ID, "sent")
	if sent.Tries != 1 {
		t.Errorf("after the replay: %+v", sent)
	}
	reqs := rc.requests()
	if len(reqs) != 5 {
		t.Errorf("the receiver got %d requests, want 5", len(reqs))
	}
	for _, rq := range reqs {
		if err := verify(hook.Secret, rq, ev); err != nil {
			t.Error(err)
		}
	}
	// A sent delivery can be replayed too: the same event id again.
	r = servicetest.Call(t, "POST", n.URL+"/api/notifications/deliveries/"+d.ID+"/replay", e.Admin, nil)
	if r.Status != http.StatusOK {
		t.Errorf("replaying a sent delivery: %d %s", r.Status, r.Body)
	}
	waitFor(t, "the second replay", func() bool { return len(rc.requests()) == 6 })
	servicetest.Call(t, "DELETE", n.URL+"/api/notifications/webhooks/"+hook.ID, e.Admin, nil)
}

// testWebhookAdmin lists and deletes endpoints; a delivery underway when
// its endpoint is deleted ends dead, and a pending one cannot be replayed.
func testWebhookAdmin(t *testing.T, e *shop, n *notif) {
	release := make(chan struct{})
	var once atomic.Bool
	rc := newReceiver(t, func(int) int {
		if once.CompareAndSwap(false, true) {
			<-release // hold the first request until the test lets it go
		}
		return http.StatusOK
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	hook := n.register(t, e.Admin, rc.URL, "users.registered")

	r := servicetest.Call(t, "GET", n.URL+"/api/notifications/webhooks", e.Admin, nil)
	var list struct{ Items []webhook }
	r.JSON(t, &list)
	i := slices.IndexFunc(list.Items, func(w webhook) bool { return w.ID == hook.ID })
	if r.Status != http.StatusOK || i < 0 {
		t.Fatalf("list: %d %s", r.Status, r.Body)
	}
	if got := list.Items[i]; got.Secret != "" || got.URL != rc.URL || !slices.Equal(got.EventTypes, []string{"users.registered"}) ||
		got.Description != "test receiver" || !got.CreatedAt.Equal(hook.CreatedAt) {
		t.Errorf("listed %+v, registered %+v", got, hook)
	}
	if strings.Contains(string(r.Body), hook.Secret) {
		t.Error("the list shows the secret")
	}

	ev := e.publish(t, usersapi.UserRegistered{UserID: "u", Email: "held-" + ids.New()[18:] + "@example.com", Name: "Held"})
	waitFor(t, "the held request", func() bool { return len(rc.requests()) == 1 })
	d := n.awaitDelivery(t, e.Admin, ev, "webhook:"+hook.ID, "pending")
	r = servicetest.Call(t, "POST", n.URL+"/api/notifications/deliveries/"+d.ID+"/replay", e.Admin, nil)
	if p := r.Problem(t); p.Status != http.StatusConflict {
		t.Errorf("replaying a pending delivery: %d %s", r.Status, r.Body)
	}

	r = servicetest.Call(t, "DELETE", n.URL+"/api/notifications/webhooks/"+hook.ID, e.Admin, nil)
	if r.Status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	dead := n.awaitDelivery(t, e.Admin, ev, "webhook:"+hook.ID, "dead")
	if dead.LastError != "the webhook endpoint was deleted" {
		t.Errorf("after deleting its endpoint: %+v", dead)
	}
	close(release)
	time.Sleep(100 * time.Millisecond)
	// The try that was underway ended after the delete: its outcome is
	// not recorded over it.
	if again := n.awaitDelivery(t, e.Admin, ev, "webhook:"+hook.ID, "dead"); again.Tries != 0 {
		t.Errorf("after the held try ended: %+v", again)
	}
	r = servicetest.Call(t, "DELETE", n.URL+"/api/notifications/webhooks/"+hook.ID, e.Admin, nil)
	if p := r.Problem(t); p.Status != http.StatusNotFound || !strings.Contains(p.Detail, "webhook endpoint") {
		t.Errorf("delete again: %d %s", r.Status, r.Body)
	}
	// A new event finds no endpoint.
	ev2 := e.publish(t, usersapi.UserRegistered{UserID: "u", Email: "after-" + ids.New()[18:] + "@example.com", Name: "After"})
	e.emailOf(t, ev2.ID)
	if ds := n.deliveriesOf(t, e.Admin, ev2); len(ds) != 1 || ds[0].Channel != "email" {
		t.Errorf("deliveries after the delete: %+v", ds)
	}
}

// testSSRF registers URLs that lead inside the network: refused by a
// service without --webhook-allow-private, with the reason, and nothing
// stored; accepted by n, which allows private addresses. URLs that are
// not http(s), or too long, are refused by both.
func testSSRF(t *testing.T, e *shop, n *notif) {
	strict := e.start(t)
	long := "https://example.com/" + strings.Repeat("x", 2100)
	for _, c := range []struct {
		url          string
		strict, open string // "" accepted, else a word of the reason
	}{
		{"file:///etc/passwd", "http", "http"},
		{"ftp://example.com/hook", "http", "http"},
		{long, "2048", "2048"},
		{"http://127.0.0.1:9/hook", "loopback", ""},
		{"http://169.254.169.254/latest/meta-data/", "link-local", ""},
		{"http://10.0.0.1/hook", "private", ""},
		{"http://[::1]:9/hook", "loopback", ""},
		{"http://localhost:9/hook", "loopback", ""},
	} {
		for _, svc := range []struct {
			n    *notif
			want string
		}{{strict, c.strict}, {n, c.open}} {
			r := servicetest.Call(t, "POST", svc.n.URL+"/api/notifications/webhooks", e.Admin,
				map[string]any{"url": c.url, "event_types": []string{"orders.confirmed"}})
			if svc.want == "" {
				var w webhook
				r.JSON(t, &w)
				if r.Status != http.StatusCreated {
					t.Errorf("%.50s with allow-private: %d %s", c.url, r.Status, r.Body)
				}
				servicetest.Call(t, "DELETE", svc.n.URL+"/api/notifications/webhooks/"+w.ID, e.Admin, nil)
				continue
			}
			p := r.Problem(t)
			if p.Status != http.StatusUnprocessableEntity || len(p.Errors) != 1 || p.Errors[0].Field != "url" ||
				!strings.Contains(p.Errors[0].Reason, svc.want) {
				t.Errorf("%.50s: %d %s, want a 422 saying %q", c.url, r.Status, r.Body, svc.want)
			}
		}
	}
	r := servicetest.Call(t, "GET", strict.URL+"/api/notifications/webhooks", e.Admin, nil)
	if strings.TrimSpace(string(r.Body)) != `{"items":[]}` {
		t.Errorf("refused URLs were stored: %s", r.Body)
	}
}

func testAccess(t *testing.T, e *shop, n *notif) {
	for _, route := range []struct{ method, path string }{
		{"POST", "/api/notifications/webhooks"},
		{"GET", "/api/notifications/webhooks"},
		{"DELETE", "/api/notifications/webhooks/" + ids.New()},
		{"GET", "/api/notifications/deliveries"},
		{"GET", "/api/notifications/deliveries/" + ids.New()},
		{"POST", "/api/notifications/deliveries/" + ids.New() + "/replay"},
	} {
		for _, c := range []struct {
			token string
			want  int
		}{{"", http.StatusUnauthorized}, {e.Customer, http.StatusForbidden}, {"not-a-token", http.StatusUnauthorized}} {
			var body any
			if route.method == "POST" && strings.HasSuffix(route.path, "webhooks") {
				body = map[string]any{"url": "http://127.0.0.1/x", "event_types": []string{"orders.confirmed"}}
			}
			r := servicetest.Call(t, route.method, n.URL+route.path, c.token, body)
			if p := r.Problem(t); p.Status != c.want {
				t.Errorf("%s %s with token %.10q: %d, want %d", route.method, route.path, c.token, r.Status, c.want)
			}
		}
	}
	r := servicetest.Call(t, "GET", n.URL+"/api/notifications/webhooks", e.Admin, nil)
	if strings.Contains(string(r.Body), "127.0.0.1/x") {
		t.Error("a refused caller's webhook was stored")
	}
}

func testBadInput(t *testing.T, e *shop, n *notif) {
	before := servicetest.Call(t, "GET", n.URL+"/api/notifications/webhooks", e.Admin, nil).Body
	post := func(body any, headers ...string) servicetest.Response {
		return servicetest.Call(t, "POST", n.URL+"/api/notifications/webhooks", e.Admin, body, headers...)
	}
	ok := "http://127.0.0.1:9/hook"
	for _, c := range []struct {
		name   string
		resp   servicetest.Response
		status int
		field  string
	}{
		{"unknown event type", post(map[string]any{"url": ok, "event_types": []string{"orders.shipped"}}), 422, "event_types[0]"},
		{"an event we do not send", post(map[string]any{"url": ok, "event_types": []string{"orders.confirmed", "payments.captured"}}), 422, "event_types[1]"},
		{"empty list", post(map[string]any{"url": ok, "event_types": []string{}}), 422, "event_types"},
		{"no list", post(map[string]any{"url": ok}), 422, "event_types"},
		{"twice the same type", post(map[string]any{"url": ok, "event_types": []string{"orders.confirmed", "orders.confirmed"}}), 422, "event_types[1]"},
		{"no url", post(map[string]any{"event_types": []string{"orders.confirmed"}}), 422, "url"},
		{"not a url", post(map[string]any{"url": "::nope", "event_types": []string{"orders.confirmed"}}), 422, "url"},
		{"long description", post(map[string]any{"url": ok, "event_types": []string{"orders.confirmed"}, "description": strings.Repeat("d", 201)}), 422, "description"},
		{"control characters", post(map[string]any{"url": ok, "event_types": []string{"orders.confirmed"}, "description": "a\x00b"}), 422, "description"},
		{"unknown field", post(map[string]any{"url": ok, "event_types": []string{"orders.confirmed"}, "secret": "mine"}), 422, "secret"},
		{"wrong type", post(map[string]any{"url": ok, "event_types": "orders.confirmed"}), 422, "event_types"},
		{"malformed JSON", post(`{"url": "http://127.0.0.1:9/hook", "event_types": [`), 400, ""},
		{"two values", post(`{} {}`), 400, ""},
		{"empty body", post(""), 400, ""},
		{"not JSON", post("url=x", "Content-Type", "application/x-www-form-urlencoded"), 415, ""},
		{"limit 0", servicetest.Call(t, "GET", n.URL+"/api/notifications/deliveries?limit=0", e.Admin, nil), 422, "limit"},
		{"limit 101", servicetest.Call(t, "GET", n.URL+"/api/notifications/deliveries?limit=101", e.Admin, nil), 422, "limit"},
		{"limit x", servicetest.Call(t, "GET", n.URL+"/api/notifications/deliveries?limit=x", e.Admin, nil), 422, "limit"},
		{"bad status", servicetest.Call(t, "GET", n.URL+"/api/notifications/deliveries?status=lost", e.Admin, nil), 422, "status"},
		{"bad event type", servicetest.Call(t, "GET", n.URL+"/api/notifications/deliveries?event_type=orders.shipped", e.Admin, nil), 422, "event_type"},
		{"bad page token", servicetest.Call(t, "GET", n.URL+"/api/notifications/deliveries?page_token=!!", e.Admin, nil), 422, "page_token"},
		{"replay unknown", servicetest.Call(t, "POST", n.URL+"/api/notifications/deliveries/"+ids.New()+"/replay", e.Admin, nil), 404, ""},
		{"replay garbage id", servicetest.Call(t, "POST", n.URL+"/api/notifications/deliveries/'%20OR%201=1/replay", e.Admin, nil), 404, ""},
		{"get unknown", servicetest.Call(t, "GET", n.URL+"/api/notifications/deliveries/"+ids.New(), e.Admin, nil), 404, ""},
		{"delete unknown", servicetest.Call(t, "DELETE", n.URL+"/api/notifications/webhooks/"+ids.New(), e.Admin, nil), 404, ""},
		{"unknown route", servicetest.Call(t, "GET", n.URL+"/api/notifications/nothing", e.Admin, nil), 404, ""},
		{"wrong method", servicetest.Call(t, "PUT", n.URL+"/api/notifications/webhooks", e.Admin, nil), 405, ""},
	} {
		p := c.resp.Problem(t)
		if p.Status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, c.resp.Status, c.resp.Body, c.status)
			continue
		}
		if c.field != "" && !slices.ContainsFunc(p.Errors, func(f problem.FieldError) bool { return f.Field == c.field }) {
			t.Errorf("%s: %s, want an error on %s", c.name, c.resp.Body, c.field)
		}
	}
	after := servicetest.Call(t, "GET", n.URL+"/api/notifications/webhooks", e.Admin, nil).Body
	if string(before) != string(after) {
		t.Errorf("bad requests stored something: before %s, after %s", before, after)
	}
}

func testPages(t *testing.T, e *shop, n *notif) {
	all := n.deliveries(t, e.Admin, "limit=100").Items
	if len(all) < 5 {
		t.Fatalf("only %d deliveries to page through", len(all))
	}
	var paged []string
	q := "limit=2"
	for {
		l := n.deliveries(t, e.Admin, q)
		if len(l.Items) > 2 {
			t.Fatalf("a page of %d with limit=2", len(l.Items))
		}
		for _, d := range l.Items {
			paged = append(paged, d.ID)
		}
		if l.NextPageToken == "" {
			break
		}
		q = "limit=2&page_token=" + l.NextPageToken
	}
	// No event came since: the pages hold the one long list, newest first.
	want := []string{}
	for _, d := range all {
		want = append(want, d.ID)
	}
	if !slices.Equal(paged, want) || !slices.IsSortedFunc(paged, func(a, b string) int { return strings.Compare(b, a) }) {
		t.Errorf("paged %v, listed %v", paged, want)
	}
}
