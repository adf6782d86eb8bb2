// Package isolation proves, with real processes, that a failing service
// stays its own problem: checkout works while notifications, reports or
// the broker itself is down, and when they come back they catch up with
// nothing lost and nothing doubled.
package isolation

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/test/systemtest"
)

var env = systemtest.ShopEnv()

type shop struct {
	s        *systemtest.System
	admin    *shopclient.Session
	customer *shopclient.Session
	sku      string
}

func open(t *testing.T) *shop {
	s := systemtest.Start(t, env...)
	client := systemtest.Shop(s.Gateway)
	sh := &shop{s: s, admin: systemtest.Login(t, client, systemtest.AdminEmail, systemtest.AdminPassword),
		customer: systemtest.Customer(t, client, "iso")}
	list, err := client.Products(context.Background(), shopclient.ProductQuery{Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
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

// buy places n orders and requires each to be CONFIRMED in the answer.
func (sh *shop) buy(t *testing.T, n int, prefix string) []string {
	t.Helper()
	var ids []string
	for i := range n {
		o, done, err := sh.customer.PlaceOrder(context.Background(), fmt.Sprintf("%s-%d", prefix, i),
			shopclient.Checkout(shopclient.CardApproved, shopclient.Line{SKU: sh.sku, Quantity: 1}))
		if err != nil || !done || o.Status != ordersapi.StatusConfirmed {
			t.Fatalf("order %d: answered at once %v, %+v, %v", i, done, o, err)
		}
		ids = append(ids, o.ID)
	}
	return ids
}

// receipts counts the customer's receipts per order and per Message-ID.
func (sh *shop) receipts(t *testing.T) (perOrder map[string]int, messageIDs map[string]int) {
	t.Helper()
	perOrder, messageIDs, err := sh.admin.Receipts(context.Background(), sh.customer.Email)
	if err != nil {
		t.Fatal(err)
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
