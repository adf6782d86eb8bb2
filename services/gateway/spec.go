package gateway

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/config"
	"github.com/microshop/microshop/internal/platform/service"
)

// Spec describes the gateway to the service runtime: it routes
// /api/<name>/... to each of the services named, and calls nothing else.
// It keeps nothing durable and uses no broker: no files, no events.
func Spec(routes ...string) service.Spec {
	return service.Spec{
		Name:    "gateway",
		Public:  true,
		Summary: "gateway: the one public entry; routes /api/<service>/... to the services, checks access tokens, rate limits per client.",
		Calls:   routes,
		Setup: func(f *config.Flags) service.Build {
			mailbox := f.String("mailbox-url", "", "base URL of a mail server's web API to show admins at /api/mailbox (microshop run sets it)")
			tracesURL := f.String("telemetry-url", "", "base URL of a trace collector's API to show admins at /api/telemetry (microshop run sets it)")
			var (
				timeout = f.Duration("upstream-timeout", 30*time.Second, "deadline of one request to a service, its answer included")
				perIP   = f.Int("rate-limit", 200, "requests a second per client address, in bursts of up to twice that (0: unlimited)")
				metrics = f.String("metrics-addr", "", "address of a port serving /metrics to anyone who reaches it, for a scraper on another machine; the public port serves /metrics to loopback clients only")
				secret  = f.String("proxy-secret", "", "secret sent to the services with every request, so users believes the X-Forwarded-For the gateway adds (microshop run sets it)")
				conns   = f.Int("max-conns-per-client", 256, "connections one client address may hold open; one more is answered 503 and closed (0: unlimited)")
				console = f.String("console-token", "", "token the mailbox and the trace collector ask of the gateway (microshop run sets it)")
				origins = f.String("cors-origins", "", "origins whose web pages may call the API from a browser (CORS), comma-separated, such as https://shop.example.com, or *; none by default")
			)
			return func(ctx context.Context, rt *service.Runtime) error {
				if *conns < 0 {
					return fmt.Errorf("--max-conns-per-client %d: want 0 (unlimited) or more", *conns)
				}
				crossOrigin, err := corsPolicy(*origins)
				if err != nil {
					return err
				}
				rt.Server.LimitConnsPerClient(*conns)
				rt.Server.RestrictMetrics(fromLoopback)
				if *metrics != "" {
					serve, err := serveMetrics(*metrics, rt.Registry)
					if err != nil {
						return err
					}
					rt.Go("metrics", serve)
				}
				var targets []Target
				for _, name := range routes {
					targets = append(targets, Target{Name: name, URL: rt.URL(name), Service: true})
				}
				// run's mailbox and collector check no access tokens: only
				// admins reach them, and the console token tells them the
				// request comes through the gateway.
				var tools http.Header
				if *console != "" {
					tools = http.Header{auth.ConsoleTokenHeader: {*console}}
				}
				if *tracesURL != "" {
					targets = append(targets, Target{Name: "telemetry", URL: *tracesURL, Role: auth.RoleAdmin, Header: tools})
				}
				if *mailbox != "" {
					targets = append(targets, Target{Name: "mailbox", URL: *mailbox, Role: auth.RoleAdmin, Header: tools})
				}
				g, err := New(ctx, Config{Targets: targets, UpstreamTimeout: *timeout, RateLimit: *perIP, System: rt.System, ProxySecret: *secret},
					Deps{Verifier: rt.Verifier, Log: rt.Log, Registry: rt.Registry, Telemetry: rt.Telemetry, Transport: rt.Transport, TLS: rt.TLS})
				if err != nil {
					return err
				}
				Routes(rt.Server.Router, g, crossOrigin)
				rt.Go("replica probes", g.Run)
				return nil
			}
		},
	}
}
