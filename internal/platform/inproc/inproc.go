// Package inproc lets services that share one process call each other
// without a socket. A Registry maps base URLs ("http://127.0.0.1:8082") to
// the http.Handler that serves them; a Transport is an http.RoundTripper
// that hands a request for a registered host straight to that handler and
// sends every other request over the network.
//
// The handler sees what it would see over HTTP: a server-side request
// (path and query in URL, Host, RequestURI, RemoteAddr on the loopback
// address, a copy of the headers, a body that is never nil) whose context
// carries none of the caller's values, so each service's middleware,
// token checks, tracing and routing run exactly as they do across
// processes. Cancellation does cross: when the caller's context ends, the
// handler's request context is cancelled, the way a closed connection
// cancels it. The caller sees what net/http's client would: the status,
// a snapshot of the headers taken when the handler wrote them (with
// Content-Length and a sniffed Content-Type filled in as the server does),
// and a body that streams.
//
// Like net/http's server, the response is buffered until the handler
// returns, flushes, or has written more than a few KiB; only then does
// RoundTrip return. So a JSON answer costs one hand-over, and a long or
// flushed one streams, with back-pressure when the caller reads slowly.
//
// `microshop run --mode monolith` gives every service one Registry; the
// service runtime registers each service's handler under its own address
// and hands the Registry's Transport to the service's clients.
package inproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// RemoteAddr is the peer address a handler sees for an in-process call:
// the caller is on this machine, as it would be over the loopback.
const RemoteAddr = "127.0.0.1:0"

// Registry maps base URLs to the handlers that serve them in-process.
// It is safe for concurrent use; lookups take no lock.
type Registry struct {
	// ErrorLog receives the stack of a handler that panics (other than
	// with http.ErrAbortHandler), as http.Server's ErrorLog does; nil
	// uses the log package's standard logger.
	ErrorLog *log.Logger

	mu      sync.Mutex // serialises writers of hosts
	hosts   atomic.Pointer[map[hostKey]*entry]
	once    sync.Once
	shared  *Transport
	workers workers
}

// hostKey is a normalised scheme and host[:port].
type hostKey struct{ scheme, host string }

// entry is one registration: a handler and the requests in flight to it.
type entry struct {
	handler  http.Handler
	mu       sync.RWMutex
	closed   bool
	inflight sync.WaitGroup
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	r := &Registry{workers: workers{hand: make(chan func()), idle: 30 * time.Second}}
	m := map[hostKey]*entry{}
	r.hosts.Store(&m)
	return r
}

// Registration is a handler's place in a Registry.
type Registration struct {
	reg  *Registry
	keys []hostKey
	e    *entry
	once sync.Once
}

// Register serves h in-process for requests to every base URL in bases
// ("http://127.0.0.1:8082"; scheme and host only). It fails, registering
// nothing, when a base is malformed or already taken.
func (r *Registry) Register(h http.Handler, bases ...string) (*Registration, error) {
	if h == nil {
		return nil, errors.New("inproc: a nil handler")
	}
	if len(bases) == 0 {
		return nil, errors.New("inproc: no base URL to register")
	}
	keys := make([]hostKey, 0, len(bases))
	for _, b := range bases {
		u, err := url.Parse(b)
		if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("inproc: %q: want a base URL such as http://127.0.0.1:8082", b)
		}
		keys = append(keys, normalise(u.Scheme, u.Host))
	}
	e := &entry{handler: h}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.hosts.Load()
	next := make(map[hostKey]*entry, len(old)+len(keys))
	for k, v := range old {
		next[k] = v
	}
	for i, k := range keys {
		if _, taken := next[k]; taken {
			return nil, fmt.Errorf("inproc: %s is registered already", bases[i])
		}
		next[k] = e
	}
	r.hosts.Store(&next)
	return &Registration{reg: r, keys: keys, e: e}, nil
}

