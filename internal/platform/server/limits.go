package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/microshop/microshop/internal/platform/problem"
)

// Limits bound what one client may hold of a server: how slowly it may
// send a body, how long an answer may take to go out, how long an idle
// connection stays, how large its headers may be and how many
// connections one address may keep open.
type Limits struct {
	// BodyGrace and BodyMinRate pace request bodies the way Apache's
	// mod_reqtimeout does ("body=10,MinRate=500"): a body has BodyGrace
	// to start, and every BodyMinRate bytes that arrive buy one more
	// second. A client that sends a byte every few seconds is cut off
	// after about BodyGrace with a 408, while a slow but steady upload of
	// any size goes through. http.Server's ReadTimeout cannot tell the
	// two apart: one deadline for the whole request either cuts slow
	// honest uploads or lets a trickle hold a slot for as long.
	// Zero BodyGrace switches pacing off.
	BodyGrace   time.Duration
	BodyMinRate int64 // bytes a second
	// WriteTimeout bounds sending an answer, counted from when the body
	// has been read (or from the headers when there is none), so it does
	// not eat into a slow upload's time. Zero: no limit.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends nothing.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers. Past it the
	// answer is a 431 problem. Go's own limit, which answers in plain
	// text, is set well above it so that one is reached only by headers
	// far larger than any client sends. Zero: Go's default only.
	MaxHeaderBytes int
	// MaxConnsPerClient bounds the connections one remote address may
	// hold open; one more is answered 503 and closed before a request is
	// read. Zero: no limit. Services behind a proxy leave it off (every
	// connection comes from the proxy); the gateway, at the edge, sets it.
	MaxConnsPerClient int
}

// DefaultLimits are the limits of every service unless it sets its own.
func DefaultLimits() Limits {
	return Limits{
		BodyGrace:      10 * time.Second,
		BodyMinRate:    1 << 10,
		WriteTimeout:   90 * time.Second, // above the longest propagated deadline (60 s)
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 32 << 10,
	}
}

// ErrBodyTooSlow is the error a paced request body returns once its
// client fell below the minimum rate. Decoders answer it with a 408.
var ErrBodyTooSlow = errors.New("the request body arrived too slowly")

// SlowBody is the answer to a body that arrived too slowly. It closes
// the connection: what is left of the body will never be read.
func SlowBody(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Connection", "close")
	problem.Write(w, r, problem.SlowBody())
}

