package deploy

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// registeredMetrics reads the names of the Prometheus metrics the code
// registers (Name: "..." in metric options, and prometheus.NewDesc) from
// the non-test Go files under internal/ and services/.
func registeredMetrics(t *testing.T, root string) map[string]bool {
	t.Helper()
	opts := regexp.MustCompile(`Name:\s*"([a-z][a-z0-9_]*)"`)
	desc := regexp.MustCompile(`prometheus\.NewDesc\(\s*"([a-z][a-z0-9_]*)"`)
	names := map[string]bool{}
	for _, dir := range []string{"internal", "services"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if !strings.Contains(string(b), "prometheus") {
				return nil
			}
			for _, re := range []*regexp.Regexp{opts, desc} {
				for _, m := range re.FindAllSubmatch(b, -1) {
					if strings.Contains(string(m[1]), "_") { // metric names, not service names
						names[string(m[1])] = true
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return names
}

type dashboardPanel struct {
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"`
}

var metricInExpr = regexp.MustCompile(`([a-z_][a-z0-9_]*)\{`)

// checkDashboard returns the problems of a dashboard: metrics the code
// does not register, panels without queries, and the views the brief
// asks for that are missing.
func checkDashboard(content []byte, known map[string]bool) []string {
	var problems []string
	var dash struct {
		UID        string           `json:"uid"`
		Title      string           `json:"title"`
		Panels     []dashboardPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
				Type string `json:"type"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(content, &dash); err != nil {
		return []string{"not JSON: " + err.Error()}
	}
	if dash.UID == "" || dash.Title == "" {
		problems = append(problems, "no uid or title")
	}
	hasDS := false
	for _, v := range dash.Templating.List {
		if v.Type == "datasource" {
			hasDS = true
		}
	}
	if !hasDS {
		problems = append(problems, "no datasource variable: the dashboard would be tied to one Prometheus")
	}
	used := map[string][]string{} // metric -> panels
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if len(p.Targets) == 0 {
				problems = append(problems, fmt.Sprintf("panel %q has no query", p.Title))
			}
			for _, tg := range p.Targets {
				ms := metricInExpr.FindAllStringSubmatch(tg.Expr, -1)
				if len(ms) == 0 {
					problems = append(problems, fmt.Sprintf("panel %q: %q selects no metric with labels", p.Title, tg.Expr))
				}
				for _, m := range ms {
					used[m[1]] = append(used[m[1]], p.Title)
				}
				if !strings.Contains(tg.Expr, "service") {
					problems = append(problems, fmt.Sprintf("panel %q: %q does not use the service label", p.Title, tg.Expr))
				}
			}
		}
	}
	walk(dash.Panels)
	var names []string
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		base := n
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if !known[base] && !strings.HasPrefix(n, "go_") && !strings.HasPrefix(n, "process_") {
			problems = append(problems, fmt.Sprintf("panels %q use %s, which the code does not register", used[n], n))
		}
	}
	for _, want := range []string{
		"http_server_requests_total", "http_server_request_duration_seconds_bucket",
		"http_client_requests_total", "circuit_breaker_state", "outbox_backlog",
		"events_consumed_total", "orders_sagas_in_flight", "orders_saga_finished_total",
	} {
		if len(used[want]) == 0 {
			problems = append(problems, fmt.Sprintf("no panel shows %s", want))
		}
	}
	return problems
}

func TestGrafanaDashboard(t *testing.T) {
	root := repoRoot(t)
	known := registeredMetrics(t, root)
	if !known["http_server_requests_total"] || !known["orders_sagas_in_flight"] {
		t.Fatalf("reading the code's metrics failed: %v", known)
	}
	content, err := os.ReadFile(filepath.Join(root, "deploy", "grafana", "microshop-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range checkDashboard(content, known) {
		t.Error(p)
	}
}

// TestDashboardCheckerFindsBreakage proves the dashboard checks can fail.
func TestDashboardCheckerFindsBreakage(t *testing.T) {
	root := repoRoot(t)
	known := registeredMetrics(t, root)
	content, err := os.ReadFile(filepath.Join(root, "deploy", "grafana", "microshop-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, old, new, want string }{
		{"a renamed metric", "outbox_backlog{", "outbox_lag{", "use outbox_lag, which the code does not register"},
		{"the breaker panel gone", "max by (service, target) (circuit_breaker_state{", "max by (service, target) (http_client_retries_total{", "no panel shows circuit_breaker_state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := string(content)
			if !strings.Contains(s, tt.old) {
				t.Fatalf("the dashboard does not contain %q", tt.old)
			}
			p := checkDashboard([]byte(strings.ReplaceAll(s, tt.old, tt.new)), known)
			if !containsProblem(p, tt.want) {
				t.Errorf("want a problem containing %q; got %q", tt.want, p)
			}
		})
	}
}

// composeScrapePort is where compose's Prometheus must read the metrics
// of name: its service port, or for a service with a metrics listener the
// port of MICROSHOP_METRICS_ADDR in its environment.
func composeScrapePort(src *composeSource, name string) (int32, error) {
	if !slices.Contains(separateMetrics, name) {
		return servicePorts[name], nil
	}
	s := src.file.Services[name]
	if s == nil || s.Environment[metricsAddrVar] == nil {
		return 0, fmt.Errorf("%s: sets no %s; its public port serves /metrics to loopback only", name, metricsAddrVar)
	}
	return addrPort(*s.Environment[metricsAddrVar])
}

// checkPrometheus: compose's Prometheus scrapes each service where it
// serves /metrics, with the label the dashboard groups by.
func checkPrometheus(cfg string, src *composeSource) []string {
	var problems []string
	for _, name := range serviceNames() {
		port, err := composeScrapePort(src, name)
		if err != nil {
			problems = append(problems, "compose.yaml: "+err.Error())
			continue
		}
		target := fmt.Sprintf(`- targets: ["%s:%d"]`, name, port)
		i := strings.Index(cfg, target)
		if i < 0 {
			problems = append(problems, fmt.Sprintf("prometheus.yml does not scrape %s:%d", name, port))
			continue
		}
		rest := strings.TrimSpace(cfg[i+len(target):])
		if !strings.HasPrefix(rest, "labels: {service: "+name+"}") {
			problems = append(problems, fmt.Sprintf("prometheus.yml: %s's target has no label service: %s", name, name))
		}
	}
	return problems
}

// TestPrometheusScrapesEveryService: the compose Prometheus scrapes each
// service where it serves /metrics, with the label the dashboard groups by.
func TestPrometheusScrapesEveryService(t *testing.T) {
	src, err := parseCompose([]byte(readRepoFile(t, "deploy/compose.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range checkPrometheus(readRepoFile(t, "deploy/prometheus/prometheus.yml"), src) {
		t.Error(p)
	}
}

// TestPrometheusCheckFindsBreakage proves that check can fail.
func TestPrometheusCheckFindsBreakage(t *testing.T) {
	compose := readRepoFile(t, "deploy/compose.yaml")
	cfg := readRepoFile(t, "deploy/prometheus/prometheus.yml")
	tests := []struct{ name, file, old, new, want string }{
		{"the gateway on its public port", "prometheus.yml", `["gateway:9090"]`, `["gateway:8080"]`, "prometheus.yml does not scrape gateway:9090"},
		{"users on the gateway's metrics port", "prometheus.yml", `["users:8081"]`, `["users:9090"]`, "prometheus.yml does not scrape users:8081"},
		{"a target without its label", "prometheus.yml", "labels: {service: orders}", "labels: {job: orders}", "orders's target has no label service"},
		{"the gateway's listener elsewhere", "compose.yaml", `MICROSHOP_METRICS_ADDR: ":9090"`, `MICROSHOP_METRICS_ADDR: ":9100"`, "prometheus.yml does not scrape gateway:9100"},
		{"the gateway without a listener", "compose.yaml", `      MICROSHOP_METRICS_ADDR: ":9090"` + "\n", "", "gateway: sets no MICROSHOP_METRICS_ADDR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, p := compose, cfg
			target := &p
			if tt.file == "compose.yaml" {
				target = &c
			}
			if !strings.Contains(*target, tt.old) {
				t.Fatalf("%s does not contain %q", tt.file, tt.old)
			}
			*target = strings.Replace(*target, tt.old, tt.new, 1)
			src, err := parseCompose([]byte(c))
			if err != nil {
				t.Fatal(err)
			}
			if problems := checkPrometheus(p, src); !containsProblem(problems, tt.want) {
				t.Errorf("want a problem containing %q; got:\n%s", tt.want, strings.Join(problems, "\n"))
			}
		})
	}
}
