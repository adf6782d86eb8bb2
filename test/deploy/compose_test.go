package deploy

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// composeFile is the part of the Compose specification deploy/compose.yaml
// may use; anything else is refused, so a misspelt key fails here instead
// of being ignored by `docker compose`.
type composeFile struct {
	Name     string                     `json:"name"`
	Services map[string]*composeService `json:"services"`
	Volumes  map[string]*struct {
		Name     string `json:"name,omitempty"`
		Driver   string `json:"driver,omitempty"`
		External bool   `json:"external,omitempty"`
	} `json:"volumes,omitempty"`
}

type composeService struct {
	Image       string             `json:"image,omitempty"`
	Build       *composeBuild      `json:"build,omitempty"`
	Command     []string           `json:"command,omitempty"`
	Entrypoint  []string           `json:"entrypoint,omitempty"`
	Environment map[string]*string `json:"environment,omitempty"`
	EnvFile     []string           `json:"env_file,omitempty"`
	Ports       []string           `json:"ports,omitempty"`
	Expose      []string           `json:"expose,omitempty"`
	Volumes     []string           `json:"volumes,omitempty"`
	DependsOn   map[string]struct {
		Condition string `json:"condition"`
		Restart   bool   `json:"restart,omitempty"`
		Required  *bool  `json:"required,omitempty"`
	} `json:"depends_on,omitempty"`
	Healthcheck *struct {
		Test          []string `json:"test"`
		Interval      string   `json:"interval,omitempty"`
		Timeout       string   `json:"timeout,omitempty"`
		Retries       int      `json:"retries,omitempty"`
		StartPeriod   string   `json:"start_period,omitempty"`
		StartInterval string   `json:"start_interval,omitempty"`
		Disable       bool     `json:"disable,omitempty"`
	} `json:"healthcheck,omitempty"`
	Restart         string   `json:"restart,omitempty"`
	ReadOnly        bool     `json:"read_only,omitempty"`
	Tmpfs           []string `json:"tmpfs,omitempty"`
	CapDrop         []string `json:"cap_drop,omitempty"`
	CapAdd          []string `json:"cap_add,omitempty"`
	SecurityOpt     []string `json:"security_opt,omitempty"`
	StopGracePeriod string   `json:"stop_grace_period,omitempty"`
	User            string   `json:"user,omitempty"`
	Profiles        []string `json:"profiles,omitempty"`
	Privileged      bool     `json:"privileged,omitempty"`
}

type composeBuild struct {
	Context    string            `json:"context"`
	Dockerfile string            `json:"dockerfile,omitempty"`
	Args       map[string]string `json:"args,omitempty"`
	Target     string            `json:"target,omitempty"`
}

// The top-level keys of the Compose specification; x-* are extensions.
var composeTopLevel = []string{"name", "services", "volumes", "networks", "secrets", "configs", "include"}

// composeSource is a parsed compose file and the shared environment of
// its x-env extension (what every microshop service gets).
type composeSource struct {
	file      *composeFile
	sharedEnv map[string]*string
}

func parseCompose(content []byte) (*composeSource, error) {
	j, err := yaml.YAMLToJSONStrict(content)
	if err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(j, &top); err != nil {
		return nil, err
	}
	src := &composeSource{}
	for k, v := range top {
		switch {
		case k == "x-env":
			if err := decodeStrict(v, &src.sharedEnv); err != nil {
				return nil, fmt.Errorf("x-env: %w", err)
			}
			delete(top, k)
		case strings.HasPrefix(k, "x-"):
			delete(top, k)
		case !slices.Contains(composeTopLevel, k):
			return nil, fmt.Errorf("unknown top-level key %q", k)
		}
	}
	rest, err := json.Marshal(top)
	if err != nil {
		return nil, err
	}
	src.file = &composeFile{}
	if err := decodeStrict(rest, src.file); err != nil {
		return nil, err
	}
	return src, nil
}

var interpolation = regexp.MustCompile(`\$\{([A-Z0-9_]+)(:?[-?][^}]*)?\}`)

