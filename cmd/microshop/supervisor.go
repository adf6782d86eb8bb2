package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/microshop/microshop/internal/platform/service"
)

// supervisor owns the service processes of `microshop run`.
type supervisor struct {
	exe      string
	data     string
	natsURL  string
	logLevel string
	env      []string
	seeds    map[string]string
	log      *slog.Logger
	specs    map[string]service.Spec
	ports    map[string]int

	mu    sync.Mutex
	state runState
}

// start starts the named service's process, unless one is running.
func (s *supervisor) start(name string) (*child, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	spec, ok := s.specs[name]
	if !ok {
		return nil, fmt.Errorf("unknown service %q", name)
	}
	for _, c := range s.state.Services {
		if c.Name == name && c.running() {
			return nil, fmt.Errorf("%s is already running as pid %d", name, c.PID)
		}
	}
	c, err := startChild(s.exe, spec, s.data, s.ports[name], s.natsURL, s.logLevel,
		append(s.env[:len(s.env):len(s.env)], "MICROSHOP_SERVICE_KEY="+s.seeds[name]))
	if err != nil {
		return nil, err
	}
	go func() {
		<-c.exited
		s.mu.Lock()
		stopping := c.stopping
		s.mu.Unlock()
		if !stopping {
			s.log.Warn("a service process exited; the others keep running", "service", c.Name, "pid", c.PID, "err", errString(c.err), "log", c.Log)
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

	cmd *exec.Cmd
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
	Gateway  string   `json:"gateway"`
	NATS     string   `json:"nats"`
	Services []*child `json:"services"`
}

func startChild(exe string, spec service.Spec, data string, port int, natsURL, logLevel string, env []string) (*child, error) {
	logPath := filepath.Join(data, "logs", spec.Name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", logPath, err)
	}
	cmd := exec.Command(exe, "serve", spec.Name,
		"--addr", "127.0.0.1:"+strconv.Itoa(port),
		"--data", data,
		"--nats", natsURL,
		"--log-level", logLevel,
	)
	cmd.Env = env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// If run itself is killed, the kernel stops the services too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", spec.Name, err)
	}
	c := &child{Name: spec.Name, Port: port, PID: cmd.Process.Pid, URL: fmt.Sprintf("http://127.0.0.1:%d", port),
		Log: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		logFile.Close()
		close(c.exited)
	}()
	return c, nil
}
