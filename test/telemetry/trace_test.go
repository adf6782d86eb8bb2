// Package telemetry checks, on the real system, that one checkout is one
// trace across every service it touches, over HTTP and over NATS, and
// that every service's /metrics carries the request figures.
package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/collector"
	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/test/systemtest"
)

func TestOneCheckoutIsOneTrace(t *testing.T) {
	s := systemtest.Start(t, systemtest.AdminEnv...)
	shop := systemtest.Shop(s.Gateway)
	admin := systemtest.Login(t, shop, systemtest.AdminEmail, systemtest.AdminPassword).Token()
	customer := systemtest.Customer(t, shop, "T")
	tok := customer.Token()
	ctx := context.Background()
	list, err := shop.Products(ctx, shopclient.ProductQuery{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	o, done, err := customer.PlaceOrder(ctx, "trace-me", shopclient.Checkout(shopclient.CardApproved, shopclient.Line{SKU: list.Items[0].SKU, Quantity: 1}))
	if err != nil || !done || o.Status != ordersapi.StatusConfirmed {
		t.Fatalf("checkout: answered at once %v, %+v, %v", done, o, err)
	}

	want := []string{"gateway", "orders", "inventory", "payments"}
	st, err := localrun.ReadState(s.Data)
	if err != nil {
		t.Fatal(err)
	}
	for _, consumer := range []string{"notifications", "reports"} {
		if len(st.Running(consumer)) > 0 {
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
	// Span names are operations, by route template and subject as
	// OpenTelemetry's conventions name them, so the list of operations
	// stays short: no span name holds an id, and the gateway's root says
	// which request it was rather than "POST /api/*".
	names := map[string]bool{}
	for _, sp := range spans {
		names[sp.Service+": "+sp.Name+" ["+sp.Kind+"]"] = true
		if ulid.MatchString(sp.Name) || strings.Contains(sp.Name, o.ID) {
			t.Errorf("span %s %q (%s) is named with an id", sp.Service, sp.Name, sp.Kind)
		}
		if sp.ParentSpanID == "" && strings.Contains(sp.Name, "/api/*") {
			t.Errorf("the root span is %q, want it named by the route that answered", sp.Name)
		}
	}
	for _, want := range []string{
		"gateway: POST /api/orders [server]", "gateway: POST /api/orders [client]", "orders: POST /api/orders [server]",
		"orders: POST /internal/reservations/{order_id}/commit [client]", "inventory: POST /internal/reservations/{order_id}/commit [server]",
		"orders: orders.confirmed publish [producer]",
	} {
		if !names[want] {
			t.Errorf("no span %s in the trace", want)
		}
	}
	for _, consumer := range want[4:] {
		if !names[consumer+": orders.confirmed process [consumer]"] {
			t.Errorf("no span %s: orders.confirmed process [consumer] in the trace", consumer)
		}
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
	if len(st.Running("notifications")) > 0 {
		for _, want := range []string{"events_consumer_lag{", "events_consumed_total{"} {
			if !strings.Contains(all, want) {
				t.Errorf("the gathered metrics lack %s", want)
			}
		}
	}

	// Every service's /metrics counts the requests by route, method and code.
	for _, p := range st.Services {
		name, url := p.Name, p.URL
		if name == "nats" {
			continue
		}
		resp, err := s.ServiceClient(name).Get(url + "/metrics")
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

// ulid matches an id of package ids: 26 characters of Crockford's base32.
var ulid = regexp.MustCompile(`(?i)\b[0-9a-hjkmnp-tv-z]{26}\b`)

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
