package reports_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/service"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/gateway"
	"github.com/microshop/microshop/services/inventory"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/payments"
	"github.com/microshop/microshop/services/reports"
	"github.com/microshop/microshop/services/reports/reportsapi"
	"github.com/microshop/microshop/services/users"
)

// shop is the real system in one test, as services/orders' shop test
// runs it, with reports: users, inventory, payments, orders, reports and
// the gateway, each a real service on its own port and database, sharing
// one embedded NATS server. The test talks through the gateway only.
type shop struct {
	gateway string
	admin   string
}

func startShop(t *testing.T) *shop {
	t.Helper()
	natsURL := servicetest.NATS(t)
	names := []string{"users", "inventory", "orders", "payments", "reports", "gateway"}
	seeds, publics, err := auth.GenerateServiceKeys(names)
	if err != nil {
		t.Fatal(err)
	}
	start := func(name string, args ...string) *servicetest.Service {
		env := map[string]string{
			"MICROSHOP_SERVICE_KEY": seeds[name], "MICROSHOP_SERVICE_KEYS": publics,
			"MICROSHOP_ADMIN_EMAIL": adminEmail, "MICROSHOP_ADMIN_PASSWORD": adminPassword,
			"MICROSHOP_REGISTER_RATE_IP": "0", "MICROSHOP_LOGIN_RATE_IP": "0",
		}
		return servicetest.Start(t, specOf(name), append([]string{"--nats", natsURL, "--data", t.TempDir()}, args...), env)
	}
	u := start("users")
	inv := start("inventory", "--users-url", u.URL)
	pay := start("payments", "--users-url", u.URL)
	ord := start("orders", "--users-url", u.URL, "--inventory-url", inv.URL, "--payments-url", pay.URL, "--checkout-wait", "5s")
	rep := start("reports", "--users-url", u.URL)
	gw := start("gateway", "--users-url", u.URL, "--inventory-url", inv.URL, "--payments-url", pay.URL,
		"--orders-url", ord.URL, "--reports-url", rep.URL, "--rate-limit", "0")
	s := &shop{gateway: gw.URL}
	s.admin = login(t, gw.URL, adminEmail, adminPassword)
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
	case "reports":
		return reports.Spec()
	default:
		return gateway.Spec("users", "inventory", "orders", "payments", "reports")
	}
}

func (s *shop) customer(t *testing.T) string {
	t.Helper()
	email := fmt.Sprintf("shopper-%d@example.com", time.Now().UnixNano())
	r := servicetest.Call(t, "POST", s.gateway+"/api/users/register", "", map[string]string{
		"email": email, "password": "long enough password", "name": "Shopper"})
	if r.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	return login(t, s.gateway, email, "long enough password")
}

func (s *shop) place(t *testing.T, token, card string, skuQty ...any) ordersapi.Order {
	t.Helper()
	var lines []map[string]any
	for i := 0; i+1 < len(skuQty); i += 2 {
		lines = append(lines, map[string]any{"sku": skuQty[i], "quantity": skuQty[i+1]})
	}
	body := map[string]any{
		"lines":            lines,
		"shipping_address": map[string]string{"name": "Ada Lovelace", "street": "1 Analytical Way", "city": "London", "postal_code": "N1 7AA", "country": "GB"},
		"card":             map[string]any{"number": card, "exp_month": 12, "exp_year": time.Now().Year() + 2, "cvc": "123"},
	}
	r := servicetest.Call(t, "POST", s.gateway+"/api/orders", token, body, "Idempotency-Key", fmt.Sprint(time.Now().UnixNano()))
	if r.Status != http.StatusCreated {
		t.Fatalf("checkout: %d %s", r.Status, r.Body)
	}
	var o ordersapi.Order
	r.JSON(t, &o)
	return o
}

// ordersFigures are what orders itself says, read as an admin.
type ordersFigures struct {
	confirmed, rejected, cancelled int64
	confirmedCents, cancelledCents int64
	unitsBySKU                     map[string]int64
}

func (s *shop) ordersFigures(t *testing.T) ordersFigures {
	t.Helper()
	f := ordersFigures{unitsBySKU: map[string]int64{}}
	token := ""
	for {
		r := servicetest.Call(t, "GET", s.gateway+"/api/orders?all=true&limit=100&page_token="+token, s.admin, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("listing orders: %d %s", r.Status, r.Body)
		}
		var page struct {
			Items         []ordersapi.Order `json:"items"`
			NextPageToken string            `json:"next_page_token"`
		}
		r.JSON(t, &page)
		for _, o := range page.Items {
			switch o.Status {
			case ordersapi.StatusConfirmed:
				f.confirmed++
				f.confirmedCents += o.TotalCents
				for _, l := range o.Lines {
					f.unitsBySKU[l.SKU] += l.Quantity
				}
			case ordersapi.StatusRejected:
				f.rejected++
			case ordersapi.StatusCancelled:
				f.cancelled++
				f.cancelledCents += o.TotalCents
			default:
				t.Fatalf("order %s is still %s", o.ID, o.Status)
			}
		}
		if page.NextPageToken == "" {
			return f
		}
		token = page.NextPageToken
	}
}

