package reports

import (
	"context"
	"embed"
	"fmt"
	"time"

	"github.com/microshop/microshop/internal/platform/config"
	"github.com/microshop/microshop/internal/platform/openapi"
	"github.com/microshop/microshop/internal/platform/service"
	"github.com/microshop/microshop/internal/platform/validation"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/payments/paymentsapi"
)

//go:embed migrations openapi.yaml
var files embed.FS

// OpenAPI is the API contract of reports, from its Spec.
func OpenAPI() *openapi.Document { return Spec().OpenAPI() }

// Spec describes reports to the service runtime. It publishes nothing
// (no stream of its own) but needs the broker to consume.
func Spec() service.Spec {
	return service.Spec{
		Name:    "reports",
		Summary: "reports: sales, revenue, refunds, top products and low-stock alerts from a read model built only from events; rebuildable by replaying the streams.",
		Files:   files,
		Consumes: []string{
			ordersapi.OrderConfirmed{}.EventType(), ordersapi.OrderRejected{}.EventType(), ordersapi.OrderCancelled{}.EventType(),
			paymentsapi.PaymentCaptured{}.EventType(), paymentsapi.PaymentRefunded{}.EventType(), paymentsapi.PaymentFailed{}.EventType(),
			inventoryapi.StockReserved{}.EventType(), inventoryapi.StockReleased{}.EventType(), inventoryapi.LowStock{}.EventType(),
		},
		Setup: func(f *config.Flags) service.Build {
			var (
				currency = f.String("currency", "USD", "currency of the reports when a request names none (ISO 4217)")
				stale    = f.Duration("rebuild-stale-after", 10*time.Second, "how long a running rebuild may go without a heartbeat before another process runs it again")
			)
			return func(ctx context.Context, rt *service.Runtime) error {
				if validation.Currency(*currency) != "" {
					return fmt.Errorf("--currency %q: want an ISO 4217 code such as USD", *currency)
				}
				s, err := New(ctx, Config{Currency: *currency, StaleRebuild: *stale}, Deps{DB: rt.DB, JS: rt.JS, Log: rt.Log})
				if err != nil {
					return err
				}
				Routes(rt.Server.Router, s, rt.OpenAPI, rt.Verifier, rt.Log)
				for _, c := range s.Consumers() {
					rt.Go("consumer "+c.Name, rt.Consumer(c).Run)
				}
				rt.Go("rebuilds", s.RunRebuilds)
				return nil
			}
		},
	}
}
