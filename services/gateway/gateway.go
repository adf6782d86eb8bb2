// Package gateway is microshop's one public entry. It forwards
// /api/<service>/... to that service unchanged, refuses the routes between
// services (/internal/...) whatever their spelling, checks access tokens
// as the first wall (each service checks them again), limits how fast one
// client address may call, and answers for a service that is down with a
// problem naming it. It keeps nothing durable: with the keys of users'
// JWKS cached, it keeps checking tokens while users is down.
package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/balancer"
	"github.com/microshop/microshop/internal/platform/mtls"
	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/platform/ratelimit"
	"github.com/microshop/microshop/internal/platform/telemetry"
)

// Target is a service the gateway routes to: /api/<Name>/... goes to URL.
type Target struct {
	Name string
	URL  string
	// Role, when set, is the role a token needs to reach the target at
	// all; for targets that do not check tokens themselves (the mailbox).
	Role string
	// Header is sent with every request forwarded to the target, in place
	// of any the client sent under the same names: a token the target
	// asks of the gateway.
	Header http.Header
	// Service says the target is one of the shop's services: with
	// Deps.TLS it is called over mutual TLS (https:// URLs) and must
	// prove that it is the service Name. run's tools (the mailbox, the
	// trace collector) are not services.
	Service bool
}

// Config holds the gateway's settings.
type Config struct {
	Targets []Target
	// UpstreamTimeout bounds one request to a service, its answer included.
	UpstreamTimeout time.Duration
	// RateLimit is requests a second per client address, in bursts of up
	// to twice that. Zero means unlimited.
	RateLimit int
	// ProxySecret, when set, goes with every forwarded request in
	// ratelimit.ProxySecretHeader, so services that share it believe the
	// X-Forwarded-For the gateway adds (see ratelimit.Proxies).
	ProxySecret string
	// System, when set, is the system the services belong to
	// (service.Runtime.System): of several replica URLs, only those whose
	// readiness answer names the service of this system get requests.
	System string
}

// Gateway routes public requests to the services.
type Gateway struct {
	upstreams map[string]*upstream
	names     []string // in the order of Config.Targets
	limiter   *ratelimit.Limiter
	perSecond int
	log       *slog.Logger
}

// Deps are what the gateway works with.
type Deps struct {
	// Verifier checks access tokens.
	Verifier *auth.Verifier
	Log      *slog.Logger
	// Registry takes the gateway's metrics.
	Registry prometheus.Registerer
	// Telemetry traces the calls to services; nil traces nothing.
	Telemetry *telemetry.Telemetry
	// Transport carries requests to the services; nil means the gateway's
	// own pool of keep-alive connections.
	Transport http.RoundTripper
	// TLS, when set, is the gateway's identity for mutual TLS with the
	// services (Target.Service). Ignored when Transport is set.
	TLS *mtls.Identity
}

// New builds a gateway. It does no work at start, so ctx goes unused; it
// is there so every service is built the same way.
func New(_ context.Context, cfg Config, deps Deps) (*Gateway, error) {
	v, log, reg := deps.Verifier, deps.Log, deps.Registry
	if cfg.UpstreamTimeout <= 0 {
		return nil, fmt.Errorf("--upstream-timeout %s: want a positive duration", cfg.UpstreamTimeout)
	}
	if cfg.RateLimit < 0 {
		return nil, fmt.Errorf("--rate-limit %d: want 0 (unlimited) or more", cfg.RateLimit)
	}
	var shared http.RoundTripper = newTransport()
	if deps.Transport != nil {
		shared = deps.Transport
	}
	m := newMetrics(reg)
	g := &Gateway{
		upstreams: map[string]*upstream{},
		limiter:   ratelimit.New(0, 0),
		perSecond: cfg.RateLimit,
		log:       log,
	}
	if cfg.RateLimit > 0 {
		g.limiter = ratelimit.New(time.Second/time.Duration(cfg.RateLimit), 2*cfg.RateLimit)
	}
	for _, t := range cfg.Targets {
		transport := shared
		if deps.Transport == nil && deps.TLS != nil && t.Service {
			// A pool of its own: its connections must prove to be Name.
			tr := newTransport()
			tr.DialTLSContext = deps.TLS.DialTLS(t.Name)
			transport = tr
		}
		u, err := targetURL(t, cfg.System, transport, deps.Transport == nil && deps.TLS != nil && t.Service)
		if err != nil {
			return nil, err
		}
		if _, dup := g.upstreams[t.Name]; dup {
			return nil, fmt.Errorf("the service %s is listed twice", t.Name)
		}
		tel := deps.Telemetry
		if tel == nil {
			tel = telemetry.Disabled()
		}
		up := newUpstream(t.Name, u, cfg.UpstreamTimeout, cfg.ProxySecret, t.Header, transport, m, tel, log)
		up.probe = &http.Client{Transport: transport, Timeout: 2 * time.Second}
		up.guarded = auth.Authenticate(v)(auth.Require(up))
		if t.Role != "" {
			up.guarded = auth.Authenticate(v)(auth.RequireRole(t.Role)(up))
		}
		g.upstreams[t.Name] = up
		g.names = append(g.names, t.Name)
	}
	return g, nil
}

