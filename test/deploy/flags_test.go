package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// The flags of each service are read from the binary itself: `microshop
// serve <service> --help` lists every flag with the variable behind it, so
// a manifest that sets a variable no flag reads (a typo, a renamed flag) is
// caught here.

var binaryOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "microshop-deploy-test")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "microshop")
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/microshop")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/microshop: %v\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if bin, err := binaryOnce(); err == nil {
		os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

// serviceFlags maps each service the binary holds to the MICROSHOP_*
// variables its flags read, and its default address.
type serviceFlags struct {
	env  map[string]bool
	addr string
}

var (
	flagEnv     = regexp.MustCompile(`\(\$(MICROSHOP_[A-Z0-9_]+)\)`)
	defaultAddr = regexp.MustCompile(`\(\$MICROSHOP_ADDR\) \(default "([^"]*)"\)`)
	servedList  = regexp.MustCompile(`Services: ([a-z, ]+)`)
)

func binaryFlags(t *testing.T) map[string]serviceFlags {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	bin, err := binaryOnce()
	if err != nil {
		// The tree does not compile; go vet and every other test say so.
		t.Skipf("cannot build the binary to read its flags: %v", err)
	}
	help := func(args ...string) string {
		var out bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no MICROSHOP_* of this shell
		_ = cmd.Run()
		return out.String()
	}
	m := servedList.FindStringSubmatch(help("serve", "--help"))
	if m == nil {
		t.Fatalf("`microshop serve --help` lists no services")
	}
	flags := map[string]serviceFlags{}
	for _, name := range strings.Split(m[1], ", ") {
		name = strings.TrimSpace(name)
		h := help("serve", name, "--help")
		sf := serviceFlags{env: map[string]bool{}}
		for _, e := range flagEnv.FindAllStringSubmatch(h, -1) {
			sf.env[e[1]] = true
		}
		if a := defaultAddr.FindStringSubmatch(h); a != nil {
			sf.addr = a[1]
		}
		if len(sf.env) == 0 {
			t.Fatalf("`microshop serve %s --help` lists no flags:\n%s", name, h)
		}
		flags[name] = sf
	}
	return flags
}

// knownBySome reports whether any service reads the variable.
func knownBySome(flags map[string]serviceFlags, v string) bool {
	for _, f := range flags {
		if f.env[v] {
			return true
		}
	}
	return false
}

func TestTheBinaryServesEveryService(t *testing.T) {
	flags := binaryFlags(t)
	for _, name := range serviceNames() {
		f, ok := flags[name]
		if !ok {
			// notifications and reports are being written; the manifests
			// already deploy them.
			t.Logf("the binary does not serve %s yet; its manifests are checked without its flags", name)
			continue
		}
		if want := fmt.Sprintf(":%d", servicePorts[name]); f.addr != want {
			t.Errorf("%s listens on %q by default; the manifests expect %s", name, f.addr, want)
		}
	}
	for name := range flags {
		if _, ok := servicePorts[name]; !ok {
			t.Errorf("the binary serves %s, which the manifests do not deploy", name)
		}
	}
}

