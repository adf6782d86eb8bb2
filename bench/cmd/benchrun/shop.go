package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/microshop/microshop/internal/loadgen"
	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/internal/shopclient"
)

// system is one `microshop run` started for the benchmark with
// localrun's launcher, in a data directory of its own, on ports nobody
// else uses.
type system struct {
	mode     string
	dir      string
	gateway  string
	admin    string
	password string
	run      *localrun.System
	procs    []process
	urls     map[string]string // each service's base URL (replica 0)
	pg       *pgServer         // the postgres mode's server, else nil
}

// process is one OS process of the system and the names it holds.
type process struct {
	PID   int
	Names []string
}

func (p process) label() string { return strings.Join(p.Names, "+") }

// monolithSupported asks the binary whether `run` knows --mode monolith.
func monolithSupported(bin string) bool {
	var buf bytes.Buffer
	cmd := exec.Command(bin, "run", "--help")
	cmd.Stdout, cmd.Stderr = &buf, &buf
	_ = cmd.Run()
	return strings.Contains(buf.String(), "-mode") && strings.Contains(buf.String(), "monolith")
}

// startSystem starts `bin run --mode mode` with rate limits off and an
// admin, and waits (bounded) until every process is ready.
func startSystem(ctx context.Context, bin, mode, workDir string, readyWithin time.Duration, profile bool, pg *pgServer) (*system, error) {
	dir, err := os.MkdirTemp(workDir, "run-"+mode+"-")
	if err != nil {
		return nil, err
	}
	var pw [12]byte
	_, _ = rand.Read(pw[:])
	s := &system{mode: mode, dir: dir, admin: "bench-admin@example.com", password: hex.EncodeToString(pw[:])}
	env := append(loadgen.Unlimited(), "MICROSHOP_ADMIN_EMAIL="+s.admin, "MICROSHOP_ADMIN_PASSWORD="+s.password)
	if profile {
		env = append(env, "MICROSHOP_PPROF=true")
	}
	var args []string
	switch {
	case pg != nil:
		args = []string{"--db", pg.url, "--db-prefix", pg.prefix}
	case mode != "microservices":
		args = []string{"--mode", mode}
	}
	s.run, err = localrun.Launch(ctx, localrun.LaunchOptions{Binary: bin, Data: dir, Env: env, Args: args, ReadyTimeout: readyWithin})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("microshop run --mode %s: %w", mode, err)
	}
	s.gateway = s.run.Gateway
	if err := s.readProcesses(); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// readProcesses reads run.json: every PID and what runs in it, plus the
// run process itself (supervisor, mailbox, trace collector).
func (s *system) readProcesses() error {
	st, err := localrun.ReadState(s.dir)
	if err != nil {
		return fmt.Errorf("reading run.json: %w", err)
	}
	runPID := s.run.Cmd.Process.Pid
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

// stop stops run, as Ctrl-C does (killing it if it does not stop within
// a bound), then removes the data directory.
func (s *system) stop() {
	s.run.Close()
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
	names := slices.Sorted(maps.Keys(s.urls))
	if s.mode == "monolith" && len(names) > 0 {
		names = []string{"gateway"}
	}
	var wg sync.WaitGroup
	for _, n := range names {
		url := s.urls[n] + fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs)
		path := filepath.Join(dir, s.mode+"-"+n+".pprof")
		wg.Go(func() {
			// As run reaches the service: under mutual TLS, with its
			// certificate.
			c := *s.run.ServiceClient(n)
			c.Timeout = time.Duration(secs+30) * time.Second
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
