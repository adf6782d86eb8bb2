package localrun

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// supervisor owns the processes of `microshop run`: the NATS server and
// every service's replicas, each started from this same binary.
type supervisor struct {
	exe  string
	data string
	log  *slog.Logger
	// readyTimeout bounds the wait for a new replica during scale and restart.
	readyTimeout time.Duration
	// http reaches the services as run: with the supervisor's
	// certificate under mutual TLS.
	http *clients

	mu    sync.Mutex
	procs map[string]proc // how to start each, by name
	order []string        // start order
	state state
}

// proc says how to start a process's replicas: the arguments after the
// binary and the port of replica slot k, extra environment, and how to
// tell it is ready.
type proc struct {
	args     func(slot int) []string
	port     func(slot int) int
	env      []string
	ready    readiness
	scalable bool
	// tls: the process serves mutual TLS (https:// URL).
	tls bool
}

// readiness is how waitReady decides a process can take work.
type readiness int

const (
	readyz  readiness = iota // GET /readyz answers 200
	dialing                  // the port accepts connections (NATS)
)

// add registers a process to start.
func (s *supervisor) add(name string, p proc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.procs == nil {
		s.procs = map[string]proc{}
	}
	s.procs[name] = p
	s.order = append(s.order, name)
}

// running returns the running replicas of name, by slot.
func (s *supervisor) runningLocked(name string) map[int]*child {
	out := map[int]*child{}
	for _, c := range s.state.children {
		if c.Name == name && c.running() {
			out[c.Replica] = c
		}
	}
	return out
}

// start starts replica slot 0 of name and waits until it is ready. It is
// what `microshop start` does after a process was killed.
func (s *supervisor) start(ctx context.Context, name string) (Process, error) {
	c, err := s.startFirst(name)
	if err != nil {
		return Process{}, err
	}
	if err := s.waitReady(ctx, []*child{c}, s.readyTimeout); err != nil {
		return Process{}, err
	}
	return c.process(), nil
}

// startFirst starts replica slot 0 of name, or, when it runs already,
// reports so.
func (s *supervisor) startFirst(name string) (*child, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.procs[name]; !ok {
		return nil, s.unknownLocked(name)
	}
	if c, ok := s.runningLocked(name)[0]; ok {
		return nil, fmt.Errorf("%s is already running as pid %d", name, c.PID)
	}
	return s.startSlotLocked(name, 0)
}

func (s *supervisor) unknownLocked(name string) error {
	return fmt.Errorf("unknown process %q; the processes are %s", name, strings.Join(s.order, ", "))
}

// startSlotLocked starts replica slot of name.
func (s *supervisor) startSlotLocked(name string, slot int) (*child, error) {
	p := s.procs[name]
	c, err := startChild(s.exe, name, slot, s.data, p)
	if err != nil {
		return nil, err
	}
	go func() {
		<-c.exited
		s.mu.Lock()
		stopping := c.stopping
		_ = s.writeStateLocked()
		s.mu.Unlock()
		if !stopping {
			s.log.Warn("a process exited; the others keep running", "process", c.Name, "replica", c.Replica, "pid", c.PID, "err", errString(c.err), "log", c.Log)
		}
	}()
	replaced := false
	for i, old := range s.state.children {
		if old.Name == name && old.Replica == slot {
			s.state.children[i] = c
			replaced = true
		}
	}
	if !replaced {
		s.state.children = append(s.state.children, c)
	}
	return c, s.writeStateLocked()
}

// freeSlotLocked returns a replica slot of name with nothing running.
func (s *supervisor) freeSlotLocked(name string) (int, bool) {
	running := s.runningLocked(name)
	for k := range MaxReplicas {
		if _, ok := running[k]; !ok {
			return k, true
		}
	}
	return 0, false
}

