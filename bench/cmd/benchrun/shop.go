package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/microshop/microshop/internal/shopclient"
)

// system is one `microshop run` started for the benchmark, in a data
// directory of its own, on ports nobody else uses.
type system struct {
	mode     string
	dir      string
	port     int
	gateway  string
	admin    string
	password string
	cmd      *exec.Cmd
	exited   chan struct{}
	out      *tailBuffer
	procs    []process
	urls     map[string]string // each service's base URL (replica 0)
}

// process is one OS process of the system and the names it holds.
type process struct {
	PID   int
	Names []string
}

func (p process) label() string { return strings.Join(p.Names, "+") }

// runState is the part of run.json the benchmark reads.
type runState struct {
	Gateway  string `json:"gateway"`
	Services []struct {
		Name    string `json:"name"`
		URL     string `json:"url"`
		Replica int    `json:"replica"`
		PID     int    `json:"pid"`
		Running bool   `json:"running"`
	} `json:"services"`
}

// monolithSupported asks the binary whether `run` knows --mode monolith.
func monolithSupported(bin string) bool {
	var buf bytes.Buffer
	cmd := exec.Command(bin, "run", "--help")
	cmd.Stdout, cmd.Stderr = &buf, &buf
	_ = cmd.Run()
	return strings.Contains(buf.String(), "-mode") && strings.Contains(buf.String(), "monolith")
}

// freeBase finds a gateway port whose neighbours (+1..+9, and the
// replica ports +100k that run's services probe) and a NATS port are all
// free, so the system meets no other program's processes.
func freeBase() (port, natsPort int, err error) {
	err = errors.New("none tried")
	var b [2]byte
	_, _ = rand.Read(b[:])
	start := 20000 + (int(b[0])<<8|int(b[1]))%20000
	for try := 0; try < 200; try++ {
		p := start + try*37
		if p+500 > 60000 {
			p -= 30000
		}
		ports := []int{}
		for i := 0; i <= 9; i++ {
			ports = append(ports, p+i)
		}
		for k := 1; k <= 4; k++ {
			for i := 1; i <= 6; i++ {
				ports = append(ports, p+100*k+i)
			}
		}
		nats := p + 11
		ports = append(ports, nats)
		if err = allFree(ports); err == nil {
			return p, nats, nil
		}
	}
	return 0, 0, fmt.Errorf("no free range of ports on the loopback (last: %w)", err)
}

func allFree(ports []int) error {
	for _, p := range ports {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return err
		}
		ln.Close()
	}
	return nil
}

// startSystem starts `bin run --mode mode` with rate limits off and an
// admin, and waits (bounded) until every process is ready.
func startSystem(ctx context.Context, bin, mode, workDir string, readyWithin time.Duration, profile bool) (*system, error) {
	dir, err := os.MkdirTemp(workDir, "run-"+mode+"-")
	if err != nil {
		return nil, err
	}
	port, natsPort, err := freeBase()
	if err != nil {
		return nil, err
	}
	var pw [12]byte
	_, _ = rand.Read(pw[:])
	s := &system{mode: mode, dir: dir, port: port, gateway: fmt.Sprintf("http://127.0.0.1:%d", port),
		admin: "bench-admin@example.com", password: hex.EncodeToString(pw[:]), exited: make(chan struct{}),
		out: &tailBuffer{max: 64 << 10}}
	args := []string{"run", "--data", dir, "--port", fmt.Sprint(port), "--nats-port", fmt.Sprint(natsPort)}
	if mode != "microservices" {
		args = append(args, "--mode", mode)
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = append(os.Environ(),
		"MICROSHOP_RATE_LIMIT=0", "MICROSHOP_LOGIN_RATE_IP=0", "MICROSHOP_REGISTER_RATE_IP=0", "MICROSHOP_LOGIN_RATE_ACCOUNT=0",
		"MICROSHOP_ADMIN_EMAIL="+s.admin, "MICROSHOP_ADMIN_PASSWORD="+s.password)
	if profile {
		s.cmd.Env = append(s.cmd.Env, "MICROSHOP_PPROF=true")
	}
	// Its children die with it (run sets Pdeathsig); benchrun's own death
	// takes run along too.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s.cmd.Stderr = s.out
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s run: %w", bin, err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			s.out.Write([]byte(line + "\n"))
			if !signalled && strings.Contains(line, "Ctrl-C") {
				signalled = true
				close(ready)
			}
		}
	}()
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	select {
	case <-ready:
	case <-s.exited:
		return nil, fmt.Errorf("microshop run --mode %s exited while starting:\n%s", mode, s.out.String())
	case <-time.After(readyWithin):
		s.stop()
		return nil, fmt.Errorf("microshop run --mode %s was not ready within %s:\n%s", mode, readyWithin, s.out.String())
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
	if err := s.readProcesses(); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// readProcesses reads run.json: every PID and what runs in it, plus the
// run process itself (supervisor, mailbox, trace collector).
func (s *system) readProcesses() error {
	b, err := os.ReadFile(filepath.Join(s.dir, "run.json"))
	if err != nil {
		return fmt.Errorf("reading run.json: %w", err)
	}
	var st runState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("reading run.json: %w", err)
	}
	runPID := s.cmd.Process.Pid
	byPID := map[int][]string{runPID: {"run"}}
	s.urls = map[string]string{}
	for _, c := range st.Services {
		if c.PID > 0 && c.Running {
			byPID[c.PID] = append(byPID[c.PID], c.Name)
			if c.Name != "nats" && c.Replica == 0 {
				s.urls[c.Name] = c.URL
			}
		}
	}
	s.procs = nil
	for pid, names := range byPID {
		if pid == runPID && len(names) == 1 {
			names = []string{"run (supervisor, mailbox, traces)"}
		} else if pid == runPID {
			names = append([]string{"run"}, names[1:]...)
		}
		s.procs = append(s.procs, process{PID: pid, Names: names})
	}
	order := map[string]int{"gateway": 0, "users": 1, "inventory": 2, "orders": 3, "payments": 4, "notifications": 5, "reports": 6, "nats": 7}
	rank := func(p process) int {
		if strings.HasPrefix(p.Names[0], "run") {
			return 100
		}
		if r, ok := order[p.Names[0]]; ok {
			return r
		}
		return 50
	}
	sort.Slice(s.procs, func(i, j int) bool { return rank(s.procs[i]) < rank(s.procs[j]) })
	if len(s.procs) < 2 && s.mode == "microservices" {
		return fmt.Errorf("run.json lists no service processes")
	}
	return nil
}