// checkVars reports the MICROSHOP_* variables of one source that no flag
// reads: own (given to one service) must be that service's; shared (given
// to all) must be some service's.
func checkVars(flags map[string]serviceFlags, where, service string, vars []string, shared bool) []string {
	var problems []string
	for _, v := range vars {
		if !strings.HasPrefix(v, "MICROSHOP_") {
			continue
		}
		if shared {
			if !knownBySome(flags, v) {
				problems = append(problems, fmt.Sprintf("%s: %s is read by no service's flags", where, v))
			}
			continue
		}
		f, ok := flags[service]
		if !ok {
			continue // the binary does not hold it yet
		}
		if !f.env[v] {
			problems = append(problems, fmt.Sprintf("%s: %s is not a flag of %s", where, v, service))
		}
	}
	return problems
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestManifestsSetOnlyRealFlags(t *testing.T) {
	flags := binaryFlags(t)
	root := repoRoot(t)
	m := loadManifests(filepath.Join(root, "deploy", "k8s"))
	var problems []string
	for _, d := range all[*appsv1.Deployment](m) {
		for _, c := range d.Spec.Template.Spec.Containers {
			name := serveTarget(c)
			where := m.where(d)
			var own []string
			for _, e := range c.Env {
				own = append(own, e.Name)
			}
			problems = append(problems, checkVars(flags, where, name, own, false)...)
			for _, ef := range c.EnvFrom {
				switch {
				case ef.ConfigMapRef != nil:
					if cm := m.configMap(ef.ConfigMapRef.Name); cm != nil {
						shared := ef.ConfigMapRef.Name == "microshop-config"
						problems = append(problems, checkVars(flags, m.where(cm), name, keysOf(cm.Data), shared)...)
					}
				case ef.SecretRef != nil:
					if s := m.secret(ef.SecretRef.Name); s != nil {
						problems = append(problems, checkVars(flags, m.where(s), name, secretKeys(s), false)...)
					}
				}
			}
		}
	}
	content, err := os.ReadFile(filepath.Join(root, "deploy", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := parseCompose(content)
	if err != nil {
		t.Fatal(err)
	}
	problems = append(problems, checkVars(flags, "compose.yaml x-env", "", keysOf(src.sharedEnv), true)...)
	for _, name := range serviceNames() {
		s := src.file.Services[name]
		if s == nil {
			continue
		}
		var own []string
		for k := range s.Environment {
			if _, isShared := src.sharedEnv[k]; !isShared {
				own = append(own, k)
			}
		}
		sort.Strings(own)
		problems = append(problems, checkVars(flags, "compose.yaml "+name, name, own, false)...)
	}
	seen := map[string]bool{}
	for _, p := range problems {
		if !seen[p] {
			seen[p] = true
			t.Error(p)
		}
	}
}

// TestFlagCheckFindsTypos proves the flag check can fail.
func TestFlagCheckFindsTypos(t *testing.T) {
	flags := map[string]serviceFlags{
		"orders":  {env: map[string]bool{"MICROSHOP_DB": true, "MICROSHOP_STEP_TIMEOUT": true}},
		"gateway": {env: map[string]bool{"MICROSHOP_RATE_LIMIT": true}},
	}
	p := checkVars(flags, "x", "orders", []string{"MICROSHOP_DB", "MICROSHOP_STEP_TIMEOUTS", "GOMEMLIMIT"}, false)
	if len(p) != 1 || !strings.Contains(p[0], "MICROSHOP_STEP_TIMEOUTS is not a flag of orders") {
		t.Errorf("got %q", p)
	}
	p = checkVars(flags, "x", "orders", []string{"MICROSHOP_RATE_LIMIT"}, false)
	if len(p) != 1 {
		t.Errorf("another service's flag given to orders was not reported: %q", p)
	}
	if p := checkVars(flags, "x", "", []string{"MICROSHOP_RATE_LIMIT", "MICROSHOP_NOPE"}, true); len(p) != 1 || !strings.Contains(p[0], "MICROSHOP_NOPE") {
		t.Errorf("shared: got %q", p)
	}
}

// TestProductionDocsNameRealFlags: every MICROSHOP_* variable that
// docs/production.md names is a flag's (names ending in _<SERVICE> are
// gen-keys.sh's and compose's own). Flags the page does not name yet are
// only logged, so a new flag does not fail everyone's build.
func TestProductionDocsNameRealFlags(t *testing.T) {
	flags := binaryFlags(t)
	doc := readRepoFile(t, "docs/production.md")
	named := map[string]bool{}
	for _, m := range regexp.MustCompile(`MICROSHOP_[A-Z0-9_]*[A-Z0-9]`).FindAllString(doc, -1) {
		named[m] = true
	}
	// Besides the per-service secrets, MICROSHOP_TRACE_RATE is read from
	// the environment by the telemetry setup, beside the OTEL_* variables,
	// rather than by a flag.
	ownVars := regexp.MustCompile(`^MICROSHOP_((SERVICE_KEY|DB_PASSWORD)_[A-Z]+|TRACE_RATE)$`)
	// Rows of the per-service table for services the binary does not hold
	// yet cannot be checked.
	pending := map[string]bool{}
	for _, line := range strings.Split(doc, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		svc := strings.TrimSpace(cells[1])
		if _, ok := servicePorts[svc]; ok {
			if _, served := flags[svc]; !served {
				for _, v := range regexp.MustCompile(`MICROSHOP_[A-Z0-9_]*[A-Z0-9]`).FindAllString(line, -1) {
					pending[v] = true
				}
			}
		}
	}
	for v := range named {
		if ownVars.MatchString(v) || pending[v] {
			continue
		}
		if !knownBySome(flags, v) {
			t.Errorf("docs/production.md names %s, which no flag reads", v)
		}
	}
	var missing []string
	for _, name := range serviceNames() {
		for v := range flags[name].env {
			if !named[v] {
				missing = append(missing, name+": "+v)
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Logf("docs/production.md does not name these flags yet:\n%s", strings.Join(missing, "\n"))
	}
}
