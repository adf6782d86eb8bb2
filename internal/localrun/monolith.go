package localrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/microshop/microshop/internal/platform/broker"
	"github.com/microshop/microshop/internal/platform/inproc"
	"github.com/microshop/microshop/internal/platform/logging"
	"github.com/microshop/microshop/internal/platform/service"
	"github.com/microshop/microshop/internal/topology"
)

// `microshop run --mode monolith` runs every service in this one process.
// Each keeps what it has as a process of its own: its flags and
// environment, its database, its routes, its listener on its own port (so
// the gateway, curl and the browser see the same system), its background
// work and its graceful stop. What changes is the way between them: the
// services share an inproc.Registry, so a call from one service to
// another (orders to inventory and payments, the gateway to everyone, the
// JWKS fetch from users) is handed to the callee's handler in memory,
// through the same middleware, credentials, tokens and traces, without a
// socket. Events still go through NATS JetStream, here an embedded server
// in this same process. No service knows which mode it runs in.

// monolith is what Run has prepared for the services.
type monolith struct {
	sup      *supervisor // state only: run.json, the collector's health
	data     string
	ports    Ports
	natsURL  string
	extNATS  bool
	logLevel string
	timeout  time.Duration
	specs    []service.Spec
	env      []string // as a child process would get it
	seeds    map[string]string
	nats     natsAuth
	dbFor    func(string) []string
	admin    adminAccount
}

// runMonolith runs the system in this process until ctx ends, then stops
// it in the order `run` stops processes: the gateway, the services, the
// broker.
func runMonolith(ctx context.Context, m monolith, stdout, stderr io.Writer) error {
	sup, log := m.sup, m.sup.log
	var broker *embeddedNATS
	if !m.extNATS {
		var err error
		if broker, err = startEmbeddedNATS(m.data, m.ports.NATS, m.nats.users); err != nil {
			return err
		}
		defer broker.stop()
		sup.mu.Lock()
		sup.state.children = append(sup.state.children, broker.child)
		sup.mu.Unlock()
	}

	reg := inproc.NewRegistry()
	base := envMap(m.env)

	// The gateway stops first, so no new request comes in, then the rest.
	gatewayCtx, stopGateway := context.WithCancel(context.Background())
	servicesCtx, stopServices := context.WithCancel(context.Background())
	defer stopGateway()
	defer stopServices()
	var gateway, others []*child
	// The token issuer (users) starts first: the others fetch its keys as
	// they start, and so find it in-process rather than over the network.
	specs := append([]service.Spec(nil), m.specs...)
	sort.SliceStable(specs, func(i, j int) bool { return specs[i].IssuesTokens && !specs[j].IssuesTokens })
	for i, spec := range specs {
		// One URL per peer: there are no replicas to probe for here.
		peers := envMap(topology.Env(spec, func(peer string) string {
			callee, _ := topology.Find(peer)
			return fmt.Sprintf("http://127.0.0.1:%d", m.ports.Service(callee))
		}))
		peers["MICROSHOP_SERVICE_KEY"] = m.seeds[spec.Name]
		peers["MICROSHOP_NATS_SEED"] = m.nats.seeds[spec.Name]
		env := maps(base, peers)
		port := m.ports.Service(spec)
		args := append([]string{"--addr", fmt.Sprintf("127.0.0.1:%d", port), "--data", m.data,
			"--nats", m.natsURL, "--log-level", m.logLevel, "--drain-delay", "0s"}, m.dbFor(spec.Name)...)
		runCtx := servicesCtx
		if spec.Name == "gateway" {
			runCtx = gatewayCtx
		}
		c, err := startInProcess(runCtx, spec, args, env, port, m.data, reg, sup)
		if c != nil && spec.Name == "gateway" {
			gateway = append(gateway, c)
		} else if c != nil {
			others = append(others, c)
		}
		if err == nil && spec.IssuesTokens && i+1 < len(specs) && !specs[i+1].IssuesTokens {
			err = waitInProcess(ctx, reg, []*child{c}, m.timeout)
		}
		if err != nil {
			stopGateway()
			stopServices()
			_ = waitExited(append(gateway, others...), 30*time.Second)
			return err
		}
	}
	all := append(append([]*child(nil), others...), gateway...)
	stopAll := func() error {
		stopGateway()
		err := waitExited(gateway, 30*time.Second)
		stopServices()
		err = errors.Join(err, waitExited(others, 30*time.Second))
		if broker != nil {
			broker.stop()
		}
		return err
	}
	if err := waitInProcess(ctx, reg, all, m.timeout); err != nil {
		_ = stopAll()
		return err
	}
	ctl, err := serveControl(ctx, m.data, monolithControl{sup}, log)
	if err != nil {
		_ = stopAll()
		return err
	}
	defer ctl.Close()
	fmt.Fprintf(stdout, "Mode monolith: every service runs in this process (pid %d); calls between them go in-process, events through NATS.\n", os.Getpid())
	printTable(stdout, sup.snapshot(), m.data, m.admin)

	// A service that stops on its own is reported, as in microservices
	// mode; the others keep running.
	for _, c := range all {
		go func() {
			<-c.exited
			sup.mu.Lock()
			stopping := c.stopping
			sup.mu.Unlock()
			if !stopping {
				log.Warn("a service stopped; the others keep running", "service", c.Name, "err", errString(c.err), "log", c.Log)
			}
		}()
	}

	<-ctx.Done()
	fmt.Fprintln(stdout, "\nstopping: draining every service, then the broker")
	sup.mu.Lock()
	for _, c := range sup.state.children {
		c.stopping = true
	}
	sup.mu.Unlock()
	if err := stopAll(); err != nil {
		fmt.Fprintln(stderr, err)
	}
	fmt.Fprintln(stdout, "stopped")
	return nil
}

