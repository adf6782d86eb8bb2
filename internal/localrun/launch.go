package localrun

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// LaunchOptions say how to start a system with Launch.
type LaunchOptions struct {
	// Binary is the microshop binary whose `run` command starts the
	// system (and, through it, every process of the system).
	Binary string
	// Data is the data directory, new or empty. When empty, Launch makes
	// a temporary one, which Close removes.
	Data string
	// Env is added to this process's environment for run and its
	// children, e.g. "MICROSHOP_ADMIN_EMAIL=admin@example.com"; a later
	// entry wins.
	Env []string
	// Args are more flags of run, e.g. "--mode", "monolith".
	Args []string
	// ReadyTimeout bounds the wait for every service to be ready (60s
	// when zero).
	ReadyTimeout time.Duration
	// Ports, when set (a gateway port), are where the system listens,
	// instead of free ports chosen by Launch; a port that is taken then
	// fails the launch rather than moving it. Relaunch sets them.
	Ports Ports
}

// System is a `microshop run` that Launch started as a child process, on
// free ports. Its Client acts on it through the control API.
type System struct {
	*Client
	Cmd     *exec.Cmd
	Gateway string
	Data    string
	Ports   Ports
	// ReadyIn is how long run took from its start until every service
	// was ready.
	ReadyIn time.Duration

	opts        LaunchOptions
	tmpData     bool
	clientsOnce sync.Once
	clients     *clients
	out         *lockedBuffer
	exited      chan struct{}
	waitErr     error // set before exited is closed
}

// Launch runs `microshop run` and returns once it prints that every
// service is ready (its "Open <gateway>" line). The ports are free when
// chosen, but another program may take one before run does: then Launch
// tries again on other ports, up to three times. If run does not get
// ready, it is stopped and the error carries what it printed.
func Launch(ctx context.Context, o LaunchOptions) (*System, error) {
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 60 * time.Second
	}
	for try := 1; ; try++ {
		s, err := launchOnce(ctx, o, false)
		if err == nil || try == 3 || o.Ports.Gateway != 0 || !errors.Is(err, errPortTaken) {
			return s, err
		}
	}
}

// Relaunch stops run gracefully, as a deploy of a new build of the whole
// system does, and starts it again from the same binary on the same data
// directory and ports, with the same environment and flags. It returns
// the new system once every service is ready again; the old one is over
// (its Close does nothing more), and the new one's Close removes a
// temporary data directory. What clients see meanwhile is refused
// connections: the demo of monolith against microservices measures it.
func (s *System) Relaunch(ctx context.Context) (*System, error) {
	if err := s.stop(30 * time.Second); err != nil {
		return nil, err
	}
	o := s.opts
	o.Data, o.Ports = s.Data, s.Ports
	n, err := launchOnce(ctx, o, true)
	if err != nil {
		return nil, err
	}
	n.tmpData, s.tmpData = s.tmpData, false
	return n, nil
}

// errPortTaken: a process of the system found its port taken.
var errPortTaken = errors.New("a port of the system was taken")

// launchOnce starts run once. again says the data directory holds a
// system already (Relaunch): it is then never emptied on failure.
func launchOnce(ctx context.Context, o LaunchOptions, again bool) (*System, error) {
	ports := o.Ports
	if ports.Gateway == 0 {
		var err error
		if ports, err = FreePorts(); err != nil {
			return nil, err
		}
	}
	var err error
	s := &System{Gateway: fmt.Sprintf("http://127.0.0.1:%d", ports.Gateway), Data: o.Data, Ports: ports, opts: o,
		out: newLockedBuffer(), exited: make(chan struct{})}
	if s.Data == "" {
		if s.Data, err = os.MkdirTemp("", "microshop-run-"); err != nil {
			return nil, err
		}
		s.tmpData = true
	} else if err := os.MkdirAll(s.Data, 0o750); err != nil {
		return nil, err
	}
	s.Client = NewClient(s.Data)
	args := append([]string{"run", "--data", s.Data, "--port", fmt.Sprint(ports.Gateway), "--nats-port", fmt.Sprint(ports.NATS)}, o.Args...)
	cmd := exec.Command(o.Binary, args...)
	cmd.Env = append(os.Environ(), o.Env...)
	// If this process dies, run stops too, and with it every service.
	DieWithParent(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		s.cleanup()
		return nil, err
	}
	cmd.Stderr = s.out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		s.cleanup()
		return nil, fmt.Errorf("starting %s run: %w", o.Binary, err)
	}
	s.Cmd = cmd
	ready := make(chan struct{})
	var lines sync.WaitGroup
	lines.Go(func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			fmt.Fprintln(s.out, sc.Text())
			if !signalled && strings.HasPrefix(sc.Text(), "Open ") {
				signalled = true
				close(ready)
			}
		}
		_, _ = io.Copy(s.out, stdout)
	})
	go func() {
		lines.Wait()
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	select {
	case <-ready:
		s.ReadyIn = time.Since(start)
		return s, nil
	case <-s.exited:
		err = fmt.Errorf("microshop run exited before it was ready (%v):\n%s", s.waitErr, s.Output())
	case <-time.After(o.ReadyTimeout):
		err = fmt.Errorf("microshop run was not ready within %s:\n%s", o.ReadyTimeout, s.Output())
	case <-ctx.Done():
		err = ctx.Err()
	}
	_ = s.stop(30 * time.Second)
	if s.portTaken() {
		err = fmt.Errorf("%w: %w", errPortTaken, err)
	}
	s.cleanup()
	if !s.tmpData && !again {
		// The caller's directory was empty: leave it so for the next try.
		entries, _ := os.ReadDir(s.Data)
		for _, e := range entries {
			_ = os.RemoveAll(filepath.Join(s.Data, e.Name()))
		}
	}
	return nil, err
}

