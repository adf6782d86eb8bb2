// Package telemetry checks, on the real system, that one checkout is one
// trace across every service it touches, over HTTP and over NATS, and
// that every service's /metrics carries the request figures.
package telemetry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/collector"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/users/usersapi"
	"github.com/microshop/microshop/test/systemtest"
)

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

// running lists the processes of the system, from run.json.
func running(t *testing.T, s *systemtest.System) map[string]string {
	b, err := os.ReadFile(filepath.Join(s.Data, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Services []struct{ Name, URL string }
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range st.Services {
		out[c.Name] = c.URL
	}
	return out
}

func TestOneCheckoutIsOneTrace(t *testing.T) {
	s := systemtest.Start(t, "MICROSHOP_ADMIN_EMAIL=admin@example.com", "MICROSHOP_ADMIN_PASSWORD=admin password 123")
	admin := login(t, s.Gateway, "admin@example.com", "admin password 123")
	r := servicetest.Call(t, "POST", s.Gateway+"/api/users/register", "", map[string]string{"email": "t@example.com", "password": "long enough password", "name": "T"})
	if r.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	tok := login(t, s.Gateway, "t@example.com", "long enough password")
	var list struct{ Items []inventoryapi.Product }
	servicetest.Call(t, "GET", s.Gateway+"/api/inventory/products?limit=1", "", nil).JSON(t, &list)
	body := map[string]any{
		"lines":            []map[string]any{{"sku": list.Items[0].SKU, "quantity": 1}},
		"shipping_address": map[string]string{"name": "T", "street": "1 Way", "city": "Oslo", "postal_code": "0150", "country": "NO"},
		"card":             map[string]any{"number": "4242424242424242", "exp_month": 12, "exp_year": time.Now().Year() + 1, "cvc": "123"},
	}
	r = servicetest.Call(t, "POST", s.Gateway+"/api/orders", tok, body, "Idempotency-Key", "trace-me")
	var o ordersapi.Order
	r.JSON(t, &o)
	if r.Status != http.StatusCreated || o.Status != ordersapi.StatusConfirmed {
		t.Fatalf("checkout: %d %s", r.Status, r.Body)
	}

	want := []string{"gateway", "orders", "inventory", "payments"}
	procs := running(t, s)
	for _, consumer := range []string{"notifications", "reports"} {
		if _, ok := procs[consumer]; ok {
			want = append(want, consumer)
		}
	}
	// Find the checkout's trace: the one whose orders spans name this order.
	// Spans arrive from every process in its own batches: wait until the
	// trace holds every service and each consumer's handling of orders'
	// event, not just the first span of each.
	var spans []collector.Span
	deadline := time.Now().Add(20 * time.Second)
	for {
		spans = checkoutTrace(t, s.Gateway, admin, o.ID)
		if hasAll(spans, want) && consumedFromOrders(spans, want[4:]) || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if !hasAll(spans, want) {
		t.Fatalf("the checkout's trace has spans from %v, want at least %v", services(spans), want)
	}

	// One root, and every other span's parent is in the trace.
	byID := map[string]collector.Span{}
	for _, sp := range spans {
		byID[sp.SpanID] = sp
	}
	roots := 0
	for _, sp := range spans {
		if sp.ParentSpanID == "" {
			roots++
			if sp.Service != "gateway" || sp.Kind != "server" {
				t.Errorf("the root span is %s %q (%s), want the gateway's server span", sp.Service, sp.Name, sp.Kind)
			}
			continue
		}
		if _, ok := byID[sp.ParentSpanID]; !ok {
			t.Errorf("span %s %q has a parent %s that is not in the trace", sp.Service, sp.Name, sp.ParentSpanID)
		}
	}
	if roots != 1 {
		t.Errorf("%d root spans, want 1", roots)
	}
	// Across processes: each service's server span is the child of another
	// service's client span; each consumer's span the child of orders'
	// publish span, across NATS.
	crossHTTP, crossNATS := map[string]bool{}, map[string]bool{}
	for _, sp := range spans {
		p, ok := byID[sp.ParentSpanID]
		if !ok || p.Service == sp.Service {
			continue
		}
		switch {
		case sp.Kind == "server" && p.Kind == "client":
			crossHTTP[p.Service+"->"+sp.Service] = true
		case sp.Kind == "consumer" && p.Kind == "producer":
			crossNATS[p.Service+"->"+sp.Service] = true
		default:
			t.Errorf("a link across services from %s %s to %s %s", p.Service, p.Kind, sp.Service, sp.Kind)
		}
	}
	for _, edge := range []string{"gateway->orders", "orders->inventory", "orders->payments"} {
		if !crossHTTP[edge] {
			t.Errorf("no %s call in the trace; calls: %v", edge, crossHTTP)
		}
	}
	for _, consumer := range want[4:] {
		if !crossNATS["orders->"+consumer] {
			t.Errorf("no orders->%s event in the trace; events: %v", consumer, crossNATS)
		}
	}

	// The service map derived from spans shows the same edges.
	var m struct {
		Edges []collector.EdgeFigures `json:"edges"`
	}
	servicetest.Call(t, "GET", s.Gateway+"/api/telemetry/metrics", admin, nil).JSON(t, &m)
	seen := map[string]bool{}
	for _, e := range m.Edges {
		seen[e.From+"->"+e.To] = true
	}
	for _, edge := range []string{"gateway->orders", "orders->inventory", "orders->payments"} {
		if !seen[edge] {
			t.Errorf("the service map lacks %s: %+v", edge, m.Edges)
		}
	}
	// Customers may not read telemetry.
	if r := servicetest.Call(t, "GET", s.Gateway+"/api/telemetry/traces", tok, nil); r.Status != http.StatusForbidden {
		t.Errorf("a customer reading traces: %d", r.Status)
	}

	// One page gathers every service's metrics, labelled by service.
	page := servicetest.Call(t, "GET", s.Gateway+"/api/telemetry/scrape", admin, nil)
	if page.Status != http.StatusOK {
		t.Fatalf("scrape: %d %s", page.Status, page.Body)
	}
	all := string(page.Body)
	for _, want := range []string{`http_server_requests_total{`, `service="orders"`, `service="gateway"`, "outbox_backlog{", "orders_sagas_in_flight{"} {
		if !strings.Contains(all, want) {
			t.Errorf("the gathered metrics lack %s", want)
		}
	}
	if _, ok := procs["notifications"]; ok {
		for _, want := range []string{"events_consumer_lag{", "events_consumed_total{"} {
			if !strings.Contains(all, want) {
				t.Errorf("the gathered metrics lack %s", want)
			}
		}
	}

	// Every service's /metrics counts the requests by route, method and code.
	for name, url := range procs {
		if name == "nats" {
			continue
		}
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		buf := make([]byte, 1<<16)
		for {
			n, err := resp.Body.Read(buf)
			sb.Write(buf[:n])
			if err != nil {
				break
			}
		}
		resp.Body.Close()
		text := sb.String()
		for _, want := range []string{"http_server_requests_total{", `code="200"`, "http_server_request_duration_seconds_bucket{", "go_goroutines"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s /metrics lacks %s", name, want)
			}
		}
	}
}

// checkoutTrace finds the trace that holds order id's saga.
func checkoutTrace(t *testing.T, gw, admin, orderID string) []collector.Span {
	var list struct{ Items []collector.TraceSummary }
	servicetest.Call(t, "GET", gw+"/api/telemetry/traces?service=orders&limit=50", admin, nil).JSON(t, &list)
	for _, tr := range list.Items {
		var full struct{ Spans []collector.Span }
		servicetest.Call(t, "GET", fmt.Sprintf("%s/api/telemetry/traces/%s", gw, tr.TraceID), admin, nil).JSON(t, &full)
		for _, sp := range full.Spans {
			if sp.Attributes["order.id"] == orderID {
				return full.Spans
			}
		}
	}
	return nil
}

func services(spans []collector.Span) []string {
	seen := map[string]bool{}
	var out []string
	for _, sp := range spans {
		if !seen[sp.Service] {
			seen[sp.Service] = true
			out = append(out, sp.Service)
		}
	}
	return out
}

func hasAll(spans []collector.Span, want []string) bool {
	have := map[string]bool{}
	for _, s := range services(spans) {
		have[s] = true
	}
	for _, w := range want {
		if !have[w] {
			return false
		}
	}
	return true
}

// consumedFromOrders reports whether each consumer has a span handling an
// event published by orders.
func consumedFromOrders(spans []collector.Span, consumers []string) bool {
	byID := map[string]collector.Span{}
	for _, sp := range spans {
		byID[sp.SpanID] = sp
	}
	seen := map[string]bool{}
	for _, sp := range spans {
		if p, ok := byID[sp.ParentSpanID]; ok && sp.Kind == "consumer" && p.Kind == "producer" && p.Service == "orders" {
			seen[sp.Service] = true
		}
	}
	for _, c := range consumers {
		if !seen[c] {
			return false
		}
	}
	return true
}
