package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/balancer"
	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/platform/ratelimit"
	"github.com/microshop/microshop/internal/platform/server"
	"github.com/microshop/microshop/internal/platform/telemetry"
)

// newTransport is shared by every upstream. Connections stay alive and
// many stay idle per service: a new connection per request costs far more
// than the hop itself, and Go's default of two idle connections per host
// throttles a busy gateway.
func newTransport() *http.Transport {
	return &http.Transport{
		// Services are reached directly, never through an outbound proxy
		// from the environment.
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   3 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2: true,
		// The client's own Accept-Encoding goes to the service unchanged;
		// the gateway asks for no compression of its own, which it would
		// only have to undo.
		DisableCompression:    true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
		// No ResponseHeaderTimeout: each request's context carries the
		// --upstream-timeout deadline, answer included.
	}
}

// upstream is one service the gateway forwards to.
type upstream struct {
	name    string
	bal     *balancer.Balancer
	timeout time.Duration
	proxy   *httputil.ReverseProxy
	log     *slog.Logger
	// guarded is the proxy behind the token check, for routes that are
	// not public.
	guarded http.Handler
	// probe asks the replicas' readiness for the health panel, through
	// the upstream's own transport.
	probe *http.Client
}

func newUpstream(name string, bal *balancer.Balancer, timeout time.Duration, secret string, header http.Header, transport http.RoundTripper, m *metrics, tel *telemetry.Telemetry, log *slog.Logger) *upstream {
	u := &upstream{name: name, bal: bal, timeout: timeout, log: log}
	u.proxy = &httputil.ReverseProxy{
		// The path and query go on unchanged: services serve their public
		// routes under /api/<name>/ themselves. Rewrite (unlike Director)
		// starts from a request with the client's Forwarded and
		// X-Forwarded-* headers removed, so a client cannot pose as
		// another address; SetXForwarded then adds the true ones.
		Rewrite: func(pr *httputil.ProxyRequest) {
			target := bal.Pick()
			pr.Out.URL.Scheme = target.Scheme
			pr.Out.URL.Host = target.Host
			pr.Out.Host = ""
			pr.SetXForwarded()
			// Only the gateway may say that its X-Forwarded-For is true.
			pr.Out.Header.Del(ratelimit.ProxySecretHeader)
			if secret != "" {
				pr.Out.Header.Set(ratelimit.ProxySecretHeader, secret)
			}
			// The service gets the time left of the upstream deadline, so
			// it stops working on a request the gateway has given up on
			// even when it never sees the connection close (a partition
			// between them). A client's own value goes.
			pr.Out.Header.Del(server.TimeoutHeader)
			if dl, ok := pr.Out.Context().Deadline(); ok {
				pr.Out.Header.Set(server.TimeoutHeader, strconv.FormatInt(max(time.Until(dl).Milliseconds(), 1), 10))
			}
			// Only the gateway may present the console's token.
			pr.Out.Header.Del(auth.ConsoleTokenHeader)
			for k, v := range header {
				pr.Out.Header[k] = v
			}
		},
		Transport:      observed{next: transport, service: name, m: m, tel: tel, bal: bal},
		ModifyResponse: named,
		ErrorHandler:   u.failed,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return u
}

// named readies a service's answer for the client. The request is named
// by the route the service answered with (server.RouteHeader), so the
// gateway's span says which request it was instead of "GET /api/*". The
// service's X-Request-Id goes: it is the gateway's own, which the client
// has already, and the proxy would add it a second time.
func named(resp *http.Response) error {
	if resp.Request != nil {
		server.NameRoute(resp.Request.Context(), resp.Header.Get(server.RouteHeader))
	}
	resp.Header.Del(server.RouteHeader)
	resp.Header.Del(server.RequestIDHeader)
	// The gateway's compression says Vary: Accept-Encoding already; the
	// proxy would add the service's after it.
	var vary []string
	for _, v := range resp.Header.Values("Vary") {
		if !strings.EqualFold(strings.TrimSpace(v), "Accept-Encoding") {
			vary = append(vary, v)
		}
	}
	resp.Header.Del("Vary")
	for _, v := range vary {
		resp.Header.Add("Vary", v)
	}
	return nil
}

// ServeHTTP forwards r to the service within the upstream deadline.
func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), u.timeout)
	defer cancel()
	u.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// statusClientClosed is what nginx logs when the client left first; no
// client ever sees it.
const statusClientClosed = 499

