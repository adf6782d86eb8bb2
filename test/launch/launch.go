// Package launch starts `microshop run` as a real process tree and acts
// on it from outside, as an operator would: it reads run.json to find the
// processes, kills one with SIGKILL, and asks run's control socket to
// start, scale or restart a service. Every operation returns an error
// rather than failing a test, so tests (through test/systemtest) and
// commands (`microshop chaos`) share it.
package launch

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
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
	"time"
)

// Options say how to start the system.
type Options struct {
	// Binary is the microshop binary that runs `run` (and, through it,
	// every process of the system).
	Binary string
	// Data is the data directory; it should be empty for a fresh system.
	Data string
	// Env is added to this process's environment for run and its children,
	// e.g. "MICROSHOP_ADMIN_EMAIL=admin@example.com".
	Env []string
	// ReadyTimeout bounds the wait for every service to be ready
	// (60s when zero).
	ReadyTimeout time.Duration
}

// System is a running `microshop run`.
type System struct {
	Cmd     *exec.Cmd
	Gateway string
	Data    string
	// ReadyIn is how long run took from its start until every service
	// was ready.
	ReadyIn time.Duration

	out    *lockedBuffer
	exited chan error
}

// Process is one process of the system as run.json lists it.
type Process struct {
	Name    string `json:"name"`
	Replica int    `json:"replica"`
	Port    int    `json:"port"`
	PID     int    `json:"pid"`
	URL     string `json:"url"`
	Log     string `json:"log"`
	Running bool   `json:"running"`
}

type runState struct {
	Gateway  string    `json:"gateway"`
	Services []Process `json:"services"`
}

// FreePorts finds a base port whose block of n ports, and the same block
// at +100, +200, ... for the replicas `run` may start, are all free. It
// looks below Linux's ephemeral range (32768 and up), where the ports
// that connections borrow would otherwise collide with a replica's.
func FreePorts(n int) (int, error) {
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
			return base, nil
		}
	}
	return 0, errors.New("no block of free ports")
}

// runPorts is how many ports `run` takes from --port up: the gateway,
// six services, the mailbox's web and SMTP ports and the collector.
const runPorts = 10

// Start runs `microshop run` and returns once it prints that every
// service is ready. If it does not get there, run is stopped and the
// error carries what it printed.
func Start(ctx context.Context, o Options) (*System, error) {
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 60 * time.Second
	}
	// One block: run's ports, then NATS right after them, so the two
	// never collide.
	port, err := FreePorts(runPorts + 1)
	if err != nil {
		return nil, err
	}
	natsPort := port + runPorts
	if err := os.MkdirAll(o.Data, 0o750); err != nil {
		return nil, err
	}
	cmd := exec.Command(o.Binary, "run", "--data", o.Data, "--port", fmt.Sprint(port), "--nats-port", fmt.Sprint(natsPort))
	cmd.Env = append(os.Environ(), o.Env...)
	// If this process dies, run stops too, and with it every service.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	out := &lockedBuffer{}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s run: %w", o.Binary, err)
	}
	s := &System{Cmd: cmd, Gateway: fmt.Sprintf("http://127.0.0.1:%d", port), Data: o.Data, out: out, exited: make(chan error, 1)}
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
	select {
	case <-ready:
		s.ReadyIn = time.Since(start)
		return s, nil
	case err := <-s.exited:
		s.exited <- err
		return nil, fmt.Errorf("microshop run exited before it was ready: %v\n%s", err, out.String())
	case <-time.After(o.ReadyTimeout):
		s.Close()
		return nil, fmt.Errorf("microshop run was not ready within %s\n%s", o.ReadyTimeout, out.String())
	case <-ctx.Done():
		s.Close()
		return nil, ctx.Err()
	}
}

// Output is what `microshop run` printed so far.
func (s *System) Output() string { return s.out.String() }

// Exited delivers run's exit once it has stopped.
func (s *System) Exited() <-chan error { return s.exited }

// Processes lists the processes of the system from run.json.
func (s *System) Processes() ([]Process, error) {
	b, err := os.ReadFile(filepath.Join(s.Data, "run.json"))
	if err != nil {
		return nil, err
	}
	var st runState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("reading run.json: %w", err)
	}
	return st.Services, nil
}

// PID is the process id of the running process service (its first
// running replica).
func (s *System) PID(service string) (int, error) {
	procs, err := s.Processes()
	if err != nil {
		return 0, err
	}
	for _, p := range procs {
		if p.Name == service && p.Running {
			return p.PID, nil
		}
	}
	return 0, fmt.Errorf("%s is not running according to run.json", service)
}

// Kill sends SIGKILL to a process of the system (never to run itself) and
// waits until it is gone. It returns the pid it killed.
func (s *System) Kill(service string) (int, error) {
	pid, err := s.PID(service)
	if err != nil {
		return 0, err
	}
	if pid <= 1 || pid == s.Cmd.Process.Pid || pid == os.Getpid() {
		return 0, fmt.Errorf("refusing to kill pid %d for %s: it is not one of run's children", pid, service)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return pid, fmt.Errorf("killing %s (pid %d): %w", service, pid, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			return pid, fmt.Errorf("%s (pid %d) was still there 10s after SIGKILL", service, pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return pid, nil
}

// StartService starts a stopped process again through run's control
// socket, and returns once it is ready.
func (s *System) StartService(ctx context.Context, service string) error {
	return s.control(ctx, "/services/"+service+"/start")
}

// Scale runs n replicas of service, returning once they are ready.
func (s *System) Scale(ctx context.Context, service string, n int) error {
	return s.control(ctx, fmt.Sprintf("/services/%s/scale?n=%d", service, n))
}

// Restart replaces every replica of service, one at a time.
func (s *System) Restart(ctx context.Context, service string) error {
	return s.control(ctx, "/services/"+service+"/restart")
}

func (s *System) control(ctx context.Context, path string) error {
	hc := &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", filepath.Join(s.Data, "control.sock"))
		}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://run"+path, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %d %s", path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}

// Stop sends Ctrl-C to run and waits up to timeout for it to exit; run's
// exit error, if any, is returned.
func (s *System) Stop(timeout time.Duration) error {
	if err := s.Cmd.Process.Signal(syscall.SIGINT); err != nil {
		select {
		case err := <-s.exited: // it had exited already
			s.exited <- err
			return err
		default:
			return err
		}
	}
	select {
	case err := <-s.exited:
		s.exited <- err
		if err != nil {
			return fmt.Errorf("microshop run exited with %v", err)
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("microshop run did not stop within %s of Ctrl-C", timeout)
	}
}

// Close stops run: Ctrl-C, and SIGKILL if it is still there after 30s.
// It never fails; use Stop to learn how run ended.
func (s *System) Close() {
	if s.Stop(30*time.Second) != nil {
		_ = s.Cmd.Process.Kill()
	}
}

// LogTail is the last n bytes of a process's log under <data>/logs.
func (s *System) LogTail(process string, n int) string {
	b, _ := os.ReadFile(filepath.Join(s.Data, "logs", process+".log"))
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
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
