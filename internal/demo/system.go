package demo

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand/v2"
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

// system is one `microshop run` that a demo started for itself: a child
// process of the demo, in its own data directory, on free ports.
type system struct {
	Gateway string
	Data    string
	// AdminEmail and AdminPassword are the admin account run was told to
	// make (through its environment).
	AdminEmail, AdminPassword string

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	tmpData bool // the data directory is ours to remove
	logPath string
}

// baseEnv is what every demo's system runs with: a known admin account
// and no rate limits, since one client sends every request.
func baseEnv(adminEmail, adminPassword string) []string {
	return []string{
		"MICROSHOP_ADMIN_EMAIL=" + adminEmail,
		"MICROSHOP_ADMIN_PASSWORD=" + adminPassword,
		"MICROSHOP_REGISTER_RATE_IP=0",
		"MICROSHOP_LOGIN_RATE_IP=0",
		"MICROSHOP_LOGIN_RATE_ACCOUNT=0",
		"MICROSHOP_RATE_LIMIT=0",
	}
}

// startSystem runs `exe run` with env added to this process's
// environment, and returns once run says every service is ready. Ports
// are checked free just before, but another program may take one in
// between: then it tries again on other ports, up to three times.
func startSystem(ctx context.Context, opts Options, env []string) (*system, error) {
	for try := 1; ; try++ {
		s, err := startOnce(ctx, opts, env)
		if err == nil || try == 3 || !errors.Is(err, errPortTaken) {
			return s, err
		}
	}
}

// errPortTaken: a process of the system found its port taken.
var errPortTaken = errors.New("a port of the system was taken")

// portTaken reports whether a process of the system in data failed for
// want of its port.
func portTaken(data string) bool {
	logs, _ := filepath.Glob(filepath.Join(data, "logs", "*.log"))
	for _, l := range append(logs, filepath.Join(data, "run.out")) {
		if b, err := os.ReadFile(l); err == nil && strings.Contains(string(b), "address already in use") {
			return true
		}
	}
	return false
}

func startOnce(ctx context.Context, opts Options, env []string) (*system, error) {
	data := opts.DataDir
	tmp := false
	if data == "" {
		d, err := os.MkdirTemp("", "microshop-demo-")
		if err != nil {
			return nil, err
		}
		data, tmp = d, true
	}
	port, err := freeBlock(10)
	if err != nil {
		return nil, err
	}
	natsPort, err := freeBlock(1)
	for err == nil && natsPort >= port && natsPort < port+500 {
		natsPort, err = freeBlock(1) // not among the system's own ports
	}
	if err != nil {
		return nil, err
	}
	s := &system{Gateway: fmt.Sprintf("http://127.0.0.1:%d", port), Data: data, tmpData: tmp,
		AdminEmail: "admin@demo.microshop.local", AdminPassword: "demo-" + rand.Text(),
		exited: make(chan struct{}), logPath: filepath.Join(data, "run.out")}
	out, err := os.Create(s.logPath)
	if err != nil {
		s.cleanup()
		return nil, err
	}
	cmd := exec.Command(opts.Exe, "run", "--data", data, "--port", fmt.Sprint(port), "--nats-port", fmt.Sprint(natsPort))
	// Later entries win: the demo's settings override the caller's.
	cmd.Env = append(append(os.Environ(), baseEnv(s.AdminEmail, s.AdminPassword)...), env...)
	cmd.Stderr = out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		out.Close()
		s.cleanup()
		return nil, err
	}
	// If the demo is killed, run goes too (and takes its children along).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		out.Close()
		s.cleanup()
		return nil, fmt.Errorf("starting %s run: %w", opts.Exe, err)
	}
	s.cmd = cmd
	ready := make(chan struct{})
	var lines sync.WaitGroup
	lines.Go(func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			fmt.Fprintln(out, sc.Text())
			if !signalled && strings.HasPrefix(sc.Text(), "Open ") {
				signalled = true
				close(ready)
			}
		}
		_, _ = io.Copy(out, stdout)
	})
	go func() {
		lines.Wait()
		s.waitErr = cmd.Wait()
		out.Close()
		close(s.exited)
	}()
	select {
	case <-ready:
		return s, nil
	case <-s.exited:
		err = fmt.Errorf("microshop run stopped before it was ready (%v):\n%s", s.waitErr, s.tail(2000))
	case <-time.After(60 * time.Second):
		err = fmt.Errorf("microshop run was not ready within 60s:\n%s", s.tail(2000))
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.stop()
	if portTaken(data) {
		err = fmt.Errorf("%w: %w", errPortTaken, err)
	}
	s.cleanup()
	if !tmp {
		// The caller's directory was empty: leave it so for the next try.
		entries, _ := os.ReadDir(data)
		for _, e := range entries {
			_ = os.RemoveAll(filepath.Join(data, e.Name()))
		}
	}
	return nil, err
}