// Close stops serving new requests in-process, as closing a listener
// stops accepting connections: from now on a request for these hosts goes
// to the Transport's fallback (the network). Requests in flight go on;
// Wait waits for them. Close may be called more than once.
func (g *Registration) Close() {
	g.once.Do(func() {
		g.e.mu.Lock()
		g.e.closed = true
		g.e.mu.Unlock()
		r := g.reg
		r.mu.Lock()
		defer r.mu.Unlock()
		old := *r.hosts.Load()
		next := make(map[hostKey]*entry, len(old))
		for k, v := range old {
			if v != g.e {
				next[k] = v
			}
		}
		r.hosts.Store(&next)
	})
}

// Wait waits until no request handed to this registration's handler is
// still running, or until ctx ends.
func (g *Registration) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		g.e.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("inproc: requests still in flight: %w", ctx.Err())
	}
}

// Serves reports whether a request to u would be served in-process now.
func (r *Registry) Serves(u *url.URL) bool {
	e := r.lookup(u)
	if e == nil {
		return false
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	return !e.closed
}

func (r *Registry) lookup(u *url.URL) *entry {
	hosts := *r.hosts.Load()
	if len(hosts) == 0 {
		return nil
	}
	if e, ok := hosts[hostKey{u.Scheme, u.Host}]; ok {
		return e
	}
	if k := normalise(u.Scheme, u.Host); k != (hostKey{u.Scheme, u.Host}) {
		return hosts[k]
	}
	return nil
}

// acquire returns the open entry for u with one more request counted in
// flight, or nil.
func (r *Registry) acquire(u *url.URL) *entry {
	e := r.lookup(u)
	if e == nil {
		return nil
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil
	}
	e.inflight.Add(1)
	return e
}

// normalise lower-cases scheme and host and drops the scheme's default
// port, so "HTTP://LocalHost:80" and "http://localhost" are one host.
func normalise(scheme, host string) hostKey {
	scheme, host = strings.ToLower(scheme), strings.ToLower(host)
	if h, port, err := net.SplitHostPort(host); err == nil {
		if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
			host = h
			if strings.Contains(h, ":") {
				host = "[" + h + "]"
			}
		}
	}
	return hostKey{scheme, host}
}

// Transport returns the registry's shared Transport, whose fallback is a
// pooled *http.Transport for the hosts that are not registered.
func (r *Registry) Transport() *Transport {
	r.once.Do(func() { r.shared = &Transport{Registry: r, Fallback: NewFallback()} })
	return r.shared
}

// NewFallback is the network transport behind a Transport: no proxy from
// the environment (services are reached directly), connections kept alive
// and plenty of them idle per host, as the services' own clients do.
func NewFallback() *http.Transport {
	return &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   3 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// Transport is an http.RoundTripper that serves requests to the hosts in
// Registry in-process and sends the others through Fallback.
type Transport struct {
	Registry *Registry
	// Fallback carries requests to hosts that are not registered; nil
	// means http.DefaultTransport.
	Fallback http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil {
		closeBody(req)
		return nil, errors.New("inproc: the request has no URL")
	}
	if t.Registry != nil {
		if e := t.Registry.acquire(req.URL); e != nil {
			return t.Registry.serve(e, req)
		}
	}
	return t.fallback().RoundTrip(req)
}

// CloseIdleConnections closes the fallback's idle connections.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.fallback().(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (t *Transport) fallback() http.RoundTripper {
	if t.Fallback != nil {
		return t.Fallback
	}
	return http.DefaultTransport
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// serve runs e's handler for req on a worker goroutine and returns the
// response once the handler has produced its headers, or an error when
// the caller's context ends first.
func (r *Registry) serve(e *entry, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		e.inflight.Done()
		closeBody(req)
		return nil, err
	}
	// The handler's context: none of the caller's values (a chi route,
	// an identity, a span: the callee must find its own, from headers),
	// but the caller's cancellation, as a closed connection would bring.
	hctx, cancel := context.WithCancel(context.Background())
	sreq := serverRequest(req, hctx)
	rw := newResponseWriter(sreq.Method, cancel)
	stop := context.AfterFunc(ctx, func() { rw.abort(ctx.Err()) })

	r.workers.run(func() {
		defer e.inflight.Done()
		panicked := true
		defer func() {
			if panicked {
				if v := recover(); v != nil && v != http.ErrAbortHandler {
					const size = 64 << 10
					buf := make([]byte, size)
					buf = buf[:runtime.Stack(buf, false)]
					r.logf("inproc: panic serving %s %s%s: %v\n%s", sreq.Method, sreq.Host, sreq.RequestURI, v, buf)
				}
			}
			rw.finish(panicked)
			stop()
			cancel() // as net/http does once ServeHTTP returns
			closeBody(req)
		}()
		e.handler.ServeHTTP(rw, sreq)
		panicked = false
	})

	select {
	case <-rw.headersReady:
	case <-ctx.Done():
		rw.abort(ctx.Err())
		select {
		case <-rw.headersReady: // the answer was complete before
		default:
			return nil, ctx.Err()
		}
	}
	return rw.response(req)
}