// failed answers when the service could not be asked or gave no answer.
// Upstream answers, 5xx included, never come here: they pass through as
// they are.
func (u *upstream) failed(w http.ResponseWriter, r *http.Request, err error) {
	var tooLarge *http.MaxBytesError
	switch {
	case server.BodyTooSlow(r) || errors.Is(err, server.ErrBodyTooSlow):
		// The client, not the service, was too slow: answer for it and
		// close the connection, whose unread body is worth nothing.
		server.SlowBody(w, r)
		return
	case errors.As(err, &tooLarge):
		problem.Write(w, r, problem.New(http.StatusRequestEntityTooLarge, "body-too-large", "Body too large",
			fmt.Sprintf("the body must be at most %d bytes", tooLarge.Limit)))
		return
	case errors.Is(r.Context().Err(), context.Canceled):
		// The client went away; there is nobody to answer.
		w.WriteHeader(statusClientClosed)
		return
	}
	detail := fmt.Sprintf("the %s service is unavailable; try again shortly", u.name)
	switch {
	case errors.Is(r.Context().Err(), context.DeadlineExceeded):
		detail = fmt.Sprintf("the %s service did not answer within %s", u.name, u.timeout)
	case isTimeout(err):
		detail = fmt.Sprintf("the %s service did not answer in time", u.name)
	}
	u.log.WarnContext(r.Context(), "a service could not be reached", "target", u.name,
		"method", r.Method, "path", r.URL.Path, "err", err, "request_id", r.Header.Get(server.RequestIDHeader))
	p := problem.Unavailable(detail)
	p.Service = u.name
	problem.Write(w, r, p)
}

// keepOpen is a request body whose Close does nothing.
type keepOpen struct{ io.ReadCloser }

func (keepOpen) Close() error { return nil }

// refused reports a connection that could not be made.
func refused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// metrics are the gateway's view of its upstreams.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_upstream_requests_total",
			Help: "Requests forwarded to a service, by service and the status code it answered; " +
				`code is "error" when it could not be reached or did not answer, "499" when the client left first.`,
		}, []string{"service", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gateway_upstream_duration_seconds",
			Help:    "Time from forwarding a request to a service until its response headers arrive, by service.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"service"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// observed counts and times each round trip to one service.
type observed struct {
	next    http.RoundTripper
	service string
	m       *metrics
	tel     *telemetry.Telemetry
	bal     *balancer.Balancer
}

// RoundTrip measures the call and makes it a client span of the request's
// trace, whose context it passes to the service in the traceparent header.
func (o observed) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	// Named "{method}" until the service says which route answered, as
	// OpenTelemetry names a client span whose URL template is unknown.
	method := server.MethodLabel(r.Method)
	ctx, span := o.tel.Tracer.Start(r.Context(), method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("peer.service", o.service), attribute.String("http.request.method", method)))
	defer span.End()
	r = r.Clone(ctx)
	o.tel.Inject(ctx, r.Header)
	if r.Body != nil && r.Body != http.NoBody && o.bal.Len() > 1 {
		// The transport closes the body even when it could not connect;
		// keep it open so a refused request can go to another replica.
		// The server closes the real body when the request ends.
		r.Body = keepOpen{r.Body}
	}
	resp, err := o.next.RoundTrip(r)
	// A replica that refuses the connection never saw the request: send
	// it to another one, whatever its method.
	var failed []*url.URL
	for err != nil && refused(err) && len(failed) < o.bal.Len()-1 {
		down := o.bal.Find(r.URL)
		o.bal.Down(down)
		failed = append(failed, down)
		next := o.bal.Pick(failed...)
		r = r.Clone(ctx)
		r.URL.Scheme, r.URL.Host = next.Scheme, next.Host
		resp, err = o.next.RoundTrip(r)
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	} else {
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
		if route := resp.Header.Get(server.RouteHeader); route != "" {
			span.SetName(method + " " + route)
			span.SetAttributes(attribute.String("url.template", route))
		}
	}
	o.m.duration.WithLabelValues(o.service).Observe(time.Since(start).Seconds())
	code := "error"
	switch {
	case err == nil:
		code = strconv.Itoa(resp.StatusCode)
	case errors.Is(r.Context().Err(), context.Canceled):
		code = strconv.Itoa(statusClientClosed)
	}
	o.m.requests.WithLabelValues(o.service, code).Inc()
	return resp, err
}
