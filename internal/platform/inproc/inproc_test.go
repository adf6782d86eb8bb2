package inproc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/inproc"
)

// deadPort returns a loopback base URL whose port nobody listens on: a
// request that reached the network there would be refused.
func deadPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// noNetwork is a fallback that fails the test if anything reaches it.
type noNetwork struct {
	t     testing.TB
	calls atomic.Int64
}

func (n *noNetwork) RoundTrip(r *http.Request) (*http.Response, error) {
	n.calls.Add(1)
	n.t.Errorf("%s %s went to the network", r.Method, r.URL)
	return nil, errors.New("no network in this test")
}

// countingDialer is a real network transport that counts its dials.
func countingDialer(dials *atomic.Int64) *http.Transport {
	d := &net.Dialer{Timeout: time.Second}
	return &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return d.DialContext(ctx, network, addr)
	}}
}

func register(t testing.TB, reg *inproc.Registry, h http.Handler, bases ...string) *inproc.Registration {
	t.Helper()
	g, err := reg.Register(h, bases...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

func TestRegisteredHostNeverOpensASocket(t *testing.T) {
	base := deadPort(t)
	reg := inproc.NewRegistry()
	register(t, reg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
	}), base)
	var dials atomic.Int64
	hc := &http.Client{Transport: &inproc.Transport{Registry: reg, Fallback: countingDialer(&dials)}}

	for range 3 {
		resp, err := hc.Get(base + "/internal/things")
		if err != nil {
			t.Fatalf("a registered host on a port nobody listens on: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != `{"path":"/internal/things"}` {
			t.Fatalf("got %d %s", resp.StatusCode, b)
		}
	}
	if n := dials.Load(); n != 0 {
		t.Fatalf("the transport dialled %d times for a registered host", n)
	}
	// The same port over the network: nobody is there.
	if _, err := (&http.Client{Transport: countingDialer(&dials)}).Get(base + "/"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("the port should refuse connections over the network, got %v", err)
	}
}

func TestUnregisteredHostGoesOverTheNetwork(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.RemoteAddr)
	}))
	defer srv.Close()
	reg := inproc.NewRegistry()
	register(t, reg, http.NotFoundHandler(), deadPort(t))
	var dials atomic.Int64
	hc := &http.Client{Transport: &inproc.Transport{Registry: reg, Fallback: countingDialer(&dials)}}
	resp, err := hc.Get(srv.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) == inproc.RemoteAddr || dials.Load() != 1 {
		t.Fatalf("want a real connection: %d %q after %d dials", resp.StatusCode, b, dials.Load())
	}
	if reg.Serves(mustURL(t, srv.URL)) {
		t.Fatal("Serves says yes for a host nobody registered")
	}
	// The registry's own Transport has a real fallback too.
	resp, err = (&http.Client{Transport: reg.Transport()}).Get(srv.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestRequestAndResponseAreWhatHTTPWouldCarry(t *testing.T) {
	base := deadPort(t)
	host := strings.TrimPrefix(base, "http://")
	reg := inproc.NewRegistry()
	type ctxKey struct{}
	var seen *http.Request
	var seenBody []byte
	register(t, reg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r
		seenBody, _ = io.ReadAll(r.Body)
		if r.Context().Value(ctxKey{}) != nil {
			t.Error("the handler sees a value from the caller's context")
		}
		r.Header.Set("X-Changed-By-Handler", "yes") // must not reach the caller's request
		w.Header().Set("X-Answer", "42")
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.WriteHeader(http.StatusCreated)
		w.Header().Set("X-Too-Late", "after WriteHeader") // ignored, as net/http does
		_, _ = w.Write([]byte(`{"ok":`))
		_, _ = w.Write([]byte(`true}`))
	}), base)
	hc := &http.Client{Transport: &inproc.Transport{Registry: reg, Fallback: &noNetwork{t: t}}}

	ctx := context.WithValue(context.Background(), ctxKey{}, "caller's")
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/orders/a%2Fb?x=1&y=two", strings.NewReader(`{"lines":[]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer t0ken")
	req.Header.Add("X-Multi", "1")
	req.Header.Add("X-Multi", "2")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}

	// What the handler saw.
	switch {
	case seen.Method != http.MethodPost, seen.URL.Path != "/api/orders/a/b", seen.URL.RawPath != "/api/orders/a%2Fb",
		seen.URL.RawQuery != "x=1&y=two", seen.URL.Host != "", seen.URL.Scheme != "":
		t.Errorf("server-side URL: %s %#v", seen.Method, seen.URL)
	case seen.RequestURI != "/api/orders/a%2Fb?x=1&y=two", seen.Host != host, seen.RemoteAddr != inproc.RemoteAddr,
		seen.Proto != "HTTP/1.1", seen.ProtoMajor != 1, seen.ProtoMinor != 1:
		t.Errorf("server-side request: uri %q host %q remote %q proto %q", seen.RequestURI, seen.Host, seen.RemoteAddr, seen.Proto)
	case seen.ContentLength != int64(len(`{"lines":[]}`)), string(seenBody) != `{"lines":[]}`:
		t.Errorf("body: %d %q", seen.ContentLength, seenBody)
	case seen.Header.Get("Authorization") != "Bearer t0ken", seen.Header.Get("Content-Type") != "application/json",
		strings.Join(seen.Header.Values("X-Multi"), ",") != "1,2", seen.Header.Get("User-Agent") == "":
		t.Errorf("headers: %v", seen.Header)
	case seen.TLS != nil, seen.Form != nil:
		t.Errorf("TLS or form on the server side")
	}
	if req.Header.Get("X-Changed-By-Handler") != "" {
		t.Error("the handler's change to its headers reached the caller's request")
	}

	// What the caller got.
	switch {
	case resp.StatusCode != http.StatusCreated, resp.Status != "201 Created", resp.Proto != "HTTP/1.1":
		t.Errorf("status: %q %s", resp.Status, resp.Proto)
	case string(body) != `{"ok":true}`:
		t.Errorf("body %q", body)
	case resp.ContentLength != int64(len(body)), resp.Header.Get("Content-Length") != fmt.Sprint(len(body)):
		t.Errorf("content length %d / %q for %d bytes", resp.ContentLength, resp.Header.Get("Content-Length"), len(body))
	case resp.Header.Get("X-Answer") != "42", len(resp.Header.Values("Set-Cookie")) != 2:
		t.Errorf("headers: %v", resp.Header)
	case resp.Header.Get("X-Too-Late") != "":
		t.Errorf("a header set after WriteHeader went out")
	case !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"):
		// The handler set none: sniffed from the body, as a server does.
		t.Errorf("content type %q", resp.Header.Get("Content-Type"))
	case resp.Request != req:
		t.Errorf("resp.Request is not the request")
	}
}

