package payments

import (
	"context"
	"embed"
	"io/fs"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/platform/config"
	"github.com/microshop/microshop/internal/platform/openapi"
	"github.com/microshop/microshop/internal/platform/service"
)

//go:embed migrations
var migrations embed.FS

//go:embed openapi.yaml
var openapiYAML []byte

// Migrations are payments' schema migrations, one folder per dialect.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrations, "migrations")
	return sub
}

// OpenAPI is payments' API contract.
func OpenAPI() *openapi.Document { return openapi.MustLoad(openapiYAML) }

// Spec describes payments to the service runtime.
func Spec() service.Spec {
	return service.Spec{
		Name:       "payments",
		Summary:    "payments: card authorizations, captures, voids and refunds through a card processor (simulated today), and a double-entry ledger.",
		Port:       8084,
		Migrations: Migrations(),
		Publishes:  true,
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
				s := New(Config{Processor: processor, IdempotencyTTL: *ttl}, rt.DB, rt.Log)
				Routes(rt.Server.Router, s, OpenAPI(), rt.Verifier, rt.ServiceKeys, rt.Log)
				rt.Go("idempotency key expiry", func(ctx context.Context) error { return s.ForgetAnswers(ctx, time.Hour) })
				return nil
			}
		},
	}
}
