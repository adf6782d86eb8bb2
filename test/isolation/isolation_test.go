// Package isolation proves, with real processes, that a failing service
// stays its own problem: checkout works while notifications, reports or
// the broker itself is down, and when they come back they catch up with
// nothing lost and nothing doubled.
package isolation

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/mailbox"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/users/usersapi"
	"github.com/microshop/microshop/test/systemtest"
)

var env = []string{
	"MICROSHOP_ADMIN_EMAIL=admin@example.com",
	"MICROSHOP_ADMIN_PASSWORD=admin password 123",
	"MICROSHOP_REGISTER_RATE_IP=0",
	"MICROSHOP_LOGIN_RATE_IP=0",
	"MICROSHOP_RATE_LIMIT=0",
}

type shop struct {
	s        *systemtest.System
	admin    string
	customer string
	email    string
	sku      string
}

func login(t *testing.T, gw, email, password string) string {
	t.Helper()
	r := servicetest.Call(t, "POST", gw+"/api/users/login", "", map[string]string{"email": email, "password": password})
	if r.Status != http.StatusOK {
		t.Fatalf("login: %d %s", r.Status, r.Body)
	}
	var tok usersapi.Tokens
	r.JSON(t, &tok)
	return tok.AccessToken
}

func open(t *testing.T) *shop {
	s := systemtest.Start(t, env...)
	sh := &shop{s: s, admin: login(t, s.Gateway, "admin@example.com", "admin password 123"),
		email: fmt.Sprintf("iso-%d@example.com", time.Now().UnixNano())}
	r := servicetest.Call(t, "POST", s.Gateway+"/api/users/register", "", map[string]string{"email": sh.email, "password": "long enough password", "name": "Iso"})
	if r.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	sh.customer = login(t, s.Gateway, sh.email, "long enough password")
	var list struct{ Items []inventoryapi.Product }
	servicetest.Call(t, "GET", s.Gateway+"/api/inventory/products?limit=20", "", nil).JSON(t, &list)
	for _, p := range list.Items {
		if p.Available >= 60 {
			sh.sku = p.SKU
			break
		}
	}
	if sh.sku == "" {
		t.Fatal("no product with enough stock")
	}
	return sh
}

// buy places n orders and requires each to be CONFIRMED.
func (sh *shop) buy(t *testing.T, n int, prefix string) []string {
	t.Helper()
	var ids []string
	for i := range n {
		r := servicetest.Call(t, "POST", sh.s.Gateway+"/api/orders", sh.customer, map[string]any{
			"lines":            []map[string]any{{"sku": sh.sku, "quantity": 1}},
			"shipping_address": map[string]string{"name": "Iso", "street": "1 Way", "city": "Lima", "postal_code": "15001", "country": "PE"},
			"card":             map[string]any{"number": "4242424242424242", "exp_month": 12, "exp_year": time.Now().Year() + 1, "cvc": "123"},
		}, "Idempotency-Key", fmt.Sprintf("%s-%d", prefix, i))
		var o ordersapi.Order
		r.JSON(t, &o)
		if r.Status != http.StatusCreated || o.Status != ordersapi.StatusConfirmed {
			t.Fatalf("order %d: %d %s", i, r.Status, r.Body)
		}
		ids = append(ids, o.ID)
	}
	return ids
}

// receipts reads the built-in mailbox through the gateway and counts the
// receipts of each order, and the Message-IDs seen.
func (sh *shop) receipts(t *testing.T) (perOrder map[string]int, messageIDs map[string]int) {
	t.Helper()
	var box struct{ Items []mailbox.Message }
	r := servicetest.Call(t, "GET", sh.s.Gateway+"/api/mailbox/messages?limit=1000&to="+url.QueryEscape(sh.email), sh.admin, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("mailbox: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &box)
	perOrder, messageIDs = map[string]int{}, map[string]int{}
	for _, m := range box.Items {
		if !strings.HasSuffix(m.Subject, " is confirmed") {
			continue
		}
		id := strings.TrimSuffix(strings.TrimPrefix(m.Subject, "Your microshop order "), " is confirmed")
		perOrder[id]++
		messageIDs[m.MessageID]++
	}
	return perOrder, messageIDs
}

// expectReceipts waits until every order has its receipt, then a little
// longer, and requires exactly one each.
func (sh *shop) expectReceipts(t *testing.T, ids []string) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		got, _ := sh.receipts(t)
		all := true
		for _, id := range ids {
			if got[id] == 0 {
				all = false
			}
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 45s only %d of %d receipts arrived", len(got), len(ids))
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // anything doubled would land by now
	got, mids := sh.receipts(t)
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("order %s has %d receipts, want exactly 1", id, got[id])
		}
	}
	for mid, n := range mids {
		if n != 1 {
			t.Errorf("message %s arrived %d times", mid, n)
		}
	}
	if len(got) != len(ids) {
		t.Errorf("%d orders have receipts, want %d", len(got), len(ids))
	}
}

func TestCheckoutWhileNotificationsIsDown(t *testing.T) {
	sh := open(t)
	sh.s.Kill(t, "notifications")
	ids := sh.buy(t, 20, "no-notifications")
	if got, _ := sh.receipts(t); len(got) != 0 {
		t.Fatalf("receipts arrived while notifications was down: %v", got)
	}
	sh.s.StartService(t, "notifications")
	sh.expectReceipts(t, ids)
}

func TestCheckoutWhileTheBrokerIsDown(t *testing.T) {
	sh := open(t)
	sh.s.Kill(t, "nats")
	// Orders confirm: the saga calls inventory and payments over HTTP, and
	// the events wait in each service's outbox.
	ids := sh.buy(t, 10, "no-nats")
	sh.s.StartService(t, "nats")
	// Every event is published once the broker is back, and handled once.
	sh.expectReceipts(t, ids)
}
