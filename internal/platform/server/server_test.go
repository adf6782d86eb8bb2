package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/internal/platform/httpjson"
	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/platform/server"
)

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newServer returns a server with a few test routes mounted.
func newServer(t *testing.T, o server.Options) *server.Server {
	t.Helper()
	if o.Log == nil {
		o.Log = quietLog()
	}
	s := server.New(o)
	s.Router.Get("/things/{id}", func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusOK, map[string]string{"id": chi.URLParam(r, "id")})
	})
	s.Router.Route("/api/things", func(r chi.Router) {
		r.Get("/{id}/parts", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	})
	s.Router.Get("/panic", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	s.Router.Post("/echo", func(w http.ResponseWriter, r *http.Request) {
		var v struct {
			Text string `json:"text"`
		}
		if p := httpjson.Decode(w, r, &v); p != nil {
			problem.Write(w, r, p)
			return
		}
		httpjson.Write(w, http.StatusOK, v)
	})
	return s
}

func decodeProblem(t *testing.T, res *http.Response) problem.Problem {
	t.Helper()
	if ct := res.Header.Get("Content-Type"); ct != problem.ContentType {
		t.Errorf("Content-Type = %q, want %q", ct, problem.ContentType)
	}
	var p problem.Problem
	if err := json.NewDecoder(res.Body).Decode(&p); err != nil {
		t.Fatalf("decoding the problem: %v", err)
	}
	return p
}

func TestUnknownRouteIs404Problem(t *testing.T) {
	ts := httptest.NewServer(newServer(t, server.Options{}))
	defer ts.Close()
	res, err := http.Get(ts.URL + "/nowhere")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("status = %d, want 404", res.StatusCode)
	}
	p := decodeProblem(t, res)
	if p.Status != 404 || p.Instance != "/nowhere" || p.RequestID == "" {
		t.Errorf("problem = %+v; want status 404, instance /nowhere and a request id", p)
	}
}

func TestWrongMethodIs405Problem(t *testing.T) {
	ts := httptest.NewServer(newServer(t, server.Options{}))
	defer ts.Close()
	res, err := http.Post(ts.URL+"/things/1", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("status = %d, want 405", res.StatusCode)
	}
	if p := decodeProblem(t, res); p.Status != 405 {
		t.Errorf("problem status = %d, want 405", p.Status)
	}
	if allow := res.Header.Get("Allow"); allow != "GET, HEAD, OPTIONS" {
		t.Errorf("Allow = %q, want the methods of /things/{id}: GET, HEAD, OPTIONS", allow)
	}
}

// HEAD is answered wherever GET is, with GET's status and headers and no
// body (RFC 9110).
func TestHeadWhereverGet(t *testing.T) {
	ts := httptest.NewServer(newServer(t, server.Options{}))
	defer ts.Close()
	res, err := http.Head(ts.URL + "/things/1")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	get, err := http.Get(ts.URL + "/things/1")
	if err != nil {
		t.Fatal(err)
	}
	get.Body.Close()
	if res.StatusCode != get.StatusCode || res.Header.Get("Content-Type") != get.Header.Get("Content-Type") {
		t.Errorf("HEAD: %d %q; GET: %d %q", res.StatusCode, res.Header.Get("Content-Type"), get.StatusCode, get.Header.Get("Content-Type"))
	}
}

