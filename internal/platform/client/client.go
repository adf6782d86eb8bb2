// Package client is the HTTP client services use to call each other. Every
// call has a deadline, passes through a circuit breaker and a concurrency
// limit (bulkhead) for its target, and is retried with exponential backoff
// and full jitter only when retrying is safe: the method is idempotent or
// the request carries an Idempotency-Key.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/balancer"
	"github.com/microshop/microshop/internal/platform/mtls"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/platform/server"
	"github.com/microshop/microshop/internal/platform/telemetry"
)

// ErrUnavailable means the target could not be reached or answered that
// it is unavailable; the caller may try again later or compensate.
var ErrUnavailable = errors.New("service unavailable")

// Options tune the calls to one target. Zero values take the defaults.
type Options struct {
	// Timeout bounds one attempt (default 5s); the caller's context
	// deadline bounds them all.
	Timeout time.Duration
	// Attempts is how many times a safe call is tried (default 3).
	Attempts int
	// BaseBackoff is the first retry's maximum wait (default 50ms).
	BaseBackoff time.Duration
	// MaxConcurrent is the bulkhead: calls in flight to the target
	// (default 128). Past it a call waits for a slot or its deadline.
	MaxConcurrent int
	// Telemetry makes a client span per attempt and passes the trace on;
	// nil traces nothing.
	Telemetry *telemetry.Telemetry
	// BreakerFailures opens the breaker after this many consecutive
	// failures (default 5); it half-opens after BreakerOpen (default 5s).
	BreakerFailures int
	BreakerOpen     time.Duration
	// Transport carries the calls; nil means the client's own pool of
	// keep-alive connections. The runtime sets it to an in-process
	// transport when services share a process (see package inproc).
	Transport http.RoundTripper
	// System, when set, is the system the target belongs to
	// (service.Runtime.System): of several replica URLs, only those whose
	// readiness answer names the target of this system are called, never
	// a stranger on one of their ports (see balancer.Expect).
	System string
	// TLS, when set, is this service's identity: calls (and readiness
	// probes) go over mutual TLS to https:// URLs only, and only to a
	// replica whose certificate names the target (see package mtls).
	// Ignored when Transport is set.
	TLS *mtls.Identity
}

func (o *Options) defaults() {
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Attempts == 0 {
		o.Attempts = 3
	}
	if o.BaseBackoff == 0 {
		o.BaseBackoff = 50 * time.Millisecond
	}
	if o.MaxConcurrent == 0 {
		o.MaxConcurrent = 128
	}
	if o.BreakerFailures == 0 {
		o.BreakerFailures = 5
	}
	if o.BreakerOpen == 0 {
		o.BreakerOpen = 5 * time.Second
	}
	if o.Telemetry == nil {
		o.Telemetry = telemetry.Disabled()
	}
}

// Client calls one target service.
type Client struct {
	target  string // the service's name, for errors and metrics
	bal     *balancer.Balancer
	badURL  error
	hc      *http.Client
	creds   *auth.Credentials
	opts    Options
	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]
	slots   chan struct{}
	metrics *Metrics
}

// New returns a client of the service target at base, one base URL or a
// comma-separated list of its replicas' (see package balancer). creds,
// when not nil, signs each request with this service's credential. A bad
// URL list makes every call fail with that configuration error; check it
// at start with Validate. The owner of a client of several replicas runs
// its Run for as long as it uses the client.
func New(target, base string, creds *auth.Credentials, opts Options, m *Metrics) *Client {
	opts.defaults()
	bal, err := balancer.New(base)
	transport := opts.Transport
	if transport == nil {
		t := &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        opts.MaxConcurrent,
			MaxIdleConnsPerHost: opts.MaxConcurrent, // Go's default of 2 costs a fifth of the throughput
			IdleConnTimeout:     90 * time.Second,
			// No compression between services: on a local network it
			// costs CPU at both ends and saves nothing worth it.
			DisableCompression: true,
		}
		if opts.TLS != nil {
			t.DialTLSContext = opts.TLS.DialTLS(target)
			if err == nil {
				err = requireTLS(target, bal)
			}
		}
		transport = t
	}
	if err == nil {
		if opts.System != "" {
			bal.Expect(target + "@" + opts.System)
		}
		if opts.TLS != nil {
			// Probes prove the replica's identity like calls do, and
			// share their kept-alive connections.
			bal.ProbeWith(transport)
		}
		// One probe now, bounded by the probe timeout, so the first calls
		// go to replicas that are up; Run keeps probing after it.
		bal.ProbeAll(context.Background())
	}
	c := &Client{
		target: target, bal: bal, badURL: err, creds: creds, opts: opts, metrics: m,
		hc:    &http.Client{Transport: transport},
		slots: make(chan struct{}, opts.MaxConcurrent),
	}
	c.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        target,
		MaxRequests: 1,
		Timeout:     opts.BreakerOpen,
		ReadyToTrip: func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= uint32(opts.BreakerFailures) },
		// A caller that gives up says nothing about the target's health.
		IsExcluded: func(err error) bool { return errors.Is(err, errCallerGone) },
		OnStateChange: func(_ string, _, to gobreaker.State) {
			m.breakerState(target, to)
		},
	})
	m.breakerState(target, gobreaker.StateClosed)
	return c
}

