package ordersapi_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/openapi/openapitest"
	"github.com/microshop/microshop/internal/platform/service"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/inventory"
	"github.com/microshop/microshop/services/orders"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/payments"
	"github.com/microshop/microshop/services/payments/paymentsapi"
	"github.com/microshop/microshop/services/users"
)

// The client against the real orders service, behind the OpenAPI
// checker, with the real inventory and payments its checkouts call.
func TestClient(t *testing.T) {
	shop := servicetest.NewShop(t, users.Spec(), servicetest.ShopOptions{Keys: []string{"inventory", "orders", "payments"}})
	shop.StartAll(t, []service.Spec{inventory.Spec(), payments.Spec(), orders.Spec()}, nil)
	url, _ := openapitest.Proxy(t, orders.OpenAPI(), shop.Service("orders").URL)
	c := ordersapi.NewClient(url, client.Options{Timeout: 10 * time.Second}, nil)
	ctx := context.Background()

	order := func(sku, card string) ordersapi.PlaceOrder {
		return ordersapi.PlaceOrder{
			Lines:           []ordersapi.LineRequest{{SKU: sku, Quantity: 1}},
			ShippingAddress: ordersapi.Address{Name: "Ada", Street: "1 Analytical Way", City: "London", PostalCode: "N1", Country: "GB"},
			Card:            paymentsapi.Card{Number: card, ExpMonth: 12, ExpYear: time.Now().Year() + 2, CVC: "123"},
		}
	}
	o, err := c.Place(ctx, shop.Customer, "first", order("MUG-CERAMIC-12", "4242424242424242"))
	if err != nil || o.ID == "" {
		t.Fatalf("place: %+v %v", o, err)
	}
	for o.Status == ordersapi.StatusPending {
		time.Sleep(50 * time.Millisecond)
		if o, err = c.Get(ctx, shop.Customer, o.ID); err != nil {
			t.Fatal(err)
		}
	}
	if o.Status != ordersapi.StatusConfirmed || o.TotalCents <= 0 {
		t.Fatalf("the order ended %s (%s), total %d", o.Status, o.Reason, o.TotalCents)
	}
	again, err := c.Place(ctx, shop.Customer, "first", order("MUG-CERAMIC-12", "4242424242424242"))
	if err != nil || again.ID != o.ID {
		t.Fatalf("the same key again gave %+v %v, want order %s", again, err, o.ID)
	}
	if _, err := c.Place(ctx, shop.Customer, "first", order("MUG-CERAMIC-12", "4000000000000002")); !errors.Is(err, ordersapi.ErrKeyReused) {
		t.Fatalf("the same key for another order: %v, want ErrKeyReused", err)
	}

	stranger := shop.NewCustomer(t, "Stranger")
	if _, err := c.Get(ctx, stranger, o.ID); !errors.Is(err, ordersapi.ErrNotFound) {
		t.Fatalf("another customer's order: %v, want ErrNotFound", err)
	}
	if _, err := c.Get(ctx, "", o.ID); !errors.Is(err, ordersapi.ErrUnauthorized) {
		t.Fatalf("no token: %v, want ErrUnauthorized", err)
	}
	list, next, err := c.List(ctx, shop.Customer, 10, "")
	if err != nil || len(list) != 1 || list[0].ID != o.ID || next != "" {
		t.Fatalf("list: %+v %q %v", list, next, err)
	}

	cancelled, err := c.Cancel(ctx, shop.Customer, o.ID)
	if err != nil || cancelled.ID != o.ID {
		t.Fatalf("cancel: %+v %v", cancelled, err)
	}
	declined, err := c.Place(ctx, shop.Customer, "second", order("MUG-CERAMIC-12", "4000000000000002"))
	for err == nil && declined.Status == ordersapi.StatusPending {
		time.Sleep(50 * time.Millisecond)
		declined, err = c.Get(ctx, shop.Customer, declined.ID)
	}
	if err != nil || declined.Status != ordersapi.StatusRejected || declined.Reason != ordersapi.ReasonPaymentDeclined {
		t.Fatalf("a declined card: %+v %v", declined, err)
	}
	if _, err := c.Cancel(ctx, shop.Customer, declined.ID); !errors.Is(err, ordersapi.ErrNotCancellable) {
		t.Fatalf("cancelling a rejected order: %v, want ErrNotCancellable", err)
	}
}