// limitHeaders answers 431 as a problem when the request line and
// headers are larger than max.
func limitHeaders(max int) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if max <= 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Counted as they came on the wire: "Name: value\r\n".
			n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4
			for k, vs := range r.Header {
				for _, v := range vs {
					n += len(k) + len(v) + 4
				}
			}
			if n > max {
				w.Header().Set("Connection", "close")
				problem.Write(w, r, problem.New(http.StatusRequestHeaderFieldsTooLarge, "headers-too-large",
					"Request headers too large", "the request line and headers must be at most "+strconv.Itoa(max)+" bytes"))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// pace applies the write deadline to every request and the minimum rate
// to every body. It works on connections whose deadlines can be set
// (http.ResponseController); in-process calls have none and pass as
// they are.
func pace(l Limits) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if l.BodyGrace <= 0 && l.WriteTimeout <= 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			now := time.Now()
			if l.WriteTimeout > 0 {
				_ = rc.SetWriteDeadline(now.Add(l.WriteTimeout))
			}
			if l.BodyGrace > 0 && l.BodyMinRate > 0 && r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
				if err := rc.SetReadDeadline(now.Add(l.BodyGrace)); err == nil {
					p := &pacedBody{body: r.Body, rc: rc, start: now, limits: l}
					p.due.Store(now.Add(l.BodyGrace).UnixNano())
					r = r.WithContext(context.WithValue(r.Context(), pacedKey{}, p))
					r.Body = p
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// pacedKey finds a request's pacedBody in its context.
type pacedKey struct{}

// BodyTooSlow reports whether r's body was cut off for arriving too
// slowly. A proxy asks it when forwarding failed: the server cancels the
// request's context as soon as the read fails, so the error the proxy
// gets may say "canceled" rather than ErrBodyTooSlow.
func BodyTooSlow(r *http.Request) bool {
	p, _ := r.Context().Value(pacedKey{}).(*pacedBody)
	if p == nil || p.done.Load() {
		return false
	}
	// Past the deadline is enough: the failed read that cancels the
	// context may not have come back to Read yet.
	return p.tooSlow.Load() || time.Now().UnixNano() >= p.due.Load()
}

// pacedBody moves the connection's read deadline forward as bytes
// arrive: start + grace + one second per BodyMinRate bytes read.
type pacedBody struct {
	body   io.ReadCloser
	rc     *http.ResponseController
	start  time.Time
	limits Limits
	read   int64
	err    error
	// These are read from the handler's goroutine while another (a
	// proxy's transport) reads the body: whether it was cut off, the
	// read deadline now in force (Unix nanoseconds), and whether the
	// body is all in.
	tooSlow atomic.Bool
	due     atomic.Int64
	done    atomic.Bool
}

func (p *pacedBody) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	due := p.start.Add(p.limits.BodyGrace + time.Duration(p.read)*time.Second/time.Duration(p.limits.BodyMinRate))
	p.due.Store(due.UnixNano())
	_ = p.rc.SetReadDeadline(due)
	n, err := p.body.Read(b)
	p.read += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		p.done.Store(true)
		// The body is in. Clear the deadline, which would otherwise also
		// end the server's background read and with it the request's
		// context, and give the answer its full time.
		_ = p.rc.SetReadDeadline(time.Time{})
		if p.limits.WriteTimeout > 0 {
			_ = p.rc.SetWriteDeadline(time.Now().Add(p.limits.WriteTimeout))
		}
	case errors.Is(err, os.ErrDeadlineExceeded):
		p.tooSlow.Store(true)
		p.err = fmt.Errorf("%w: %d bytes in %s: %w", ErrBodyTooSlow, p.read, time.Since(p.start).Round(time.Millisecond), err)
		return n, p.err
	}
	return n, err
}

func (p *pacedBody) Close() error { return p.body.Close() }

// clientLimit is a listener that refuses a connection from an address
// that already holds max open ones. The server's ConnState hook gives the
// slot back when a connection closes; connections are returned as they
// are, so the server still sees a *tls.Conn as one.
type clientLimit struct {
	net.Listener
	max      int
	onRefuse func()

	mu   sync.Mutex
	open map[netip.Addr]int
}

func newClientLimit(ln net.Listener, max int, onRefuse func()) *clientLimit {
	return &clientLimit{Listener: ln, max: max, onRefuse: onRefuse, open: map[netip.Addr]int{}}
}

// Accept returns the next connection within the limit; those over it are
// answered and closed on the side.
func (l *clientLimit) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.take(remoteAddr(c)) {
			return c, nil
		}
		l.onRefuse()
		go refuseConn(c)
	}
}

func (l *clientLimit) take(a netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[a] >= l.max {
		return false
	}
	l.open[a]++
	return true
}

// connState gives back a connection's slot once it is closed or taken
// over by a handler.
func (l *clientLimit) connState(c net.Conn, s http.ConnState) {
	if s != http.StateClosed && s != http.StateHijacked {
		return
	}
	a := remoteAddr(c)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[a] <= 1 {
		delete(l.open, a)
		return
	}
	l.open[a]--
}

func remoteAddr(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// tooManyConns is the whole answer to a connection over the limit: a 503
// problem, sent before any request is read, after which it is closed.
var tooManyConns = func() []byte {
	p := problem.Unavailable("too many connections from your address; close some and try again")
	body, _ := json.Marshal(p)
	return []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: " + problem.ContentType +
		"\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(len(body)+1) + "\r\n\r\n" + string(body) + "\n")
}()

func refuseConn(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write(tooManyConns); err != nil {
		return
	}
	// Half-close and read what the client still sends, so the close does
	// not reset the connection before the client has read the answer.
	if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}
}
