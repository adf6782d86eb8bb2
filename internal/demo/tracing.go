package demo

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/collector"
	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/orders/ordersapi"
)

// tracing follows one checkout through the collector's trace of it.
func tracing(ctx context.Context, d *demo) (Verdict, error) {
	var v Verdict
	d.r.step("Set up a customer")
	custs, err := customers(ctx, d.shop, "trace", 1)
	if err != nil {
		return v, err
	}
	var list struct {
		Items []struct {
			SKU  string `json:"sku"`
			Name string `json:"name"`
		}
	}
	if err := d.shop.Get(ctx, "/api/inventory/products?limit=1", &list); err != nil {
		return v, err
	}
	if len(list.Items) == 0 {
		return v, fmt.Errorf("the catalog is empty")
	}
	sku := list.Items[0].SKU
	d.r.logf("%s logged in; the product: %s (%s)", custs[0].Email, sku, list.Items[0].Name)

	d.r.step("One checkout: 1 × %s", sku)
	start := time.Now()
	o, err := checkout(ctx, custs[0], "trace-1", shopclient.CardApproved, line(sku, 1))
	if err != nil {
		return v, err
	}
	took := time.Since(start)
	d.r.logf("order %s %s in %.1fms, as the client saw it", o.ID, outcome(o), float64(took.Microseconds())/1000)

	// Everything the checkout touches: the synchronous path, and the
	// consumers of its events when the system runs them.
	want := []string{"gateway", "orders", "inventory", "payments"}
	for _, consumer := range []string{"notifications", "reports"} {
		if ok, err := d.sys.has(ctx, consumer); err != nil {
			return v, err
		} else if ok {
			want = append(want, consumer)
		}
	}

	d.r.step("Find the trace that holds order %s in the collector", o.ID)
	d.r.logf("GET /api/telemetry/traces?service=orders, then each trace until a span has order.id = %s", o.ID)
	var spans []collector.Span
	deadline := time.Now().Add(20 * time.Second)
	last := -1
	for {
		spans, err = orderTrace(ctx, d, o.ID)
		if err != nil {
			return v, err
		}
		got := spanServices(spans)
		complete := len(spans) > 0 && !slices.ContainsFunc(want, func(s string) bool { return !slices.Contains(got, s) })
		if len(spans) == 0 {
			d.r.logf("not in the collector yet")
		} else {
			d.r.logf("%d spans so far, from %s", len(spans), strings.Join(got, ", "))
		}
		// Done when every service has reported and no span came late.
		if complete && len(spans) == last {
			break
		}
		last = len(spans)
		if time.Now().After(deadline) {
			break
		}
		if err := sleep(ctx, time.Second); err != nil {
			return v, err
		}
	}
	if len(spans) == 0 {
		v.check(false, "no trace in the collector holds order %s", o.ID)
		v.decide("", "the checkout's trace was not found")
		return v, nil
	}

	d.r.step("Trace %s as a tree (offset from the first span, duration, service: span [kind])", spans[0].TraceID)
	tree, st := spanTree(spans)
	d.r.plain(tree)

	got := spanServices(spans)
	var missing []string
	for _, s := range want {
		if !slices.Contains(got, s) {
			missing = append(missing, s)
		}
	}
	var edges []string
	for e := range st.crossHTTP {
		edges = append(edges, e)
	}
	for e := range st.crossEvents {
		edges = append(edges, e+" (event)")
	}
	sort.Strings(edges)
	v.figure("order", "%s %s in %.1fms", o.ID, outcome(o), float64(took.Microseconds())/1000)
	v.figure("trace", "%s", spans[0].TraceID)
	v.figure("spans", "%d from %d services (%s)", len(spans), len(got), strings.Join(got, ", "))
	v.figure("depth", "%d levels", st.depth)
	v.figure("root", "%s %q, %.1fms", st.rootService, st.rootName, st.rootMS)
	v.figure("whole trace", "%.1fms from the first span's start to the last one's end", st.spanMS)
	v.figure("links across processes", "%d over HTTP, %d over NATS: %s", st.httpLinks, st.eventLinks, strings.Join(edges, ", "))

	v.check(o.Status == ordersapi.StatusConfirmed, "the checkout ended %s", outcome(o))
	v.check(len(missing) == 0, "no spans from %s", strings.Join(missing, ", "))
	v.check(st.roots == 1 && st.rootService == "gateway", "%d root spans (the first from %s), want one, the gateway's", st.roots, st.rootService)
	v.check(st.orphans == 0, "%d spans name a parent that is not in the trace", st.orphans)
	for _, e := range []string{"gateway->orders", "orders->inventory", "orders->payments"} {
		v.check(st.crossHTTP[e], "no %s call in the trace", e)
	}
	for _, c := range want[4:] {
		v.check(st.crossEvents["orders->"+c], "no orders->%s event in the trace", c)
	}
	v.decide(fmt.Sprintf("one checkout is one trace: %d spans across %d services under one root, linked over HTTP and NATS", len(spans), len(got)),
		"the checkout's trace is not whole")
	return v, nil
}

