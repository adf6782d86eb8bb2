// Package resilience proves the promises of the style on the real system:
// one service scales out on its own, and every service can be replaced,
// one at a time, under steady load, with no failed request.
package resilience

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/invariants"
	"github.com/microshop/microshop/internal/loadgen"
	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/test/systemtest"
)

var env = systemtest.ShopEnv()

// shoppers browse, log in now and then, check out and read their orders
// until the load is stopped. Each request is sent the way a careful
// client does (loadgen's Worker.Call): a refused connection is sent
// again, and so is a safe request that failed or met a 503.
func shoppers(t *testing.T, shop *shopclient.Client, n int) *loadgen.Load {
	var custs []*shopclient.Session
	for i := range n {
		custs = append(custs, systemtest.Customer(t, shop, fmt.Sprintf("shopper%d", i)))
	}
	return loadgen.Start(context.Background(), loadgen.Custom{Workers: n, Op: func(ctx context.Context, w *loadgen.Worker) {
		c, k := custs[w.ID], w.N-1
		var page shopclient.Page[inventoryapi.Product]
		if w.Call(ctx, true, func(ctx context.Context) (err error) {
			page, err = shop.Products(ctx, shopclient.ProductQuery{Limit: 20})
			return err
		}) != nil || len(page.Items) == 0 {
			return
		}
		if k%4 == 0 {
			_ = w.Call(ctx, false, c.Login)
		}
		sku := page.Items[(w.ID+k)%len(page.Items)].SKU
		w.Place(ctx, c, fmt.Sprintf("s%d-%d", w.ID, k), shopclient.Checkout(shopclient.CardApproved, shopclient.Line{SKU: sku, Quantity: 1}))
		_ = w.Call(ctx, true, func(ctx context.Context) error {
			_, err := c.Orders(ctx, 5, "")
			return err
		})
	}})
}

func TestRollingRestartOfEveryServiceUnderLoad(t *testing.T) {
	s := systemtest.Start(t, env...)
	shop := systemtest.Shop(s.Gateway)
	admin := systemtest.Login(t, shop, systemtest.AdminEmail, systemtest.AdminPassword)
	l := shoppers(t, shop, 4)
	t.Cleanup(l.Stop)

	time.Sleep(time.Second)
	// Scale one service out, with the others left alone.
	s.Scale(t, "payments", 3)
	st, err := localrun.ReadState(s.Data)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(st.Running("payments")); n != 3 {
		t.Fatalf("scale payments 3 left %d running", n)
	}
	for _, svc := range []string{"users", "inventory", "payments", "orders", "gateway"} {
		before := l.Counts().Requests
		s.Restart(t, svc)
		t.Logf("restarted %s during %d requests", svc, l.Counts().Requests-before)
	}
	s.Scale(t, "payments", 1)
	time.Sleep(500 * time.Millisecond)
	l.Stop()

	c := l.Counts()
	t.Logf("requests %d, retried %d, failed %d, checkouts accepted %d", c.Requests, c.Retries, c.Failed, c.Placed)
	for _, f := range l.Samples() {
		t.Errorf("failed: %s", f)
	}
	if c.Failed != 0 {
		t.Fatalf("%d requests failed during the rolling restarts", c.Failed)
	}
	if c.Placed == 0 {
		t.Fatal("no checkout was accepted")
	}
	chk := &invariants.Checker{Admin: admin}
	rep, err := chk.Settle(context.Background(), 60*time.Second, invariants.Expect{Accepted: l.Accepted(), Keys: l.Keys()})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rep.Violations {
		t.Errorf("invariant: %s", v)
	}
}
