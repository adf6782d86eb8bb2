package orders

import (
	"context"
	"embed"
	"fmt"
	"os"
	"time"

	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/config"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/openapi"
	"github.com/microshop/microshop/internal/platform/service"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/payments/paymentsapi"
	"github.com/microshop/microshop/services/users/usersapi"
)

//go:embed migrations openapi.yaml
var files embed.FS

// OpenAPI is the API contract of orders, from its Spec.
func OpenAPI() *openapi.Document { return Spec().OpenAPI() }

// Spec describes orders to the service runtime.
func Spec() service.Spec {
	return service.Spec{
		Name:      "orders",
		Summary:   "orders: orders, order history, and the checkout saga across inventory and payments.",
		Files:     files,
		Calls:     []string{"inventory", "payments"},
		Publishes: []events.Body{ordersapi.OrderConfirmed{}, ordersapi.OrderRejected{}, ordersapi.OrderCancelled{}},
		Older:     []events.Body{ordersapi.OrderConfirmedV1{}, ordersapi.OrderRejectedV1{}, ordersapi.OrderCancelledV1{}},
		Consumes:  []string{usersapi.UserErased{}.EventType()},
		Setup: func(f *config.Flags) service.Build {
			var (
				stepTimeout = f.Duration("step-timeout", 10*time.Second, "how long a saga step keeps retrying an unreachable service before the saga compensates")
				wait        = f.Duration("checkout-wait", 3*time.Second, "how long POST /api/orders waits for the saga before answering 202")
				owner       = f.String("replica-id", "", "this replica's stable name for saga leases (default: host and listen address)")
				lease       = f.Duration("saga-lease", 30*time.Second, "how long a replica holds a saga without renewing it before another may take it over")
			)
			return func(ctx context.Context, rt *service.Runtime) error {
				id := *owner
				if id == "" {
					host, _ := os.Hostname()
					id = fmt.Sprintf("orders@%s%s", host, rt.Addr)
				}
				inv := inventoryapi.NewClient(client.New("inventory", rt.URL("inventory"), rt.Credentials, rt.ClientOptions(), rt.ClientMetrics))
				pay := paymentsapi.NewClient(rt.URL("payments"), rt.Credentials, rt.ClientOptions(), rt.ClientMetrics)
				rt.Go("inventory replica probes", inv.Run)
				rt.Go("payments replica probes", pay.Run)
				s, err := New(ctx, Config{StepTimeout: *stepTimeout, Wait: *wait, Owner: id},
					Deps{DB: rt.DB, Inventory: inventoryAdapter{inv}, Payments: paymentsAdapter{pay}, Registry: rt.Registry, Log: rt.Log, Telemetry: rt.Telemetry})
				if err != nil {
					return err
				}
				s.sagas.lease = *lease
				Routes(rt.Server.Router, s, rt.OpenAPI, rt.Verifier, rt.Log)
				rt.Go("saga runner", s.RunSagas)
				c := s.ErasureConsumer()
				rt.Go("consumer "+c.Name, rt.Consumer(c).Run)
				return nil
			}
		},
	}
}
