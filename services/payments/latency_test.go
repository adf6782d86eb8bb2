package payments_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/services/payments/paymentsapi"
)

// TestProcessorLatencyFlags: --processor-latency delays every
// authorization and --processor-connections makes the others wait in
// line, so two authorizations through one connection take two round trips.
func TestProcessorLatencyFlags(t *testing.T) {
	const latency = 150 * time.Millisecond
	e := start(t, "--processor-latency", latency.String(), "--processor-connections", "1")
	start := time.Now()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			p, err := e.Orders.Authorize(context.Background(), newKey(), authorizeReq(newOrderID(), 100, "4242424242424242"))
			if err != nil || p.Status != paymentsapi.StatusAuthorized {
				t.Errorf("authorize: %+v %v", p, err)
			}
		})
	}
	wg.Wait()
	if took := time.Since(start); took < 2*latency {
		t.Fatalf("two authorizations through one connection took %s, want at least %s", took, 2*latency)
	}
}
