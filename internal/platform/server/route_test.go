package server_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/microshop/microshop/internal/platform/server"
	"github.com/microshop/microshop/internal/platform/telemetry"
)

// recorded returns telemetry whose spans rec keeps.
func recorded() (*telemetry.Telemetry, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tel := telemetry.Disabled()
	tel.Provider, tel.Tracer = tp, tp.Tracer("test")
	return tel, rec
}

// Server spans are named "{method} {route template}" as OpenTelemetry's
// HTTP conventions ask, never by the path with its ids; every answer
// names its route in RouteHeader for the caller's span; a proxy names its
// request by its upstream's route (NameRoute). Before, the span of
// /things/01J... was named after the path and nothing told the caller.
func TestSpansAreNamedByRouteTemplate(t *testing.T) {
	tel, rec := recorded()
	s := newServer(t, server.Options{Telemetry: tel})
	s.Router.Get("/proxy/*", func(w http.ResponseWriter, r *http.Request) {
		server.NameRoute(r.Context(), "/api/upstream/{id}")
		w.WriteHeader(http.StatusNoContent)
	})
	ts := httptest.NewServer(s)
	defer ts.Close()
	for _, c := range []struct{ method, path, span, header string }{
		{"GET", "/things/01JABCDEFGHJKMNPQRSTVWXYZ0", "GET /things/{id}", "/things/{id}"},
		{"GET", "/api/things/01JABCDEFGHJKMNPQRSTVWXYZ0/parts", "GET /api/things/{id}/parts", "/api/things/{id}/parts"},
		{"HEAD", "/things/42", "HEAD /things/{id}", "/things/{id}"},
		{"GET", "/proxy/anything/at/all", "GET /api/upstream/{id}", "/api/upstream/{id}"},
		{"FOO1", "/things/42", "_OTHER", ""}, // a 405: no route took it
		{"GET", "/nowhere/01JABCDEFGHJKMNPQRSTVWXYZ0", "GET", ""},
	} {
		before := len(rec.Ended())
		req, _ := http.NewRequest(c.method, ts.URL+c.path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got := res.Header.Get(server.RouteHeader); got != c.header {
			t.Errorf("%s %s: %s %q, want %q", c.method, c.path, server.RouteHeader, got, c.header)
		}
		spans := rec.Ended()
		if len(spans) != before+1 {
			t.Fatalf("%s %s: %d spans ended, want 1", c.method, c.path, len(spans)-before)
		}
		if got := spans[len(spans)-1].Name(); got != c.span {
			t.Errorf("%s %s: span %q, want %q", c.method, c.path, got, c.span)
		}
	}
}
