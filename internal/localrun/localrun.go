// Package localrun is the local deployer: what `microshop run` is. It runs
// the whole system on one machine, every service a process of the same
// binary (or, in monolith mode, every service inside run's own process),
// with an embedded NATS server, a built-in mailbox and a trace collector.
// This is the package to read to learn how the system is run on one
// machine:
//
//	ports.go       the port plan: where each service, replica and helper listens
//	supervisor.go  the processes, their replicas and run.json
//	control.go     the control API on <data>/control.sock, and its client
//	monolith.go    every service in one process
//	mailbox.go     the built-in mail server notifications sends to
//	collector.go   the built-in trace collector, metrics and stream lag
//	databases.go   one Postgres database per service, with --db
//	secrets.go     the service-identity keys, the NATS users and the first admin account
//	launch.go      starting `microshop run` as a child, for tests, demos, chaos and bench
//	proc_*.go      process control that differs by operating system
package localrun

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/problem"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/microshop/microshop/internal/platform/broker"
	"github.com/microshop/microshop/internal/platform/logging"
	"github.com/microshop/microshop/internal/platform/mtls"
	"github.com/microshop/microshop/internal/platform/service"
	"github.com/microshop/microshop/internal/topology"
)

// Modes of a run.
const (
	Microservices = "microservices" // one process per service
	Monolith      = "monolith"      // every service in run's own process
)

// Config is one run, as `microshop run`'s flags give it.
type Config struct {
	// Specs are the services to run, in start order.
	Specs []service.Spec
	// Data holds every service's SQLite file, the NATS store and the logs.
	Data string
	// Ports are where everything listens.
	Ports Ports
	// Mode is Microservices or Monolith.
	Mode string
	// LogLevel is the services' log level (debug, info, warn, error).
	LogLevel string
	// ReadyTimeout bounds the wait for every service to become ready.
	ReadyTimeout time.Duration
	// Replicas is how many replicas of a service to run (1 when absent).
	Replicas map[string]int
	// DB, when set, is a Postgres server URL to keep every service's
	// database on instead of SQLite files; DBPrefix starts their names.
	DB, DBPrefix string
	// NATS, when set, is an outside NATS JetStream URL to use instead of
	// starting one.
	NATS string
	// Exe is the binary whose "serve" and "nats" commands run the
	// processes; this process's own when empty.
	Exe string
	// Getenv reads the environment (MICROSHOP_ADMIN_EMAIL, ...).
	Getenv func(string) string
	// PlainHTTP switches mutual TLS between the services off (run
	// --mtls=false). It is on by default in microservices mode: each
	// service serves TLS with a certificate from <data>/tls/ and calls
	// only peers that prove to be the service called. A monolith has no
	// calls over sockets between its services and always runs plain.
	PlainHTTP bool
	// MemoryLimit is the Go memory limit (GOMEMLIMIT, in bytes) of every
	// process run starts and of run itself; in monolith mode run's is
	// that times the number of services, since it holds them all. 0 sets
	// none. A GOMEMLIMIT in run's environment wins over it, for every
	// process.
	MemoryLimit int64
	// TracesBytes and MailboxBytes bound what the built-in trace
	// collector and mailbox keep in memory (collector.DefaultBytes and
	// mailbox.DefaultBytes when 0).
	TracesBytes, MailboxBytes int64
}

// NATSMemory bounds the memory of the JetStream server run starts
// (max_memory_store): the shop's streams are on disk, so memory storage
// is there only for what an operator adds by hand.
const NATSMemory = 16 << 20

// memoryEnv is what each process of the system gets as GOMEMLIMIT: the
// inherited one when run has it (the environment already passes it on),
// else limit.
func memoryEnv(getenv func(string) string, limit int64) []string {
	if getenv("GOMEMLIMIT") != "" || limit <= 0 {
		return nil
	}
	return []string{fmt.Sprintf("GOMEMLIMIT=%dB", limit)}
}

// serviceMemoryEnv is a service's GOMEMLIMIT when it needs more than
// the others (Spec.MemoryHeadroom); a later entry wins over memoryEnv's.
func serviceMemoryEnv(getenv func(string) string, limit int64, spec service.Spec) []string {
	if spec.MemoryHeadroom == 0 || limit <= 0 {
		return nil
	}
	return memoryEnv(getenv, limit+spec.MemoryHeadroom)
}

