// Package boundary enforces the rule that keeps microshop's services
// independent: a service may import the platform and other services'
// contract packages (their typed clients and event types), never their
// internals. The platform imports no service. One exception: a service's
// tests may start another service whole (its root package's Spec) to talk
// to it over HTTP.
package boundary

import (
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/microshop/microshop"

// violations walks root (a checkout of the module) and returns one line
// per forbidden import, naming the file and the import.
func violations(root string) ([]string, error) {
	var out []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == "testdata" || name == ".git" || name == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return fmt.Errorf("parsing %s: %w", rel, err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if why := forbidden(rel, p); why != "" {
				out = append(out, fmt.Sprintf("%s imports %s: %s", rel, p, why))
			}
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// forbidden says why file (a slash path relative to the module root) may
// not import pkg, or "" when it may.
func forbidden(file, pkg string) string {
	if !strings.HasPrefix(pkg, module+"/") {
		return ""
	}
	target := strings.TrimPrefix(pkg, module+"/")
	owner := serviceOf(file)
	switch {
	case strings.HasPrefix(file, "internal/platform/"):
		if strings.HasPrefix(target, "services/") {
			return "the platform must not depend on any service"
		}
	case owner != "":
		other := serviceOf(target + "/x.go")
		if other == "" || other == owner {
			return ""
		}
		if isContract(target) {
			return ""
		}
		// A service's tests may start another service whole, through its
		// Spec, and then talk to it over HTTP like any client.
		if strings.HasSuffix(file, "_test.go") && target == "services/"+other {
			return ""
		}
		return fmt.Sprintf("service %s may use only the contract package of %s, not its internals", owner, other)
	case strings.HasPrefix(file, "test/"):
		// Black-box tests see services as clients do: through contracts.
		if strings.HasPrefix(target, "services/") && !isContract(target) {
			return "black-box tests may use only contract packages of services"
		}
	}
	return ""
}

// isContract reports whether target (a path below the module) is a
// service's contract package, services/<name>/<name>api, or below it.
func isContract(target string) bool {
	name := serviceOf(target + "/x.go")
	if name == "" {
		return false
	}
	contract := "services/" + name + "/" + name + "api"
	return target == contract || strings.HasPrefix(target, contract+"/")
}

// serviceOf returns the service a path belongs to ("services/users/x.go"
// is users), or "".
func serviceOf(path string) string {
	rest, ok := strings.CutPrefix(path, "services/")
	if !ok {
		return ""
	}
	name, _, ok := strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	return name
}

func TestServicesRespectBoundaries(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "services")); err != nil {
		t.Fatalf("no services folder under %s: %v", root, err)
	}
	v, err := violations(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range v {
		t.Error(line)
	}
}

// TestCheckerFindsViolations proves the checker can fail: it builds a
// small tree with one import of each kind and expects exactly the bad ones.
func TestCheckerFindsViolations(t *testing.T) {
	root := t.TempDir()
	write := func(path, imports string) {
		full := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		src := "package x\n\nimport (\n" + imports + ")\n"
		if err := os.WriteFile(full, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("services/orders/saga.go", `	_ "github.com/microshop/microshop/services/inventory/inventoryapi"
	_ "github.com/microshop/microshop/internal/platform/events"
	_ "github.com/microshop/microshop/services/orders/ordersapi"
	_ "github.com/microshop/microshop/services/inventory"
	_ "fmt"
`)
	write("services/orders/saga_test.go", `	_ "github.com/microshop/microshop/services/inventory"
	_ "github.com/microshop/microshop/services/inventory/store"
`)
	write("services/orders/ordersapi/client.go", `	_ "github.com/microshop/microshop/services/payments/internal/ledger"
`)
	write("internal/platform/events/relay.go", `	_ "github.com/microshop/microshop/services/users/usersapi"
`)
	write("test/e2e/e2e_test.go", `	_ "github.com/microshop/microshop/services/users"
	_ "github.com/microshop/microshop/services/users/usersapi"
`)
	write("cmd/microshop/serve.go", `	_ "github.com/microshop/microshop/services/users"
`)
	got, err := violations(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"internal/platform/events/relay.go imports github.com/microshop/microshop/services/users/usersapi: the platform must not depend on any service",
		"services/orders/ordersapi/client.go imports github.com/microshop/microshop/services/payments/internal/ledger: service orders may use only the contract package of payments, not its internals",
		"services/orders/saga.go imports github.com/microshop/microshop/services/inventory: service orders may use only the contract package of inventory, not its internals",
		"services/orders/saga_test.go imports github.com/microshop/microshop/services/inventory/store: service orders may use only the contract package of inventory, not its internals",
		"test/e2e/e2e_test.go imports github.com/microshop/microshop/services/users: black-box tests may use only contract packages of services",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("violations:\n%s\n\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