func (s *system) pids() []int {
	out := make([]int, len(s.procs))
	for i, p := range s.procs {
		out[i] = p.PID
	}
	return out
}

// stop interrupts run, as Ctrl-C does, and kills it if it does not stop
// within a bound. Then the data directory goes.
func (s *system) stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.exited:
		case <-time.After(40 * time.Second):
			_ = s.cmd.Process.Kill()
			select {
			case <-s.exited:
			case <-time.After(10 * time.Second):
			}
		}
	}
	_ = os.RemoveAll(s.dir)
}

// adminToken logs the admin in through the gateway.
func (s *system) adminToken(ctx context.Context) (*shopclient.Session, error) {
	shop, err := shopclient.New(s.gateway, shopclient.Options{Timeout: 10 * time.Second, UserAgent: "microshop-bench"})
	if err != nil {
		return nil, err
	}
	return shop.Login(ctx, s.admin, s.password)
}

// lag is the consumers' backlog the gateway reports at /api/telemetry/streams.
type lag struct {
	Pending    uint64 // events no consumer has been given yet
	AckPending int    // given and not yet acknowledged
	Consumers  int
}

func (l lag) total() uint64 { return l.Pending + uint64(max(l.AckPending, 0)) }

func (s *system) consumerLag(ctx context.Context, admin *shopclient.Session) (lag, error) {
	streams, err := admin.Streams(ctx)
	if err != nil {
		return lag{}, err
	}
	var l lag
	for _, st := range streams {
		for _, c := range st.Consumers {
			l.Pending += c.Lag
			l.AckPending += c.AckPending
			l.Consumers++
		}
	}
	return l, nil
}

// drain waits, at most within, until the consumers have caught up. It
// returns the lag it found first, how long the wait took, and whether it
// drained.
func (s *system) drain(ctx context.Context, within time.Duration) (first lag, took time.Duration, drained bool, err error) {
	token, err := s.adminToken(ctx)
	if err != nil {
		return lag{}, 0, false, err
	}
	start := time.Now()
	deadline := start.Add(within)
	for i := 0; ; i++ {
		l, err := s.consumerLag(ctx, token)
		if err != nil {
			return first, time.Since(start), false, err
		}
		if i == 0 {
			first = l
		}
		if l.total() == 0 {
			return first, time.Since(start), true, nil
		}
		if time.Now().After(deadline) {
			return first, time.Since(start), false, nil
		}
		select {
		case <-ctx.Done():
			return first, time.Since(start), false, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// profile fetches a CPU profile of d from every service (run with
// MICROSHOP_PPROF=true) into dir, in the background; the returned func
// waits for them. In monolith mode every service is the same process, so
// one profile is enough.
func (s *system) profile(ctx context.Context, dir string, d time.Duration, say func(string, ...any)) (wait func()) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		say("profiles: %v", err)
		return func() {}
	}
	secs := max(1, int(d.Seconds()))
	names := make([]string, 0, len(s.urls))
	for n := range s.urls {
		names = append(names, n)
	}
	sort.Strings(names)
	if s.mode != "microservices" && len(names) > 0 {
		names = []string{"gateway"}
	}
	var wg sync.WaitGroup
	for _, n := range names {
		url := s.urls[n] + fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs)
		path := filepath.Join(dir, s.mode+"-"+n+".pprof")
		wg.Go(func() {
			c := &http.Client{Timeout: time.Duration(secs+30) * time.Second, Transport: &http.Transport{Proxy: nil}}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := c.Do(req)
			if err != nil {
				say("profile of %s: %v", n, err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				say("profile of %s: %s (is --pprof on?)", n, resp.Status)
				return
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				say("profile of %s: %v", n, err)
			}
		})
	}
	return wg.Wait
}
