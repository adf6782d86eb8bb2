package client_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/server"
	"github.com/microshop/microshop/internal/platform/telemetry"
)

// A call's span is named "{method} {route template}", from Call.Route or
// else from the route the target answered with, and never holds the
// path's ids; before, it was "<target> POST /internal/things/01J.../commit",
// a new name for every order.
func TestCallSpansAreNamedByRouteTemplate(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tel := telemetry.Disabled()
	tel.Provider, tel.Tracer = tp, tp.Tracer("test")

	srv := server.New(server.Options{Service: "things", Log: slog.New(slog.DiscardHandler)})
	srv.Router.Post("/internal/things/{id}/commit", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	ts := httptest.NewServer(srv)
	defer ts.Close()
	cl := client.New("things", ts.URL, nil, fast(client.Options{Telemetry: tel, Attempts: 1}), nil)
	gone := client.New("things", closedURL(t), nil, fast(client.Options{Telemetry: tel, Attempts: 1}), nil)

	const id = "01JABCDEFGHJKMNPQRSTVWXYZ0"
	for _, c := range []struct {
		name string
		cl   *client.Client
		call client.Call
		want string
	}{
		{"the target names the route", cl, client.Call{Method: "POST", Path: "/internal/things/" + id + "/commit"}, "POST /internal/things/{id}/commit"},
		{"the caller names the route", cl, client.Call{Method: "POST", Path: "/internal/things/" + id + "/commit", Route: "/internal/things/{id}/commit"}, "POST /internal/things/{id}/commit"},
		{"no answer, no route", gone, client.Call{Method: "POST", Path: "/internal/things/" + id + "/commit"}, "POST"},
		{"no answer, the caller's route", gone, client.Call{Method: "POST", Path: "/internal/things/" + id + "/commit", Route: "/internal/things/{id}/commit"}, "POST /internal/things/{id}/commit"},
	} {
		before := len(rec.Ended())
		_ = c.cl.Do(context.Background(), c.call)
		spans := rec.Ended()[before:]
		if len(spans) != 1 {
			t.Fatalf("%s: %d spans, want 1", c.name, len(spans))
		}
		if got := spans[0].Name(); got != c.want || strings.Contains(got, id) {
			t.Errorf("%s: span %q, want %q", c.name, got, c.want)
		}
	}
}

// closedURL is the URL of a loopback port that nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ts := httptest.NewServer(http.NotFoundHandler())
	u := ts.URL
	ts.Close()
	return u
}