// scale starts or stops replicas of name until n run. New replicas must be
// ready before it returns; replicas leave gracefully (drain).
func (s *supervisor) scale(ctx context.Context, name string, n int) ([]Process, error) {
	s.mu.Lock()
	p, ok := s.procs[name]
	switch {
	case !ok:
		s.mu.Unlock()
		return nil, s.unknownLocked(name)
	case !p.scalable:
		s.mu.Unlock()
		return nil, fmt.Errorf("%s cannot be scaled; the scalable services are %s", name, strings.Join(s.scalableLocked(), ", "))
	case n < 1 || n > MaxReplicas:
		s.mu.Unlock()
		return nil, fmt.Errorf("replicas of %s: want 1 to %d, not %d", name, MaxReplicas, n)
	}
	running := s.runningLocked(name)
	var started, stopping []*child
	for len(running) < n { // running counts the ones just started too
		slot, _ := s.freeSlotLocked(name)
		c, err := s.startSlotLocked(name, slot)
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		started = append(started, c)
		running = s.runningLocked(name)
	}
	if len(running) > n {
		var slots []int
		for k := range running {
			slots = append(slots, k)
		}
		sort.Sort(sort.Reverse(sort.IntSlice(slots)))
		for _, k := range slots[:len(running)-n] {
			running[k].stopping = true
			stopping = append(stopping, running[k])
		}
	}
	s.mu.Unlock()
	if err := s.waitReady(ctx, started, s.readyTimeout); err != nil {
		return nil, err
	}
	for _, c := range stopping {
		stop(c, io.Discard)
	}
	return s.replicas(name), nil
}

func (s *supervisor) scalableLocked() []string {
	var out []string
	for _, name := range s.order {
		if s.procs[name].scalable {
			out = append(out, name)
		}
	}
	return out
}

// restart replaces every replica of name, one at a time: it starts the
// new process on a free slot, waits until it is ready, then drains and
// stops the old one. Clients and the gateway find the new replica by
// probing and stop sending to the old one when its readiness turns false,
// so no request fails.
func (s *supervisor) restart(ctx context.Context, name string) ([]Process, error) {
	s.mu.Lock()
	if _, ok := s.procs[name]; !ok {
		s.mu.Unlock()
		return nil, s.unknownLocked(name)
	}
	old := s.runningLocked(name)
	s.mu.Unlock()
	if len(old) == 0 {
		return nil, fmt.Errorf("%s is not running; use start", name)
	}
	var slots []int
	for k := range old {
		slots = append(slots, k)
	}
	sort.Ints(slots)
	for _, k := range slots {
		s.mu.Lock()
		free, ok := s.freeSlotLocked(name)
		if !ok || !s.procs[name].scalable {
			// No room for a second process (or a service whose port must
			// not move, like the gateway): replace in place.
			s.mu.Unlock()
			old[k].stopping = true
			stop(old[k], io.Discard)
			s.mu.Lock()
			free = k
		}
		c, err := s.startSlotLocked(name, free)
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if err := s.waitReady(ctx, []*child{c}, s.readyTimeout); err != nil {
			return nil, err
		}
		if old[k].running() {
			s.mu.Lock()
			old[k].stopping = true
			s.mu.Unlock()
			stop(old[k], io.Discard)
		}
	}
	return s.replicas(name), nil
}

// replicas returns the running replicas of name.
func (s *supervisor) replicas(name string) []Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Process
	for _, c := range s.state.children {
		if c.Name == name && c.running() {
			out = append(out, c.process())
		}
	}
	return out
}

// children returns the current processes in start order.
func (s *supervisor) children() []*child {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*child(nil), s.state.children...)
}

// snapshot returns a copy of the state with liveness filled in.
func (s *supervisor) snapshot() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshotLocked()
}

func (s *supervisor) snapshotLocked() State {
	st := s.state.State
	st.Services = nil
	for _, c := range s.state.children {
		st.Services = append(st.Services, c.process())
	}
	return st
}

