package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/config"
	"github.com/microshop/microshop/internal/platform/service"
)

// Spec describes the gateway to the service runtime. It keeps nothing
// durable and uses no broker: no migrations, no events.
func Spec() service.Spec {
	return service.Spec{
		Name:    "gateway",
		Summary: "gateway: the one public entry; routes /api/<service>/... to the services, checks access tokens, rate limits per client.",
		Port:    8080,
		Setup: func(f *config.Flags) service.Build {
			// users' URL is the runtime's common --users-url (the JWKS
			// comes from there too); the others are the gateway's own.
			others := []struct {
				name, def string
				url       *string
			}{
				{name: "inventory", def: "http://127.0.0.1:8082"},
				{name: "orders", def: "http://127.0.0.1:8083"},
				{name: "payments", def: "http://127.0.0.1:8084"},
				{name: "notifications", def: "http://127.0.0.1:8085"},
				{name: "reports", def: "http://127.0.0.1:8086"},
			}
			for i := range others {
				o := &others[i]
				o.url = f.String(o.name+"-url", o.def, "base URL of the "+o.name+" service")
			}
			mailbox := f.String("mailbox-url", "", "base URL of a mail server's web API to show admins at /api/mailbox (microshop run sets it)")
			tracesURL := f.String("telemetry-url", "", "base URL of a trace collector's API to show admins at /api/telemetry (microshop run sets it)")
			var (
				timeout = f.Duration("upstream-timeout", 30*time.Second, "deadline of one request to a service, its answer included")
				perIP   = f.Int("rate-limit", 200, "requests a second per client address, in bursts of up to twice that (0: unlimited)")
			)
			return func(ctx context.Context, rt *service.Runtime) error {
				users := f.Lookup("users-url")
				if users == nil {
					return errors.New("the runtime defines no --users-url")
				}
				targets := []Target{{Name: "users", URL: users.Value.String()}}
				for _, o := range others {
					targets = append(targets, Target{Name: o.name, URL: *o.url})
				}
				if *tracesURL != "" {
					targets = append(targets, Target{Name: "telemetry", URL: *tracesURL, Role: auth.RoleAdmin})
				}
				if *mailbox != "" {
					// The built-in mailbox checks no tokens: only admins may read it.
					targets = append(targets, Target{Name: "mailbox", URL: *mailbox, Role: auth.RoleAdmin})
				}
				g, err := New(Config{Targets: targets, UpstreamTimeout: *timeout, RateLimit: *perIP, Telemetry: rt.Telemetry, Transport: rt.Transport, System: rt.System},
					rt.Verifier, rt.Log, rt.Registry)
				if err != nil {
					return err
				}
				Routes(rt.Server.Router, g)
				rt.Go("replica probes", g.Run)
				return nil
			}
		},
	}
}
