package orders_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/invariants"
	"github.com/microshop/microshop/internal/platform/openapi/openapitest"
	"github.com/microshop/microshop/internal/platform/service"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/gateway"
	inventory "github.com/microshop/microshop/services/inventory"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/payments"
	"github.com/microshop/microshop/services/users"
)

// shop is a servicetest.Shop running users, inventory, payments, orders
// and the gateway, each a real service on its own port and database.
// Tests talk to orders through a proxy that checks every exchange against
// its OpenAPI document.
type shop struct {
	*servicetest.Shop
	gateway string
	orders  string // orders, through the OpenAPI checker
	checker *openapitest.Checker
}

type shopOptions struct {
	stepTimeout string // orders --step-timeout
	slowCard    string // payments --slow-card-delay
	db          func(name string) []string
}

func startShop(t *testing.T, o shopOptions) *shop {
	t.Helper()
	if o.stepTimeout == "" {
		o.stepTimeout = "5s"
	}
	if o.slowCard == "" {
		o.slowCard = "3s"
	}
	args := map[string][]string{
		"payments": {"--slow-card-delay", o.slowCard},
		"orders":   {"--step-timeout", o.stepTimeout, "--checkout-wait", "5s"},
		"gateway":  {"--rate-limit", "0"},
	}
	if o.db != nil {
		for _, name := range []string{"users", "inventory", "payments", "orders"} {
			args[name] = append(args[name], o.db(name)...)
		}
	}
	s := &shop{Shop: servicetest.NewShop(t, users.Spec(), servicetest.ShopOptions{
		Keys: []string{"inventory", "orders", "payments", "gateway"}, UsersArgs: args["users"]})}
	s.StartAll(t, []service.Spec{inventory.Spec(), payments.Spec(), orders.Spec(), gateway.Spec("users", "inventory", "orders", "payments")}, args)
	s.gateway = s.Service("gateway").URL
	s.orders, s.checker = openapitest.Proxy(t, orders.OpenAPI(), s.Service("orders").URL)
	return s
}

// products returns the first n products of the catalog with stock.
func (s *shop) products(t *testing.T, n int) []inventoryapi.Product {
	t.Helper()
	r := servicetest.Call(t, "GET", fmt.Sprintf("%s/api/inventory/products?limit=%d", s.gateway, n), "", nil)
	var list struct{ Items []inventoryapi.Product }
	r.JSON(t, &list)
	if len(list.Items) < n {
		t.Fatalf("want %d products, got %d", n, len(list.Items))
	}
	return list.Items
}

// stock returns received stock by sku, for the invariant checker.
func (s *shop) stock(t *testing.T) map[string]inventoryapi.StockLevel {
	t.Helper()
	r := servicetest.Call(t, "GET", s.gateway+"/api/inventory/stock", s.Admin, nil)
	var list struct{ Items []inventoryapi.StockLevel }
	r.JSON(t, &list)
	out := map[string]inventoryapi.StockLevel{}
	for _, l := range list.Items {
		out[l.SKU] = l
	}
	return out
}

func (s *shop) received(t *testing.T) map[string]int64 {
	out := map[string]int64{}
	for sku, l := range s.stock(t) {
		out[sku] = l.Received
	}
	return out
}

// check settles the system and fails the test on any broken invariant.
func (s *shop) check(t *testing.T, exp invariants.Expect) invariants.Report {
	t.Helper()
	chk := &invariants.Checker{Gateway: s.gateway, AdminToken: s.Admin}
	rep, err := chk.Settle(context.Background(), 30*time.Second, exp)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rep.Violations {
		t.Errorf("invariant: %s", v)
	}
	return rep
}

const goodCard = "4242 4242 4242 4242"

func orderBody(card string, lines ...any) map[string]any {
	ls := []map[string]any{}
	for i := 0; i+1 < len(lines); i += 2 {
		ls = append(ls, map[string]any{"sku": lines[i], "quantity": lines[i+1]})
	}
	return map[string]any{
		"lines":            ls,
		"shipping_address": map[string]string{"name": "Ada Lovelace", "street": "1 Analytical Way", "city": "London", "postal_code": "N1 7AA", "country": "GB"},
		"card":             map[string]any{"number": card, "exp_month": 12, "exp_year": time.Now().Year() + 2, "cvc": "123"},
	}
}

// place posts an order and returns the response and the decoded order.
func (s *shop) place(t *testing.T, token, key string, body any) (servicetest.Response, ordersapi.Order) {
	t.Helper()
	r := servicetest.Call(t, "POST", s.orders+"/api/orders", token, body, "Idempotency-Key", key)
	var o ordersapi.Order
	if r.Status == http.StatusCreated || r.Status == http.StatusAccepted {
		r.JSON(t, &o)
	}
	return r, o
}

// await polls an order until its status is final.
func (s *shop) await(t *testing.T, token, id string) ordersapi.Order {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := servicetest.Call(t, "GET", s.orders+"/api/orders/"+id, token, nil)
		var o ordersapi.Order
		r.JSON(t, &o)
		if o.Status != ordersapi.StatusPending {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s still PENDING after 30s", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
