package orders

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/config"
	"github.com/microshop/microshop/internal/platform/openapi"
	"github.com/microshop/microshop/internal/platform/service"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/payments/paymentsapi"
)

//go:embed migrations/*.sql
var migrations embed.FS

//go:embed openapi.yaml
var openapiYAML []byte

// Migrations are orders' schema migrations.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrations, "migrations")
	return sub
}

// OpenAPI is orders' API contract.
func OpenAPI() *openapi.Document { return openapi.MustLoad(openapiYAML) }

// Spec describes orders to the service runtime.
func Spec() service.Spec {
	return service.Spec{
		Name:       "orders",
		Summary:    "orders: orders, order history, and the checkout saga across inventory and payments.",
		Port:       8083,
		Migrations: Migrations(),
		Publishes:  true,
		Setup: func(f *config.Flags) service.Build {
			var (
				inventoryURL = f.String("inventory-url", "http://127.0.0.1:8082", "base URL of the inventory service")
				paymentsURL  = f.String("payments-url", "http://127.0.0.1:8084", "base URL of the payments service")
				stepTimeout  = f.Duration("step-timeout", 10*time.Second, "how long a saga step keeps retrying an unreachable service before the saga compensates")
				wait         = f.Duration("checkout-wait", 3*time.Second, "how long POST /api/orders waits for the saga before answering 202")
				owner        = f.String("replica-id", "", "this replica's stable name for saga leases (default: host and listen address)")
				lease        = f.Duration("saga-lease", 30*time.Second, "how long a replica holds a saga without renewing it before another may take it over")
			)
			return func(ctx context.Context, rt *service.Runtime) error {
				id := *owner
				if id == "" {
					host, _ := os.Hostname()
					id = fmt.Sprintf("orders@%s%s", host, rt.Addr)
				}
				inv := inventoryapi.NewClient(client.New("inventory", *inventoryURL, rt.Credentials, client.Options{Telemetry: rt.Telemetry, Transport: rt.Transport, System: rt.System}, rt.ClientMetrics))
				pay := paymentsapi.NewClient(*paymentsURL, rt.Credentials, client.Options{Telemetry: rt.Telemetry, Transport: rt.Transport, System: rt.System}, rt.ClientMetrics)
				rt.Go("inventory replica probes", inv.Run)
				rt.Go("payments replica probes", pay.Run)
				s := New(Config{StepTimeout: *stepTimeout, Wait: *wait, Owner: id, Telemetry: rt.Telemetry}, rt.DB, inventoryAdapter{inv},
					paymentsAdapter{pay}, rt.Registry, rt.Log, rt.Background())
				s.sagas.lease = *lease
				Routes(rt.Server.Router, s, OpenAPI(), rt.Verifier, rt.Log)
				rt.Go("saga runner", func(ctx context.Context) error { return s.sagas.resume(ctx, 5*time.Second) })
				return nil
			}
		},
	}
}
