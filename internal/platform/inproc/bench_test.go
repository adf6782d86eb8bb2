package inproc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/inproc"
	"github.com/microshop/microshop/internal/platform/server"
)

// One service-to-service call, the way orders calls inventory: the
// platform client (deadline, breaker, bulkhead, JSON) against a service's
// real server (request id, load shedding, metrics, tracing, body limit,
// chi routing, JSON), over loopback HTTP and over the in-process
// transport. Run with
//
//	go test -run '^$' -bench . -benchmem ./internal/platform/inproc
//
// Besides ns/op (wall time, which a busy machine inflates) each reports
// cpu-ns/op: the CPU time the process spent per call, caller and callee
// together, kernel included: what a hop costs the machine.

// measureCPU reports the CPU time per op of what runs until the returned
// function is called.
func measureCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		b.StopTimer()
		if b.N > 0 && haveCPUTime {
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

type reserveLine struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

type reserveIn struct {
	OrderID string        `json:"order_id"`
	Lines   []reserveLine `json:"lines"`
}

type reserveOut struct {
	OrderID   string `json:"order_id"`
	Status    string `json:"status"`
	ExpiresAt int64  `json:"expires_at"`
}

// benchService is a service with one /internal/ route that decodes a
// JSON body and answers JSON, behind the shared middleware.
func benchService() *server.Server {
	srv := server.New(server.Options{Service: "inventory", Log: slog.New(slog.DiscardHandler),
		Registry: prometheus.NewRegistry(), MaxInFlight: 1024})
	srv.Router.Post("/internal/reservations", func(w http.ResponseWriter, r *http.Request) {
		var in reserveIn
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(reserveOut{OrderID: in.OrderID, Status: "reserved", ExpiresAt: 1700000000000})
	})
	return srv
}

// loopback serves srv on a real socket and returns its base URL.
func loopback(b *testing.B, srv *server.Server) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ctx, ln, time.Second)
	}()
	b.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String()
}

// inProcess registers srv under a port nobody listens on.
func inProcess(b *testing.B, srv *server.Server) (string, *inproc.Registry) {
	base := deadPort(b)
	reg := inproc.NewRegistry()
	g, err := reg.Register(srv, base)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(g.Close)
	return base, reg
}

var benchIn = reserveIn{OrderID: "01HZX3Y7Q2M8N4P6R9S0T1V2W3", Lines: []reserveLine{{SKU: "SKU-0001", Quantity: 2}, {SKU: "SKU-0042", Quantity: 1}}}

func benchClient(b *testing.B, base string, transport http.RoundTripper) {
	cl := client.New("inventory", base, nil, client.Options{Transport: transport}, nil)
	call := func() {
		var out reserveOut
		if err := cl.Do(context.Background(), client.Call{Method: http.MethodPost, Path: "/internal/reservations", In: benchIn, Out: &out}); err != nil {
			b.Fatal(err)
		}
		if out.Status != "reserved" {
			b.Fatalf("answer %+v", out)
		}
	}
	call() // warm: a connection in the pool, the route compiled
	b.ReportAllocs()
	b.ResetTimer()
	done := measureCPU(b)
	for b.Loop() {
		call()
	}
	done()
}

func benchClientParallel(b *testing.B, base string, transport http.RoundTripper) {
	cl := client.New("inventory", base, nil, client.Options{Transport: transport}, nil)
	b.ReportAllocs()
	b.ResetTimer()
	defer measureCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var out reserveOut
			if err := cl.Do(context.Background(), client.Call{Method: http.MethodPost, Path: "/internal/reservations", In: benchIn, Out: &out}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// benchRaw is the transport alone: a bare http.Client, no platform client.
func benchRaw(b *testing.B, base string, transport http.RoundTripper) {
	hc := &http.Client{Transport: transport}
	body, _ := json.Marshal(benchIn)
	call := func() {
		resp, err := hc.Post(base+"/internal/reservations", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	call()
	b.ReportAllocs()
	b.ResetTimer()
	done := measureCPU(b)
	for b.Loop() {
		call()
	}
	done()
}

// BenchmarkHop is the hop alone: a bare http.Client and a handler that
// answers two bytes, so what is measured is the transport.
func BenchmarkHop(b *testing.B) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write([]byte("ok"))
	})
	b.Run("loopback-http", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: ok}
		go func() { _ = srv.Serve(ln) }()
		b.Cleanup(func() { _ = srv.Close() })
		benchHop(b, "http://"+ln.Addr().String(), inproc.NewFallback())
	})
	b.Run("in-process", func(b *testing.B) {
		base := deadPort(b)
		reg := inproc.NewRegistry()
		if _, err := reg.Register(ok, base); err != nil {
			b.Fatal(err)
		}
		benchHop(b, base, reg.Transport())
	})
}

func benchHop(b *testing.B, base string, transport http.RoundTripper) {
	hc := &http.Client{Transport: transport}
	call := func() {
		resp, err := hc.Post(base+"/hop", "application/json", bytes.NewReader([]byte(`{}`)))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	call()
	b.ReportAllocs()
	b.ResetTimer()
	done := measureCPU(b)
	for b.Loop() {
		call()
	}
	done()
}

func BenchmarkServiceCall(b *testing.B) {
	b.Run("client/loopback-http", func(b *testing.B) {
		benchClient(b, loopback(b, benchService()), nil) // the client's own pool, as in production
	})
	b.Run("client/in-process", func(b *testing.B) {
		base, reg := inProcess(b, benchService())
		benchClient(b, base, reg.Transport())
	})
	b.Run("client-parallel/loopback-http", func(b *testing.B) {
		benchClientParallel(b, loopback(b, benchService()), nil)
	})
	b.Run("client-parallel/in-process", func(b *testing.B) {
		base, reg := inProcess(b, benchService())
		benchClientParallel(b, base, reg.Transport())
	})
	b.Run("raw/loopback-http", func(b *testing.B) {
		benchRaw(b, loopback(b, benchService()), inproc.NewFallback())
	})
	b.Run("raw/in-process", func(b *testing.B) {
		base, reg := inProcess(b, benchService())
		benchRaw(b, base, reg.Transport())
	})
}
