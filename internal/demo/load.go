package demo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/microshop/microshop/internal/loadgen"
	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/orders/ordersapi"
)

// loadConfig is a closed-loop load: Shoppers workers, each checking out
// one unit of SKU with Card, then starting again.
type loadConfig struct {
	Shoppers  int
	Customers []*shopclient.Session // shopper i is customer i % len(Customers)
	SKU       string
	Card      string
	// Browse makes each round a shopper's whole visit: the catalog, a
	// login now and then, the checkout and the order history, so every
	// service sees traffic.
	Browse bool
	// Pause is each shopper's think time between rounds (0: none, the
	// load is then as heavy as the system allows).
	Pause time.Duration
	// MaxCheckouts stops starting checkouts past this many (0: no limit).
	MaxCheckouts int64
	// Key names the load's Idempotency-Keys.
	Key string
	// latencies, when set, gets the time each confirmed checkout took.
	latencies *latencies
}

// startLoad starts the shoppers on loadgen's engine; Stop ends them.
func startLoad(shop *shopclient.Client, cfg loadConfig) *loadgen.Load {
	if cfg.Key == "" {
		cfg.Key = "demo"
	}
	var think func(*rand.Rand) time.Duration
	if cfg.Pause > 0 {
		think = func(*rand.Rand) time.Duration { return cfg.Pause }
	}
	return loadgen.Start(context.Background(), loadgen.Custom{Workers: cfg.Shoppers, MaxOps: cfg.MaxCheckouts, Think: think,
		Op: func(ctx context.Context, w *loadgen.Worker) { visit(ctx, w, shop, cfg) }})
}

// visit is one round of a shopper.
func visit(ctx context.Context, w *loadgen.Worker, shop *shopclient.Client, cfg loadConfig) {
	c := cfg.Customers[w.ID%len(cfg.Customers)]
	k := w.N - 1
	if cfg.Browse {
		_ = w.Call(ctx, true, func(ctx context.Context) error {
			_, err := shop.Products(ctx, shopclient.ProductQuery{Limit: 20})
			return err
		})
		if k%8 == 0 {
			_ = w.Call(ctx, false, c.Login)
		}
	}
	start := time.Now()
	o := buy(ctx, w, c, fmt.Sprintf("%s-%d-%d", cfg.Key, w.ID, k), shopclient.Checkout(cfg.Card, line(cfg.SKU, 1)))
	if cfg.latencies != nil && o.Status == ordersapi.StatusConfirmed {
		cfg.latencies.add(time.Since(start))
	}
	if cfg.Browse {
		_ = w.Call(ctx, true, func(ctx context.Context) error {
			_, err := c.Orders(ctx, 5, "")
			return err
		})
	}
}

// buy places one order and follows it, for up to 30 seconds, to its
// final state.
func buy(ctx context.Context, w *loadgen.Worker, c *shopclient.Session, key string, body shopclient.NewOrder) ordersapi.Order {
	o, ok := w.Place(ctx, c, key, body)
	if ok {
		o, _ = w.Follow(ctx, c, o, 100*time.Millisecond, 30*time.Second)
	}
	w.Finished(o, ok)
	if !ok {
		return ordersapi.Order{}
	}
	return o
}

func countStatus(orders []loadgen.Order, status string) int {
	n := 0
	for _, o := range orders {
		if o.Status == status {
			n++
		}
	}
	return n
}