// Run probes the replicas' readiness until ctx ends, so calls go only to
// ready ones; give it the context of the client's owner, such as the
// service runtime's (service.Runtime.Go). With one base URL there is
// nothing to probe and it returns at once.
func (c *Client) Run(ctx context.Context) error {
	if c.bal != nil {
		c.bal.Run(ctx)
	}
	return nil
}

// requireTLS refuses a replica URL that would be called in plain HTTP by
// a service that calls over mutual TLS: its requests would go to
// whoever listens there, unchecked.
func requireTLS(target string, bal *balancer.Balancer) error {
	for _, u := range bal.All() {
		if u.Scheme != "https" {
			return fmt.Errorf("%s is called over mutual TLS (--tls-cert), so its URLs must be https://, not %s", target, u)
		}
	}
	return nil
}

// Validate reports whether base is a usable URL list for New.
func Validate(target, base string) error {
	if _, err := balancer.New(base); err != nil {
		return fmt.Errorf("the %s service's URL %q: %w", target, base, err)
	}
	return nil
}

// Call is one request: Method and Path on the target, an optional JSON
// body In, and Out to decode a 2xx JSON answer into.
type Call struct {
	Method string
	Path   string
	// Route is Path's template ("/internal/reservations/{id}/commit"),
	// which names the call's span. When it is empty the span takes the
	// route the target answered with (server.RouteHeader), or the method
	// alone when no answer came: a span name never holds an id.
	Route string
	In    any
	Out   any
	// IdempotencyKey makes a write safe to retry; the target must honour it.
	IdempotencyKey string
	// Header adds request headers.
	Header http.Header
}

// Bearer is the header that sends a user's access token with a Call, for
// clients of a public API; none for "".
func Bearer(token string) http.Header {
	if token == "" {
		return nil
	}
	return http.Header{"Authorization": {"Bearer " + token}}
}

// Do performs c. A non-2xx answer comes back as a *problem.Problem (the
// target's own when it sent one); an unreachable target as an error
// wrapping ErrUnavailable.
func (cl *Client) Do(ctx context.Context, c Call) error {
	if cl.badURL != nil {
		return fmt.Errorf("calling %s: %w", cl.target, cl.badURL)
	}
	var body []byte
	if c.In != nil {
		var err error
		if body, err = json.Marshal(c.In); err != nil {
			return fmt.Errorf("encoding the request to %s: %w", cl.target, err)
		}
	}
	safe := c.IdempotencyKey != "" || c.Method == http.MethodGet || c.Method == http.MethodHead ||
		c.Method == http.MethodPut || c.Method == http.MethodDelete
	attempts := 1
	if safe {
		attempts = cl.opts.Attempts
	}
	var err error
	var failed []*url.URL // replicas that refused this call's connection
	for i := 0; i < attempts; i++ {
		if i > 0 {
			cl.metrics.retry(cl.target)
			// Full jitter: a random wait up to an exponentially growing cap,
			// so retries from many callers spread out.
			limit := cl.opts.BaseBackoff << (i - 1)
			wait := time.Duration(rand.Int64N(int64(limit) + 1))
			select {
			case <-ctx.Done():
				return errors.Join(err, ctx.Err())
			case <-time.After(wait):
			}
		}
		var retry bool
		var replica *url.URL
		replica, retry, err = cl.attempt(ctx, c, body, failed)
		if err != nil && refused(err) && len(failed) < cl.bal.Len()-1 {
			// Nothing was sent: any call, safe or not, may go to another
			// replica at once, and that costs no attempt.
			cl.bal.Down(replica)
			failed = append(failed, replica)
			i--
			continue
		}
		if err == nil || !retry {
			return err
		}
	}
	return err
}

