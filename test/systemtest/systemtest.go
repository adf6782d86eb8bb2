// Package systemtest runs the real system in tests the way a newcomer
// does: it builds the binary, starts `microshop run` in a temporary data
// directory, and gives tests the gateway's URL and the service processes.
// The work is done by localrun's launcher; this package adds the build
// and turns its errors into test failures.
package systemtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/loadgen"
	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/internal/shopclient"
)

// Build compiles cmd/microshop once per test run and returns its path.
var Build = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "microshop-e2e-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "microshop")
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %v", err)
	}
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/microshop")
	cmd.Dir = strings.TrimSpace(string(root))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// Binary returns the path of the binary Build made, failing t if it
// could not. With -short it skips t: what needs the binary runs the whole
// system.
func Binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the whole system; skipped with -short")
	}
	bin, err := Build()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// System is a running `microshop run`. Its fields (Cmd, Gateway, Data)
// and the methods that report errors rather than fail a test are those of
// localrun.System, reachable as s.System.
type System struct {
	*localrun.System
}

// Start runs `microshop run` and returns once it prints that every
// service is ready.
//
// With MICROSHOP_DB_PREFIX set (CI's PostgreSQL pass), each system gets
// databases of its own under that prefix: a system's data directory holds
// the keys its databases were written with (users' key-encryption key
// among them), so a second system cannot open the first one's databases,
// just as a real deployment given another data directory could not.
func Start(t *testing.T, env ...string) *System {
	t.Helper()
	if prefix := os.Getenv("MICROSHOP_DB_PREFIX"); prefix != "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		env = append(env, fmt.Sprintf("MICROSHOP_DB_PREFIX=%s%x_", prefix, b))
	}
	ls, err := localrun.Launch(context.Background(), localrun.LaunchOptions{Binary: Binary(t), Data: t.TempDir(), Env: env})
	if err != nil {
		t.Fatal(err)
	}
	s := &System{System: ls}
	t.Cleanup(func() {
		s.Close()
		if t.Failed() {
			t.Logf("microshop run output:\n%s", s.Output())
			for _, name := range []string{"users", "inventory", "orders", "payments", "gateway"} {
				t.Logf("%s log (tail):\n%s", name, s.LogTail(name, 3000))
			}
		}
	})
	// The promise in the README: up within 15 seconds on a fresh data dir.
	if took := ls.ReadyIn; took > 15*time.Second {
		t.Errorf("the system took %s to be ready; the promise is 15s", took.Round(time.Millisecond))
	} else {
		t.Logf("the system was ready in %s", took.Round(time.Millisecond))
	}
	return s
}

// PID is the process id of a running service.
func (s *System) PID(t *testing.T, service string) int {
	t.Helper()
	pid, err := s.System.PID(service)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// Kill ends a service's process at once (SIGKILL) and waits until it is
// gone.
func (s *System) Kill(t *testing.T, service string) {
	t.Helper()
	if _, err := s.System.Kill(service); err != nil {
		t.Fatal(err)
	}
}

// StartService starts a stopped service again through run's control
// socket, and returns once it is ready.
func (s *System) StartService(t *testing.T, service string) {
	t.Helper()
	if _, err := s.System.Start(context.Background(), service); err != nil {
		t.Fatal(err)
	}
}

// Scale runs n replicas of service, returning once they are ready.
func (s *System) Scale(t *testing.T, service string, n int) {
	t.Helper()
	if _, err := s.System.Scale(context.Background(), service, n); err != nil {
		t.Fatal(err)
	}
}

// Restart replaces every replica of service, one at a time.
func (s *System) Restart(t *testing.T, service string) {
	t.Helper()
	if _, err := s.System.Restart(context.Background(), service); err != nil {
		t.Fatal(err)
	}
}

// Stop sends Ctrl-C to run and waits for it to exit cleanly.
func (s *System) Stop(t *testing.T) {
	t.Helper()
	if err := s.System.Stop(30 * time.Second); err != nil {
		t.Fatalf("%v\n%s", err, s.Output())
	}
}

// AdminEmail and AdminPassword are the admin account of AdminEnv.
const AdminEmail, AdminPassword = "admin@example.com", "admin password 123"

// AdminEnv makes AdminEmail the system's first admin.
var AdminEnv = []string{"MICROSHOP_ADMIN_EMAIL=" + AdminEmail, "MICROSHOP_ADMIN_PASSWORD=" + AdminPassword}

// ShopEnv is the environment of a system that tests shop on from this one
// machine: AdminEnv and loadgen.Unlimited, then more.
func ShopEnv(more ...string) []string {
	return append(append(loadgen.Unlimited(), AdminEnv...), more...)
}

// Shop is a client of the gateway at url.
func Shop(url string) *shopclient.Client {
	return shopclient.MustNew(url, shopclient.Options{Timeout: 30 * time.Second})
}

// Login logs email in, failing the test if it cannot.
func Login(t *testing.T, shop *shopclient.Client, email, password string) *shopclient.Session {
	t.Helper()
	s, err := shop.Login(context.Background(), email, password)
	if err != nil {
		t.Fatalf("logging in %s: %v", email, err)
	}
	return s
}

// Customer registers a customer named name, with an email no other test
// used, and logs them in.
func Customer(t *testing.T, shop *shopclient.Client, name string) *shopclient.Session {
	t.Helper()
	reg := shopclient.Registration{Email: fmt.Sprintf("%s-%d@example.com", name, time.Now().UnixNano()), Password: "long enough password", Name: name}
	if _, err := shop.Register(context.Background(), reg); err != nil {
		t.Fatalf("registering %s: %v", name, err)
	}
	return Login(t, shop, reg.Email, reg.Password)
}
