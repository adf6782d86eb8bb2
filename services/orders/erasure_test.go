package orders_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/orders/ordersapi"
)

// orders.* events name the customer by id, never by email; when users
// erases the customer, their orders lose the name and street address but
// keep the amounts (and the country) for the books, and another
// customer's orders are untouched.
func TestErasureAndEventsWithoutEmail(t *testing.T) {
	s := startShop(t, shopOptions{})
	p := s.products(t, 1)[0]
	ada := s.NewCustomer(t, "ada")
	other := s.NewCustomer(t, "grace")
	_, mine := s.place(t, ada, "erase-1", orderBody(goodCard, p.SKU, 1))
	_, theirs := s.place(t, other, "erase-2", orderBody(goodCard, p.SKU, 1))
	mine, theirs = s.await(t, ada, mine.ID), s.await(t, other, theirs.ID)
	if mine.Status != ordersapi.StatusConfirmed || theirs.Status != ordersapi.StatusConfirmed {
		t.Fatalf("orders: %s %s", mine.Status, theirs.Status)
	}

	evs := s.Events(t, "orders", func(es []events.Event) bool { return len(es) >= 2 })
	for _, e := range evs {
		var b ordersapi.OrderConfirmed
		if err := e.Decode(&b); err != nil {
			t.Errorf("%s: %v", e.Type, err)
		}
		var raw map[string]any
		if json.Unmarshal(e.Data, &raw) == nil {
			if _, ok := raw["email"]; ok || strings.Contains(string(e.Data), "@example.com") {
				t.Errorf("%s carries an email: %s", e.Type, e.Data)
			}
		}
		if b.UserID == "" {
			t.Errorf("%s names no customer: %s", e.Type, e.Data)
		}
	}

	if r := servicetest.Call(t, "DELETE", s.Users.URL+"/api/users/me", ada, map[string]string{"password": servicetest.Password}); r.Status != http.StatusNoContent {
		t.Fatalf("erasing: %d %s", r.Status, r.Body)
	}
	// Her access token still verifies until it expires (orders checks
	// its signature, not the account), which lets the test read her order.
	var after ordersapi.Order
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		after = ordersapi.Order{}
		servicetest.Call(t, "GET", s.orders+"/api/orders/"+mine.ID, ada, nil).JSON(t, &after)
		if after.ShippingAddress.Name == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the order's address was not erased within 20s: %+v", after.ShippingAddress)
		}
	}
	if after.ShippingAddress != (ordersapi.Address{Country: "GB"}) || after.TotalCents != mine.TotalCents ||
		after.Status != ordersapi.StatusConfirmed || len(after.Lines) != 1 || after.Card != mine.Card {
		t.Errorf("after erasure: %+v, before %+v", after, mine)
	}
	r := servicetest.Call(t, "GET", s.orders+"/api/orders/"+theirs.ID, other, nil)
	var o ordersapi.Order
	r.JSON(t, &o)
	if o.ShippingAddress.Name != "Ada Lovelace" || o.ShippingAddress.Street == "" {
		t.Errorf("another customer's order lost its address: %+v", o.ShippingAddress)
	}
}