// refused reports a connection that could not be made: the request never
// left this process.
func refused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// attempt makes one try on one replica (not one of exclude, when it can)
// and says which replica and whether a failure is worth retrying.
func (cl *Client) attempt(ctx context.Context, c Call, body []byte, exclude []*url.URL) (replica *url.URL, retry bool, err error) {
	replica = cl.bal.Pick(exclude...)
	start := time.Now()
	outcome := "error"
	// OpenTelemetry's HTTP client spans are "{method} {url.template}".
	name := c.Method
	if c.Route != "" {
		name += " " + c.Route
	}
	ctx, span := cl.opts.Telemetry.Tracer.Start(ctx, name,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("peer.service", cl.target), attribute.String("http.request.method", c.Method)))
	if c.Route != "" {
		span.SetAttributes(attribute.String("url.template", c.Route))
	}
	defer func() {
		span.SetAttributes(attribute.String("outcome", outcome))
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
		cl.metrics.observe(cl.target, c.Method, outcome, time.Since(start))
	}()

	// Bulkhead: a slow target may hold at most MaxConcurrent calls.
	select {
	case cl.slots <- struct{}{}:
		defer func() { <-cl.slots }()
	case <-ctx.Done():
		outcome = "bulkhead_full"
		return replica, false, fmt.Errorf("%w: %s: no free slot before the deadline: %w", ErrUnavailable, cl.target, ctx.Err())
	}
	done, err := cl.breaker.Allow()
	if err != nil {
		outcome = "breaker_open"
		return replica, false, fmt.Errorf("%w: %s: circuit breaker open after repeated failures", ErrUnavailable, cl.target)
	}

	actx, cancel := context.WithTimeout(ctx, cl.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, c.Method, replica.String()+c.Path, bytes.NewReader(body))
	if err != nil {
		done(nil)
		return replica, false, fmt.Errorf("building the request to %s: %w", cl.target, err)
	}
	for k, v := range c.Header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", c.IdempotencyKey)
	}
	cl.opts.Telemetry.Inject(actx, req.Header)
	if id := RequestID(ctx); id != "" {
		req.Header.Set("X-Request-Id", id)
	}
	// The target may stop working on the call once the caller gives up.
	if dl, ok := actx.Deadline(); ok {
		req.Header.Set("Request-Timeout-Ms", strconv.FormatInt(max(time.Until(dl).Milliseconds(), 1), 10))
	}
	if cl.creds != nil {
		if err := cl.creds.Authorize(req, cl.target); err != nil {
			done(nil)
			return replica, false, err
		}
	}
	resp, err := cl.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			done(errCallerGone)
			return replica, false, fmt.Errorf("%w: calling %s: %w", ErrUnavailable, cl.target, ctx.Err())
		}
		if refused(err) && cl.bal.Len() > 1 {
			// One replica that is not there says nothing about the
			// service: the call goes to another one.
			done(errCallerGone)
		} else {
			done(err)
		}
		outcome = "unreachable"
		return replica, true, fmt.Errorf("%w: calling %s %s: %w", ErrUnavailable, c.Method, cl.target+c.Path, err)
	}
	defer resp.Body.Close()
	if route := resp.Header.Get(server.RouteHeader); c.Route == "" && route != "" && route[0] == '/' {
		span.SetName(c.Method + " " + route)
		span.SetAttributes(attribute.String("url.template", route))
	}
	payload, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		done(err)
		outcome = "unreachable"
		return replica, true, fmt.Errorf("%w: reading the answer of %s: %v", ErrUnavailable, cl.target, err)
	}
	outcome = strconv.Itoa(resp.StatusCode)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		done(nil)
		if c.Out != nil && len(payload) > 0 {
			if err := json.Unmarshal(payload, c.Out); err != nil {
				return replica, false, fmt.Errorf("decoding the answer of %s: %w", cl.target, err)
			}
		}
		return replica, false, nil
	case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusBadGateway ||
		resp.StatusCode == http.StatusGatewayTimeout || resp.StatusCode == http.StatusTooManyRequests:
		done(errors.New(resp.Status))
		p := decodeProblem(resp, payload)
		return replica, true, fmt.Errorf("%w: %s answered %d: %w", ErrUnavailable, cl.target, resp.StatusCode, p)
	case resp.StatusCode >= 500:
		done(errors.New(resp.Status))
		return replica, false, decodeProblem(resp, payload)
	default:
		done(nil) // a 4xx is the target working correctly
		return replica, false, decodeProblem(resp, payload)
	}
}

func decodeProblem(resp *http.Response, payload []byte) *problem.Problem {
	var p problem.Problem
	if json.Unmarshal(payload, &p) == nil && p.Status != 0 {
		return &p
	}
	return problem.New(resp.StatusCode, "upstream", http.StatusText(resp.StatusCode), string(payload))
}

// errCallerGone marks a call the breaker must not count: its caller gave
// up, or one of several replicas refused it.
var errCallerGone = errors.New("the caller gave up")

type requestIDKey struct{}

// WithRequestID lets outgoing calls carry the incoming request's id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the id WithRequestID stored.
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey{}).(string)
	return s
}

// Metrics count calls by target and outcome.
type Metrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	retries  *prometheus.CounterVec
	breaker  *prometheus.GaugeVec
}

// NewMetrics registers the client metrics in reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_client_requests_total",
			Help: "Calls to other services, by target, method and outcome (status code, unreachable, breaker_open, bulkhead_full).",
		}, []string{"target", "method", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_client_request_duration_seconds",
			Help:    "Time of one call attempt to another service.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"target"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_client_retries_total", Help: "Retried calls to other services, by target.",
		}, []string{"target"}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "circuit_breaker_state", Help: "Circuit breaker state per target: 0 closed, 1 half-open, 2 open.",
		}, []string{"target"}),
	}
	reg.MustRegister(m.calls, m.duration, m.retries, m.breaker)
	return m
}

func (m *Metrics) observe(target, method, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.calls.WithLabelValues(target, method, outcome).Inc()
	m.duration.WithLabelValues(target).Observe(d.Seconds())
}

func (m *Metrics) retry(target string) {
	if m != nil {
		m.retries.WithLabelValues(target).Inc()
	}
}

func (m *Metrics) breakerState(target string, s gobreaker.State) {
	if m != nil {
		m.breaker.WithLabelValues(target).Set(float64(s))
	}
}
