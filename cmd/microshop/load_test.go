package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// catalogServer answers the catalog's two routes with two products: all
// that the browse scenario needs.
func catalogServer(t *testing.T) *httptest.Server {
	products := map[string]string{
		"MUG-1":  `{"sku":"MUG-1","name":"Ceramic Mug","description":"","price_cents":1400,"currency":"USD","available":5}`,
		"LAMP-2": `{"sku":"LAMP-2","name":"Desk Lamp","description":"","price_cents":3900,"currency":"USD","available":5}`,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/inventory/products", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"items":[` + products["LAMP-2"] + `,` + products["MUG-1"] + `]}`))
	})
	mux.HandleFunc("GET /api/inventory/products/{sku}", func(w http.ResponseWriter, r *http.Request) {
		p, ok := products[r.PathValue("sku")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(p))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestLoadHelp(t *testing.T) {
	r := invoke(t, nil, "load", "--help")
	if r.err != nil {
		t.Fatalf("err = %v", r.err)
	}
	for _, want := range []string{"Usage: microshop load", "--rate", "--concurrency", "--scenario", "-users", "-json", "-seed", "-target", "-duration", "browse", "checkout", "mixed"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the help does not mention %q:\n%s", want, r.stderr)
		}
	}
}

func TestLoadRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no scenario", nil, []string{"--rate", "1"}, "give a --scenario"},
		{"rate and concurrency", nil, []string{"--scenario", "browse", "--rate", "1", "--concurrency", "2"}, "not both"},
		{"neither", nil, []string{"--scenario", "browse"}, "give a rate"},
		{"unknown scenario", nil, []string{"--scenario", "stampede", "--rate", "1"}, "stampede"},
		{"no duration", nil, []string{"--scenario", "browse", "--rate", "1", "--duration", "0s"}, "duration"},
		{"arguments", nil, []string{"--scenario", "browse", "--rate", "1", "now"}, "unexpected arguments"},
		{"admin without password", map[string]string{"MICROSHOP_ADMIN_EMAIL": "admin@example.com"},
			[]string{"--scenario", "checkout", "--rate", "1"}, "MICROSHOP_ADMIN_PASSWORD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := invoke(t, tc.env, append([]string{"load"}, tc.args...)...)
			if r.err == nil {
				t.Fatal("the load ran")
			}
			if msg := r.stderr + r.err.Error(); !strings.Contains(msg, tc.want) {
				t.Errorf("err %v, stderr %q: want %q", r.err, r.stderr, tc.want)
			}
			if strings.Contains(r.stdout, "setting up") {
				t.Errorf("it began before refusing: %q", r.stdout)
			}
		})
	}
}

func TestLoadPrintsProgressAndTable(t *testing.T) {
	srv := catalogServer(t)
	r := invoke(t, nil, "load", "--target", srv.URL, "--scenario", "browse", "--rate", "40", "--duration", "1500ms", "--seed", "7")
	if r.err != nil {
		t.Fatalf("err = %v\n%s", r.err, r.stderr)
	}
	out := r.stdout
	// Not a terminal: one progress line a second, then the table.
	for _, want := range []string{"setting up", "setup: 2 products read", "requests", "OPERATION", "COUNT", "ERRORS", "RATE/S",
		"P50", "P90", "P99", "P99.9", "MAX", "ERRORS BY KIND", "products.list", "products.search", "products.get", "total", "(seed 7)"} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\r") {
		t.Errorf("progress rewrote a line on a non-terminal:\n%q", out)
	}
	var total string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "total ") {
			total = line
		}
	}
	if f := strings.Fields(total); len(f) < 3 || f[1] != "60" || f[2] != "0" {
		t.Errorf("total line %q: want 60 operations (40/s for 1.5s) and 0 errors", total)
	}
}

func TestLoadJSON(t *testing.T) {
	srv := catalogServer(t)
	r := invoke(t, nil, "load", "--target", srv.URL, "--scenario", "browse", "--concurrency", "2", "--duration", "300ms", "--json")
	if r.err != nil {
		t.Fatalf("err = %v\n%s", r.err, r.stderr)
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	var res struct {
		Parameters struct {
			Target, Scenario, Mode string
			Concurrency            int
			Seed                   uint64
		}
		Operations []struct {
			Name         string
			Count        int64
			ErrorsByKind map[string]int64   `json:"errors_by_kind"`
			LatencyMS    map[string]float64 `json:"latency_ms"`
		}
		Totals struct {
			Count, Errors int64
		}
		ConfirmedCheckoutsPerSecond *float64 `json:"confirmed_checkouts_per_second"`
	}
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	if dec.More() {
		t.Errorf("stdout holds more than one JSON value:\n%s", r.stdout)
	}
	if res.Parameters.Target != srv.URL || res.Parameters.Scenario != "browse" || res.Parameters.Mode != "closed" ||
		res.Parameters.Concurrency != 2 || res.Parameters.Seed == 0 {
		t.Errorf("parameters = %+v", res.Parameters)
	}
	if res.Totals.Count == 0 || res.Totals.Errors != 0 || len(res.Operations) != 3 || res.ConfirmedCheckoutsPerSecond == nil {
		t.Errorf("result = %+v", res)
	}
	for _, o := range res.Operations {
		if _, ok := o.LatencyMS["p99_9"]; !ok || o.ErrorsByKind == nil {
			t.Errorf("operation %+v lacks latency_ms.p99_9 or errors_by_kind", o)
		}
	}
	if !strings.Contains(r.stderr, "setting up") {
		t.Errorf("progress did not go to stderr: %q", r.stderr)
	}
}

func TestLoadNothingListening(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	r := invoke(t, nil, "load", "--target", url, "--scenario", "browse", "--rate", "1", "--duration", "1s")
	if r.err == nil || errors.Is(r.err, errUsage) || !strings.Contains(r.err.Error(), "is microshop running there?") {
		t.Errorf("err = %v, want one asking whether microshop runs at the target", r.err)
	}
	var buf bytes.Buffer
	if isTerminal(&buf) {
		t.Error("a buffer is a terminal")
	}
}