// TestShop places real orders through the gateway (confirmed, declined,
// confirmed then cancelled) and checks that reports, from events alone,
// arrives at orders' own figures, before and after a rebuild.
func TestShop(t *testing.T) {
	s := startShop(t)
	ada := s.customer(t)
	var list struct{ Items []inventoryapi.Product }
	servicetest.Call(t, "GET", s.gateway+"/api/inventory/products?limit=3", "", nil).JSON(t, &list)
	if len(list.Items) < 3 {
		t.Fatalf("want 3 products, got %d", len(list.Items))
	}
	p := list.Items
	for _, o := range []ordersapi.Order{
		s.place(t, ada, goodCard, p[0].SKU, 1, p[1].SKU, 2),
		s.place(t, ada, goodCard, p[2].SKU, 3),
		s.place(t, ada, "4000 0000 0000 0002", p[0].SKU, 1),
	} {
		if o.Status == ordersapi.StatusPending {
			t.Fatalf("order %s still PENDING", o.ID)
		}
	}
	doomed := s.place(t, ada, goodCard, p[1].SKU, 1)
	r := servicetest.Call(t, "POST", s.gateway+"/api/orders/"+doomed.ID+"/cancel", ada, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}

	want := s.ordersFigures(t)
	if want.confirmed != 2 || want.rejected != 1 || want.cancelled != 1 {
		t.Fatalf("orders says %+v", want)
	}
	summary := func() reportsapi.Summary {
		var sum reportsapi.Summary
		r := servicetest.Call(t, "GET", s.gateway+"/api/reports/summary", s.admin, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("summary: %d %s", r.Status, r.Body)
		}
		r.JSON(t, &sum)
		return sum
	}
	matches := func(sum reportsapi.Summary) bool {
		return sum.OrdersConfirmed == want.confirmed && sum.OrdersRejected == want.rejected &&
			sum.OrdersCancelled == want.cancelled && sum.NetCents == want.confirmedCents &&
			sum.RevenueCents == want.confirmedCents+want.cancelledCents && sum.RefundsCents == want.cancelledCents &&
			sum.CapturedCents == sum.RevenueCents && sum.PaymentsFailed == 1 && !sum.Rebuilding
	}
	var got reportsapi.Summary
	deadline := time.Now().Add(20 * time.Second)
	for got = summary(); !matches(got); got = summary() {
		if time.Now().After(deadline) {
			t.Fatalf("reports never matched orders\n reports %+v\n orders  %+v", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Units of the orders still confirmed, per product.
	var top reportsapi.TopProducts
	servicetest.Call(t, "GET", s.gateway+"/api/reports/top-products", s.admin, nil).JSON(t, &top)
	for _, item := range top.Items {
		if item.Units != want.unitsBySKU[item.SKU] {
			t.Errorf("%s: reports says %d units sold, orders %d", item.SKU, item.Units, want.unitsBySKU[item.SKU])
		}
	}
	if len(top.Items) != 3 || top.Items[0].CancelledUnits+top.Items[1].CancelledUnits+top.Items[2].CancelledUnits != 1 {
		t.Errorf("top products %+v", top.Items)
	}

	// A rebuild through the gateway arrives at the same figures.
	r = servicetest.Call(t, "POST", s.gateway+"/api/reports/rebuild", s.admin, nil)
	if r.Status != http.StatusAccepted {
		t.Fatalf("rebuild: %d %s", r.Status, r.Body)
	}
	var rb reportsapi.Rebuild
	r.JSON(t, &rb)
	deadline = time.Now().Add(20 * time.Second)
	for rb.State == reportsapi.RebuildRunning {
		if time.Now().After(deadline) {
			t.Fatalf("rebuild still running: %+v", rb)
		}
		time.Sleep(25 * time.Millisecond)
		servicetest.Call(t, "GET", s.gateway+"/api/reports/rebuild", s.admin, nil).JSON(t, &rb)
	}
	if rb.State != reportsapi.RebuildDone || rb.Applied != rb.Total || rb.Total < got.EventsApplied {
		t.Fatalf("rebuild ended %+v", rb)
	}
	if after := summary(); after != got {
		t.Fatalf("the rebuild changed the summary\n before %+v\n after  %+v", got, after)
	}
	if !strings.Contains(string(servicetest.Call(t, "GET", s.gateway+"/api/reports/sales?format=csv", s.admin, nil).Body), "start,orders,") {
		t.Error("no CSV through the gateway")
	}
}

const goodCard = "4242 4242 4242 4242"