// workers run handlers on goroutines that stay for the next request, as
// net/http's do for the next request on a kept-alive connection: a fresh
// goroutine per call would grow its stack through the middleware on every
// call, which costs more than the rest of the hand-over.
type workers struct {
	hand chan func() // unbuffered: taken only by an idle worker
	idle time.Duration
}

// run runs fn on an idle worker, or on a new one when all are busy.
func (p *workers) run(fn func()) {
	select {
	case p.hand <- fn:
	default:
		go p.work(fn)
	}
}

// work runs fn, then whatever comes, until idle for p.idle.
func (p *workers) work(fn func()) {
	fn()
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		select {
		case fn := <-p.hand:
			fn()
			t.Reset(p.idle)
		case <-t.C:
			return
		}
	}
}

func (r *Registry) logf(format string, args ...any) {
	if r.ErrorLog != nil {
		r.ErrorLog.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}

// serverRequest turns a client request into the request a server would
// hand its handler.
func serverRequest(req *http.Request, ctx context.Context) *http.Request {
	s := req.Clone(ctx)
	s.URL.Scheme, s.URL.Host, s.URL.User, s.URL.Fragment, s.URL.RawFragment = "", "", nil, "", ""
	s.RequestURI = req.URL.RequestURI()
	if s.Method == "" {
		s.Method = http.MethodGet
	}
	s.Proto, s.ProtoMajor, s.ProtoMinor = "HTTP/1.1", 1, 1
	s.Host = req.Host
	if s.Host == "" {
		s.Host = req.URL.Host
	}
	s.RemoteAddr = RemoteAddr
	s.TLS, s.Response, s.GetBody, s.Cancel, s.Close, s.Pattern = nil, nil, nil, nil, false, ""
	if s.Header == nil {
		s.Header = http.Header{}
	}
	delete(s.Header, "Host") // a client sends req.Host, never this
	if _, ok := s.Header["User-Agent"]; !ok {
		s.Header["User-Agent"] = []string{"Go-http-client/1.1"}
	}
	switch {
	case req.Body == nil || req.Body == http.NoBody:
		s.Body, s.ContentLength = http.NoBody, 0
	case req.ContentLength == 0:
		// A body of unknown length: the server would see it chunked.
		s.Body, s.ContentLength = &requestBody{rc: req.Body}, -1
	default:
		s.Body = &requestBody{rc: req.Body}
	}
	return s
}

// requestBody is the handler's view of the caller's body: the handler may
// read and close it; the transport closes the caller's body once the
// handler has returned.
type requestBody struct {
	rc     io.Reader
	closed atomic.Bool
}

var errBodyClosed = errors.New("http: invalid Read on closed Body")

func (b *requestBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errBodyClosed
	}
	return b.rc.Read(p)
}

func (b *requestBody) Close() error {
	b.closed.Store(true)
	return nil
}

// sendAfter is how much body a handler may write before the headers go to
// the caller without a flush (net/http buffers about as much); maxBuffered
// is how much a caller that does not read may leave unread before the
// handler's writes wait.
const (
	sendAfter   = 4 << 10
	maxBuffered = 256 << 10
)

