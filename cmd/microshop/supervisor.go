package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// supervisor owns the processes of `microshop run`: the NATS server and
// every service, each started from this same binary.
type supervisor struct {
	exe  string
	data string
	log  *slog.Logger

	mu    sync.Mutex
	procs map[string]proc // how to start each, by name
	order []string        // start order
	state runState
}

// proc says how to start one process: its arguments after the binary,
// extra environment, its port, and how to tell it is ready.
type proc struct {
	args  []string
	env   []string
	port  int
	ready readiness
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

// start starts the named process, unless one is running.
func (s *supervisor) start(name string) (*child, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.procs[name]
	if !ok {
		return nil, fmt.Errorf("unknown process %q; the processes are %s", name, strings.Join(s.order, ", "))
	}
	for _, c := range s.state.Services {
		if c.Name == name && c.running() {
			return nil, fmt.Errorf("%s is already running as pid %d", name, c.PID)
		}
	}
	c, err := startChild(s.exe, name, s.data, p)
	if err != nil {
		return nil, err
	}
	go func() {
		<-c.exited
		s.mu.Lock()
		stopping := c.stopping
		s.mu.Unlock()
		if !stopping {
			s.log.Warn("a process exited; the others keep running", "process", c.Name, "pid", c.PID, "err", errString(c.err), "log", c.Log)
		}
	}()
	replaced := false
	for i, old := range s.state.Services {
		if old.Name == name {
			s.state.Services[i] = c
			replaced = true
		}
	}
	if !replaced {
		s.state.Services = append(s.state.Services, c)
	}
	return c, s.writeStateLocked()
}

// children returns the current processes in start order.
func (s *supervisor) children() []*child {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*child(nil), s.state.Services...)
}

// snapshot returns a copy of the state with liveness filled in.
func (s *supervisor) snapshot() runState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state
	st.Services = nil
	for _, c := range s.state.Services {
		cc := *c
		cc.Running = c.running()
		st.Services = append(st.Services, &cc)
	}
	return st
}

// writeStateLocked writes <data>/run.json so tests and tools can find the
// processes of a running system.
func (s *supervisor) writeStateLocked() error {
	b, err := json.MarshalIndent(s.state, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.data, "run.json.tmp")
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return fmt.Errorf("writing run state: %w", err)
	}
	return os.Rename(tmp, filepath.Join(s.data, "run.json"))
}

// stopAll stops the services in reverse start order: the gateway first,
// so no new requests come in, and users last.
func (s *supervisor) stopAll(stderr io.Writer) {
	children := s.children()
	s.mu.Lock()
	for _, c := range children {
		c.stopping = true
	}
	s.mu.Unlock()
	for i := len(children) - 1; i >= 0; i-- {
		c := children[i]
		if !c.running() {
			continue
		}
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(15 * time.Second):
			fmt.Fprintf(stderr, "%s did not stop within 15s; killing it\n", c.Name)
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	}
}

// child is one service process that run supervises.
type child struct {
	Name    string `json:"name"`
	Port    int    `json:"port"`
	PID     int    `json:"pid"`
	URL     string `json:"url"`
	Log     string `json:"log"`
	Running bool   `json:"running"`

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

// runState is what run.json and the control socket's /status hold.
type runState struct {
	Gateway   string   `json:"gateway"`
	NATS      string   `json:"nats"`
	Mailbox   string   `json:"mailbox"`
	SMTP      string   `json:"smtp"`
	Telemetry string   `json:"telemetry"`
	Services  []*child `json:"services"`
}

func startChild(exe, name, data string, p proc) (*child, error) {
	logPath := filepath.Join(data, "logs", name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", logPath, err)
	}
	cmd := exec.Command(exe, p.args...)
	cmd.Env = p.env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// If run itself is killed, the kernel stops its children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	scheme := "http"
	if p.ready == dialing {
		scheme = "nats"
	}
	c := &child{Name: name, Port: p.port, PID: cmd.Process.Pid, URL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, p.port),
		Log: logPath, cmd: cmd, ready: p.ready, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		logFile.Close()
		close(c.exited)
	}()
	return c, nil
}