func TestStatusesWithoutBodyAndHead(t *testing.T) {
	base := deadPort(t)
	reg := inproc.NewRegistry()
	var writeErr error
	register(t, reg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
			_, writeErr = w.Write([]byte("x"))
		case "/empty":
			// nothing written: 200 with an empty body
		case "/head":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte("a body HEAD must not carry"))
		}
	}), base)
	hc := &http.Client{Transport: &inproc.Transport{Registry: reg, Fallback: &noNetwork{t: t}}}

	resp, err := hc.Get(base + "/nocontent")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 204 || len(b) != 0 || resp.ContentLength != 0 || !errors.Is(writeErr, http.ErrBodyNotAllowed) {
		t.Errorf("204: %d %q len %d, write err %v", resp.StatusCode, b, resp.ContentLength, writeErr)
	}
	resp, err = hc.Get(base + "/empty")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || len(b) != 0 || resp.ContentLength != 0 {
		t.Errorf("empty: %d %q len %d", resp.StatusCode, b, resp.ContentLength)
	}
	resp, err = hc.Head(base + "/head")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || len(b) != 0 || resp.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("HEAD: %d %q %v", resp.StatusCode, b, resp.Header)
	}
}

func TestCancellingBeforeTheAnswer(t *testing.T) {
	base := deadPort(t)
	reg := inproc.NewRegistry()
	handlerSawCancel := make(chan error, 1)
	started := make(chan struct{})
	g := register(t, reg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done() // a slow handler that does listen to its context
		handlerSawCancel <- r.Context().Err()
		// Writing after the caller left fails, as on a closed connection.
		if _, err := w.Write([]byte("too late")); err == nil {
			t.Error("a write after the caller gave up succeeded")
		}
	}), base)
	hc := &http.Client{Transport: &inproc.Transport{Registry: reg, Fallback: &noNetwork{t: t}}}

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/slow", nil)
		_, err := hc.Do(req)
		errc <- err
	}()
	<-started
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("want context.Canceled, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RoundTrip did not return after its context was cancelled")
	}
	select {
	case err := <-handlerSawCancel:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("handler context: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's context was not cancelled")
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	if err := g.Wait(wctx); err != nil {
		t.Fatal(err)
	}
}

