// Package systemtest runs the real system in tests the way a newcomer
// does: it builds the binary, starts `+"`microshop run`"+` in a temporary data
// directory, and gives tests the gateway's URL and the service processes.
package systemtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
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
)

// buildBinary compiles cmd/microshop once per test run.
var buildOnce = sync.OnceValues(func() (string, error) {
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

// freePorts finds a base port whose block of n ports, and the same block
// at +100, +200, ... for the replicas `run` may start, are all free. It
// looks below Linux's ephemeral range (32768 and up), where the ports
// that connections borrow would otherwise collide with a replica's.
func freePorts(t *testing.T, n int) int {
	t.Helper()
	const low, high, replicaBlocks = 20000, 32000 - 500, 5
	for try := 0; try < 200; try++ {
		base := low + rand.IntN(high-low)
		ok := true
		for k := 0; k < replicaBlocks && ok; k++ {
			for p := base + 100*k; p < base+100*k+n; p++ {
				l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
				if err != nil {
					ok = false
					break
				}
				l.Close()
			}
		}
		if ok {
			return base
		}
	}
	t.Fatal("no block of free ports")
	return 0
}

// system is a running `microshop run`.
type System struct {
	Cmd     *exec.Cmd
	Gateway string
	Data    string
	out     *lockedBuffer
	exited  chan error
}

type runState struct {
	Services []struct {
		Name    string `json:"name"`
		PID     int    `json:"pid"`
		URL     string `json:"url"`
		Running bool   `json:"running"`
	} `json:"services"`
}

func (s *System) PID(t *testing.T, service string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Data, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st runState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Services {
		if c.Name == service && c.Running {
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

// Start runs `microshop run` and returns once it prints that every
// service is ready.
func Start(t *testing.T, env ...string) *System {
	t.Helper()
	if testing.Short() {
		t.Skip("the end-to-end test builds and runs the whole system; skipped with -short")
	}
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	port := freePorts(t, 10)
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
	s := &System{Cmd: cmd, Gateway: fmt.Sprintf("http://127.0.0.1:%d", port), Data: data, out: out, exited: make(chan error, 1)}
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
			for _, name := range []string{"users", "inventory", "orders", "payments", "gateway"} {
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

// Output is what `microshop run` printed so far.
func (s *System) Output() string { return s.out.String() }

// Exited delivers run's exit once it has stopped.
func (s *System) Exited() <-chan error { return s.exited }

// Kill sends SIGKILL to a service's process and waits until it is gone.
func (s *System) Kill(t *testing.T, service string) {
	t.Helper()
	pid := s.PID(t, service)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing %s (pid %d): %v", service, pid, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// StartService starts a stopped service again through run's control
// socket, and returns once it is ready.
func (s *System) StartService(t *testing.T, service string) {
	t.Helper()
	s.control(t, "/services/"+service+"/start")
}

// Scale runs n replicas of service, returning once they are ready.
func (s *System) Scale(t *testing.T, service string, n int) {
	t.Helper()
	s.control(t, fmt.Sprintf("/services/%s/scale?n=%d", service, n))
}

// Restart replaces every replica of service, one at a time.
func (s *System) Restart(t *testing.T, service string) {
	t.Helper()
	s.control(t, "/services/"+service+"/restart")
}

func (s *System) control(t *testing.T, path string) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", filepath.Join(s.Data, "control.sock"))
		}}}
	resp, err := hc.Post("http://run"+path, "", nil)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
	}
}

// Stop sends Ctrl-C to run and waits for it to exit cleanly.
func (s *System) Stop(t *testing.T) {
	t.Helper()
	if err := s.Cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.exited:
		s.exited <- err
		if err != nil {
			t.Fatalf("microshop run exited with %v\n%s", err, s.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("microshop run did not stop within 30s of Ctrl-C")
	}
}