// tail is the end of what run printed.
func (s *system) tail(n int) string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// LogTail returns the end of a process's log, for a failure report.
func (s *system) LogTail(name string, n int) string {
	b, _ := os.ReadFile(filepath.Join(s.Data, "logs", name+".log"))
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Stop asks run to stop (as Ctrl-C does) and waits; after 30s it kills it.
// It removes a temporary data directory.
func (s *system) Stop() {
	s.stop()
	s.cleanup()
}

func (s *system) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	}
}

func (s *system) cleanup() {
	if s.tmpData {
		_ = os.RemoveAll(s.Data)
	}
}

// process is one process of the system as run's control socket lists it.
type process struct {
	Name    string `json:"name"`
	Replica int    `json:"replica"`
	PID     int    `json:"pid"`
	URL     string `json:"url"`
	Running bool   `json:"running"`
}

// Status lists the processes that run supervises.
func (s *system) Status(ctx context.Context) ([]process, error) {
	var st struct {
		Services []process `json:"services"`
	}
	if err := s.control(ctx, http.MethodGet, "/status", &st); err != nil {
		return nil, err
	}
	return st.Services, nil
}

// Running returns the running replicas of name.
func (s *system) Running(ctx context.Context, name string) ([]process, error) {
	all, err := s.Status(ctx)
	if err != nil {
		return nil, err
	}
	var out []process
	for _, p := range all {
		if p.Name == name && p.Running {
			out = append(out, p)
		}
	}
	return out, nil
}

// Has reports whether the system holds a process called name at all.
func (s *system) Has(ctx context.Context, name string) (bool, error) {
	all, err := s.Status(ctx)
	if err != nil {
		return false, err
	}
	for _, p := range all {
		if p.Name == name {
			return true, nil
		}
	}
	return false, nil
}

// Kill sends SIGKILL to every running replica of name and waits until
// they are gone. It returns their pids.
func (s *system) Kill(ctx context.Context, name string) ([]int, error) {
	procs, err := s.Running(ctx, name)
	if err != nil {
		return nil, err
	}
	if len(procs) == 0 {
		return nil, fmt.Errorf("%s is not running", name)
	}
	var pids []int
	for _, p := range procs {
		if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil {
			return nil, fmt.Errorf("killing %s (pid %d): %w", name, p.PID, err)
		}
		pids = append(pids, p.PID)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Wait until run has seen them go, so a start finds the slot free.
	for time.Now().Before(deadline) {
		left, err := s.Running(ctx, name)
		if err != nil {
			return nil, err
		}
		if len(left) == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return pids, nil
}

// StartProcess starts a stopped process again and waits until it is ready.
func (s *system) StartProcess(ctx context.Context, name string) (process, error) {
	var p process
	err := s.control(ctx, http.MethodPost, "/services/"+name+"/start", &p)
	return p, err
}

// Scale runs n replicas of name, returning once they are ready.
func (s *system) Scale(ctx context.Context, name string, n int) ([]process, error) {
	var ps []process
	err := s.control(ctx, http.MethodPost, fmt.Sprintf("/services/%s/scale?n=%d", name, n), &ps)
	return ps, err
}

// Restart replaces every replica of name, one at a time.
func (s *system) Restart(ctx context.Context, name string) ([]process, error) {
	var ps []process
	err := s.control(ctx, http.MethodPost, "/services/"+name+"/restart", &ps)
	return ps, err
}

// control calls run's control socket, <data>/control.sock.
func (s *system) control(ctx context.Context, method, path string, out any) error {
	hc := &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", filepath.Join(s.Data, "control.sock"))
		}}}
	req, err := http.NewRequestWithContext(ctx, method, "http://run"+path, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("run's control socket: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("run's control socket: %s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}

// freeBlock finds a base port whose block of n ports, and the same block
// at +100 ... +400 where run puts replicas, are all free. It looks below
// Linux's ephemeral range (32768 and up), where the ports that outgoing
// connections borrow would otherwise collide with a replica's.
func freeBlock(n int) (int, error) {
	const low, high, replicaBlocks = 20000, 32000 - 500, 5
	for range 200 {
		base := low + mathrand.IntN(high-low)
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
	return 0, errors.New("found no block of free ports for the system")
}