// checkCompose checks the compose file in dir (deploy/) and returns the
// problems. initDatabases are the databases the Postgres init script makes.
func checkCompose(dir string, content []byte, initDatabases []string) []string {
	var problems []string
	addf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	src, err := parseCompose(content)
	if err != nil {
		return []string{"compose.yaml: " + err.Error()}
	}
	c := src.file
	env := func(s *composeService, k string) string {
		if v := s.Environment[k]; v != nil {
			return *v
		}
		return ""
	}
	images := map[string]bool{}
	for name, s := range c.Services {
		if s.Image == "" && s.Build == nil {
			addf("%s: neither image nor build", name)
		}
		if s.Privileged || len(s.CapAdd) > 0 {
			addf("%s: privileged or adds capabilities", name)
		}
		for dep := range s.DependsOn {
			if c.Services[dep] == nil {
				addf("%s: depends on %s, which is not a service", name, dep)
			}
		}
		for _, v := range s.Volumes {
			hostPath, _, _ := strings.Cut(v, ":")
			switch {
			case strings.HasPrefix(hostPath, "./") || strings.HasPrefix(hostPath, "../"):
				if _, err := os.Stat(filepath.Join(dir, hostPath)); err != nil {
					addf("%s: mounts %s, which does not exist beside compose.yaml", name, hostPath)
				}
			case !strings.HasPrefix(hostPath, "/"):
				if _, ok := c.Volumes[hostPath]; !ok {
					addf("%s: mounts the volume %s, which is not declared", name, hostPath)
				}
			}
		}
		if s.Build != nil {
			if _, err := os.Stat(filepath.Join(dir, s.Build.Context, s.Build.Dockerfile)); err != nil {
				addf("%s: builds %s in %s, which does not exist", name, s.Build.Dockerfile, s.Build.Context)
			}
		}
		_, isApp := servicePorts[name]
		if !isApp {
			continue
		}
		images[s.Image] = true
		if !slices.Equal(s.Command, []string{"serve", name}) {
			addf("%s: command %q, want [serve %s]", name, s.Command, name)
		}
		if ownsDatabase(name) {
			// As compose would, with a password from deploy/.env.
			u, err := url.Parse(interpolation.ReplaceAllString(env(s, "MICROSHOP_DB"), "0123abcd"))
			if err != nil || u.Scheme != "postgres" || u.Hostname() != "postgres" || strings.TrimPrefix(u.Path, "/") != name || u.User.Username() != name {
				addf("%s: MICROSHOP_DB=%q, want postgres://%s:<password>@postgres:5432/%s", name, env(s, "MICROSHOP_DB"), name, name)
			}
			if !slices.Contains(initDatabases, name) {
				addf("%s: the Postgres init script makes no database %s", name, name)
			}
			if s.DependsOn["postgres"].Condition != "service_healthy" {
				addf("%s: keeps a database but does not wait for postgres to be healthy", name)
			}
		} else if env(s, "MICROSHOP_DB") != "" {
			addf("%s: keeps no database, yet MICROSHOP_DB is set", name)
		}
		if usesBroker(name) {
			if env(s, "MICROSHOP_NATS") != "nats://nats:4222" {
				addf("%s: MICROSHOP_NATS=%q, want nats://nats:4222", name, env(s, "MICROSHOP_NATS"))
			}
			if s.DependsOn["nats"].Condition != "service_healthy" {
				addf("%s: uses NATS but does not wait for nats to be healthy", name)
			}
		}
		want := "MICROSHOP_SERVICE_KEY_" + strings.ToUpper(name)
		if m := interpolation.FindStringSubmatch(env(s, "MICROSHOP_SERVICE_KEY")); m == nil || m[1] != want {
			addf("%s: MICROSHOP_SERVICE_KEY=%q, want its own ${%s:?...}", name, env(s, "MICROSHOP_SERVICE_KEY"), want)
		}
		if env(s, "MICROSHOP_SERVICE_KEYS") == "" {
			addf("%s: MICROSHOP_SERVICE_KEYS is not set", name)
		}
		for _, callee := range calls[name] {
			k := "MICROSHOP_" + strings.ToUpper(callee) + "_URL"
			if w := fmt.Sprintf("http://%s:%d", callee, servicePorts[callee]); env(s, k) != w {
				addf("%s: %s=%q, want %s", name, k, env(s, k), w)
			}
			if _, ok := s.DependsOn[callee]; !ok {
				addf("%s: calls %s but does not depend on it", name, callee)
			}
		}
		if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
			addf("%s: want read_only and cap_drop ALL", name)
		}
		secret, has := s.Environment[proxySecretVar]
		switch {
		case !slices.Contains(proxySecretSharers, name):
			if has {
				addf("%s: gets %s; only %s share it", name, proxySecretVar, strings.Join(proxySecretSharers, " and "))
			}
		case !has || secret == nil:
			addf("%s: no %s; without it users keys every client on the gateway's address", name, proxySecretVar)
		default:
			m := interpolation.FindStringSubmatch(*secret)
			if m == nil || m[0] != *secret || !strings.HasPrefix(m[2], ":?") {
				addf("%s: %s=%q, want ${VAR:?...} from deploy/.env", name, proxySecretVar, *secret)
			}
		}
	}
	var secrets []string
	for _, name := range proxySecretSharers {
		if s := c.Services[name]; s != nil && s.Environment[proxySecretVar] != nil {
			secrets = append(secrets, *s.Environment[proxySecretVar])
		}
	}
	if len(secrets) == len(proxySecretSharers) && slices.ContainsFunc(secrets, func(v string) bool { return v != secrets[0] }) {
		addf("%s get %s from %q: they must hold one value", strings.Join(proxySecretSharers, " and "), proxySecretVar, secrets)
	}
	for _, name := range serviceNames() {
		if c.Services[name] == nil {
			addf("no compose service %s", name)
		}
	}
	if len(images) > 1 {
		addf("the services run %d different images; want one", len(images))
	}
	if gw := c.Services["gateway"]; gw != nil && !slices.ContainsFunc(gw.Ports, func(p string) bool {
		return strings.HasSuffix(p, ":8080") || p == "8080"
	}) {
		addf("gateway: does not publish 8080 (ports %q)", gw.Ports)
	}
	for _, name := range separateMetrics {
		s := c.Services[name]
		if s == nil {
			continue
		}
		port, err := composeScrapePort(src, name)
		switch {
		case err != nil:
			addf("%s", err)
		case port == servicePorts[name]:
			addf("%s: %s is its public port", name, metricsAddrVar)
		case slices.ContainsFunc(s.Ports, func(p string) bool {
			return strings.HasSuffix(p, fmt.Sprintf(":%d", port)) || p == strconv.Itoa(int(port))
		}):
			addf("%s: publishes its metrics port %d; only Prometheus, on the compose network, should reach it", name, port)
		}
	}
	if pg := c.Services["postgres"]; pg == nil {
		addf("no postgres service")
	} else {
		if pg.Healthcheck == nil || len(pg.Healthcheck.Test) == 0 {
			addf("postgres: no healthcheck")
		}
		if !slices.ContainsFunc(pg.Volumes, func(v string) bool { return strings.Contains(v, ":/docker-entrypoint-initdb.d") }) {
			addf("postgres: the init scripts are not mounted at /docker-entrypoint-initdb.d")
		}
		for _, db := range initDatabases {
			if env(pg, "MICROSHOP_DB_PASSWORD_"+strings.ToUpper(db)) == "" {
				addf("postgres: MICROSHOP_DB_PASSWORD_%s is not passed to the init script", strings.ToUpper(db))
			}
		}
	}
	if n := c.Services["nats"]; n == nil {
		addf("no nats service")
	} else {
		if !slices.Contains(n.Command, "-js") {
			addf("nats: JetStream is not on (-js)")
		}
		if n.Healthcheck == nil || len(n.Healthcheck.Test) == 0 {
			addf("nats: no healthcheck")
		}
	}
	sort.Strings(problems)
	return problems
}

