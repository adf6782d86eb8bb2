package gateway_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// The gateway serves the web UI: the page at /, its files under /assets/,
// and leaves /api, /status and the runtime's routes as they were. No
// service needs to run for the page to load.
func TestServesWebUI(t *testing.T) {
	gw := startGateway(t, closedURL(t), nil).URL

	page := do(t, http.MethodGet, gw+"/", "", nil)
	if page.Status != http.StatusOK || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s, want the UI's page", page.Status, page.Header.Get("Content-Type"))
	}
	if csp := page.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("GET /: Content-Security-Policy %q, want scripts from the gateway only and no framing", csp)
	}

	// Everything the page loads comes from the gateway, with its type.
	refs := regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`).FindAllStringSubmatch(string(page.Body), -1)
	if len(refs) == 0 {
		t.Fatalf("the page loads no assets:\n%s", page.Body)
	}
	for _, m := range refs {
		res := do(t, http.MethodGet, gw+m[1], "", nil)
		if res.Status != http.StatusOK || res.Header.Get("Content-Type") == "" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s = %d %s", m[1], res.Status, res.Header.Get("Content-Type"))
		}
	}
	if res := do(t, http.MethodGet, gw+"/assets/js/app.js", "", nil); !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("the app's module is served as %q; browsers run modules only as JavaScript", res.Header.Get("Content-Type"))
	}
	etag := page.Header.Get("ETag")
	if res := do(t, http.MethodGet, gw+"/", "", nil, "If-None-Match", etag); etag == "" || res.Status != http.StatusNotModified {
		t.Errorf("GET / with its ETag %q = %d, want 304", etag, res.Status)
	}
	if res := do(t, http.MethodHead, gw+"/", "", nil); res.Status != http.StatusOK {
		t.Errorf("HEAD / = %d, want 200", res.Status)
	}

	// What is not the UI's is a 404 problem, also for paths that try to
	// climb out of the assets.
	for _, target := range []string{"/assets/nope.js", "/assets/../web.go", "/assets/%2e%2e/web.go", "/index.html", "/ui/x"} {
		wantProblem(t, raw(t, gw, target, ""), http.StatusNotFound)
	}
	// The rest of the gateway is as it was.
	if res := do(t, http.MethodGet, gw+"/status", "", nil); res.Status != http.StatusOK {
		t.Errorf("GET /status = %s", res)
	}
	if res := do(t, http.MethodGet, gw+"/healthz", "", nil); res.Status != http.StatusOK {
		t.Errorf("GET /healthz = %s", res)
	}
	wantProblem(t, do(t, http.MethodGet, gw+"/api/nosuch/x", "", nil), http.StatusNotFound)
}

// The events' AsyncAPI document is served beside the API, with no
// service running.
func TestServesAsyncAPI(t *testing.T) {
	gw := startGateway(t, closedURL(t), nil).URL
	res := do(t, http.MethodGet, gw+"/api/asyncapi.yaml", "", nil)
	if res.Status != http.StatusOK || res.Header.Get("Content-Type") != "application/yaml" ||
		!strings.Contains(string(res.Body), "asyncapi: 3.0.0") || !strings.Contains(string(res.Body), "orders.confirmed") {
		t.Fatalf("GET /api/asyncapi.yaml = %d %s:\n%.200s", res.Status, res.Header.Get("Content-Type"), res.Body)
	}
	if res := do(t, http.MethodGet, gw+"/api/asyncapi.yaml", "", nil, "If-None-Match", res.Header.Get("ETag")); res.Status != http.StatusNotModified {
		t.Errorf("GET /api/asyncapi.yaml with its ETag = %d, want 304", res.Status)
	}
	if res := do(t, http.MethodHead, gw+"/api/asyncapi.yaml", "", nil); res.Status != http.StatusOK {
		t.Errorf("HEAD /api/asyncapi.yaml = %d, want 200", res.Status)
	}
}
