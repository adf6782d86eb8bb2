package loadgen

import (
	"context"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/orders/ordersapi"
)

func TestAttemptKind(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	dies := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close() // dies mid-request
	}))
	defer dies.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	kind := func(url string) string {
		return attemptKind(shopclient.MustNew(url, shopclient.Options{}).Get(context.Background(), "/api/x", nil))
	}
	if k := kind(closed); k != AttemptRefused {
		t.Errorf("a closed port gives %q, want %q", k, AttemptRefused)
	}
	if k := kind(dies.URL); k != AttemptClosed && k != AttemptReset {
		t.Errorf("a server that dies gives %q", k)
	}
	if k := kind(down.URL); k != "http 503" {
		t.Errorf("a 503 gives %q", k)
	}
}

// TestCustomLoad runs checkouts through a gateway that answers the first
// try of every order with a 503 and then 202: each call is
// retried to success, each order followed to CONFIRMED, and every
// figure counted once.
func TestCustomLoad(t *testing.T) {
	shop := newFakeShop()
	shop.pending = 2
	var tried sync.Map
	srv := wrap(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, again := tried.LoadOrStore(r.Header.Get("Idempotency-Key"), true)
			if r.Method == http.MethodPost && r.URL.Path == "/api/orders" && !again {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			if r.URL.Path == "/api/inventory/products" {
				http.Error(w, "gone", http.StatusGone)
				return
			}
			shop.routes().ServeHTTP(w, r)
		})
	})
	c := shopclient.MustNew(srv.URL, shopclient.Options{})
	reg := shopclient.Registration{Email: "a@example.com", Password: "pw", Name: "A"}
	if _, err := c.Register(context.Background(), reg); err != nil {
		t.Fatal(err)
	}
	s, err := c.Login(context.Background(), reg.Email, reg.Password)
	if err != nil {
		t.Fatal(err)
	}
	var thinks atomic.Int64
	l := Start(context.Background(), Custom{Workers: 3, Seed: 1, MaxOps: 6,
		Think: func(*mathrand.Rand) time.Duration { thinks.Add(1); return time.Millisecond },
		Op: func(ctx context.Context, w *Worker) {
			key := "k-" + itoa(w.ID) + "-" + itoa(w.N)
			o, ok := w.Place(ctx, s, key, shopclient.Checkout(shopclient.CardApproved, shopclient.Line{SKU: "SKU-01", Quantity: 1}))
			if ok {
				o, ok = w.Follow(ctx, s, o, time.Millisecond, 5*time.Second)
			}
			w.Finished(o, ok)
		}})
	deadline := time.Now().Add(10 * time.Second)
	for l.Counts().Checkouts < 6 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	l.Stop()
	got := l.Counts()
	if got.Checkouts != 6 || got.Confirmed != 6 || got.Placed != 6 || got.Failed != 0 {
		t.Errorf("counts %+v: want 6 checkouts placed and confirmed, none failed", got)
	}
	if got.Retries != 6 || got.RetriedOK != 6 || got.FailedAttempts != 6 {
		t.Errorf("retries %d, retried then succeeded %d, failed attempts %d; want 6 each", got.Retries, got.RetriedOK, got.FailedAttempts)
	}
	if attempts, _ := l.Kinds(); attempts["http 503"] != 6 {
		t.Errorf("failed attempts by kind %v", attempts)
	}
	orders := l.Orders()
	keys := l.Keys()
	for _, o := range orders {
		if o.Status != ordersapi.StatusConfirmed || !slices.Equal(keys[o.Key], []string{o.ID}) {
			t.Errorf("order %+v, key answered with %v", o, keys[o.Key])
		}
	}
	if len(orders) != 6 || thinks.Load() < 6 {
		t.Errorf("%d orders recorded after %d pauses", len(orders), thinks.Load())
	}

	// A call answered with a 4xx is given up at once, and sampled; an
	// unsafe one that meets a 503 is not retried.
	l = Start(context.Background(), Custom{Workers: 1, MaxOps: 1, Op: func(ctx context.Context, w *Worker) {
		_ = w.Call(ctx, true, func(ctx context.Context) error {
			_, err := c.Products(ctx, shopclient.ProductQuery{})
			return err
		})
		_ = w.Call(ctx, false, func(ctx context.Context) error {
			_, _, err := s.PlaceOrder(ctx, "unsafe", shopclient.Checkout(shopclient.CardApproved, shopclient.Line{SKU: "SKU-01", Quantity: 1}))
			return err
		})
	}})
	for l.Counts().Requests < 2 || l.Counts().Failed+l.Counts().RetriedOK < 2 {
		time.Sleep(10 * time.Millisecond)
	}
	l.Stop()
	got = l.Counts()
	_, gaveUp := l.Kinds()
	if got.Failed != 2 || got.Retries != 0 || gaveUp["http 410"] != 1 || gaveUp["http 503"] != 1 || len(l.Samples()) != 2 {
		t.Errorf("counts %+v, given up %v, samples %q", got, gaveUp, l.Samples())
	}
}