// limitOwnMemory sets run's own Go memory limit, unless GOMEMLIMIT (which
// the runtime has applied already) says otherwise. The GC then works
// harder as the heap nears the limit rather than let it double: a soft
// limit, never a failure.
func limitOwnMemory(getenv func(string) string, limit int64) {
	if getenv("GOMEMLIMIT") != "" || limit <= 0 {
		return
	}
	debug.SetMemoryLimit(limit)
}

// check refuses a Config that cannot run, before anything starts.
func (cfg Config) check() error {
	switch cfg.Mode {
	case Microservices:
	case Monolith:
		if len(cfg.Replicas) > 0 {
			return errors.New("--replicas needs --mode microservices: in a monolith every service runs once, in one process")
		}
	default:
		return fmt.Errorf("--mode %q: want microservices or monolith", cfg.Mode)
	}
	if err := cfg.Ports.check(); err != nil {
		return err
	}
	scalable := map[string]bool{}
	for _, s := range cfg.Specs {
		scalable[s.Name] = s.Name != "gateway"
	}
	for name, n := range cfg.Replicas {
		switch {
		case !scalable[name]:
			return fmt.Errorf("--replicas: %q is not a service that can be scaled", name)
		case n < 1 || n > MaxReplicas:
			return fmt.Errorf("--replicas: %s=%d: want 1 to %d", name, n, MaxReplicas)
		}
	}
	return nil
}

