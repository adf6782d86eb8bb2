package client_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/mtls"
	"github.com/microshop/microshop/internal/platform/server"
)

// BenchmarkInternalCall: one service-to-service call as orders makes it
// to inventory, over loopback HTTP: the platform client (deadline,
// breaker, bulkhead, service credential, JSON) against a service's real
// server (request id, load shedding, metrics, tracing, body limit, the
// credential check of an /internal/ route, JSON).
//
//	go test -run '^$' -bench . -benchmem ./internal/platform/client
//
// cpu-ns/op is the CPU of both ends together, per call. The same call
// through the in-process transport of --mode monolith, and without the
// credential, is BenchmarkServiceCall in internal/platform/inproc.
//
// plain is HTTP as in --mtls=false; mtls is the same call over the
// mutual TLS that run uses, on a kept-alive connection (the handshake is
// paid once; its cost is BenchmarkHandshake in internal/platform/mtls).
func BenchmarkInternalCall(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchInternalCall(b, false) })
	b.Run("mtls", func(b *testing.B) { benchInternalCall(b, true) })
}

func benchInternalCall(b *testing.B, viaTLS bool) {
	seeds, publics, err := auth.GenerateServiceKeys([]string{"orders", "inventory"})
	if err != nil {
		b.Fatal(err)
	}
	orders, _ := auth.ParseServiceKeys("orders", seeds["orders"], publics)
	inventory, _ := auth.ParseServiceKeys("inventory", seeds["inventory"], publics)

	opts := server.Options{Service: "inventory", Log: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(), MaxInFlight: 1024}
	copts := client.Options{}
	scheme := "http://"
	if viaTLS {
		dir := b.TempDir()
		if _, err := mtls.Ensure(dir, []string{"orders", "inventory"}, time.Now()); err != nil {
			b.Fatal(err)
		}
		inv, err := mtls.Load(mtls.FilesIn(dir, "inventory"))
		if err != nil {
			b.Fatal(err)
		}
		ord, err := mtls.Load(mtls.FilesIn(dir, "orders"))
		if err != nil {
			b.Fatal(err)
		}
		opts.TLS, copts.TLS, scheme = inv.ServerConfig(), ord, "https://"
	}
	srv := server.New(opts)
	srv.Router.With(auth.RequireService(inventory, "orders")).Post("/internal/reservations", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			OrderID string `json:"order_id"`
			Lines   []struct {
				SKU      string `json:"sku"`
				Quantity int    `json:"quantity"`
			} `json:"lines"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"order_id": in.OrderID, "status": "reserved", "expires_at": 1700000000000})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, ln, time.Second) }()
	b.Cleanup(func() { cancel(); <-done })

	cl := client.New("inventory", scheme+ln.Addr().String(), auth.NewCredentials(orders), copts, nil)
	in := map[string]any{"order_id": "01HZX3Y7Q2M8N4P6R9S0T1V2W3", "lines": []map[string]any{{"sku": "SKU-0001", "quantity": 2}}}
	call := func() {
		var out struct{ Status string }
		if err := cl.Do(context.Background(), client.Call{Method: http.MethodPost, Path: "/internal/reservations", In: in, Out: &out}); err != nil {
			b.Fatal(err)
		}
		if out.Status != "reserved" {
			b.Fatalf("answer %+v", out)
		}
	}
	call() // a connection in the pool, the credential signed and checked once
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		call()
	}
	if haveCPUTime {
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	}
}