// startInProcess starts one service on a goroutine of this process, its
// log in <data>/logs/<name>.log as a child process would have it.
func startInProcess(ctx context.Context, spec service.Spec, args []string, env map[string]string, port int, data string,
	reg *inproc.Registry, sup *supervisor) (*child, error) {
	logPath := filepath.Join(data, "logs", spec.Name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", logPath, err)
	}
	c := &child{Process: Process{Name: spec.Name, Port: port, PID: os.Getpid(), URL: fmt.Sprintf("http://127.0.0.1:%d", port), Log: logPath},
		ready: readyz, exited: make(chan struct{})}
	out := &syncWriter{w: logFile}
	go func() {
		err := service.RunWith(ctx, spec, args, func(k string) string { return env[k] }, out, out, service.Options{Registry: reg})
		if err != nil {
			fmt.Fprintf(out, "%s stopped: %v\n", spec.Name, err)
		}
		logFile.Close()
		sup.mu.Lock()
		c.err = err // snapshots copy the child under the lock
		close(c.exited)
		_ = sup.writeStateLocked()
		sup.mu.Unlock()
	}()
	sup.mu.Lock()
	defer sup.mu.Unlock()
	sup.state.children = append(sup.state.children, c)
	return c, sup.writeStateLocked()
}

// waitInProcess polls every service's /readyz in-process, never over a
// socket, until all answer 200.
func waitInProcess(ctx context.Context, reg *inproc.Registry, children []*child, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Transport: reg.Transport(), Timeout: time.Second}
	for _, c := range children {
		u, err := url.Parse(c.URL + "/readyz")
		if err != nil {
			return err
		}
		for {
			select {
			case <-c.exited:
				return fmt.Errorf("%s stopped while starting (%s); see %s", c.Name, errString(c.err), c.Log)
			default:
			}
			// Only once registered: until then a request would go to
			// its port, and leave a connection behind.
			if reg.Serves(u) {
				if resp, err := hc.Get(u.String()); err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						break
					}
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s was not ready within %s; see %s", c.Name, timeout, c.Log)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// waitExited waits until every one of cs has stopped.
func waitExited(cs []*child, within time.Duration) error {
	deadline := time.After(within)
	var late []string
	for _, c := range cs {
		select {
		case <-c.exited:
		case <-deadline:
			late = append(late, c.Name)
		}
	}
	if len(late) > 0 {
		return fmt.Errorf("%s did not stop within %s", strings.Join(late, ", "), within)
	}
	return nil
}

// embeddedNATS is the broker in this process, listed as a process of its
// own in run.json and the table.
type embeddedNATS struct {
	srv   *broker.Embedded
	child *child
	once  sync.Once
	log   *os.File
}

func startEmbeddedNATS(data string, port int, users []broker.User) (*embeddedNATS, error) {
	logPath := filepath.Join(data, "logs", "nats.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", logPath, err)
	}
	srv, err := broker.StartEmbeddedLimited(filepath.Join(data, "nats"), "127.0.0.1", port, users, NATSMemory, logging.New(&syncWriter{w: logFile}, "nats", 0))
	if err != nil {
		logFile.Close()
		return nil, err
	}
	c := &child{Process: Process{Name: "nats", Port: port, PID: os.Getpid(), URL: fmt.Sprintf("nats://127.0.0.1:%d", port), Log: logPath},
		ready: dialing, exited: make(chan struct{})}
	return &embeddedNATS{srv: srv, child: c, log: logFile}, nil
}

func (e *embeddedNATS) stop() {
	e.once.Do(func() {
		e.srv.Shutdown()
		e.log.Close()
		close(e.child.exited)
	})
}

// syncWriter serialises writes to a log file shared by a service's
// stdout and stderr.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// envMap reads KEY=value pairs; a later pair wins, as it does for a
// child process's environment.
func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// maps copies base with extra on top.
func maps(base, extra map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(extra))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// monolithControl is the control API of a monolith: there are no
// processes to start, scale or restart, so it answers status only.
type monolithControl struct{ sup *supervisor }

func (m monolithControl) snapshot() State { return m.sup.snapshot() }

func (monolithControl) start(_ context.Context, _ string) (Process, error) {
	return Process{}, errInMonolith("start")
}

func (monolithControl) scale(_ context.Context, _ string, _ int) ([]Process, error) {
	return nil, errInMonolith("scale")
}

func (monolithControl) restart(_ context.Context, _ string) ([]Process, error) {
	return nil, errInMonolith("restart")
}

func errInMonolith(action string) error {
	return fmt.Errorf("microshop cannot %s a service in --mode monolith: every service runs inside one process; "+
		"stop run and start it again, or use --mode microservices", action)
}