func TestDeadlineWhileTheHandlerIgnoresIt(t *testing.T) {
	base := deadPort(t)
	reg := inproc.NewRegistry()
	release := make(chan struct{})
	register(t, reg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // deaf to its context: the caller must not wait for it
	}), base)
	defer close(release)
	hc := &http.Client{Transport: &inproc.Transport{Registry: reg, Fallback: &noNetwork{t: t}}, Timeout: 50 * time.Millisecond}
	start := time.Now()
	_, err := hc.Get(base + "/deaf")
	if !errors.Is(err, context.DeadlineExceeded) {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("want a timeout, got %v", err)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the timeout took %s", took)
	}
}

func TestStreamingAndCancellingMidBody(t *testing.T) {
	base := deadPort(t)
	reg := inproc.NewRegistry()
	next := make(chan struct{})
	handlerDone := make(chan error, 1)
	register(t, reg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("first\n"))
		w.(http.Flusher).Flush()
		select {
		case <-next:
			_, _ = w.Write([]byte("second\n"))
		case <-r.Context().Done():
			handlerDone <- r.Context().Err()
			return
		}
		<-r.Context().Done()
		handlerDone <- r.Context().Err()
	}), base)
	hc := &http.Client{Transport: &inproc.Transport{Registry: reg, Fallback: &noNetwork{t: t}}}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/stream", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != -1 || resp.Header.Get("Content-Length") != "" {
		t.Errorf("a flushed answer has no known length: %d", resp.ContentLength)
	}
	buf := make([]byte, 64)
	n, err := resp.Body.Read(buf)
	if err != nil || string(buf[:n]) != "first\n" {
		t.Fatalf("first chunk while the handler still runs: %q %v", buf[:n], err)
	}
	close(next)
	n, err = io.ReadAtLeast(resp.Body, buf, len("second\n"))
	if err != nil || string(buf[:n]) != "second\n" {
		t.Fatalf("second chunk: %q %v", buf[:n], err)
	}
	cancel()
	if _, err := resp.Body.Read(buf); !errors.Is(err, context.Canceled) {
		t.Fatalf("reading after cancel: %v", err)
	}
	select {
	case err := <-handlerDone:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("handler context: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's context was not cancelled mid-stream")
	}
}

func TestLargeBodiesStreamWithBackPressure(t *testing.T) {
	base := deadPort(t)
	reg := inproc.NewRegistry()
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	register(t, reg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, err := io.ReadAll(r.Body) // a large request body, too
		if err != nil || !bytes.Equal(in, payload) {
			t.Errorf("request body: %d bytes, %v", len(in), err)
		}
		for i := 0; i < len(payload); i += 3000 {
			_, _ = w.Write(payload[i:min(i+3000, len(payload))])
		}
	}), base)
	hc := &http.Client{Transport: &inproc.Transport{Registry: reg, Fallback: &noNetwork{t: t}}}
	// A body of unknown length, read as it comes.
	resp, err := hc.Post(base+"/big", "application/octet-stream", io.MultiReader(bytes.NewReader(payload)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got bytes.Buffer
	buf := make([]byte, 1000) // small reads: the handler has to wait for room
	if _, err := io.CopyBuffer(&got, struct{ io.Reader }{resp.Body}, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), payload) {
		t.Fatalf("got %d bytes back, want %d identical", got.Len(), len(payload))
	}
}

func TestClosingTheBodyEarlyStopsTheHandler(t *testing.T) {
	base := deadPort(t)
	reg := inproc.NewRegistry()
	writeErr := make(chan error, 1)
	register(t, reg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 32<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				writeErr <- err
				return
			}
		}
	}), base)
	hc := &http.Client{Transport: &inproc.Transport{Registry: reg, Fallback: &noNetwork{t: t}}}
	resp, err := hc.Get(base + "/endless")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case err := <-writeErr:
		if err == nil {
			t.Fatal("nil error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler kept writing after the caller closed the body")
	}
	if _, err := resp.Body.Read(make([]byte, 1)); err == nil {
		t.Fatal("a read after Close succeeded")
	}
}

