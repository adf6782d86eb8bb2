// Package invariants is the checkout's invariant checker under the name
// the black-box tests have always imported. The checker itself lives in
// internal/invariants, so that `microshop demo` can use it too; these are
// aliases of its types, not copies.
package invariants

import "github.com/microshop/microshop/internal/invariants"

type (
	// Checker reads the system through its gateway with an admin token.
	Checker = invariants.Checker
	// Expect is what the test knows from the client side.
	Expect = invariants.Expect
	// Report is what Check found.
	Report = invariants.Report
)
