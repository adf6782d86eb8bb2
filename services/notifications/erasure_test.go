package notifications_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/microshop/microshop/internal/mailbox"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/ids"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/users/usersapi"
)

// The orders.* events no longer carry the email: notifications writes
// to the address it learned from users.registered, or, for a customer it
// never heard of, the one users' internal route gives. A version 1 event
// (with an email) still decodes, and is sent where users says, not where
// the event says. When users erases the customer, notifications empties
// their messages and writes to them no more.
func TestCustomersAndErasure(t *testing.T) {
	e := newShop(t)

	// Grace registers while notifications is not running, and her
	// users.registered is gone from the stream, so only users' internal
	// route can say where to write to her.
	grace := "grace-" + ids.New()[18:] + "@example.com"
	var g usersapi.User
	servicetest.Register(t, e.Users.URL, grace, servicetest.Password, "Grace").JSON(t, &g)
	e.Events(t, "users", func(es []events.Event) bool {
		return slices.ContainsFunc(es, func(e events.Event) bool { return strings.Contains(string(e.Data), g.ID) })
	})
	users, err := e.JS.Stream(context.Background(), "USERS")
	if err != nil {
		t.Fatal(err)
	}
	if err := users.Purge(context.Background(), jetstream.WithPurgeSubject("users.registered")); err != nil {
		t.Fatal(err)
	}
	n := e.start(t)

	ada := "ada-" + ids.New()[18:] + "@example.com"
	var a usersapi.User
	servicetest.Register(t, e.Users.URL, ada, servicetest.Password, "Ada").JSON(t, &a)
	waitFor(t, "Ada's welcome", func() bool {
		return slices.ContainsFunc(e.Mailbox.Messages(), func(m mailbox.Message) bool { return slices.Equal(m.To, []string{ada}) })
	})

	conf := e.publish(t, confirmed(a.ID))
	if m := e.emailOf(t, conf.ID); !slices.Equal(m.To, []string{ada}) {
		t.Errorf("Ada's receipt went to %v", m.To)
	}
	graceConf := e.publish(t, confirmed(g.ID))
	if m := e.emailOf(t, graceConf.ID); !slices.Equal(m.To, []string{grace}) {
		t.Errorf("Grace's receipt (address from users' internal route) went to %v", m.To)
	}
	// A version 1 event, as orders published them before: decoded, and
	// sent to the address users gave, not to the one in the event.
	old := newEvent(t, ordersapi.OrderConfirmedV1{OrderID: ids.New(), UserID: a.ID, Email: "stale@example.com",
		Lines: []ordersapi.Line{{SKU: "MUG-CERAMIC-12", Quantity: 1, PriceCents: 1400}}, TotalCents: 1400, Currency: "USD",
		PaymentID: "pay-old", ConfirmedAt: time.Now().UTC()}, time.Now())
	e.publishAs(t, old, old.ID)
	if m := e.emailOf(t, old.ID); !slices.Equal(m.To, []string{ada}) {
		t.Errorf("a version 1 receipt went to %v", m.To)
	}
	// A customer users does not know gets no email.
	stranger := e.publish(t, confirmed(ids.New()))
	marker := e.publish(t, confirmed(a.ID))
	e.emailOf(t, marker.ID)
	for _, d := range n.deliveriesOf(t, e.Admin, stranger) {
		if d.Channel == "email" {
			t.Errorf("an email for a customer nobody knows: %+v", d)
		}
	}

	// Ada is erased: her messages are emptied, Grace's are not.
	if r := servicetest.Call(t, "DELETE", e.Users.URL+"/api/users/accounts/"+a.ID, e.Admin, nil); r.Status != http.StatusNoContent {
		t.Fatalf("erasing Ada: %d %s", r.Status, r.Body)
	}
	waitFor(t, "Ada's messages emptied", func() bool {
		ds := n.deliveriesOf(t, e.Admin, conf)
		return len(ds) == 1 && ds[0].Recipient == "" && ds[0].Subject == ""
	})
	all := n.deliveries(t, e.Admin, "limit=100")
	for _, d := range all.Items {
		if strings.Contains(d.Recipient, "ada-") || strings.Contains(d.Subject, "Ada") {
			t.Errorf("a delivery still names Ada: %+v", d)
		}
	}
	if ds := n.deliveriesOf(t, e.Admin, graceConf); len(ds) != 1 || ds[0].Recipient != grace {
		t.Errorf("Grace's receipt after Ada's erasure: %+v", ds)
	}
	ds := n.deliveriesOf(t, e.Admin, conf)
	if r := servicetest.Call(t, "POST", n.URL+"/api/notifications/deliveries/"+ds[0].ID+"/replay", e.Admin, nil); r.Status != http.StatusConflict {
		t.Errorf("replaying an erased customer's message: %d %s", r.Status, r.Body)
	}
	// An order event about her after the erasure (one in flight) makes
	// no email.
	late := e.publish(t, confirmed(a.ID))
	marker = e.publish(t, confirmed(g.ID))
	e.emailOf(t, marker.ID)
	for _, d := range n.deliveriesOf(t, e.Admin, late) {
		if d.Channel == "email" {
			t.Errorf("an email for an erased customer: %+v", d)
		}
	}
}
