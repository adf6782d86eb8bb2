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
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/microshop/microshop/internal/platform/auth"
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
		mode     = f.String("mode", "microservices", "microservices: one process per service; monolith: every service in this one process, their calls to each other in-process")
		logLevel = f.String("log-level", "info", "log level of the services: debug, info, warn or error")
		timeout  = f.Duration("ready-timeout", 30*time.Second, "how long to wait for every service to become ready")
		replicas = f.String("replicas", "", "replicas per service, e.g. payments=3,inventory=2 (default 1 each; at most 5)")
		dbURL    = f.String("db", "", "a Postgres server URL such as postgres://user@host:5432/ to keep every service's database there (one database per service, created when missing) instead of SQLite files")
		dbPrefix = f.String("db-prefix", "", "prefix of the per-service database names on --db (e.g. test1_ gives test1_users, ...)")
		extNATS  = f.String("nats", "", "an outside NATS JetStream URL such as nats://host:4222 to use instead of starting one")
	)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: microshop run [flags]

Runs the whole system on this machine with no outside servers: a NATS
JetStream server and every service, each as its own process (the same
binary running "nats" or "serve <service>"), each service on its own port
with its own SQLite file under --data, plus a built-in mail server that
keeps what notifications sends. Waits until everything is ready, prints
where it is, and stops it all gracefully on Ctrl-C. A second run reuses the
data.

With --mode monolith the same services run inside this one process
instead, the broker too: each keeps its own port, database, routes and
logs, but the calls between services are handed over in memory rather
than sent over a socket. Events still go through NATS.

Ports: the gateway on --port, users +1, inventory +2, orders +3,
payments +4, notifications +5, reports +6, the mailbox's web API +7, its
SMTP server +8 and the trace collector +9; NATS on --nats-port.

