package balancer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

type fake struct {
	srv   *httptest.Server
	ready atomic.Bool
	hits  atomic.Int64
}

func newFake(t *testing.T) *fake {
	f := &fake{}
	f.ready.Store(true)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			if !f.ready.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		f.hits.Add(1)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func TestSpreadsOverReadyReplicasOnly(t *testing.T) {
	a, b, c := newFake(t), newFake(t), newFake(t)
	bal, err := New(a.srv.URL + "," + b.srv.URL + ", " + c.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	call := func(n int) {
		for range n {
			u := bal.Pick()
			resp, err := http.Get(u.String() + "/work")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	call(30)
	if a.hits.Load() != 10 || b.hits.Load() != 10 || c.hits.Load() != 10 {
		t.Fatalf("round robin: %d %d %d", a.hits.Load(), b.hits.Load(), c.hits.Load())
	}
	// b fails its readiness: after a probe it gets nothing more.
	b.ready.Store(false)
	bal.ProbeAll(context.Background())
	before := b.hits.Load()
	call(20)
	if b.hits.Load() != before || a.hits.Load()+c.hits.Load() != 40 {
		t.Fatalf("after b went unready: %d %d %d", a.hits.Load(), b.hits.Load(), c.hits.Load())
	}
	if bal.Ready() != 2 {
		t.Fatalf("ready = %d", bal.Ready())
	}
	// It comes back without anyone restarting anything.
	b.ready.Store(true)
	bal.ProbeAll(context.Background())
	call(30)
	if b.hits.Load() == before {
		t.Fatal("b never got traffic back")
	}
}

func TestDownAndExclude(t *testing.T) {
	a, b := newFake(t), newFake(t)
	bal, _ := New(a.srv.URL + "," + b.srv.URL)
	first := bal.Pick()
	bal.Down(first)
	for range 5 {
		if got := bal.Pick(); got == first {
			t.Fatal("a replica marked down was picked while another was ready")
		}
	}
	// Excluding the only ready one still returns a replica to try.
	other := bal.Pick()
	if got := bal.Pick(other); got != first {
		t.Fatalf("with the ready one excluded, want the remaining one, got %v", got)
	}
}

func TestSingleReplicaIsAlwaysChosen(t *testing.T) {
	bal, err := New("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	bal.Down(bal.Pick())
	if bal.Pick().Host != "127.0.0.1:1" {
		t.Fatal("a lone replica must always be chosen")
	}
	for _, bad := range []string{"", " , ", "not a url", "127.0.0.1:8080"} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
}

// Empty replica slots must not hand their turns to one ready replica.
func TestEvenShareWithEmptySlots(t *testing.T) {
	a, b, c := newFake(t), newFake(t), newFake(t)
	dead1, dead2 := newFake(t), newFake(t)
	dead1.srv.Close()
	dead2.srv.Close()
	bal, _ := New(a.srv.URL + "," + b.srv.URL + "," + c.srv.URL + "," + dead1.srv.URL + "," + dead2.srv.URL)
	bal.ProbeAll(context.Background())
	for range 300 {
		resp, err := http.Get(bal.Pick().String() + "/work")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for _, f := range []*fake{a, b, c} {
		if n := f.hits.Load(); n != 100 {
			t.Fatalf("shares %d %d %d, want 100 each", a.hits.Load(), b.hits.Load(), c.hits.Load())
		}
	}
}
