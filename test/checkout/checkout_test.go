// Package checkout runs the checkout saga on the real system, as separate
// processes over real HTTP, and kills its services with SIGKILL in the
// middle of it. After each scenario the invariant checker must find
// nothing wrong.
package checkout

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/invariants"
	"github.com/microshop/microshop/internal/loadgen"
	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/test/systemtest"
)

var env = systemtest.ShopEnv()

// shop runs shoppers placing orders until stopped, each order under a
// fresh key, one in five with a declined card, and one in three asked for
// again under its key. Each order is posted again (same key) until an
// answer comes back, for up to two minutes: exactly what a careful client
// does when the service it talks to dies mid-request.
func shop(t *testing.T, client *shopclient.Client, shoppers int, skus []string) *loadgen.Load {
	var custs []*shopclient.Session
	for i := range shoppers {
		custs = append(custs, systemtest.Customer(t, client, fmt.Sprintf("shopper%d", i)))
	}
	l := loadgen.Start(context.Background(), loadgen.Custom{Workers: shoppers, RetryFor: 2 * time.Minute, Outages: true,
		Op: func(ctx context.Context, w *loadgen.Worker) {
			n := w.N - 1
			card := shopclient.CardApproved
			if n%5 == 4 {
				card = shopclient.CardDeclined // some declines in the mix
			}
			key := fmt.Sprintf("c%d-%d", w.ID, n)
			order := shopclient.Checkout(card, shopclient.Line{SKU: skus[(w.ID+n)%len(skus)], Quantity: 1})
			// Ask again with the same key: it must name the same order.
			if _, ok := w.Place(ctx, custs[w.ID], key, order); ok && n%3 == 0 {
				w.Place(ctx, custs[w.ID], key, order)
			}
		}})
	t.Cleanup(l.Stop)
	return l
}

func setup(t *testing.T) (*systemtest.System, *shopclient.Session, map[string]int64, []string) {
	s := systemtest.Start(t, env...)
	admin := systemtest.Login(t, systemtest.Shop(s.Gateway), systemtest.AdminEmail, systemtest.AdminPassword)
	stock, err := admin.Stock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	received := map[string]int64{}
	var skus []string
	for _, l := range stock {
		received[l.SKU] = l.Received
		if len(skus) < 6 && l.Available >= 50 {
			skus = append(skus, l.SKU)
		}
	}
	return s, admin, received, skus
}

func verify(t *testing.T, admin *shopclient.Session, received map[string]int64, l *loadgen.Load) {
	t.Helper()
	l.Stop()
	if c := l.Counts(); c.Failed != 0 {
		t.Errorf("%d checkouts never got an answer: %q", c.Failed, l.Samples())
	}
	chk := &invariants.Checker{Admin: admin}
	rep, err := chk.Settle(context.Background(), 60*time.Second, invariants.Expect{Received: received, Accepted: l.Accepted(), Keys: l.Keys()})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rep.Violations {
		t.Errorf("invariant: %s", v)
	}
	t.Logf("orders %d: confirmed %d, rejected %d; client attempts that failed and were retried: %d",
		rep.Orders, rep.Confirmed, rep.Rejected, l.Counts().Retries)
	if rep.Confirmed == 0 {
		t.Error("no order was confirmed")
	}
}

func TestPaymentsKilledDuringCheckouts(t *testing.T) {
	s, admin, received, skus := setup(t)
	l := shop(t, admin.Client(), 4, skus)
	time.Sleep(time.Second)
	s.Kill(t, "payments")
	time.Sleep(2 * time.Second)
	s.StartService(t, "payments")
	time.Sleep(time.Second)
	verify(t, admin, received, l)
}

func TestOrdersKilledMidSaga(t *testing.T) {
	s, admin, received, skus := setup(t)
	l := shop(t, admin.Client(), 4, skus)
	for range 2 {
		time.Sleep(time.Second)
		s.Kill(t, "orders")
		time.Sleep(500 * time.Millisecond)
		s.StartService(t, "orders")
	}
	time.Sleep(time.Second)
	verify(t, admin, received, l)
}