// Run runs the system until ctx ends, then stops it gracefully: the
// gateway first, then the services, then the broker. It prints a table of
// the processes once every one is ready, ending with the line
// "Open <gateway> in a browser", which Launch waits for.
func Run(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	if err := cfg.check(); err != nil {
		return err
	}
	level, err := logging.ParseLevel(cfg.LogLevel)
	if err != nil {
		return err
	}
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	data, err := filepath.Abs(cfg.Data)
	if err != nil {
		return fmt.Errorf("--data: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(data, "logs"), 0o750); err != nil {
		return fmt.Errorf("creating %s: %w", data, err)
	}
	log := logging.New(stderr, "run", level)

	exe := cfg.Exe
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return fmt.Errorf("finding this binary to start the services: %w", err)
		}
	}
	ports, specs := cfg.Ports, cfg.Specs
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", ports.NATS)
	if cfg.NATS != "" {
		natsURL = cfg.NATS
	}
	dbFor := func(string) []string { return nil }
	if cfg.DB != "" {
		sources, err := createDatabases(ctx, cfg.DB, cfg.DBPrefix, specs)
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
	env := append(os.Environ(), memoryEnv(cfg.Getenv, cfg.MemoryLimit)...)
	if cfg.Mode == Monolith {
		own := cfg.MemoryLimit * int64(len(specs)+1)
		for _, spec := range specs {
			own += spec.MemoryHeadroom
		}
		if cfg.MemoryLimit > 0 {
			limitOwnMemory(cfg.Getenv, own)
		}
	} else {
		limitOwnMemory(cfg.Getenv, cfg.MemoryLimit)
	}
	admin, err := adminCredentials(cfg.Getenv, data)
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
	// users seals its token-signing keys with a key kept beside, not in,
	// its database, unless the operator gives one.
	if cfg.Getenv("MICROSHOP_KEY_ENCRYPTION_KEY") == "" && cfg.Getenv("MICROSHOP_KEY_ENCRYPTION_KEY_FILE") == "" {
		kek, err := usersKEK(data)
		if err != nil {
			return err
		}
		env = append(env, "MICROSHOP_KEY_ENCRYPTION_KEY_FILE="+kek)
	}
	// The broker run starts admits only the shop's services, each with
	// its own NATS user; an outside one (--nats) is the operator's, and
	// the services connect to it as it asks: here, with no credential.
	var nauth natsAuth
	if cfg.NATS == "" {
		if nauth, err = natsUsers(data, specs); err != nil {
			return err
		}
	}
	// The gateway and users share it: users believes the client address
	// the gateway forwards, and no other local process can forge one.
	proxySecret, err := newSecret()
	if err != nil {
		return err
	}
	env = append(env, "MICROSHOP_PROXY_SECRET="+proxySecret)
	// The mailbox and the collector ask it of every request: the gateway
	// sends it for admins, the services with their spans.
	consoleToken, err := newSecret()
	if err != nil {
		return err
	}
	env = append(env, "MICROSHOP_CONSOLE_TOKEN="+consoleToken)

	// The built-in mail server: notifications sends real SMTP to it.
	mb, err := startMailbox(data, ports, consoleToken, cfg.MailboxBytes, log)
	if err != nil {
		return err
	}
	defer mb.Close()
	// The webhook guard stays on: a developer's local receiver is let
	// through by naming it (MICROSHOP_WEBHOOK_ALLOW=127.0.0.1:9000 in the
	// environment of run), never every local port.
	env = append(env, "MICROSHOP_SMTP_URL="+mb.smtpURL, "MICROSHOP_MAILBOX_URL="+mb.httpURL)

	useTLS := cfg.Mode == Microservices && !cfg.PlainHTTP
	var runID *mtls.Identity
	if useTLS {
		if runID, err = ensureTLS(data, specs, log); err != nil {
			return err
		}
		go renewTLS(ctx, data, specs, log)
	}
	scheme := "http"
	if useTLS {
		scheme = "https"
	}

	sup := &supervisor{exe: exe, data: data, log: log, readyTimeout: cfg.ReadyTimeout, http: &clients{id: runID, timeout: 2 * time.Second},
		state: state{State: State{Gateway: fmt.Sprintf("http://127.0.0.1:%d", ports.Gateway), NATS: natsURL, Mailbox: mb.httpURL, SMTP: mb.smtpURL}}}

	// The built-in trace collector: every service exports its spans here.
	traceVars, elsewhere := traceEnv(cfg.Getenv, collectorURL(ports), consoleToken)
	col, err := startCollector(ports.Collector(), natsURL, elsewhere, consoleToken, cfg.TracesBytes, nauth.credential(broker.Monitor), sup, log)
	if err != nil {
		return err
	}
	defer col.Close()
	sup.state.Telemetry = col.url
	env = append(append(env, traceVars...), "MICROSHOP_TELEMETRY_URL="+col.url)
	if cfg.Mode == Monolith {
		return runMonolith(ctx, monolith{sup: sup, data: data, ports: ports, natsURL: natsURL, extNATS: cfg.NATS != "",
			logLevel: cfg.LogLevel, timeout: cfg.ReadyTimeout, specs: specs, env: env, seeds: seeds, nats: nauth, dbFor: dbFor, admin: admin}, stdout, stderr)
	}
	// NATS is a process of its own, like the services, so it can be
	// stopped and started (or killed) on its own too.
	if cfg.NATS == "" {
		sup.add("nats", proc{
			args: func(int) []string {
				return []string{"nats", "--port", fmt.Sprint(ports.NATS), "--store", filepath.Join(data, "nats"), "--users", nauth.usersFile,
					"--max-memory", fmt.Sprint(NATSMemory)}
			},
			port:  func(int) int { return ports.NATS },
			env:   append(os.Environ(), memoryEnv(cfg.Getenv, cfg.MemoryLimit)...),
			ready: dialing,
		})
	}
	for _, spec := range specs {
		var tlsVars []string
		if useTLS {
			tlsVars = tlsEnv(data, spec.Name)
		}
		sup.add(spec.Name, proc{
			args: func(slot int) []string {
				return append([]string{"serve", spec.Name, "--addr", fmt.Sprintf("127.0.0.1:%d", ports.Replica(spec, slot)), "--data", data,
					"--nats", natsURL, "--log-level", cfg.LogLevel, "--drain-delay", drainDelay(spec)}, dbFor(spec.Name)...)
			},
			port: func(slot int) int { return ports.Replica(spec, slot) },
			env: append(append(append(append(env[:len(env):len(env)], peerEnv(spec, ports, scheme)...), tlsVars...),
				"MICROSHOP_SERVICE_KEY="+seeds[spec.Name], "MICROSHOP_NATS_SEED="+nauth.seeds[spec.Name]),
				serviceMemoryEnv(cfg.Getenv, cfg.MemoryLimit, spec)...),
			scalable: spec.Name != "gateway",
			tls:      useTLS && !spec.Public,
		})
	}
	for _, name := range sup.order {
		c, err := sup.startFirst(name)
		if err != nil {
			sup.stopAll(stderr)
			return err
		}
		if name == "nats" {
			// Services wait for the broker anyway; starting it first just
			// makes their first connection succeed.
			if err := sup.waitReady(ctx, []*child{c}, cfg.ReadyTimeout); err != nil {
				sup.stopAll(stderr)
				return err
			}
		}
	}
	if err := sup.waitReady(ctx, sup.children(), cfg.ReadyTimeout); err != nil {
		sup.stopAll(stderr)
		return err
	}
	for name, n := range cfg.Replicas {
		if _, err := sup.scale(ctx, name, n); err != nil {
			sup.stopAll(stderr)
			return err
		}
	}
	ctl, err := serveControl(ctx, data, sup, log)
	if err != nil {
		sup.stopAll(stderr)
		return err
	}
	defer ctl.Close()
	printTable(stdout, sup.snapshot(), data, admin)

	// Run until Ctrl-C. A service that dies is reported, not restarted:
	// the point is to watch the rest keep working without it. The control
	// API can start it again (microshop start <service>).
	<-ctx.Done()
	fmt.Fprintln(stdout, "\nstopping: draining every service, then the broker")
	sup.stopAll(stderr)
	fmt.Fprintln(stdout, "stopped")
	return nil
}

