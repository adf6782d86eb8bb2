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
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/broker"
	"github.com/microshop/microshop/internal/platform/config"
	"github.com/microshop/microshop/internal/platform/logging"
	"github.com/microshop/microshop/internal/platform/service"
)

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

	sup := &supervisor{
		exe: exe, data: data, natsURL: nats.URL(), logLevel: *logLevel, env: env, seeds: seeds, log: log,
		state: runState{Gateway: fmt.Sprintf("http://127.0.0.1:%d", *port), NATS: nats.URL()},
		specs: map[string]service.Spec{}, ports: map[string]int{},
	}
	for _, spec := range specs {
		sup.specs[spec.Name] = spec
		sup.ports[spec.Name] = servicePort(spec, *port)
		if _, err := sup.start(spec.Name); err != nil {
			sup.stopAll(stderr)
			return err
		}
	}
	if err := waitReady(ctx, sup.children(), *timeout); err != nil {
		sup.stopAll(stderr)
		return err
	}
	ctl, err := sup.serveControl(ctx)
	if err != nil {
		sup.stopAll(stderr)
		return err
	}
	defer ctl.Close()
	printTable(stdout, sup.snapshot(), data, admin)

	// Run until Ctrl-C. A service that dies is reported, not restarted:
	// the point is to watch the rest keep working without it. The control
	// socket can start it again (microshop start <service>).
	<-ctx.Done()
	fmt.Fprintln(stdout, "\nstopping: draining every service, then the broker")
	sup.stopAll(stderr)
	fmt.Fprintln(stdout, "stopped")
	return nil
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
