package telemetry

import "testing"

// The exporter's headers come from OpenTelemetry's variables, through the
// service's own getenv, values URL-decoded; traces' own variable wins.
func TestOTLPHeaders(t *testing.T) {
	env := map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20abc, X-Tenant = shop "}
	got, err := otlpHeaders(func(k string) string { return env[k] })
	if err != nil || len(got) != 2 || got["Authorization"] != "Bearer abc" || got["X-Tenant"] != "shop" {
		t.Fatalf("got %v %v", got, err)
	}
	env["OTEL_EXPORTER_OTLP_TRACES_HEADERS"] = "K=v"
	if got, _ := otlpHeaders(func(k string) string { return env[k] }); len(got) != 1 || got["K"] != "v" {
		t.Fatalf("the traces variable did not win: %v", got)
	}
	if _, err := otlpHeaders(func(string) string { return "no-equals-sign" }); err == nil {
		t.Fatal("a pair without = was accepted")
	}
}
