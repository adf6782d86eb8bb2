package users_test

import (
	"net/http"
	"testing"

	"github.com/microshop/microshop/internal/platform/database/dbtest"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
)

// TestNamesRefuseControlCharacters: NUL and other control characters in a
// name are a 422 naming the field, on SQLite and on PostgreSQL (which
// would fail on a NUL in text with a 500).
func TestNamesRefuseControlCharacters(t *testing.T) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			var args []string
			if name == "postgres" {
				args = []string{"--db", dbtest.PostgresURL(t)} // skips without a server
			}
			url, _, _ := start(t, args...)
			for _, bad := range []string{"Ada\x00", "Ada\x1b[31m", "Ada\nLovelace", "Ad\u0085a"} {
				r := servicetest.Call(t, "POST", url+"/api/users/register", "", map[string]string{
					"email": "ada@example.com", "password": "long enough password", "name": bad})
				if r.Status != http.StatusUnprocessableEntity || r.Problem(t).Errors[0].Field != "name" {
					t.Errorf("register with name %q: %d %s", bad, r.Status, r.Body)
				}
			}
			servicetest.Register(t, url, "ada@example.com", "long enough password", "Ada")
			tok := servicetest.Login(t, url, "ada@example.com", "long enough password")
			r := servicetest.Call(t, "PATCH", url+"/api/users/me", tok.AccessToken, map[string]string{"name": "x\x00y"})
			if r.Status != http.StatusUnprocessableEntity || r.Problem(t).Errors[0].Field != "name" {
				t.Errorf("rename with a NUL: %d %s", r.Status, r.Body)
			}
		})
	}
}