// orderTrace finds the trace whose spans carry order.id = id.
func orderTrace(ctx context.Context, d *demo, id string) ([]collector.Span, error) {
	var list struct{ Items []collector.TraceSummary }
	if err := d.admin.Get(ctx, "/api/telemetry/traces?service=orders&limit=50", &list); err != nil {
		return nil, err
	}
	for _, tr := range list.Items {
		var full struct{ Spans []collector.Span }
		if err := d.admin.Get(ctx, "/api/telemetry/traces/"+url.PathEscape(tr.TraceID), &full); err != nil {
			return nil, err
		}
		for _, sp := range full.Spans {
			if sp.Attributes["order.id"] == id {
				return full.Spans, nil
			}
		}
	}
	return nil, nil
}

// spanServices lists the services of spans, in the order they appear.
func spanServices(spans []collector.Span) []string {
	var out []string
	for _, sp := range spans {
		if !slices.Contains(out, sp.Service) {
			out = append(out, sp.Service)
		}
	}
	return out
}

// treeStats are the figures of a trace's shape.
type treeStats struct {
	roots, orphans, depth  int
	rootService, rootName  string
	rootMS, spanMS         float64
	httpLinks, eventLinks  int
	crossHTTP, crossEvents map[string]bool
}

// spanTree draws spans as an indented tree, children in start order.
func spanTree(spans []collector.Span) (string, treeStats) {
	st := treeStats{crossHTTP: map[string]bool{}, crossEvents: map[string]bool{}}
	byID := map[string]collector.Span{}
	for _, sp := range spans {
		byID[sp.SpanID] = sp
	}
	children := map[string][]collector.Span{}
	var roots []collector.Span
	first, lastEnd := spans[0].Start, spans[0].End
	for _, sp := range spans {
		if sp.Start.Before(first) {
			first = sp.Start
		}
		if sp.End.After(lastEnd) {
			lastEnd = sp.End
		}
		p, ok := byID[sp.ParentSpanID]
		switch {
		case sp.ParentSpanID == "":
			st.roots++
			roots = append(roots, sp)
		case !ok:
			st.orphans++
			roots = append(roots, sp)
		default:
			children[sp.ParentSpanID] = append(children[sp.ParentSpanID], sp)
			if p.Service != sp.Service {
				switch {
				case sp.Kind == "server" && p.Kind == "client":
					st.httpLinks++
					st.crossHTTP[p.Service+"->"+sp.Service] = true
				case sp.Kind == "consumer" && p.Kind == "producer":
					st.eventLinks++
					st.crossEvents[p.Service+"->"+sp.Service] = true
				}
			}
		}
	}
	st.spanMS = ms(lastEnd.Sub(first))
	byStart := func(s []collector.Span) {
		sort.SliceStable(s, func(i, j int) bool { return s[i].Start.Before(s[j].Start) })
	}
	byStart(roots)
	if len(roots) > 0 {
		st.rootService, st.rootName, st.rootMS = roots[0].Service, roots[0].Name, ms(roots[0].End.Sub(roots[0].Start))
	}
	var b strings.Builder
	var draw func(sp collector.Span, prefix, branch string, depth int)
	draw = func(sp collector.Span, prefix, branch string, depth int) {
		st.depth = max(st.depth, depth)
		status := ""
		if sp.Status == "error" {
			status = "  ERROR " + sp.StatusMessage
		}
		fmt.Fprintf(&b, "+%7.1fms %8.1fms  %s%s: %s [%s]%s\n", ms(sp.Start.Sub(first)), ms(sp.End.Sub(sp.Start)),
			prefix+branch, sp.Service, sp.Name, sp.Kind, status)
		kids := children[sp.SpanID]
		byStart(kids)
		next := prefix
		switch branch {
		case "├─ ":
			next += "│  "
		case "└─ ":
			next += "   "
		}
		for i, k := range kids {
			br := "├─ "
			if i == len(kids)-1 {
				br = "└─ "
			}
			draw(k, next, br, depth+1)
		}
	}
	for _, r := range roots {
		draw(r, "", "", 1)
	}
	return b.String(), st
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
