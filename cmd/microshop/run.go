package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/broker"
	"github.com/microshop/microshop/internal/platform/config"
	"github.com/microshop/microshop/internal/platform/logging"
	"github.com/microshop/microshop/internal/platform/service"
)

// child is one service process that run supervises.
type child struct {
	Name string `json:"name"`
	Port int    `json:"port"`
	PID  int    `json:"pid"`
	URL  string `json:"url"`
	Log  string `json:"log"`

	cmd *exec.Cmd
	// exited is closed when the process has ended; err says how.
	exited chan struct{}
	err    error
}

// runState is written to <data>/run.json so tests and tools can find the
// processes of a running system.
type runState struct {
	Gateway  string   `json:"gateway"`
	NATS     string   `json:"nats"`
	Services []*child `json:"services"`
}

func runSystem(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("microshop run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := config.New(fs, getenv)
	var (
		dataDir  = f.String("data", "data", "directory for every service's SQLite file, the NATS store and the logs")
		port     = f.Int("port", 8080, "the gateway's port; services listen on the next six ports (users +1 ... reports +6)")
		natsPort = f.Int("nats-port", 4223, "port of the embedded NATS JetStream server")
		mode     = f.String("mode", "microservices", "microservices: one process per service")
		logLevel = f.String("log-level", "info", "log level of the services: debug, info, warn or error")
		timeout  = f.Duration("ready-timeout", 30*time.Second, "how long to wait for every service to become ready")
	)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: microshop run [flags]

Runs the whole system on this machine with no outside servers: an embedded
NATS JetStream server, then every service as its own process (the same
binary running "serve <service>"), each on its own port with its own SQLite
file under --data. Waits until every service is ready, prints where they
are, and stops them all gracefully on Ctrl-C. A second run reuses the data.

Service logs go to <data>/logs/<service>.log.

Flags:
`)
		fs.PrintDefaults()
	}
	if helped, err := parseFlags(fs, args); helped || err != nil {
		return err
	}
	if err := f.Parse(nil); err != nil { // reports bad MICROSHOP_* values
		return err
	}
	if *mode != "microservices" {
		return fmt.Errorf("--mode %q is not available yet; use microservices", *mode)
	}
	if *port < 1 || *port > 65535-7 {
		return fmt.Errorf("--port %d: want a port between 1 and %d", *port, 65535-7)
	}
	level, err := logging.ParseLevel(*logLevel)
	if err != nil {
		return err
	}
	data, err := filepath.Abs(*dataDir)
	if err != nil {
		return fmt.Errorf("--data: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(data, "logs"), 0o750); err != nil {
		return fmt.Errorf("creating %s: %w", data, err)
	}
	log := logging.New(stderr, "run", level)

	nats, err := broker.StartEmbedded(filepath.Join(data, "nats"), "127.0.0.1", *natsPort, log)
	if err != nil {
		return err
	}
	defer nats.Shutdown()

	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary to start the services: %w", err)
	}
	specs := services()
	env := childEnv(getenv, specs, *port)
	admin, err := adminCredentials(getenv, data)
	if err != nil {
		return err
	}
	if admin.generated {
		env = append(env, "MICROSHOP_ADMIN_EMAIL="+admin.email, "MICROSHOP_ADMIN_PASSWORD="+admin.password)
	}

	seeds, publics, err := serviceKeys(data, specs)
	if err != nil {
		return err
	}
	env = append(env, "MICROSHOP_SERVICE_KEYS="+publics)

	state := runState{Gateway: fmt.Sprintf("http://127.0.0.1:%d", *port), NATS: nats.URL()}
	for _, spec := range specs {
		c, err := startChild(exe, spec, data, servicePort(spec, *port), nats.URL(), *logLevel,
			append(env, "MICROSHOP_SERVICE_KEY="+seeds[spec.Name]))
		if err != nil {
			stopAll(state.Services, stderr)
			return err
		}
		state.Services = append(state.Services, c)
	}
	if err := writeState(data, state); err != nil {
		stopAll(state.Services, stderr)
		return err
	}
	if err := waitReady(ctx, state.Services, *timeout); err != nil {
		stopAll(state.Services, stderr)
		return err
	}
	printTable(stdout, state, data, admin)

	// Run until Ctrl-C. A service that dies is reported, not restarted:
	// the point is to watch the rest keep working without it.
	exited := make(chan *child, len(state.Services))
	for _, c := range state.Services {
		go func() {
			<-c.exited
			exited <- c
		}()
	}
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(stdout, "\nstopping: draining every service, then the broker")
			stopAll(state.Services, stderr)
			fmt.Fprintln(stdout, "stopped")
			return nil
		case c := <-exited:
			if ctx.Err() == nil {
				log.Warn("a service process exited; the others keep running", "service", c.Name, "pid", c.PID, "err", errString(c.err), "log", c.Log)
			}
		}
	}
}

// servicePort places each service after the gateway: users at port+1, and
// so on, in the order DESIGN.md gives.
func servicePort(spec service.Spec, gateway int) int {
	if spec.Name == "gateway" {
		return gateway
	}
	return gateway + (spec.Port - 8080)
}

// childEnv is the environment of every service process: this process's,
// plus every service's URL so each finds the ones it calls.
func childEnv(getenv func(string) string, specs []service.Spec, gateway int) []string {
	env := os.Environ()
	for _, s := range specs {
		env = append(env, config.EnvName(s.Name+"-url")+"="+fmt.Sprintf("http://127.0.0.1:%d", servicePort(s, gateway)))
	}
	return env
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

func writeState(data string, st runState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(data, "run.json.tmp")
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return fmt.Errorf("writing run state: %w", err)
	}
	return os.Rename(tmp, filepath.Join(data, "run.json"))
}

// waitReady polls every service's /readyz until all answer 200.
func waitReady(ctx context.Context, children []*child, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for _, c := range children {
		for {
			select {
			case <-c.exited:
				return fmt.Errorf("%s exited while starting (%s); see %s", c.Name, errString(c.err), c.Log)
			default:
			}
			resp, err := client.Get(c.URL + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s was not ready within %s; see %s", c.Name, timeout, c.Log)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// stopAll stops the services in reverse start order: the gateway first, so
// no new requests come in, and users last.
func stopAll(children []*child, stderr io.Writer) {
	for i := len(children) - 1; i >= 0; i-- {
		c := children[i]
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

// serviceKeys loads the service-identity keys of this data directory,
// making them on the first run. The file is readable by its owner only.
func serviceKeys(data string, specs []service.Spec) (map[string]string, string, error) {
	path := filepath.Join(data, "service-keys.json")
	var stored struct {
		Seeds   map[string]string `json:"seeds"`
		Publics string            `json:"publics"`
	}
	b, err := os.ReadFile(path)
	if err == nil && json.Unmarshal(b, &stored) == nil {
		complete := true
		for _, s := range specs {
			if stored.Seeds[s.Name] == "" {
				complete = false
			}
		}
		if complete {
			return stored.Seeds, stored.Publics, nil
		}
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	stored.Seeds, stored.Publics, err = auth.GenerateServiceKeys(names)
	if err != nil {
		return nil, "", fmt.Errorf("making service keys: %w", err)
	}
	b, err = json.Marshal(stored)
	if err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, "", fmt.Errorf("writing %s: %w", path, err)
	}
	return stored.Seeds, stored.Publics, nil
}

type adminAccount struct {
	email, password string
	generated       bool
}

// adminCredentials decides the admin account. An operator's
// MICROSHOP_ADMIN_EMAIL/PASSWORD go straight to users; otherwise the
// first run (no users database yet) makes a password and prints it once.
func adminCredentials(getenv func(string) string, data string) (adminAccount, error) {
	if getenv("MICROSHOP_ADMIN_EMAIL") != "" {
		return adminAccount{email: getenv("MICROSHOP_ADMIN_EMAIL")}, nil
	}
	if _, err := os.Stat(filepath.Join(data, "users.db")); err == nil {
		return adminAccount{}, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return adminAccount{}, err
	}
	b := make([]byte, 15)
	if _, err := rand.Read(b); err != nil {
		return adminAccount{}, err
	}
	return adminAccount{email: "admin@microshop.local", password: base64.RawURLEncoding.EncodeToString(b), generated: true}, nil
}

func printTable(w io.Writer, st runState, data string, admin adminAccount) {
	fmt.Fprintf(w, "microshop is running (data in %s)\n\n", data)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tURL\tPID\tLOG")
	fmt.Fprintf(tw, "nats\t%s\t%d\t(embedded)\n", st.NATS, os.Getpid())
	for _, c := range st.Services {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", c.Name, c.URL, c.PID, c.Log)
	}
	tw.Flush()
	if admin.generated {
		fmt.Fprintf(w, "\nAn admin account was created for this data directory. Keep these; they are shown once:\n  email:    %s\n  password: %s\n", admin.email, admin.password)
	}
	fmt.Fprintf(w, "\nOpen %s in a browser. Press Ctrl-C to stop.\n", st.Gateway)
}

func errString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return strings.TrimSpace(err.Error())
}
