package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/platform/server"
)

// TestOpsServesMetricsWhereTheMainPortRestrictsThem: RestrictMetrics
// guards the main port (the gateway's public one); the operations port,
// which only the monitoring network reaches, serves them to its caller.
func TestOpsServesMetricsWhereTheMainPortRestrictsThem(t *testing.T) {
	s := newServer(t, server.Options{})
	s.RestrictMetrics(func(*http.Request) bool { return false })
	main := httptest.NewServer(s)
	defer main.Close()
	ops := httptest.NewServer(s.Ops(false))
	defer ops.Close()
	status := func(url string) (int, string) {
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, _ := status(main.URL + "/metrics"); code != http.StatusNotFound {
		t.Errorf("main /metrics restricted: %d, want 404", code)
	}
	if code, body := status(ops.URL + "/metrics"); code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Errorf("ops /metrics: %d %.80q, want 200 with the registry", code, body)
	}
	if code, _ := status(ops.URL + "/things/1"); code != http.StatusNotFound {
		t.Errorf("ops /things/1, a route of the main port: %d, want 404", code)
	}
	if code, _ := status(main.URL + "/things/1"); code != http.StatusOK {
		t.Errorf("main /things/1: %d, want 200", code)
	}
}
