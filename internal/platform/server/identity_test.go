package server_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/microshop/microshop/internal/platform/balancer"
	"github.com/microshop/microshop/internal/platform/server"
)

// /readyz names the replica, so balancers can tell it from a stranger on
// a replica port; without an identity it names nothing.
func TestReadyzNamesTheReplica(t *testing.T) {
	for identity, want := range map[string]string{"inventory@3f9a1c0b72de": "inventory@3f9a1c0b72de", "": ""} {
		s := newServer(t, server.Options{Identity: identity})
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		if got := w.Header().Get(balancer.IdentityHeader); got != want || w.Code != http.StatusOK {
			t.Errorf("identity %q: /readyz = %d with %s %q, want 200 with %q", identity, w.Code, balancer.IdentityHeader, got, want)
		}
	}
}
