package reports

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"time"

	"github.com/microshop/microshop/internal/platform/config"
	"github.com/microshop/microshop/internal/platform/openapi"
	"github.com/microshop/microshop/internal/platform/service"
)

//go:embed migrations/*.sql
var migrations embed.FS

//go:embed openapi.yaml
var openapiYAML []byte

// Migrations are reports' schema migrations.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrations, "migrations")
	return sub
}

// OpenAPI is reports' API contract.
func OpenAPI() *openapi.Document { return openapi.MustLoad(openapiYAML) }

// Spec describes reports to the service runtime. It publishes nothing
// (no stream of its own) but needs the broker to consume.
func Spec() service.Spec {
	return service.Spec{
		Name:       "reports",
		Summary:    "reports: sales, revenue, refunds, top products and low-stock alerts from a read model built only from events; rebuildable by replaying the streams.",
		Port:       8086,
		Migrations: Migrations(),
		UsesBroker: true,
		Setup: func(f *config.Flags) service.Build {
			var (
				currency = f.String("currency", "USD", "currency of the reports when a request names none (ISO 4217)")
				stale    = f.Duration("rebuild-stale-after", 10*time.Second, "how long a running rebuild may go without a heartbeat before another process runs it again")
			)
			return func(ctx context.Context, rt *service.Runtime) error {
				if !currencyPattern.MatchString(*currency) {
					return fmt.Errorf("--currency %q: want an ISO 4217 code such as USD", *currency)
				}
				s, err := New(ctx, Config{Currency: *currency, StaleRebuild: *stale}, Deps{DB: rt.DB, JS: rt.JS, Log: rt.Log})
				if err != nil {
					return err
				}
				Routes(rt.Server.Router, s, OpenAPI(), rt.Verifier, rt.Log)
				for _, c := range s.Consumers() {
					rt.Consume(c)
				}
				rt.Go("rebuilds", s.RunRebuilds)
				return nil
			}
		},
	}
}
