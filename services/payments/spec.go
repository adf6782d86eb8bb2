package payments

import (
	"context"
	"embed"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/platform/config"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/openapi"
	"github.com/microshop/microshop/internal/platform/service"
	"github.com/microshop/microshop/services/payments/paymentsapi"
)

//go:embed migrations openapi.yaml
var files embed.FS

// OpenAPI is the API contract of payments, from its Spec.
func OpenAPI() *openapi.Document { return Spec().OpenAPI() }

// Spec describes payments to the service runtime.
func Spec() service.Spec {
	return service.Spec{
		Name:      "payments",
		Summary:   "payments: card authorizations, captures, voids and refunds through a card processor (simulated today), and a double-entry ledger.",
		Files:     files,
		Publishes: []events.Body{paymentsapi.PaymentCaptured{}, paymentsapi.PaymentRefunded{}, paymentsapi.PaymentFailed{}},
		Setup: func(f *config.Flags) service.Build {
			var (
				proc = f.String("processor", "simulator", "the card processor: "+strings.Join(ProcessorNames(), ", ")+" (simulator: no card network, test cards only)")
				slow = f.Duration("slow-card-delay", 10*time.Second, "simulator: how long the slow test card "+CardSlow+" takes to answer")
				ttl  = f.Duration("idempotency-ttl", 30*24*time.Hour, "how long the answers of idempotency keys are kept (0: forever)")
				lat  = f.Duration("processor-latency", 0, "simulator: added to every card authorization, like a remote processor's round trip (0: none)")
				conn = f.Int("processor-connections", 0, "simulator: authorizations this process has at the card processor at once; more wait in line (0: no limit)")
			)
			return func(ctx context.Context, rt *service.Runtime) error {
				processor, err := NewProcessor(*proc, ProcessorConfig{Simulator: SimulatorConfig{SlowCardDelay: *slow, Latency: *lat, Connections: *conn}})
				if err != nil {
					return err
				}
				s, err := New(ctx, Config{Processor: processor, IdempotencyTTL: *ttl}, Deps{DB: rt.DB, Log: rt.Log})
				if err != nil {
					return err
				}
				Routes(rt.Server.Router, s, rt.OpenAPI, rt.Verifier, rt.ServiceKeys, rt.Log)
				rt.Go("idempotency key expiry", s.RunKeyExpiry)
				return nil
			}
		},
	}
}