// drainDelay is how long a stopping service stays up but unready, so the
// balancers of its callers (probing every second) stop sending first.
func drainDelay(spec service.Spec) string {
	if spec.Name == "gateway" {
		return "0s" // nothing balances in front of it here
	}
	return "1500ms"
}

// traceEnv says where the services send their spans. An operator's own
// OpenTelemetry settings win (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
// OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_EXPORTER=none): the services
// inherit them unchanged and elsewhere names where the spans go instead of
// the built-in collector. Only when none is set does run point the
// services at its collector.
func traceEnv(getenv func(string) string, collector, token string) (env []string, elsewhere string) {
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if v := getenv(k); v != "" {
			env = append(env, k+"="+v) // as run was given them, even by a caller's getenv
		}
	}
	switch {
	case getenv("OTEL_TRACES_EXPORTER") == "none":
		return env, "none (OTEL_TRACES_EXPORTER=none)"
	case getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "":
		return env, getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	case getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "":
		return env, getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + collector,
		"OTEL_EXPORTER_OTLP_HEADERS=" + auth.ConsoleTokenHeader + "=" + url.QueryEscape(token)}, ""
}

// consoleOnly lets through the requests that carry token in
// auth.ConsoleTokenHeader, and probes; anything else is a 401 problem.
// The built-in mailbox and collector listen on loopback, where every
// local process could otherwise read the mail or write spans.
func consoleOnly(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		given := r.Header.Get(auth.ConsoleTokenHeader)
		probe := r.Method == http.MethodGet && (r.URL.Path == "/healthz" || r.URL.Path == "/readyz")
		if !probe && subtle.ConstantTimeCompare([]byte(given), []byte(token)) != 1 {
			problem.Write(w, r, problem.New(http.StatusUnauthorized, "console-token", "Console token needed",
				"this port of microshop run answers the gateway and the services only"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// collectorURL is the base URL of run's built-in trace collector.
func collectorURL(p Ports) string { return fmt.Sprintf("http://127.0.0.1:%d", p.Collector()) }

// peerEnv tells a service process where the services it needs are:
// MICROSHOP_<PEER>_URL with one URL per replica slot of the peer, so its
// balancer finds replicas started later by probing. It names no service
// the Spec does not need. scheme is https under mutual TLS.
func peerEnv(spec service.Spec, ports Ports, scheme string) []string {
	return topology.Env(spec, func(peer string) string {
		callee, _ := topology.Find(peer)
		urls := []string{fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports.Service(callee))}
		if callee.Name != "gateway" {
			for k := 1; k < MaxReplicas; k++ {
				urls = append(urls, fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports.Replica(callee, k)))
			}
		}
		return strings.Join(urls, ",")
	})
}

// waitReady polls every service's /readyz until all answer 200.
func (s *supervisor) waitReady(ctx context.Context, children []*child, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, c := range children {
		client := s.http.get(c.Name)
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

func printTable(w io.Writer, st State, data string, admin adminAccount) {
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
