package boundary

import (
	"os/exec"
	"strings"
	"testing"
)

// The product binary links nothing written for tests: what is under test/
// is the system's black-box tests and their helpers, and the binary that
// ships must not grow by them, nor depend on them to work.

// testPackagesIn returns the packages of deps (import paths, one a line,
// as `go list -deps` prints them) that live under the module's test/.
func testPackagesIn(deps string) []string {
	var out []string
	for _, p := range strings.Fields(deps) {
		if strings.HasPrefix(p, module+"/test/") || p == module+"/test" {
			out = append(out, p)
		}
	}
	return out
}

func TestBinaryLinksNoTestPackage(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", module+"/cmd/microshop").Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/microshop: %v", err)
	}
	if !strings.Contains(string(out), module+"/internal/localrun") {
		t.Fatalf("go list -deps did not list the binary's own packages:\n%s", out)
	}
	for _, p := range testPackagesIn(string(out)) {
		t.Errorf("cmd/microshop links %s; the product binary must import nothing under test/", p)
	}
}

// TestBinaryCheckFindsTestPackages proves the check above can fail.
func TestBinaryCheckFindsTestPackages(t *testing.T) {
	deps := strings.Join([]string{
		"fmt",
		module + "/internal/localrun",
		module + "/test/systemtest",
		module + "/internal/testutil", // not under test/
		module + "/testdata/x",        // a different folder that starts alike
		module + "/test/e2e",
	}, "\n")
	got := strings.Join(testPackagesIn(deps), " ")
	want := module + "/test/systemtest " + module + "/test/e2e"
	if got != want {
		t.Errorf("testPackagesIn found %q, want %q", got, want)
	}
}
