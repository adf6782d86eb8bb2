package reportsapi_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/openapi/openapitest"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/reports"
	"github.com/microshop/microshop/services/reports/reportsapi"
	"github.com/microshop/microshop/services/users"
)

// The client against the real reports service, behind the OpenAPI
// checker. The read model is empty: this checks the calls and their
// shapes; reports' own tests check the figures.
func TestClient(t *testing.T) {
	shop := servicetest.NewShop(t, users.Spec(), servicetest.ShopOptions{})
	shop.JetStream(t, "orders", "payments", "inventory")
	svc := shop.Start(t, reports.Spec(), nil, nil)
	url, _ := openapitest.Proxy(t, reports.OpenAPI(), svc.URL)
	c := reportsapi.NewClient(url, client.Options{}, nil)
	ctx := context.Background()

	to := time.Now().UTC().Truncate(time.Hour)
	sales, err := c.Sales(ctx, shop.Admin, reportsapi.SalesQuery{From: to.Add(-3 * time.Hour), To: to, Bucket: "hour", Currency: "USD"})
	if err != nil || sales.Currency != "USD" || len(sales.Buckets) == 0 {
		t.Fatalf("sales: %+v %v", sales, err)
	}
	for _, b := range sales.Buckets {
		if b.Orders != 0 || b.RevenueCents != 0 {
			t.Fatalf("an empty read model counted %+v", b)
		}
	}
	sum, err := c.Summary(ctx, shop.Admin, "")
	if err != nil || sum.Currency != "USD" {
		t.Fatalf("summary: %+v %v", sum, err)
	}
	if _, err := c.Summary(ctx, shop.Customer, ""); !errors.Is(err, reportsapi.ErrForbidden) {
		t.Fatalf("a customer asking: %v, want ErrForbidden", err)
	}
}