var initDatabaseLoop = regexp.MustCompile(`(?m)^for db in ([a-z ]+); do$`)

// initDatabases reads the databases the Postgres init script makes.
func initDatabases(t *testing.T, root string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "deploy", "postgres-init", "10-microshop-databases.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := initDatabaseLoop.FindSubmatch(b)
	if m == nil {
		t.Fatal("the init script has no `for db in ...; do` loop")
	}
	return strings.Fields(string(m[1]))
}

func TestPostgresInitMakesEveryDatabase(t *testing.T) {
	got := initDatabases(t, repoRoot(t))
	var want []string
	for _, n := range serviceNames() {
		if ownsDatabase(n) {
			want = append(want, n)
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("the init script makes %v, want %v", got, want)
	}
	st, err := os.Stat(filepath.Join(repoRoot(t), "deploy", "postgres-init", "10-microshop-databases.sh"))
	if err == nil && st.Mode()&0o111 == 0 {
		t.Errorf("the init script is not executable (the postgres image would source it instead)")
	}
}

func TestCompose(t *testing.T) {
	root := repoRoot(t)
	content, err := os.ReadFile(filepath.Join(root, "deploy", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range checkCompose(filepath.Join(root, "deploy"), content, initDatabases(t, root)) {
		t.Error(p)
	}
}

// TestComposeCheckerFindsBreakage proves the compose checks can fail.
func TestComposeCheckerFindsBreakage(t *testing.T) {
	root := repoRoot(t)
	content, err := os.ReadFile(filepath.Join(root, "deploy", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, old, new, want string
	}{
		{"an unknown top-level key", "\nservices:\n", "\nservice:\n", `unknown top-level key "service"`},
		{"a misspelt service key", "    depends_on:\n      postgres:\n        condition: service_healthy\n      nats:\n        condition: service_healthy\n      users:\n        condition: service_started\n\n  orders:",
			"    depend_on:\n      postgres:\n        condition: service_healthy\n\n  orders:", `unknown field "depend_on"`},
		{"a service not waiting for postgres", "      postgres:\n        condition: service_healthy\n      nats:\n        condition: service_healthy\n      users:\n        condition: service_started\n      inventory:",
			"      nats:\n        condition: service_healthy\n      users:\n        condition: service_started\n      inventory:", "orders: keeps a database but does not wait for postgres"},
		{"another service's database", "@postgres:5432/payments?", "@postgres:5432/orders?", "payments: MICROSHOP_DB="},
		{"another service's key", "MICROSHOP_SERVICE_KEY: ${MICROSHOP_SERVICE_KEY_REPORTS", "MICROSHOP_SERVICE_KEY: ${MICROSHOP_SERVICE_KEY_ORDERS", "reports: MICROSHOP_SERVICE_KEY="},
		{"the gateway unpublished", `      - "8080:8080"`, `      - "9090:9090"`, "gateway: does not publish 8080"},
		{"a command as a string", `command: ["serve", "payments"]`, `command: serve payments`, "cannot unmarshal string"},
		{"the wrong service", `command: ["serve", "reports"]`, `command: ["serve", "report"]`, `reports: command ["serve" "report"]`},
		{"NATS without JetStream", `command: ["-js", "-sd", "/data", "-m", "8222"]`, `command: ["-sd", "/data", "-m", "8222"]`, "nats: JetStream is not on"},
		{"a volume nobody declared", "      - users-data:/data\n", "      - user-data:/data\n", "users: mounts the volume user-data"},
		{"users without the proxy secret", "      MICROSHOP_PROXY_SECRET: ${MICROSHOP_PROXY_SECRET:?run deploy/gen-keys.sh > deploy/.env first}\n      # Limits", "      # Limits",
			"users: no MICROSHOP_PROXY_SECRET"},
		{"the proxy secret for orders too", "      MICROSHOP_PAYMENTS_URL: http://payments:8084\n    volumes:\n      - orders-data",
			"      MICROSHOP_PAYMENTS_URL: http://payments:8084\n      MICROSHOP_PROXY_SECRET: ${MICROSHOP_PROXY_SECRET:?x}\n    volumes:\n      - orders-data", "orders: gets MICROSHOP_PROXY_SECRET"},
		{"users' proxy secret another value", "      MICROSHOP_PROXY_SECRET: ${MICROSHOP_PROXY_SECRET:?run deploy/gen-keys.sh > deploy/.env first}\n      # Limits",
			"      MICROSHOP_PROXY_SECRET: ${MICROSHOP_ADMIN_PASSWORD:?x}\n      # Limits", "they must hold one value"},
		{"the proxy secret written in", "      # Sent to the services with every request; users holds the same.\n      MICROSHOP_PROXY_SECRET: ${MICROSHOP_PROXY_SECRET:?run deploy/gen-keys.sh > deploy/.env first}",
			"      MICROSHOP_PROXY_SECRET: s3cret", `gateway: MICROSHOP_PROXY_SECRET="s3cret"`},
		{"the gateway's metrics published", `      - "8080:8080"`, `      - "8080:8080"` + "\n" + `      - "9090:9090"`, "gateway: publishes its metrics port 9090"},
		{"the gateway's metrics on its public port", `MICROSHOP_METRICS_ADDR: ":9090"`, `MICROSHOP_METRICS_ADDR: ":8080"`, "gateway: MICROSHOP_METRICS_ADDR is its public port"},
		{"the gateway without a metrics listener", `      MICROSHOP_METRICS_ADDR: ":9090"` + "\n", "", "gateway: sets no MICROSHOP_METRICS_ADDR"},
		{"orders without payments' URL", "      MICROSHOP_PAYMENTS_URL: http://payments:8084\n    volumes:\n      - orders-data:/data", "    volumes:\n      - orders-data:/data", "orders: MICROSHOP_PAYMENTS_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := string(content)
			if !strings.Contains(s, tt.old) {
				t.Fatalf("compose.yaml does not contain %q", tt.old)
			}
			s = strings.Replace(s, tt.old, tt.new, 1)
			problems := checkCompose(filepath.Join(root, "deploy"), []byte(s), initDatabases(t, root))
			if !containsProblem(problems, tt.want) {
				t.Errorf("want a problem containing %q; got:\n%s", tt.want, strings.Join(problems, "\n"))
			}
		})
	}
}