var (
	// errCallerGone is what a handler's Write returns once the caller
	// has given up, as writing to a closed connection fails.
	errCallerGone = errors.New("inproc: the caller has gone away")
	// errReadAfterClose is what reading a closed response body returns.
	errReadAfterClose = errors.New("http: read on closed response body")
	// errHandlerAborted means the handler panicked before it answered:
	// over HTTP the caller would see the connection close.
	errHandlerAborted = fmt.Errorf("inproc: the handler aborted the request: %w", syscall.ECONNRESET)
)

// responseWriter is the in-memory http.ResponseWriter the handler writes
// to, and the pipe its body flows through to the caller.
type responseWriter struct {
	method string
	cancel context.CancelFunc // the handler's request context

	handlerHeader http.Header

	mu       sync.Mutex
	cond     sync.Cond
	status   int
	header   http.Header // snapshot taken when the status was written
	buf      []byte      // body written and not yet read: buf[off:]
	off      int
	sent     bool  // headersReady is closed
	finished bool  // the handler has returned
	aborted  bool  // it panicked
	noAnswer bool  // it panicked before its headers went out
	gone     error // the caller gave up (cancelled or closed the body)
	closed   bool  // the caller closed the body

	headersReady chan struct{}
}

func newResponseWriter(method string, cancel context.CancelFunc) *responseWriter {
	w := &responseWriter{method: method, cancel: cancel, handlerHeader: http.Header{}, headersReady: make(chan struct{})}
	w.cond.L = &w.mu
	return w
}

// Header implements http.ResponseWriter.
func (w *responseWriter) Header() http.Header { return w.handlerHeader }

// WriteHeader implements http.ResponseWriter.
func (w *responseWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writeHeaderLocked(code)
}

func (w *responseWriter) writeHeaderLocked(code int) {
	if w.status != 0 {
		return // superfluous, as net/http ignores it
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		return // informational: Go's client does not surface these either
	}
	w.status = code
	w.header = w.handlerHeader.Clone()
}

// Write implements http.ResponseWriter.
func (w *responseWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.status == 0 {
		w.writeHeaderLocked(http.StatusOK)
	}
	if w.gone != nil {
		return 0, errCallerGone
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.method == http.MethodHead {
		return len(p), nil // the server eats a HEAD's body
	}
	n := len(p)
	for len(p) > 0 {
		if w.sent && len(w.buf)-w.off >= maxBuffered {
			// The caller reads slowly: wait, as a full socket would.
			w.cond.Wait()
			if w.gone != nil {
				return n - len(p), errCallerGone
			}
			continue
		}
		if w.off > 0 && w.off >= cap(w.buf)/2 {
			// Reuse the room the reader has freed.
			w.buf = w.buf[:copy(w.buf, w.buf[w.off:])]
			w.off = 0
		}
		chunk := p
		if w.sent {
			chunk = p[:min(len(p), maxBuffered-(len(w.buf)-w.off))]
		}
		w.buf = append(w.buf, chunk...)
		p = p[len(chunk):]
		if !w.sent && len(w.buf) > sendAfter {
			w.sendLocked()
		}
		w.cond.Broadcast()
	}
	return n, nil
}

// Flush implements http.Flusher: the headers and what the body holds so
// far go to the caller now.
func (w *responseWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.status == 0 {
		w.writeHeaderLocked(http.StatusOK)
	}
	if !w.sent {
		w.sendLocked()
	}
	w.cond.Broadcast()
}

// sendLocked releases the headers to RoundTrip, filling in what a server
// fills in: Content-Length when the whole body is known, and a sniffed
// Content-Type when the handler set none.
func (w *responseWriter) sendLocked() {
	if !w.aborted && bodyAllowed(w.status) && w.method != http.MethodHead {
		if _, set := w.header["Content-Type"]; !set && len(w.buf) > 0 {
			w.header.Set("Content-Type", http.DetectContentType(w.buf[:min(len(w.buf), 512)]))
		}
		if w.finished && w.header.Get("Content-Length") == "" && w.header.Get("Transfer-Encoding") == "" {
			w.header.Set("Content-Length", strconv.Itoa(len(w.buf)))
		}
	}
	w.sent = true
	close(w.headersReady)
}

// finish marks the handler done; a handler that wrote nothing answered 200.
func (w *responseWriter) finish(panicked bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.finished = true
	w.aborted = panicked
	if w.status == 0 && !panicked {
		w.writeHeaderLocked(http.StatusOK)
	}
	if !w.sent {
		// A panic before anything went out: net/http would close the
		// connection without an answer.
		w.noAnswer = panicked
		w.sendLocked()
	}
	w.cond.Broadcast()
}

// abort is the caller giving up: its context ended. The handler's context
// is cancelled and its writes fail; a body already complete stays readable.
func (w *responseWriter) abort(err error) {
	w.mu.Lock()
	if !w.finished && w.gone == nil {
		w.gone = err
		w.cond.Broadcast()
	}
	w.mu.Unlock()
	w.cancel()
}

// response builds the caller's *http.Response once the headers are out.
func (w *responseWriter) response(req *http.Request) (*http.Response, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gone != nil {
		// The caller gave up before the handler was done.
		return nil, w.gone
	}
	if w.noAnswer {
		return nil, errHandlerAborted
	}
	resp := &http.Response{
		Status:        statusLine(w.status),
		StatusCode:    w.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.header,
		ContentLength: -1,
		Request:       req,
	}
	if cl := w.header.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil {
			resp.ContentLength = n
		}
	}
	switch {
	case !bodyAllowed(w.status) || req.Method == http.MethodHead:
		resp.Body = http.NoBody
		if !bodyAllowed(w.status) {
			resp.ContentLength = 0
		}
	case w.finished && !w.aborted:
		// The common case: the whole answer is here, and nobody writes
		// to it any more.
		resp.Body = &fullBody{b: w.buf[w.off:]}
	default:
		resp.Body = &streamBody{w: w}
	}
	return resp, nil
}

