// Package e2e runs the real system the way a newcomer does: it builds the
// binary, starts `microshop run` in a temporary data directory, and talks
// to it through the gateway only.
package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/users/contract"
)

// buildBinary compiles cmd/microshop once per test run.
var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "microshop-e2e-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "microshop")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/microshop")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// freePorts finds n consecutive free loopback ports.
func freePorts(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if base+n > 65000 {
			continue
		}
		ok := true
		for p := base; p < base+n; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no block of free ports")
	return 0
}

// system is a running `microshop run`.
type system struct {
	cmd     *exec.Cmd
	gateway string
	data    string
	out     *lockedBuffer
	exited  chan error
}

type runState struct {
	Services []struct {
		Name string `json:"name"`
		PID  int    `json:"pid"`
		URL  string `json:"url"`
	} `json:"services"`
}

func (s *system) pid(t *testing.T, service string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.data, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st runState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Services {
		if c.Name == service {
			return c.PID
		}
	}
	t.Fatalf("%s is not in run.json: %s", service, b)
	return 0
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startSystem runs `microshop run` and returns once it prints that every
// service is ready.
func startSystem(t *testing.T, env ...string) *system {
	t.Helper()
	if testing.Short() {
		t.Skip("the end-to-end test builds and runs the whole system; skipped with -short")
	}
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	port := freePorts(t, 7)
	natsPort := freePorts(t, 1)
	data := t.TempDir()
	cmd := exec.Command(bin, "run", "--data", data, "--port", fmt.Sprint(port), "--nats-port", fmt.Sprint(natsPort))
	cmd.Env = append(os.Environ(), env...)
	out := &lockedBuffer{}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &system{cmd: cmd, gateway: fmt.Sprintf("http://127.0.0.1:%d", port), data: data, out: out, exited: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			out.Write([]byte(sc.Text() + "\n"))
			if !signalled && strings.HasPrefix(sc.Text(), "Open ") {
				signalled = true
				close(ready)
			}
		}
		_, _ = io.Copy(out, stdout)
	}()
	go func() { s.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("microshop run output:\n%s", out.String())
			for _, name := range []string{"users", "inventory", "gateway"} {
				b, _ := os.ReadFile(filepath.Join(data, "logs", name+".log"))
				t.Logf("%s log (tail):\n%s", name, tail(string(b), 3000))
			}
		}
	})
	select {
	case <-ready:
	case err := <-s.exited:
		t.Fatalf("microshop run exited before it was ready: %v\n%s", err, out.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("microshop run was not ready within 60s\n%s", out.String())
	}
	// The promise in the README: up within 15 seconds on a fresh data dir.
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("the system took %s to be ready; the promise is 15s", took.Round(time.Millisecond))
	} else {
		t.Logf("the system was ready in %s", took.Round(time.Millisecond))
	}
	return s
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func TestSystemSurvivesInventoryDying(t *testing.T) {
	s := startSystem(t,
		"MICROSHOP_ADMIN_EMAIL=admin@example.com",
		"MICROSHOP_ADMIN_PASSWORD=admin password 123",
	)
	gw := s.gateway

	// Every service is its own process with its own database file.
	for _, name := range []string{"users", "inventory"} {
		if _, err := os.Stat(filepath.Join(s.data, name+".db")); err != nil {
			t.Errorf("no database file for %s: %v", name, err)
		}
	}
	pids := map[int]string{}
	for _, name := range []string{"users", "inventory", "gateway"} {
		pid := s.pid(t, name)
		if other, dup := pids[pid]; dup || pid == s.cmd.Process.Pid {
			t.Fatalf("%s shares pid %d with %s", name, pid, other)
		}
		pids[pid] = name
	}

	r := servicetest.Call(t, "POST", gw+"/api/users/register", "", map[string]string{
		"email": "e2e@example.com", "password": "end to end test", "name": "E2E"})
	if r.Status != http.StatusCreated {
		t.Fatalf("register through the gateway: %d %s", r.Status, r.Body)
	}
	login := func() contract.Tokens {
		t.Helper()
		r := servicetest.Call(t, "POST", gw+"/api/users/login", "", map[string]string{
			"email": "e2e@example.com", "password": "end to end test"})
		if r.Status != http.StatusOK {
			t.Fatalf("login through the gateway: %d %s", r.Status, r.Body)
		}
		var tok contract.Tokens
		r.JSON(t, &tok)
		return tok
	}
	tok := login()
	if r := servicetest.Call(t, "GET", gw+"/api/users/me", tok.AccessToken, nil); r.Status != 200 {
		t.Fatalf("me through the gateway: %d %s", r.Status, r.Body)
	}

	r = servicetest.Call(t, "GET", gw+"/api/inventory/products?limit=5", "", nil)
	if r.Status != 200 {
		t.Fatalf("products through the gateway: %d %s", r.Status, r.Body)
	}
	var list struct {
		Items []struct {
			SKU        string `json:"sku"`
			PriceCents int64  `json:"price_cents"`
			Currency   string `json:"currency"`
		} `json:"items"`
		NextPageToken string `json:"next_page_token"`
	}
	r.JSON(t, &list)
	if len(list.Items) != 5 || list.NextPageToken == "" || list.Items[0].PriceCents <= 0 || list.Items[0].Currency == "" {
		t.Fatalf("want a first page of 5 seeded products: %s", r.Body)
	}

	// The gateway never routes a service's internal routes.
	if r := servicetest.Call(t, "POST", gw+"/api/inventory/../../internal/reservations", tok.AccessToken, `{}`); r.Status != 404 {
		t.Fatalf("internal route through the gateway: %d %s", r.Status, r.Body)
	}

	// Kill inventory outright: no graceful anything.
	invPID := s.pid(t, "inventory")
	if err := syscall.Kill(invPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(invPID, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}

	// Logging in still works: users and the gateway do not need inventory.
	tok = login()
	if r := servicetest.Call(t, "GET", gw+"/api/users/me", tok.AccessToken, nil); r.Status != 200 {
		t.Fatalf("me with inventory down: %d %s", r.Status, r.Body)
	}
	// Product routes answer 503 problem+json that names the service.
	r = servicetest.Call(t, "GET", gw+"/api/inventory/products", "", nil)
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("products with inventory down: %d %s", r.Status, r.Body)
	}
	if p := r.Problem(t); p.Service != "inventory" || !strings.Contains(p.Detail, "inventory") {
		t.Fatalf("the 503 must name inventory: %s", r.Body)
	}

	// Ctrl-C stops the rest gracefully.
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.exited:
		if err != nil {
			t.Fatalf("microshop run exited with %v\n%s", err, s.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("microshop run did not stop within 30s of Ctrl-C")
	}
	for pid, name := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("%s (pid %d) is still running after run stopped", name, pid)
		}
	}
	if !strings.Contains(s.out.String(), "stopped") {
		t.Errorf("run did not say it stopped:\n%s", s.out.String())
	}
}
