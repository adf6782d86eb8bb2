package users

import (
	"sync/atomic"
	"testing"
	"time"
)

// The memory goes back once, a quiet moment after the last hash, not
// after each one.
func TestMemoryReleaseWaitsForQuiet(t *testing.T) {
	var n atomic.Int32
	const quiet = 500 * time.Millisecond
	m := newMemoryRelease(quiet, func() { n.Add(1) })
	start := time.Now()
	for range 5 {
		m.after()
		time.Sleep(20 * time.Millisecond)
	}
	if got := n.Load(); got != 0 && time.Since(start) < quiet {
		t.Fatalf("released %d times while hashes kept coming", got)
	}
	waitFor := func(want int32) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for n.Load() < want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := n.Load(); got != want {
			t.Fatalf("released %d times, want %d", got, want)
		}
	}
	waitFor(1)
	time.Sleep(2 * quiet)
	if got := n.Load(); got != 1 {
		t.Fatalf("released %d times after one burst, want once", got)
	}
	m.after() // a later burst releases again
	waitFor(2)
}
