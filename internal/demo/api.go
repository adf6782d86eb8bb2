package demo

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
)

// customers registers and logs in n customers at once.
func customers(ctx context.Context, shop *shopclient.Client, prefix string, n int) ([]*shopclient.Session, error) {
	out := make([]*shopclient.Session, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			reg := shopclient.Registration{Email: fmt.Sprintf("%s-%d@demo.example", prefix, i+1), Password: "demo password " + prefix, Name: fmt.Sprintf("Shopper %d", i+1)}
			if _, errs[i] = shop.Register(ctx, reg); errs[i] == nil {
				out[i], errs[i] = shop.Login(ctx, reg.Email, reg.Password)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// createProduct adds a product with stock units (as an admin).
func createProduct(ctx context.Context, admin *shopclient.Session, sku, name string, priceCents, stock int64) error {
	_, err := admin.CreateProduct(ctx, shopclient.NewProduct{SKU: sku, Name: name, Description: "A product the demo made for itself.",
		PriceCents: priceCents, Currency: "USD", Stock: stock})
	return err
}

// line is one line of an order.
func line(sku string, qty int64) shopclient.Line { return shopclient.Line{SKU: sku, Quantity: qty} }

// checkout places one order and waits, up to 30 seconds, for its final
// state.
func checkout(ctx context.Context, s *shopclient.Session, key, card string, lines ...shopclient.Line) (ordersapi.Order, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return s.Checkout(ctx, key, shopclient.Checkout(card, lines...))
}

// stock returns every product's stock (admin).
func stock(ctx context.Context, admin *shopclient.Session) (map[string]inventoryapi.StockLevel, error) {
	levels, err := admin.Stock(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]inventoryapi.StockLevel{}
	for _, s := range levels {
		out[s.SKU] = s
	}
	return out, nil
}
