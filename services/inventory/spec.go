package inventory

import (
	"context"
	"embed"
	"time"

	"github.com/microshop/microshop/internal/platform/config"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/openapi"
	"github.com/microshop/microshop/internal/platform/service"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
)

//go:embed migrations openapi.yaml
var files embed.FS

// OpenAPI is the API contract of inventory, from its Spec.
func OpenAPI() *openapi.Document { return Spec().OpenAPI() }

// Spec describes inventory to the service runtime.
func Spec() service.Spec {
	return service.Spec{
		Name:      "inventory",
		Summary:   "inventory: the catalog, stock, and the reservations that hold stock for orders.",
		Files:     files,
		Publishes: []events.Body{inventoryapi.StockReserved{}, inventoryapi.StockReleased{}, inventoryapi.LowStock{}},
		Setup: func(f *config.Flags) service.Build {
			var (
				ttl       = f.Duration("reservation-ttl", 15*time.Minute, "how long a reservation holds stock before it expires unless committed")
				threshold = f.Int("low-stock-threshold", 5, "publish inventory.low_stock when a reservation takes available units below this (0: never)")
				seed      = f.Bool("seed-catalog", true, "load the built-in catalog when there are no products")
				currency  = f.String("currency", "USD", "the shop's one currency (ISO 4217): every product is priced in it")
			)
			return func(ctx context.Context, rt *service.Runtime) error {
				s, err := New(ctx, Config{ReservationTTL: *ttl, LowStockThreshold: int64(*threshold), SeedCatalog: *seed, Currency: *currency}, Deps{DB: rt.DB, Log: rt.Log})
				if err != nil {
					return err
				}
				Routes(rt.Server.Router, s, rt.OpenAPI, rt.Verifier, rt.ServiceKeys, rt.Log)
				rt.Go("reservation expiry", s.RunExpiry)
				return nil
			}
		},
	}
}