func TestConcurrentUse(t *testing.T) {
	reg := inproc.NewRegistry()
	bases := []string{deadPort(t), deadPort(t), deadPort(t)}
	for i, b := range bases {
		register(t, reg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			in, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Service", fmt.Sprint(i))
			fmt.Fprintf(w, "%d:%s:%s", i, r.URL.Query().Get("n"), in)
		}), b)
	}
	hc := &http.Client{Transport: &inproc.Transport{Registry: reg, Fallback: &noNetwork{t: t}}}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for n := range 100 {
				i := (g + n) % len(bases)
				resp, err := hc.Post(fmt.Sprintf("%s/x?n=%d", bases[i], n), "text/plain", strings.NewReader(fmt.Sprint(g)))
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if want := fmt.Sprintf("%d:%d:%d", i, n, g); string(b) != want || resp.Header.Get("X-Service") != fmt.Sprint(i) {
					t.Errorf("got %q, want %q", b, want)
					return
				}
			}
		})
	}
	// Registering and closing while requests fly.
	extra := deadPort(t)
	for range 20 {
		g, err := reg.Register(http.NotFoundHandler(), extra)
		if err != nil {
			t.Fatal(err)
		}
		g.Close()
	}
	wg.Wait()
}

func TestClosedRegistrationRefusesAndDrains(t *testing.T) {
	base := deadPort(t)
	reg := inproc.NewRegistry()
	release := make(chan struct{})
	started := make(chan struct{})
	g, err := reg.Register(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		fmt.Fprint(w, "finished")
	}), base)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: reg.Transport()}
	got := make(chan string, 1)
	go func() {
		resp, err := hc.Get(base + "/long")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	g.Close() // as the listener closes when a service stops
	if reg.Serves(mustURL(t, base)) {
		t.Fatal("still served after Close")
	}
	// New requests are refused the way a closed port refuses them.
	if _, err := hc.Get(base + "/new"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("a request after Close: %v", err)
	}
	// The one in flight finishes, and Wait waits for it.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	if err := g.Wait(ctx); err == nil {
		t.Fatal("Wait returned while a request was in flight")
	}
	cancel()
	close(release)
	if s := <-got; s != "finished" {
		t.Fatalf("the request in flight: %q", s)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// The address may be registered again, as a restarted service would.
	register(t, reg, http.NotFoundHandler(), base)
}

func TestRegisterRefusesBadAndDuplicateBases(t *testing.T) {
	reg := inproc.NewRegistry()
	register(t, reg, http.NotFoundHandler(), "http://LocalHost:80")
	for _, b := range []string{"http://localhost", "HTTP://localhost:80/"} {
		if _, err := reg.Register(http.NotFoundHandler(), b); err == nil {
			t.Errorf("%s registered twice", b)
		}
	}
	for _, b := range []string{"", "localhost:8080", "http://h:1/path", "http://h:1?q=1", "http://u@h:1"} {
		if _, err := reg.Register(http.NotFoundHandler(), b); err == nil {
			t.Errorf("%q accepted", b)
		}
	}
	if !reg.Serves(mustURL(t, "http://localhost/x")) || !reg.Serves(mustURL(t, "http://LOCALHOST:80/x")) {
		t.Error("normalised names are not served")
	}
}

func TestPanickingHandler(t *testing.T) {
	base := deadPort(t)
	reg := inproc.NewRegistry()
	reg.ErrorLog = quietLogger()
	register(t, reg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/before":
			panic("boom")
		case "/after":
			_, _ = w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // what a proxy does when its upstream fails mid-body
		}
	}), base)
	hc := &http.Client{Transport: &inproc.Transport{Registry: reg, Fallback: &noNetwork{t: t}}}
	if _, err := hc.Get(base + "/before"); err == nil {
		t.Fatal("a handler that panicked before answering gave an answer")
	}
	resp, err := hc.Get(base + "/after")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "partial" || err == nil {
		t.Fatalf("an aborted body: %q %v", b, err)
	}
}

func TestReverseProxyOverTheTransport(t *testing.T) {
	// The gateway's use: an httputil.ReverseProxy whose Transport is the
	// in-process one, in front of a registered service.
	upstream := deadPort(t)
	reg := inproc.NewRegistry()
	register(t, reg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"xff":%q,"path":%q}`, r.Header.Get("X-Forwarded-For"), r.URL.Path)
	}), upstream)
	target := mustURL(t, upstream)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport: &inproc.Transport{Registry: reg, Fallback: &noNetwork{t: t}},
	}
	front := httptest.NewServer(proxy)
	defer front.Close()
	resp, err := http.Get(front.URL + "/api/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"xff":"127.0.0.1"`) || !strings.Contains(string(b), `"path":"/api/x"`) ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("through the proxy: %d %s %v", resp.StatusCode, b, resp.Header)
	}
}

func quietLogger() *log.Logger { return log.New(io.Discard, "", 0) }
