package auth

import (
	"strings"
	"testing"
)

func TestSystemNamesTheKeySet(t *testing.T) {
	_, publics, err := GenerateServiceKeys([]string{"orders", "inventory", "payments"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseServiceKeys("orders", "", publics)
	if err != nil {
		t.Fatal(err)
	}
	// The same keys in another order, as another process reads them.
	parts := strings.Split(publics, ",")
	parts[0], parts[2] = parts[2], parts[0]
	b, err := ParseServiceKeys("inventory", "", strings.Join(parts, ","))
	if err != nil {
		t.Fatal(err)
	}
	if a.System() == "" || a.System() != b.System() {
		t.Errorf("one key set, two systems: %q, %q", a.System(), b.System())
	}
	_, others, _ := GenerateServiceKeys([]string{"orders", "inventory", "payments"})
	c, _ := ParseServiceKeys("orders", "", others)
	if c.System() == a.System() {
		t.Errorf("two key sets, one system %q", a.System())
	}
	none, _ := ParseServiceKeys("orders", "", "")
	if none.System() != "" || (*ServiceKeys)(nil).System() != "" {
		t.Errorf("no keys name system %q", none.System())
	}
}