// fullBody is a complete response body. Close may come from another
// goroutine than Read, as callers abort reads that way.
type fullBody struct {
	b      []byte
	closed atomic.Bool
}

func (b *fullBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errReadAfterClose
	}
	if len(b.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b.b)
	b.b = b.b[n:]
	return n, nil
}

func (b *fullBody) Close() error {
	b.closed.Store(true)
	return nil
}

// streamBody reads a body the handler is still writing.
type streamBody struct{ w *responseWriter }

func (b *streamBody) Read(p []byte) (int, error) {
	w := b.w
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		switch {
		case w.closed:
			return 0, errReadAfterClose
		case w.off < len(w.buf):
			if len(p) == 0 {
				return 0, nil
			}
			n := copy(p, w.buf[w.off:])
			w.off += n
			if w.off == len(w.buf) {
				w.buf, w.off = w.buf[:0], 0
			}
			w.cond.Broadcast() // a writer may wait for room
			return n, nil
		case w.gone != nil:
			return 0, w.gone
		case w.finished && w.aborted:
			return 0, errHandlerAborted
		case w.finished:
			return 0, io.EOF
		}
		w.cond.Wait()
	}
}

// Close ends the caller's interest: a handler still writing gets errors
// and its context is cancelled, as when a client closes the connection.
func (b *streamBody) Close() error {
	w := b.w
	w.mu.Lock()
	w.closed = true
	running := !w.finished
	if running && w.gone == nil {
		w.gone = errCallerGone
	}
	w.cond.Broadcast()
	w.mu.Unlock()
	if running {
		w.cancel()
	}
	return nil
}

func bodyAllowed(status int) bool {
	switch {
	case status >= 100 && status <= 199:
		return false
	case status == http.StatusNoContent, status == http.StatusNotModified:
		return false
	}
	return true
}

// statusLines holds "200 OK" and the like, so a response costs no
// formatting.
var statusLines = func() map[int]string {
	m := map[int]string{}
	for code := 100; code < 600; code++ {
		if t := http.StatusText(code); t != "" {
			m[code] = strconv.Itoa(code) + " " + t
		}
	}
	return m
}()

func statusLine(code int) string {
	if s, ok := statusLines[code]; ok {
		return s
	}
	return strconv.Itoa(code) + " status code " + strconv.Itoa(code)
}