func TestPanicIs500AndServerKeepsServing(t *testing.T) {
	ts := httptest.NewServer(newServer(t, server.Options{}))
	defer ts.Close()
	for range 3 {
		res, err := http.Get(ts.URL + "/panic")
		if err != nil {
			t.Fatalf("request to a panicking handler failed: %v", err)
		}
		if res.StatusCode != http.StatusInternalServerError {
			t.Errorf("status = %d, want 500", res.StatusCode)
		}
		p := decodeProblem(t, res)
		res.Body.Close()
		if strings.Contains(p.Detail, "boom") {
			t.Errorf("the panic value leaked to the client: %+v", p)
		}
	}
	res, err := http.Get(ts.URL + "/things/7")
	if err != nil {
		t.Fatalf("the server stopped serving after a panic: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("status after panics = %d, want 200", res.StatusCode)
	}
}

func TestBodyLimit(t *testing.T) {
	ts := httptest.NewServer(newServer(t, server.Options{MaxBody: 64}))
	defer ts.Close()
	big := `{"text":"` + strings.Repeat("x", 100) + `"}`

	t.Run("declared length", func(t *testing.T) {
		res, err := http.Post(ts.URL+"/echo", "application/json", strings.NewReader(big))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status = %d, want 413", res.StatusCode)
		}
		decodeProblem(t, res)
	})
	t.Run("chunked", func(t *testing.T) {
		// No Content-Length: the limit is found while reading.
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/echo", io.MultiReader(strings.NewReader(big)))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if req.ContentLength != 0 && req.ContentLength != -1 {
			t.Fatalf("the request was not chunked: ContentLength = %d", req.ContentLength)
		}
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status = %d, want 413", res.StatusCode)
		}
		decodeProblem(t, res)
	})
	t.Run("under the limit", func(t *testing.T) {
		res, err := http.Post(ts.URL+"/echo", "application/json", strings.NewReader(`{"text":"hi"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("status = %d, want 200", res.StatusCode)
		}
	})
}

func TestHealthz(t *testing.T) {
	s := newServer(t, server.Options{Checks: map[string]server.Check{
		"db": func(context.Context) error { return errors.New("down") },
	}})
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	// Liveness does not depend on the dependencies.
	if w.Code != http.StatusOK {
		t.Errorf("/healthz = %d, want 200", w.Code)
	}
}

func TestReadyz(t *testing.T) {
	var dbErr atomic.Pointer[error]
	s := newServer(t, server.Options{Checks: map[string]server.Check{
		"database": func(context.Context) error {
			if e := dbErr.Load(); e != nil {
				return *e
			}
			return nil
		},
		"nats": func(context.Context) error { return nil },
	}})
	get := func() (int, map[string]string) {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		var body map[string]string
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("decoding /readyz: %v (%s)", err, w.Body)
		}
		if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control = %q, want no-store", cc)
		}
		return w.Code, body
	}
	if code, body := get(); code != http.StatusOK || body["database"] != "ok" || body["nats"] != "ok" {
		t.Errorf("/readyz = %d %v, want 200 with both ok", code, body)
	}
	e := errors.New("database: connection refused")
	dbErr.Store(&e)
	code, body := get()
	if code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with a failing check = %d, want 503", code)
	}
	if body["database"] != e.Error() || body["nats"] != "ok" {
		t.Errorf("/readyz body = %v, want the failing check's error and nats ok", body)
	}
	dbErr.Store(nil)
	if code, _ := get(); code != http.StatusOK {
		t.Errorf("/readyz after recovery = %d, want 200", code)
	}
}

func TestReadyzWithoutChecks(t *testing.T) {
	s := newServer(t, server.Options{})
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if w.Code != http.StatusOK {
		t.Errorf("/readyz = %d, want 200", w.Code)
	}
}

// Cancelling Serve's context turns /readyz to 503, lets the request in
// flight finish with its answer, and returns nil.
func TestServeDrains(t *testing.T) {
	s := newServer(t, server.Options{})
	entered := make(chan struct{})
	release := make(chan struct{})
	s.Router.Get("/slow", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-release:
		case <-r.Context().Done():
			http.Error(w, "cancelled", http.StatusInternalServerError)
			return
		}
		w.Write([]byte("done"))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln, 10*time.Second) }()

	url := "http://" + ln.Addr().String()
	waitFor(t, func() bool {
		res, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})

	type result struct {
		code int
		body string
		err  error
	}
	slow := make(chan result, 1)
	go func() {
		res, err := http.Get(url + "/slow")
		if err != nil {
			slow <- result{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		slow <- result{code: res.StatusCode, body: string(b), err: err}
	}()
	<-entered
	cancel()

	// The listener closes at once, so ask the handler directly.
	waitFor(t, func() bool {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return w.Code == http.StatusServiceUnavailable && strings.Contains(w.Body.String(), "draining")
	})
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) while a request was in flight", err)
	default:
	}
	close(release)
	r := <-slow
	if r.err != nil || r.code != http.StatusOK || r.body != "done" {
		t.Errorf("in-flight request = %d %q %v; want 200 done", r.code, r.body, r.err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve = %v, want nil after a clean drain", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Error("the server still answers after Serve returned")
	}
}

// A request that outlives the drain timeout makes Serve report it.
func TestServeDrainTimeout(t *testing.T) {
	s := newServer(t, server.Options{})
	entered := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	s.Router.Get("/stuck", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln, 100*time.Millisecond) }()
	go func() {
		if res, err := http.Get("http://" + ln.Addr().String() + "/stuck"); err == nil {
			res.Body.Close()
		}
	}()
	<-entered
	cancel()
	select {
	case err := <-served:
		if err == nil {
			t.Error("Serve = nil, want an error when the drain times out")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not give up after the drain timeout")
	}
}

func TestServeReportsListenerErrors(t *testing.T) {
	s := newServer(t, server.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := s.Serve(context.Background(), ln, time.Second); err == nil {
		t.Error("Serve on a closed listener = nil, want an error")
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newServer(t, server.Options{Registry: reg})
	if s.Registry() != reg {
		t.Error("Registry() is not the registry given in Options")
	}
	do := func(method, path string) {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	}
	do(http.MethodGet, "/things/1")
	do(http.MethodGet, "/things/2")
	do(http.MethodGet, "/api/things/9/parts")
	do(http.MethodGet, "/panic")
	do(http.MethodGet, "/nowhere/at/all")
	for _, m := range []string{"FOO1", "FOO2", "BREW"} { // made-up methods: one series, not three
		do(m, "/things/1")
	}

	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("/metrics = %d", w.Code)
	}
	text := w.Body.String()
	for _, want := range []string{
		`http_server_requests_total{code="200",method="GET",route="/things/{id}"} 2`,
		`http_server_requests_total{code="204",method="GET",route="/api/things/{id}/parts"} 1`,
		`http_server_requests_total{code="500",method="GET",route="/panic"} 1`,
		`http_server_request_duration_seconds_count{method="GET",route="/things/{id}"} 2`,
		`http_server_requests_in_flight`,
		`http_server_requests_total{code="405",method="_OTHER",route="unmatched"} 3`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Raw paths must never become labels.
	for _, bad := range []string{`route="/things/1"`, `route="/nowhere/at/all"`} {
		if strings.Contains(text, bad) {
			t.Errorf("/metrics has an unbounded label %s", bad)
		}
	}
	if !strings.Contains(text, `code="404"`) {
		t.Errorf("/metrics does not count the 404")
	}
}

func TestRequestID(t *testing.T) {
	s := newServer(t, server.Options{})
	t.Run("echoed", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/nowhere", nil)
		r.Header.Set(server.RequestIDHeader, "abc-123")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if got := w.Header().Get(server.RequestIDHeader); got != "abc-123" {
			t.Errorf("X-Request-Id = %q, want the caller's abc-123", got)
		}
		var p problem.Problem
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		if p.RequestID != "abc-123" {
			t.Errorf("problem request_id = %q, want abc-123", p.RequestID)
		}
	})
	t.Run("generated", func(t *testing.T) {
		seen := map[string]bool{}
		for range 3 {
			w := httptest.NewRecorder()
			s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
			id := w.Header().Get(server.RequestIDHeader)
			if len(id) < 16 || seen[id] {
				t.Errorf("generated request id %q is too short or repeated", id)
			}
			seen[id] = true
		}
	})
	t.Run("too long is replaced", func(t *testing.T) {
		long := strings.Repeat("a", 65)
		r := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		r.Header.Set(server.RequestIDHeader, long)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if got := w.Header().Get(server.RequestIDHeader); got == long || got == "" {
			t.Errorf("X-Request-Id = %q, want a fresh id instead of the 65-byte one", got)
		}
	})
	t.Run("seen by the handler", func(t *testing.T) {
		var inHandler string
		s.Router.Get("/rid", func(w http.ResponseWriter, r *http.Request) { inHandler = r.Header.Get(server.RequestIDHeader) })
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/rid", nil))
		if inHandler == "" || inHandler != w.Header().Get(server.RequestIDHeader) {
			t.Errorf("handler saw %q, response has %q", inHandler, w.Header().Get(server.RequestIDHeader))
		}
	})
}

// waitFor polls cond until it holds or a few seconds pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
