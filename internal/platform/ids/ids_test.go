package ids_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/ids"
)

func TestNewShape(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := ids.New()
		if len(id) != 26 {
			t.Fatalf("len(%q) = %d, want 26", id, len(id))
		}
		if id != strings.ToLower(id) {
			t.Fatalf("%q is not lower case", id)
		}
		if !ids.Valid(id) {
			t.Fatalf("Valid(%q) = false for an id New made", id)
		}
		if seen[id] {
			t.Fatalf("New returned %q twice", id)
		}
		seen[id] = true
	}
}

// Ids made in different milliseconds sort in the order they were made.
// (Within one millisecond the order is random: New is not monotonic.)
func TestNewSortsByTime(t *testing.T) {
	var made []string
	for range 5 {
		made = append(made, ids.New())
		start := time.Now()
		for time.Since(start) < 2*time.Millisecond {
			time.Sleep(time.Millisecond)
		}
	}
	sorted := slices.Clone(made)
	slices.Sort(sorted)
	if !slices.Equal(made, sorted) {
		t.Errorf("ids do not sort by creation time:\nmade   %v\nsorted %v", made, sorted)
	}
}

func TestValidRejectsJunk(t *testing.T) {
	good := ids.New()
	for _, s := range []string{
		"",
		"abc",
		good[:25],
		good + "0",
		"01hzzzzzzzzzzzzzzzzzzzzzzu", // u is not in Crockford's alphabet
		"01hzzzzzzzzzzzzzzzzzzzzzz!",
		"8zzzzzzzzzzzzzzzzzzzzzzzzz", // overflows 128 bits
		"' or 1=1 --               ",
		"../../../../etc/passwd0000",
	} {
		if ids.Valid(s) {
			t.Errorf("Valid(%q) = true, want false", s)
		}
	}
	if !ids.Valid(strings.ToUpper(good)) {
		t.Errorf("Valid rejects the upper-case form of %q", good)
	}
	if !ids.Valid("7zzzzzzzzzzzzzzzzzzzzzzzzz") {
		t.Errorf("Valid rejects the largest ULID")
	}
}

func TestStrictlyIncreasingWithinAMillisecond(t *testing.T) {
	prev := ids.New()
	for range 10000 {
		next := ids.New()
		if next <= prev {
			t.Fatalf("%s came after %s", next, prev)
		}
		prev = next
	}
}