// portTaken reports whether run or a process of the system failed for
// want of its port.
func (s *System) portTaken() bool {
	const taken = "address already in use"
	if strings.Contains(s.Output(), taken) {
		return true
	}
	logs, _ := filepath.Glob(filepath.Join(s.Data, "logs", "*.log"))
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil && strings.Contains(string(b), taken) {
			return true
		}
	}
	return false
}

// Output is what `microshop run` printed so far, stdout and stderr.
func (s *System) Output() string { return s.out.String() }

// Processes lists the processes of the system from run.json.
func (s *System) Processes() ([]Process, error) {
	st, err := ReadState(s.Data)
	return st.Services, err
}

// PID is the process id of the running process name (its first running
// replica).
func (s *System) PID(name string) (int, error) {
	st, err := ReadState(s.Data)
	if err != nil {
		return 0, err
	}
	if running := st.Running(name); len(running) > 0 {
		return running[0].PID, nil
	}
	return 0, fmt.Errorf("%s is not running according to run.json", name)
}

// Kill ends a process of the system at once (SIGKILL on Unix; never run
// itself) and waits until it is gone. It returns the pid it killed.
func (s *System) Kill(name string) (int, error) {
	pid, err := s.PID(name)
	if err != nil {
		return 0, err
	}
	if pid == s.Cmd.Process.Pid {
		return 0, fmt.Errorf("refusing to kill pid %d for %s: it is run itself, not one of its children", pid, name)
	}
	if err := Kill(pid, 10*time.Second); err != nil {
		return pid, fmt.Errorf("killing %s: %w", name, err)
	}
	return pid, nil
}

// KillAll ends every running replica of name at once, and returns when
// run has seen them go (so a Start finds the slot free). It returns their
// pids.
func (s *System) KillAll(ctx context.Context, name string) ([]int, error) {
	st, err := s.Status(ctx)
	if err != nil {
		return nil, err
	}
	running := st.Running(name)
	if len(running) == 0 {
		return nil, fmt.Errorf("%s is not running", name)
	}
	var pids []int
	for _, p := range running {
		if p.PID == s.Cmd.Process.Pid {
			return nil, fmt.Errorf("refusing to kill pid %d for %s: it is run itself, not one of its children", p.PID, name)
		}
		if err := Kill(p.PID, 10*time.Second); err != nil {
			return nil, fmt.Errorf("killing %s: %w", name, err)
		}
		pids = append(pids, p.PID)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		st, err := s.Status(ctx)
		if err != nil {
			return nil, err
		}
		if len(st.Running(name)) == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return pids, nil
}

// Stop asks run to stop, as Ctrl-C does, and waits up to timeout for it
// to exit; run's exit error, if any, is returned.
func (s *System) Stop(timeout time.Duration) error {
	if err := s.stop(timeout); err != nil {
		return err
	}
	if s.waitErr != nil {
		return fmt.Errorf("microshop run exited with %v", s.waitErr)
	}
	return nil
}

func (s *System) stop(timeout time.Duration) error {
	select {
	case <-s.exited:
		return nil
	default:
	}
	_ = terminate(s.Cmd.Process)
	select {
	case <-s.exited:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("microshop run did not stop within %s", timeout)
	}
}

// Close stops run (killing it if it has not stopped after 30s) and
// removes a temporary data directory. Use Stop to learn how run ended.
func (s *System) Close() {
	if s.stop(30*time.Second) != nil {
		_ = s.Cmd.Process.Kill()
		<-s.exited
	}
	s.cleanup()
}

func (s *System) cleanup() {
	if s.tmpData {
		_ = os.RemoveAll(s.Data)
	}
}

// Exited is closed once run has exited.
func (s *System) Exited() <-chan struct{} { return s.exited }

// LogTail is the last n bytes of a process's log under <data>/logs.
func (s *System) LogTail(process string, n int) string {
	b, _ := os.ReadFile(filepath.Join(s.Data, "logs", process+".log"))
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// lockedBuffer keeps what run prints; the stdout reader and run's
// stderr write to it at once.
type lockedBuffer struct {
	syncWriter
	b strings.Builder
}

func newLockedBuffer() *lockedBuffer {
	l := &lockedBuffer{}
	l.w = &l.b
	return l
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
