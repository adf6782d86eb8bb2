package orders_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/invariants"
	"github.com/microshop/microshop/internal/platform/auth"
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
	"github.com/microshop/microshop/services/users/usersapi"
)

// shop is a real system in one test: users, inventory, payments, orders
// and the gateway, each a real service on its own port and database,
// sharing one embedded NATS server. Tests talk to orders through a proxy
// that checks every exchange against its OpenAPI document.
type shop struct {
	gateway  string
	orders   string // orders, through the OpenAPI checker
	checker  *openapitest.Checker
	services map[string]*servicetest.Service
	args     map[string][]string // each service's flags, to start it again
	admin    string              // an admin access token
	nats     string
	env      func(name string, extra ...string) map[string]string
}

// restart starts a stopped service again on its address and data.
func (s *shop) restart(t *testing.T, name string) {
	t.Helper()
	s.services[name] = servicetest.Start(t, specOf(name), s.args[name], s.env(name))
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
	natsURL := servicetest.NATS(t)
	seeds, publics, err := auth.GenerateServiceKeys([]string{"users", "inventory", "orders", "payments", "gateway"})
	if err != nil {
		t.Fatal(err)
	}
	env := func(name string, extra ...string) map[string]string {
		m := map[string]string{
			"MICROSHOP_SERVICE_KEY":      seeds[name],
			"MICROSHOP_SERVICE_KEYS":     publics,
			"MICROSHOP_ADMIN_EMAIL":      "admin@example.com",
			"MICROSHOP_ADMIN_PASSWORD":   "admin password 123",
			"MICROSHOP_REGISTER_RATE_IP": "0",
			"MICROSHOP_LOGIN_RATE_IP":    "0",
		}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	db := func(name string) []string {
		if o.db != nil {
			return o.db(name)
		}
		return nil
	}
	s := &shop{services: map[string]*servicetest.Service{}, args: map[string][]string{}, nats: natsURL, env: env}
	start := func(name string, args ...string) *servicetest.Service {
		full := append([]string{"--nats", natsURL, "--data", t.TempDir()}, args...)
		full = append(full, db(name)...)
		svc := servicetest.Start(t, specOf(name), full, env(name))
		s.services[name] = svc
		s.args[name] = append(full, "--addr", strings.TrimPrefix(svc.URL, "http://"))
		return svc
	}
	u := start("users")
	inv := start("inventory", "--users-url", u.URL)
	pay := start("payments", "--users-url", u.URL, "--slow-card-delay", o.slowCard)
	ord := start("orders", "--users-url", u.URL, "--inventory-url", inv.URL, "--payments-url", pay.URL,
		"--step-timeout", o.stepTimeout, "--checkout-wait", "5s")
	gw := start("gateway", "--users-url", u.URL, "--inventory-url", inv.URL, "--payments-url", pay.URL,
		"--orders-url", ord.URL, "--rate-limit", "0")
	s.gateway = gw.URL
	s.orders, s.checker = openapitest.Proxy(t, orders.OpenAPI(), ord.URL)
	s.admin = s.login(t, "admin@example.com", "admin password 123")
	return s
}

func specOf(name string) service.Spec {
	switch name {
	case "users":
		return users.Spec()
	case "inventory":
		return inventory.Spec()
	case "payments":
		return payments.Spec()
	case "orders":
		return orders.Spec()
	default:
		return gateway.Spec("users", "inventory", "orders", "payments")
	}
}

func (s *shop) login(t *testing.T, email, password string) string {
	t.Helper()
	r := servicetest.Call(t, "POST", s.gateway+"/api/users/login", "", map[string]string{"email": email, "password": password})
	if r.Status != http.StatusOK {
		t.Fatalf("login %s: %d %s", email, r.Status, r.Body)
	}
	var tok usersapi.Tokens
	r.JSON(t, &tok)
	return tok.AccessToken
}

// customer registers a new customer and returns their access token.
func (s *shop) customer(t *testing.T, name string) string {
	t.Helper()
	email := fmt.Sprintf("%s-%d@example.com", name, time.Now().UnixNano())
	r := servicetest.Call(t, "POST", s.gateway+"/api/users/register", "", map[string]string{
		"email": email, "password": "long enough password", "name": name})
	if r.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	return s.login(t, email, "long enough password")
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
	r := servicetest.Call(t, "GET", s.gateway+"/api/inventory/stock", s.admin, nil)
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
	chk := &invariants.Checker{Gateway: s.gateway, AdminToken: s.admin}
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
