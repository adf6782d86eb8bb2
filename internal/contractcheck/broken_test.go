package contractcheck_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/contractcheck"
	"github.com/microshop/microshop/services/users"
)

// brokenUsers is an implementation of users that serves users' document
// but answers register in a way the document does not allow; every other
// route is a well-formed 404.
func brokenUsers(t *testing.T, register http.HandlerFunc) string {
	t.Helper()
	doc := users.OpenAPI()
	mux := http.NewServeMux()
	mux.Handle("GET /openapi.json", doc)
	mux.HandleFunc("POST /api/users/register", register)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"type":"about:blank","title":"Not Found","status":404}`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// decodeOr400 decodes a registration the way a careful implementation
// would, answering a documented 400 when it cannot.
func decodeOr400(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	var in map[string]any
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"type":"about:blank","title":"Bad Request","status":400}`))
		return nil, false
	}
	return in, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func TestABrokenImplementationFails(t *testing.T) {
	cases := []struct {
		name     string
		register http.HandlerFunc
		// the case of POST /api/users/register that must fail, and a
		// word its detail must hold
		failing, says string
	}{
		{
			name: "the new account without its id",
			register: func(w http.ResponseWriter, r *http.Request) {
				if in, ok := decodeOr400(w, r); ok {
					writeJSON(w, http.StatusCreated, map[string]any{"email": in["email"], "name": in["name"]})
				}
			},
			failing: "register a new account", says: `"id"`,
		},
		{
			name: "200 instead of 201",
			register: func(w http.ResponseWriter, r *http.Request) {
				if in, ok := decodeOr400(w, r); ok {
					writeJSON(w, http.StatusOK, map[string]any{"id": "u1", "email": in["email"], "name": in["name"]})
				}
			},
			failing: "register a new account", says: "want 201, got 200",
		},
		{
			name: "a 500 for malformed JSON",
			register: func(w http.ResponseWriter, r *http.Request) {
				var in map[string]any
				if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
					http.Error(w, "internal error", http.StatusInternalServerError)
					return
				}
				writeJSON(w, http.StatusCreated, map[string]any{"id": "u1", "email": in["email"], "name": in["name"]})
			},
			failing: "malformed JSON body", says: "500",
		},
		{
			name: "accepts unknown members",
			register: func(w http.ResponseWriter, r *http.Request) {
				if in, ok := decodeOr400(w, r); ok {
					writeJSON(w, http.StatusCreated, map[string]any{"id": "u1", "email": in["email"], "name": in["name"]})
				}
			},
			failing: "unknown member contract_check_unknown", says: "accepted (201)",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			rep, err := contractcheck.Run(ctx, contractcheck.Config{Service: "users", URL: brokenUsers(t, c.register), Doc: users.OpenAPI()})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Failed() {
				t.Fatal("the report has no failure")
			}
			var found bool
			for _, f := range rep.Failures() {
				if f.Operation == "POST /api/users/register" && f.Case == c.failing && strings.Contains(f.Detail, c.says) {
					found = true
				}
			}
			if !found {
				var b strings.Builder
				_ = rep.WriteTable(&b)
				t.Errorf("no failure of %q saying %q:\n%s", c.failing, c.says, b.String())
			}
		})
	}
}

func TestAServiceThatServesNoDocumentFails(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	rep, err := contractcheck.Run(context.Background(), contractcheck.Config{Service: "users", URL: srv.URL, Doc: users.OpenAPI()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) == 0 || rep.Results[0].Operation != "GET /openapi.json" || rep.Results[0].Outcome != contractcheck.Fail {
		t.Errorf("want GET /openapi.json to fail first, got %+v", rep.Results[:min(1, len(rep.Results))])
	}
}

func TestRunRefusesABadConfig(t *testing.T) {
	for name, cfg := range map[string]contractcheck.Config{
		"no document":              {Service: "users", URL: "http://127.0.0.1:1"},
		"no URL":                   {Service: "users", Doc: users.OpenAPI()},
		"a key without its caller": {Service: "users", URL: "http://127.0.0.1:1", Doc: users.OpenAPI(), ServiceKey: "AAAA"},
		"a key that is not a seed": {Service: "users", URL: "http://127.0.0.1:1", Doc: users.OpenAPI(), ServiceKey: "AAAA", As: "orders"},
	} {
		if _, err := contractcheck.Run(context.Background(), cfg); err == nil {
			t.Errorf("%s: Run accepted it", name)
		}
	}
}