Logs go to <data>/logs/<process>.log. While it runs, "microshop start
<process> --data <dir>" starts a process that stopped.

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
	switch *mode {
	case "microservices":
	case "monolith":
		if strings.TrimSpace(*replicas) != "" {
			return fmt.Errorf("--replicas needs --mode microservices: in a monolith every service runs once, in one process")
		}
	default:
		return fmt.Errorf("--mode %q: want microservices or monolith", *mode)
	}
	if *port < 1 || *port > 65535-9-100*(maxReplicas-1) {
		return fmt.Errorf("--port %d: want a port between 1 and %d", *port, 65535-9-100*(maxReplicas-1))
	}
	scaleTo, err := parseReplicas(*replicas)
	if err != nil {
		return err
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

	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary to start the services: %w", err)
	}
	specs := services()
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", *natsPort)
	if *extNATS != "" {
		natsURL = *extNATS
	}
	dbFor := func(string) []string { return nil }
	if *dbURL != "" {
		sources, err := createDatabases(ctx, *dbURL, *dbPrefix, specs)
		if err != nil {
			return err
		}
		dbFor = func(service string) []string {
			if src, ok := sources[service]; ok {
				return []string{"--db", src}
			}
			return nil
		}
	}
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

	// The built-in mail server: notifications sends real SMTP to it.
	mb, err := startMailbox(data, *port, log)
	if err != nil {
		return err
	}
	defer mb.Close()
	env = append(env, "MICROSHOP_SMTP_URL="+mb.smtpURL, "MICROSHOP_MAILBOX_URL="+mb.httpURL,
		// On one machine the webhook receivers a developer runs are local.
		"MICROSHOP_WEBHOOK_ALLOW_PRIVATE=true")

	sup := &supervisor{exe: exe, data: data, log: log,
		state: runState{Gateway: fmt.Sprintf("http://127.0.0.1:%d", *port), NATS: natsURL, Mailbox: mb.httpURL, SMTP: mb.smtpURL}}

	// The built-in trace collector: every service exports its spans here.
	col, err := startCollector(*port+9, natsURL, sup, log)
	if err != nil {
		return err
	}
	defer col.Close()
	sup.state.Telemetry = col.url
	env = append(env, "OTEL_EXPORTER_OTLP_ENDPOINT="+col.url, "MICROSHOP_TELEMETRY_URL="+col.url)
	sup.readyTimeout = *timeout
	if *mode == "monolith" {
		return runMonolith(ctx, monolith{sup: sup, data: data, port: *port, natsPort: *natsPort, natsURL: natsURL, extNATS: *extNATS != "",
			logLevel: *logLevel, timeout: *timeout, specs: specs, env: env, seeds: seeds, dbFor: dbFor, admin: admin}, stdout, stderr)
	}
	// NATS is a process of its own, like the services, so it can be
	// stopped and started (or killed) on its own too.
	if *extNATS == "" {
		sup.add("nats", proc{
			args: func(int) []string {
				return []string{"nats", "--port", fmt.Sprint(*natsPort), "--store", filepath.Join(data, "nats")}
			},
			port:  func(int) int { return *natsPort },
			env:   os.Environ(),
			ready: dialing,
		})
	}
	for _, spec := range specs {
		base := servicePort(spec, *port)
		sup.add(spec.Name, proc{
			args: func(slot int) []string {
				return append([]string{"serve", spec.Name, "--addr", fmt.Sprintf("127.0.0.1:%d", replicaPort(base, slot)), "--data", data,
					"--nats", natsURL, "--log-level", *logLevel, "--drain-delay", drainDelay(spec)}, dbFor(spec.Name)...)
			},
			port:     func(slot int) int { return replicaPort(base, slot) },
			env:      append(env[:len(env):len(env)], "MICROSHOP_SERVICE_KEY="+seeds[spec.Name]),
			scalable: spec.Name != "gateway",
		})
	}
	for _, name := range sup.order {
		c, err := sup.start(name)
		if err != nil {
			sup.stopAll(stderr)
			return err
		}
		if name == "nats" {
			// Services wait for the broker anyway; starting it first just
			// makes their first connection succeed.
			if err := waitReady(ctx, []*child{c}, *timeout); err != nil {
				sup.stopAll(stderr)
				return err
			}
		}
	}
	if err := waitReady(ctx, sup.children(), *timeout); err != nil {
		sup.stopAll(stderr)
		return err
	}
	for name, n := range scaleTo {
		if _, err := sup.scale(ctx, name, n); err != nil {
			sup.stopAll(stderr)
			return err
		}
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
// so on, in the order of the services table.
func servicePort(spec service.Spec, gateway int) int {
	if spec.Name == "gateway" {
		return gateway
	}
	return gateway + (spec.Port - 8080)
}

// parseReplicas reads "payments=3,inventory=2".
func parseReplicas(s string) (map[string]int, error) {
	out := map[string]int{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	known := map[string]bool{}
	for _, spec := range services() {
		known[spec.Name] = spec.Name != "gateway"
	}
	for _, pair := range strings.Split(s, ",") {
		name, count, ok := strings.Cut(strings.TrimSpace(pair), "=")
		n, err := strconv.Atoi(count)
		switch {
		case !ok || err != nil:
			return nil, fmt.Errorf("--replicas %q: want service=count pairs such as payments=3,inventory=2", s)
		case !known[name]:
			return nil, fmt.Errorf("--replicas: %q is not a service that can be scaled", name)
		case n < 1 || n > maxReplicas:
			return nil, fmt.Errorf("--replicas: %s=%d: want 1 to %d", name, n, maxReplicas)
		}
		out[name] = n
	}
	return out, nil
}

// drainDelay is how long a stopping service stays up but unready, so the
// balancers of its callers (probing every second) stop sending first.
func drainDelay(spec service.Spec) string {
	if spec.Name == "gateway" {
		return "0s" // nothing balances in front of it here
	}
	return "1500ms"
}

// childEnv is the environment of every service process: this process's,
// plus every service's URL so each finds the ones it calls.
func childEnv(getenv func(string) string, specs []service.Spec, gateway int) []string {
	env := os.Environ()
	for _, s := range specs {
		base := servicePort(s, gateway)
		urls := []string{fmt.Sprintf("http://127.0.0.1:%d", base)}
		if s.Name != "gateway" {
			for k := 1; k < maxReplicas; k++ {
				urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d", replicaPort(base, k)))
			}
		}
		env = append(env, config.EnvName(s.Name+"-url")+"="+strings.Join(urls, ","))
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
			if isReady(client, c) {
				break
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

func isReady(client *http.Client, c *child) bool {
	if c.ready == dialing {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", c.Port), time.Second)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	}
	resp, err := client.Get(c.URL + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
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
	fmt.Fprintln(tw, "PROCESS\tURL\tPID\tLOG")
	for _, c := range st.Services {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", c.Name, c.URL, c.PID, c.Log)
	}
	fmt.Fprintf(tw, "mailbox\t%s (SMTP %s)\t%d\t(in this process)\n", st.Mailbox, st.SMTP, os.Getpid())
	fmt.Fprintf(tw, "traces\t%s (OTLP)\t%d\t(in this process)\n", st.Telemetry, os.Getpid())
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
