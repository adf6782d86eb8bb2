// Package load runs `microshop load`'s engine against the real system:
// the mixed scenario for a few seconds must confirm checkouts and see no
// error of any kind.
package load

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/loadgen"
	"github.com/microshop/microshop/test/systemtest"
)

func TestMixedLoadOnTheRealSystem(t *testing.T) {
	// The rate limits are off: they would answer 429s to a load that all
	// comes from one address, and measure themselves.
	sys := systemtest.Start(t, systemtest.ShopEnv()...)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := loadgen.Run(ctx, loadgen.Config{
		Target: sys.Gateway, Scenario: "mixed", Rate: 60, Duration: 3 * time.Second,
		Users: 8, Seed: 1, AdminEmail: systemtest.AdminEmail, AdminPassword: systemtest.AdminPassword,
	})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	t.Logf("result:\n%s", b)

	if res.Setup.Customers != 8 || res.Setup.Restocked == 0 {
		t.Errorf("setup = %+v, want 8 customers and the products restocked", res.Setup)
	}
	if res.Totals.Count < 150 || res.Unsent != 0 {
		t.Errorf("%d operations, %d unsent, want the 180 due at 60/s for 3s", res.Totals.Count, res.Unsent)
	}
	if res.Totals.Errors != 0 {
		for _, o := range res.Operations {
			if o.Errors > 0 {
				t.Errorf("%s: %d errors of %d: %v", o.Name, o.Errors, o.Count, o.ErrorsByKind)
			}
		}
	}
	if res.ConfirmedCheckouts == 0 {
		t.Error("no checkout was confirmed")
	}
	seen := map[string]bool{}
	for _, o := range res.Operations {
		seen[o.Name] = o.Count > 0
	}
	for _, op := range []string{loadgen.OpList, loadgen.OpSearch, loadgen.OpProduct, loadgen.OpHistory, loadgen.OpCheckout} {
		if !seen[op] {
			t.Errorf("the mixed scenario ran no %s", op)
		}
	}
}
