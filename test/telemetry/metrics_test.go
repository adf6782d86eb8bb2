package telemetry

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/test/systemtest"
)

// Every service's /metrics and the console's merged page are valid
// Prometheus exposition format with names and types as Prometheus'
// conventions want them, as promtool (Debian's prometheus package) checks
// them; and a made-up HTTP method adds no series. Before, the merged page
// gave gateway_upstream_* the label service twice (promtool: "duplicate
// label names"), and each made-up method added series on every service.
//
// Without promtool the check is skipped, unless MICROSHOP_REQUIRE_PROMTOOL
// is set (CI sets it), when it fails.
func TestMetricsAreValidExposition(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil && os.Getenv("MICROSHOP_REQUIRE_PROMTOOL") != "" {
		t.Fatal("MICROSHOP_REQUIRE_PROMTOOL is set and promtool is not installed (apt-get install prometheus)")
	}
	s := systemtest.Start(t, systemtest.AdminEnv...)
	shop := systemtest.Shop(s.Gateway)
	admin := systemtest.Login(t, shop, systemtest.AdminEmail, systemtest.AdminPassword).Token()
	customer := systemtest.Customer(t, shop, "M")
	ctx := context.Background()
	list, err := shop.Products(ctx, shopclient.ProductQuery{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	// A checkout, so the saga, outbox, client and event figures have samples.
	o, _, err := customer.PlaceOrder(ctx, "metrics", shopclient.Checkout(shopclient.CardApproved, shopclient.Line{SKU: list.Items[0].SKU, Quantity: 1}))
	if err != nil || o.Status == ordersapi.StatusRejected {
		t.Fatalf("checkout: %+v, %v", o, err)
	}
	st, err := localrun.ReadState(s.Data)
	if err != nil {
		t.Fatal(err)
	}
	pages := func() map[string]string {
		out := map[string]string{}
		for _, p := range st.Services {
			if p.Name == "nats" {
				continue
			}
			// Services serve mutual TLS under run: scrape as run does,
			// with the supervisor's certificate.
			res, err := s.ServiceClient(p.Name).Get(p.URL + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			out[p.Name] = string(b)
		}
		merged := servicetest.Call(t, "GET", s.Gateway+"/api/telemetry/scrape", admin, nil)
		if merged.Status != http.StatusOK {
			t.Fatalf("the merged page: %d %s", merged.Status, merged.Body)
		}
		out["merged (/api/telemetry/scrape)"] = string(merged.Body)
		return out
	}
	// Made-up methods, at each service and through the gateway: the
	// first may add the series of method _OTHER, the others none.
	foo := func(method string) {
		for _, p := range st.Services {
			if p.Name == "nats" {
				continue
			}
			for _, url := range []string{p.URL + "/healthz", s.Gateway + "/api/inventory/products"} {
				req, _ := http.NewRequest(method, url, nil)
				if res, err := s.ServiceClient(p.Name).Do(req); err == nil {
					res.Body.Close()
				}
			}
		}
	}
	pages() // the scrapes' own series (route /metrics) exist from here on
	foo("FOO1")
	before := pages()
	foo("FOO2")
	foo("BREW")
	after := pages()
	for name, page := range after {
		if strings.Contains(page, `method="FOO`) || strings.Contains(page, `method="BREW"`) {
			t.Errorf("%s: a made-up method is a label value", name)
		}
		if name == "merged (/api/telemetry/scrape)" {
			continue // its go_* and process_* figures move on their own
		}
		if b, a := series(before[name]), series(after[name]); a != b {
			t.Errorf("%s: %d series after more made-up methods, %d before", name, a, b)
		}
	}

	if promtool == "" {
		t.Skip("promtool is not installed (Debian: apt-get install prometheus); set MICROSHOP_REQUIRE_PROMTOOL=1 to fail instead")
	}
	for name, page := range after {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(page)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Errorf("promtool check metrics on %s: %v\n%s", name, err, out.String())
		}
	}
}

// series counts the samples of an exposition page.
func series(page string) int {
	n := 0
	for _, line := range strings.Split(page, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			n++
		}
	}
	return n
}
