package gateway

import (
	"net/http/httptest"
	"testing"
)

func TestMetricsOnlyForLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:5000":        true,
		"[::1]:5000":            true,
		"[::ffff:127.0.0.1]:50": true,
		"203.0.113.9:5000":      false,
		"10.1.2.3:5000":         false,
		"garbage":               false,
	} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.RemoteAddr = addr
		if got := fromLoopback(r); got != want {
			t.Errorf("fromLoopback(%s) = %t, want %t", addr, got, want)
		}
	}
}
