// Package openapitest checks every request a test sends, and every
// response it gets back, against a service's OpenAPI document.
package openapitest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/microshop/microshop/internal/platform/openapi"
)

// Checker wraps a handler and records every exchange that breaks the
// document. Call Check at the end of the test.
type Checker struct {
	t      testing.TB
	router routers.Router
	next   http.Handler

	mu       sync.Mutex
	problems []string
	seen     map[string]bool
}

// New returns a Checker over h for doc.
func New(t testing.TB, doc *openapi.Document, h http.Handler) *Checker {
	t.Helper()
	// Validate against any server URL: tests run on random ports.
	doc.T.Servers = nil
	r, err := gorillamux.NewRouter(doc.T)
	if err != nil {
		t.Fatalf("routing the openapi document: %v", err)
	}
	c := &Checker{t: t, router: r, next: h, seen: map[string]bool{}}
	t.Cleanup(c.check)
	return c
}

// ServeHTTP validates the request, serves it, then validates the response.
func (c *Checker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Health and metrics are platform routes, not part of the contract.
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics", "/openapi.json":
		c.next.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	// The document describes the JSON, not its compression: ask for none,
	// so the checker reads what the service meant.
	r.Header.Del("Accept-Encoding")

	route, params, err := c.router.FindRoute(r)
	if err != nil {
		// Unknown routes must still answer problem+json; they are checked
		// by the response's content type below, not by the document.
		rec := httptest.NewRecorder()
		c.next.ServeHTTP(rec, r)
		copyResponse(w, rec)
		if ct := rec.Header().Get("Content-Type"); rec.Code >= 400 && ct != "application/problem+json" {
			c.fail("%s %s: undocumented route answered %d with %q, not problem+json", r.Method, r.URL.Path, rec.Code, ct)
		}
		return
	}
	in := &openapi3filter.RequestValidationInput{
		Request: r, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	r.Body = io.NopCloser(bytes.NewReader(body))

	rec := httptest.NewRecorder()
	c.next.ServeHTTP(rec, r)
	copyResponse(w, rec)

	// A request the document forbids must be refused with a 4xx; a
	// request it allows must get a documented response.
	if reqErr != nil && rec.Code < 400 {
		c.fail("%s %s: the document refuses this request (%v) but the service answered %d", r.Method, r.URL.Path, reqErr, rec.Code)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 rec.Code,
		Header:                 rec.Header(),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(rec.Body.Bytes())
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		c.fail("%s %s -> %d: response does not match the document: %v\nbody: %s", r.Method, r.URL.Path, rec.Code, err, rec.Body.String())
	}
	c.mu.Lock()
	c.seen[route.Method+" "+route.Path] = true
	c.mu.Unlock()
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func (c *Checker) fail(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// Covered reports which documented operations the test exercised.
func (c *Checker) Covered() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]bool, len(c.seen))
	for k, v := range c.seen {
		out[k] = v
	}
	return out
}

// RequireCoverage fails the test unless every operation in the document
// was exercised at least once.
func (c *Checker) RequireCoverage(doc *openapi.Document) {
	c.t.Helper()
	seen := c.Covered()
	for path, item := range doc.T.Paths.Map() {
		for method := range item.Operations() {
			if !seen[method+" "+path] {
				c.t.Errorf("openapi: %s %s is documented but no test exercised it", method, path)
			}
		}
	}
}

func (c *Checker) check() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.problems {
		c.t.Errorf("openapi: %s", p)
	}
}

// Proxy starts a loopback HTTP server that forwards to target, a running
// service, and checks every exchange against doc. Tests send their
// requests to the returned URL, so real traffic is what gets validated.
func Proxy(t testing.TB, doc *openapi.Document, target string) (string, *Checker) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("parsing %s: %v", target, err)
	}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		pr.Out.Host = pr.In.Host
	}}
	c := New(t, doc, rp)
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return srv.URL, c
}
