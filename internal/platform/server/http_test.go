package server_test

import (
	"bufio"
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/microshop/microshop/internal/platform/httpjson"
	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/platform/server"
)

// OPTIONS is answered on every route with 204 and the route's methods in
// Allow (RFC 9110, 9.3.7), before the middleware of the route's group, so
// a route behind a token check needs no token to say what it allows.
// Before, OPTIONS was a 405 on open routes and a 401 behind a token check.
func TestOptionsPerRoute(t *testing.T) {
	s := newServer(t, server.Options{})
	s.Router.Route("/api/private", func(r chi.Router) {
		r.Use(func(http.Handler) http.Handler { // a token check that refuses everyone
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				problem.Write(w, r, problem.New(http.StatusUnauthorized, "unauthorized", "Unauthorized", "needs an access token"))
			})
		})
		r.Get("/{id}", func(w http.ResponseWriter, r *http.Request) {})
		r.Post("/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {})
	})
	ts := httptest.NewServer(s)
	defer ts.Close()
	for _, c := range []struct {
		path, allow string
		status      int
	}{
		{"/things/42", "GET, HEAD, OPTIONS", http.StatusNoContent},
		{"/echo", "POST, OPTIONS", http.StatusNoContent},
		{"/api/private/42", "GET, HEAD, OPTIONS", http.StatusNoContent},
		{"/api/private/42/cancel", "POST, OPTIONS", http.StatusNoContent},
		{"/nowhere", "", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(http.MethodOptions, ts.URL+c.path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if c.status == http.StatusNotFound {
			decodeProblem(t, res)
		}
		res.Body.Close()
		if res.StatusCode != c.status || res.Header.Get("Allow") != c.allow {
			t.Errorf("OPTIONS %s: %d Allow %q, want %d Allow %q", c.path, res.StatusCode, res.Header.Get("Allow"), c.status, c.allow)
		}
	}
}

// Answers are compressed when the client accepts it and they are big
// enough to gain; HEAD gets GET's headers. Before, nothing was compressed.
func TestCompressionIsNegotiated(t *testing.T) {
	s := newServer(t, server.Options{})
	big := strings.Repeat(`{"sku":"SKU-1","name":"A product with a name"},`, 200)
	s.Router.Get("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "["+big+"{}]")
	})
	ts := httptest.NewServer(s)
	defer ts.Close()
	plain := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	get := func(method, path, accept string) (*http.Response, []byte) {
		req, _ := http.NewRequest(method, ts.URL+path, nil)
		if accept != "" {
			req.Header.Set("Accept-Encoding", accept)
		}
		res, err := plain.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, b
	}
	res, body := get("GET", "/big", "gzip")
	if res.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(res.Header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("GET /big accepting gzip: Content-Encoding %q, Vary %q", res.Header.Get("Content-Encoding"), res.Header.Get("Vary"))
	}
	zr, err := gzip.NewReader(strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, _ := io.ReadAll(zr)
	if len(body) >= len(unzipped)/2 || !strings.HasPrefix(string(unzipped), "[{") {
		t.Errorf("gzip: %d bytes for %d", len(body), len(unzipped))
	}
	if res, body := get("GET", "/big", ""); res.Header.Get("Content-Encoding") != "" || !strings.HasPrefix(string(body), "[{") {
		t.Errorf("GET /big accepting nothing: Content-Encoding %q", res.Header.Get("Content-Encoding"))
	}
	if res, _ := get("GET", "/things/1", "gzip"); res.Header.Get("Content-Encoding") != "" {
		t.Errorf("a tiny answer was compressed: %q", res.Header.Get("Content-Encoding"))
	}
	// HEAD may leave out what only making the body decides (RFC 9110,
	// 9.3.2), such as the encoding: gzhttp compresses nothing for HEAD.
	if res, body := get("HEAD", "/big", "gzip"); res.StatusCode != http.StatusOK || len(body) != 0 || res.Header.Get("Content-Type") != "application/json" {
		t.Errorf("HEAD /big: %d, %d bytes, Content-Type %q", res.StatusCode, len(body), res.Header.Get("Content-Type"))
	}
}

// A read written with httpjson.WriteCached carries a weak ETag and
// Cache-Control: no-cache, and a request naming the ETag gets a 304, also
// when the answer was compressed.
func TestCachedReads(t *testing.T) {
	s := newServer(t, server.Options{})
	version := "one"
	s.Router.Get("/catalog", func(w http.ResponseWriter, r *http.Request) {
		httpjson.WriteCached(w, r, map[string]string{"version": version, "padding": strings.Repeat("x", 2000)})
	})
	ts := httptest.NewServer(s)
	defer ts.Close()
	get := func(header ...string) *http.Response {
		req, _ := http.NewRequest("GET", ts.URL+"/catalog", nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	first := get()
	etag := first.Header.Get("ETag")
	if !strings.HasPrefix(etag, `W/"`) || first.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, first.Header.Get("Cache-Control"))
	}
	for _, match := range []string{etag, `"other", ` + etag, strings.TrimPrefix(etag, "W/"), "*"} {
		if res := get("If-None-Match", match, "Accept-Encoding", "gzip"); res.StatusCode != http.StatusNotModified || res.Header.Get("ETag") != etag {
			t.Errorf("If-None-Match %s: %d, ETag %q", match, res.StatusCode, res.Header.Get("ETag"))
		}
	}
	if res := get("If-None-Match", `W/"stale"`); res.StatusCode != http.StatusOK {
		t.Errorf("a stale ETag: %d, want 200", res.StatusCode)
	}
	version = "two"
	if res := get("If-None-Match", etag); res.StatusCode != http.StatusOK || res.Header.Get("ETag") == etag {
		t.Errorf("after a change, the old ETag: %d, ETag %q", res.StatusCode, res.Header.Get("ETag"))
	}
}

// A header value with a control character is refused by net/http itself,
// before any handler or middleware runs: a text/plain 400 that closes the
// connection, not a problem+json, and the request is neither counted nor
// traced. This test shows that answer, so a change in it is noticed (see
// docs/http.md).
func TestMalformedHeaderIsNetHTTPs400(t *testing.T) {
	s := newServer(t, server.Options{})
	var reached atomic.Int64
	s.Router.Get("/count", func(w http.ResponseWriter, r *http.Request) { reached.Add(1) })
	ts := httptest.NewServer(s)
	defer ts.Close()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /count HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") ||
		!strings.HasPrefix(string(body), "400 Bad Request") || !res.Close {
		t.Errorf("a control character in a header value: %d %q close=%v %q", res.StatusCode, res.Header.Get("Content-Type"), res.Close, body)
	}
	if reached.Load() != 0 {
		t.Error("the handler ran")
	}
	t.Logf("net/http answers: %d %s, %q", res.StatusCode, res.Header.Get("Content-Type"), body)
}
