package reports_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

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

// startSystem runs the real system on a servicetest.Shop, as orders'
// tests run it, with reports: users, inventory, payments, orders, reports
// and the gateway, each a real service on its own port and database,
// sharing one NATS server. It returns the gateway's URL; the test talks
// through the gateway only.
func startSystem(t *testing.T) (*servicetest.Shop, string) {
	t.Helper()
	s := servicetest.NewShop(t, users.Spec(), servicetest.ShopOptions{Keys: []string{"inventory", "orders", "payments", "reports", "gateway"}})
	s.StartAll(t, []service.Spec{inventory.Spec(), payments.Spec(), orders.Spec(), reports.Spec(),
		gateway.Spec("users", "inventory", "orders", "payments", "reports")},
		map[string][]string{"orders": {"--checkout-wait", "5s"}, "gateway": {"--rate-limit", "0"}})
	return s, s.Service("gateway").URL
}

func place(t *testing.T, gw, token, card string, skuQty ...any) ordersapi.Order {
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
	r := servicetest.Call(t, "POST", gw+"/api/orders", token, body, "Idempotency-Key", fmt.Sprint(time.Now().UnixNano()))
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

func readOrdersFigures(t *testing.T, gw, admin string) ordersFigures {
	t.Helper()
	f := ordersFigures{unitsBySKU: map[string]int64{}}
	token := ""
	for {
		r := servicetest.Call(t, "GET", gw+"/api/orders?all=true&limit=100&page_token="+token, admin, nil)
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
	s, gw := startSystem(t)
	ada := s.NewCustomer(t, "Ada")
	var list struct{ Items []inventoryapi.Product }
	servicetest.Call(t, "GET", gw+"/api/inventory/products?limit=3", "", nil).JSON(t, &list)
	if len(list.Items) < 3 {
		t.Fatalf("want 3 products, got %d", len(list.Items))
	}
	p := list.Items
	for _, o := range []ordersapi.Order{
		place(t, gw, ada, goodCard, p[0].SKU, 1, p[1].SKU, 2),
		place(t, gw, ada, goodCard, p[2].SKU, 3),
		place(t, gw, ada, "4000 0000 0000 0002", p[0].SKU, 1),
	} {
		if o.Status == ordersapi.StatusPending {
			t.Fatalf("order %s still PENDING", o.ID)
		}
	}
	doomed := place(t, gw, ada, goodCard, p[1].SKU, 1)
	r := servicetest.Call(t, "POST", gw+"/api/orders/"+doomed.ID+"/cancel", ada, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}

	want := readOrdersFigures(t, gw, s.Admin)
	if want.confirmed != 2 || want.rejected != 1 || want.cancelled != 1 {
		t.Fatalf("orders says %+v", want)
	}
	summary := func() reportsapi.Summary {
		var sum reportsapi.Summary
		r := servicetest.Call(t, "GET", gw+"/api/reports/summary", s.Admin, nil)
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
	servicetest.Call(t, "GET", gw+"/api/reports/top-products", s.Admin, nil).JSON(t, &top)
	for _, item := range top.Items {
		if item.Units != want.unitsBySKU[item.SKU] {
			t.Errorf("%s: reports says %d units sold, orders %d", item.SKU, item.Units, want.unitsBySKU[item.SKU])
		}
	}
	if len(top.Items) != 3 || top.Items[0].CancelledUnits+top.Items[1].CancelledUnits+top.Items[2].CancelledUnits != 1 {
		t.Errorf("top products %+v", top.Items)
	}

	// A rebuild through the gateway arrives at the same figures.
	r = servicetest.Call(t, "POST", gw+"/api/reports/rebuild", s.Admin, nil)
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
		servicetest.Call(t, "GET", gw+"/api/reports/rebuild", s.Admin, nil).JSON(t, &rb)
	}
	if rb.State != reportsapi.RebuildDone || rb.Applied != rb.Total || rb.Total < got.EventsApplied {
		t.Fatalf("rebuild ended %+v", rb)
	}
	if after := summary(); after != got {
		t.Fatalf("the rebuild changed the summary\n before %+v\n after  %+v", got, after)
	}
	if !strings.Contains(string(servicetest.Call(t, "GET", gw+"/api/reports/sales?format=csv", s.Admin, nil).Body), "start,orders,") {
		t.Error("no CSV through the gateway")
	}
}

const goodCard = "4242 4242 4242 4242"
