//go:build linux

package netlab

import (
	"strings"
	"testing"
	"time"
)

// TestPlanFreezesOrders checks that every seed's plan freezes a replica of
// orders for longer than its saga lease (30s), so that every run makes the
// other replica take sagas over, and that a plan is the seed's alone.
func TestPlanFreezesOrders(t *testing.T) {
	for seed := range uint64(50) {
		p := &Partitions{Shop: &Shop{}, Seed: seed}
		plan := p.plan(75 * time.Second)
		frozen := 0
		for _, f := range plan {
			if f.Kind == FaultFreeze && strings.HasPrefix(f.What, "orders ") {
				frozen++
				if f.Last <= 30*time.Second {
					t.Errorf("seed %d freezes %s for %s, not longer than the saga lease", seed, f.What, f.Last)
				}
			}
		}
		if frozen == 0 {
			t.Errorf("seed %d: no replica of orders is frozen", seed)
		}
		again := (&Partitions{Shop: &Shop{}, Seed: seed}).plan(75 * time.Second)
		if len(again) != len(plan) {
			t.Fatalf("seed %d: two plans of %d and %d faults", seed, len(plan), len(again))
		}
		for i := range plan {
			if plan[i].At != again[i].At || plan[i].What != again[i].What || plan[i].Last != again[i].Last {
				t.Errorf("seed %d: fault %d differs between two plans: %s %s, %s %s", seed, i, plan[i].Kind, plan[i].What, again[i].Kind, again[i].What)
			}
		}
	}
}