// Run probes the replicas of every service until ctx ends, so requests
// go only to ready ones. The gateway's owner runs it for as long as the
// gateway serves (service.Runtime.Go); it returns when ctx ends.
func (g *Gateway) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, u := range g.upstreams {
		wg.Go(func() { u.bal.Run(ctx) })
	}
	wg.Wait()
	return nil
}

// targetURL checks a service's base URL. It must have no path: the
// gateway forwards paths unchanged, so a path here would be ignored.
// A comma-separated list names the service's replicas, which the gateway
// balances over (see package balancer).
//
// With mutual TLS (viaTLS), every URL must be https:// and the probes go
// through transport, so they too reach only replicas that prove to be the
// service.
func targetURL(t Target, system string, transport http.RoundTripper, viaTLS bool) (*balancer.Balancer, error) {
	for _, raw := range strings.Split(t.URL, ",") {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--%s-url %q: want a base URL such as http://127.0.0.1:8082", t.Name, t.URL)
		}
		if viaTLS && u.Scheme != "https" {
			return nil, fmt.Errorf("--%s-url %q: the services are called over mutual TLS, so their URLs must be https://", t.Name, t.URL)
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("--%s-url %q: want a base URL with no path, query or user", t.Name, t.URL)
		}
	}
	b, err := balancer.New(t.URL)
	if err != nil {
		return nil, fmt.Errorf("--%s-url %q: %w", t.Name, t.URL, err)
	}
	if system != "" {
		b.Expect(t.Name + "@" + system)
	}
	if viaTLS {
		b.ProbeWith(transport)
	}
	// One probe now, bounded by the probe timeout, so the first requests
	// go to replicas that are up; Run keeps probing after it.
	b.ProbeAll(context.Background())
	return b, nil
}

// API forwards a request for /api/<service>/... to that service: it
// refuses internal and dot-segment paths and unknown services (404), then
// requires a valid token unless the route is public, then proxies.
func (g *Gateway) API(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	if unroutable(path) {
		// The same answer as for a route that does not exist: the
		// internal routes are none of a client's business.
		problem.Write(w, r, problem.NotFound(fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)))
		return
	}
	name := serviceOf(path)
	u, ok := g.upstreams[name]
	if !ok {
		problem.Write(w, r, problem.NotFound(fmt.Sprintf("there is no service named %q; the API is under /api/<service>/", name)))
		return
	}
	if isPublic(r.Method, path) || r.Method == http.MethodOptions {
		// Public routes are forwarded without looking at the token: the
		// service decides what a token means there, and a client holding
		// an expired access token must still reach refresh and login.
		// OPTIONS asks only which methods a route has, and the service
		// answers it before any token check of its own.
		u.ServeHTTP(w, r)
		return
	}
	u.guarded.ServeHTTP(w, r)
}

// RateLimit answers 429 to a client address that sends more than its
// share. The address is the peer's own: the gateway is the edge, so no
// X-Forwarded-For a client sends is believed.
func (g *Gateway) RateLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok, wait := g.limiter.Allow(ratelimit.ClientIP(r, nil))
		if !ok {
			secs := max(1, int(math.Ceil(wait.Seconds())))
			problem.Write(w, r, problem.TooManyRequests(
				fmt.Sprintf("more than %d requests a second from your address; try again in %ds", g.perSecond, secs), secs))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ServiceStatus is one service's health as the gateway sees it.
type ServiceStatus struct {
	Service string `json:"service"`
	// Status is "ready" when at least one replica is, else "not ready"
	// or "unreachable".
	Status string `json:"status"`
	// Replicas and Ready count the replicas the gateway knows of and the
	// ready ones.
	Replicas int `json:"replicas"`
	Ready    int `json:"ready"`
}

// Status asks every service's /readyz at once. It reports only the
// verdict, never a service's own detail, which may name files and hosts.
func (g *Gateway) Status(ctx context.Context) []ServiceStatus {
	out := make([]ServiceStatus, len(g.names))
	var wg sync.WaitGroup
	for i, name := range g.names {
		wg.Go(func() {
			out[i] = g.serviceStatus(ctx, name, g.upstreams[name])
		})
	}
	wg.Wait()
	return out
}

func (g *Gateway) serviceStatus(ctx context.Context, name string, u *upstream) ServiceStatus {
	st := ServiceStatus{Service: name, Status: "unreachable", Replicas: u.bal.Len()}
	for _, base := range u.bal.All() {
		switch g.ready(ctx, u.probe, base) {
		case "ready":
			st.Ready++
			st.Status = "ready"
		case "not ready":
			if st.Status == "unreachable" {
				st.Status = "not ready"
			}
		}
	}
	return st
}

func (g *Gateway) ready(ctx context.Context, probe *http.Client, base *url.URL) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base.JoinPath("/readyz").String(), nil)
	if err != nil {
		return "unreachable"
	}
	resp, err := probe.Do(req)
	if err != nil {
		return "unreachable"
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "not ready"
	}
	return "ready"
}