// writeStateLocked writes <data>/run.json so tests and tools can find the
// processes of a running system.
func (s *supervisor) writeStateLocked() error {
	b, err := json.MarshalIndent(s.snapshotLocked(), "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.data, "run.json.tmp")
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return fmt.Errorf("writing run state: %w", err)
	}
	return os.Rename(tmp, filepath.Join(s.data, "run.json"))
}

// stopAll stops everything: the gateway first, so no new requests come
// in, then the services together, then NATS.
func (s *supervisor) stopAll(stderr io.Writer) {
	children := s.children()
	s.mu.Lock()
	for _, c := range children {
		c.stopping = true
	}
	s.mu.Unlock()
	var gateway, services, broker []*child
	for _, c := range children {
		switch c.Name {
		case "gateway":
			gateway = append(gateway, c)
		case "nats":
			broker = append(broker, c)
		default:
			services = append(services, c)
		}
	}
	for _, group := range [][]*child{gateway, services, broker} {
		var wg sync.WaitGroup
		for _, c := range group {
			wg.Go(func() { stop(c, stderr) })
		}
		wg.Wait()
	}
}

// stop asks c to stop (it drains) and kills it after 15s.
func stop(c *child, stderr io.Writer) {
	if !c.running() {
		return
	}
	_ = terminate(c.cmd.Process)
	select {
	case <-c.exited:
	case <-time.After(15 * time.Second):
		fmt.Fprintf(stderr, "%s did not stop within 15s; killing it\n", c.Name)
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// Process is one process of a run (or, in a monolith, one service in
// run's process), as run.json and the control API's status list it.
type Process struct {
	Name    string `json:"name"`
	Replica int    `json:"replica"`
	Port    int    `json:"port"`
	PID     int    `json:"pid"`
	URL     string `json:"url"`
	Log     string `json:"log"`
	Running bool   `json:"running"`
}

// State is what run.json and the control API's status hold.
type State struct {
	Gateway   string    `json:"gateway"`
	NATS      string    `json:"nats"`
	Mailbox   string    `json:"mailbox"`
	SMTP      string    `json:"smtp"`
	Telemetry string    `json:"telemetry"`
	Services  []Process `json:"services"`
}

// Running returns the running replicas of name.
func (st State) Running(name string) []Process {
	var out []Process
	for _, p := range st.Services {
		if p.Name == name && p.Running {
			out = append(out, p)
		}
	}
	return out
}

// ReadState reads <data>/run.json, which a run keeps up to date.
func ReadState(data string) (State, error) {
	var st State
	b, err := os.ReadFile(filepath.Join(data, "run.json"))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("reading run.json: %w", err)
	}
	return st, nil
}

// state is the supervisor's own: the addresses, and the children behind
// the processes.
type state struct {
	State
	children []*child
}

// child is one process that run supervises.
type child struct {
	Process

	cmd   *exec.Cmd
	ready readiness
	// exited is closed when the process has ended; err says how.
	exited   chan struct{}
	err      error
	stopping bool
}

func (c *child) running() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// process is c as the outside sees it, liveness filled in.
func (c *child) process() Process {
	p := c.Process
	p.Running = c.running()
	return p
}

func startChild(exe, name string, slot int, data string, p proc) (*child, error) {
	logName := name
	if slot > 0 {
		logName = fmt.Sprintf("%s-%d", name, slot+1)
	}
	logPath := filepath.Join(data, "logs", logName+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", logPath, err)
	}
	cmd := exec.Command(exe, p.args(slot)...)
	cmd.Env = p.env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	scheme := "http"
	switch {
	case p.ready == dialing:
		scheme = "nats"
	case p.tls:
		scheme = "https"
	}
	port := p.port(slot)
	c := &child{Process: Process{Name: name, Replica: slot, Port: port, PID: cmd.Process.Pid, URL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, port),
		Log: logPath}, cmd: cmd, ready: p.ready, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		logFile.Close()
		close(c.exited)
	}()
	return c, nil
}
