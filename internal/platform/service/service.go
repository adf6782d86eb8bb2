// Package service is the runtime every microshop service runs in: it
// reads the common configuration, opens the service's own database and
// applies its migrations, connects to NATS, starts the outbox relay, builds
// the HTTP server, and shuts all of it down gracefully, in order.
//
// A service package describes itself with a Spec; `microshop serve <name>`
// hands that Spec to Run.
package service

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/broker"
	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/config"
	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/inproc"
	"github.com/microshop/microshop/internal/platform/logging"
	"github.com/microshop/microshop/internal/platform/mtls"
	"github.com/microshop/microshop/internal/platform/openapi"
	"github.com/microshop/microshop/internal/platform/server"
	"github.com/microshop/microshop/internal/platform/telemetry"
)

// Spec describes one service to the runtime: what it is, what it
// carries, and where it stands in the system (whom it calls, what it
// publishes and consumes). The topology package lists every Spec and
// derives the system's wiring from these fields.
type Spec struct {
	Name string
	// Summary is one line for help text.
	Summary string
	// Port is the service's default port; the topology sets it.
	Port int
	// Files are the service's embedded files: its schema migrations under
	// migrations/ (without them it keeps no database) and its API
	// contract in openapi.yaml. nil means neither.
	Files fs.FS
	// Calls names the services it calls over HTTP. The runtime gives it
	// a --<name>-url flag for each, read with Runtime.URL.
	Calls []string
	// Publishes are the events it publishes, as its contract package
	// declares them; it owns an event stream (named for it) when there
	// are any.
	Publishes []events.Body
	// Older are earlier major versions of events it publishes, which its
	// stream may still hold (for up to --stream-max-age) and its
	// consumers still decode; the AsyncAPI document lists them.
	Older []events.Body
	// Consumes are the subjects of the events it consumes. The runtime
	// checks them against the consumers the service runs.
	Consumes []string
	// Public says the service's port is the system's public entry (the
	// gateway): it serves plain HTTP to browsers even with --tls-cert,
	// which then makes only its calls to the services mutual TLS.
	Public bool
	// IssuesTokens says the service signs tokens itself (users), so it
	// does not fetch a JWKS from anyone.
	IssuesTokens bool
	// MemoryHeadroom is memory the service holds at its busiest beyond
	// what its kind usually does (users: the argon2 memory of every
	// password hash running at once). Whoever sets the process's Go
	// memory limit (GOMEMLIMIT; `microshop run` does) adds it.
	MemoryHeadroom int64
	// Peers are the default base URLs of the services it needs (see
	// Needs), by name; the topology sets them.
	Peers map[string]string
	// Setup registers the service's own flags; the Build it returns runs
	// once flags are parsed and the runtime is up.
	Setup func(f *config.Flags) Build
}

// tokenIssuer is the service whose key set every other service fetches
// to check access tokens.
const tokenIssuer = "users"

// Needs lists the services whose URLs s needs: those it calls and, unless
// it issues tokens itself, users, whose key set checks access tokens.
func (s Spec) Needs() []string {
	needs := slices.Clone(s.Calls)
	if !s.IssuesTokens && !slices.Contains(needs, tokenIssuer) {
		needs = append(needs, tokenIssuer)
	}
	return needs
}

// Migrations are the service's own schema migrations (migrations/ in
// Files), or nil when it keeps no database.
func (s Spec) Migrations() fs.FS {
	if s.Files == nil {
		return nil
	}
	if _, err := fs.Stat(s.Files, "migrations"); err != nil {
		return nil
	}
	sub, err := fs.Sub(s.Files, "migrations")
	if err != nil {
		return nil
	}
	return sub
}

// OpenAPI is the service's API contract (openapi.yaml in Files), or nil
// when it has none. The document is embedded in the binary, so one that
// does not load is a broken build: OpenAPI panics.
func (s Spec) OpenAPI() *openapi.Document {
	if s.Files == nil {
		return nil
	}
	src, err := fs.ReadFile(s.Files, "openapi.yaml")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		panic(fmt.Sprintf("reading %s's openapi.yaml: %v", s.Name, err))
	}
	return openapi.MustLoad(src)
}

// BrokerRole is what the service does on the broker, from which its
// NATS user's permissions follow (broker.ServiceUser).
func (s Spec) BrokerRole() broker.Role {
	return broker.Role{Service: s.Name, Publishes: len(s.Publishes) > 0, Consumes: slices.Clone(s.Consumes)}
}

// EventTypes are the types of the events the service publishes, which
// are also their subjects.
func (s Spec) EventTypes() []string {
	var out []string
	for _, b := range s.Publishes {
		out = append(out, b.EventType())
	}
	return out
}

// Build mounts a service's routes on rt.Server.Router and registers its
// background work with rt.Go.
type Build func(ctx context.Context, rt *Runtime) error

// Runtime is what a service gets from the platform. Fields are nil when
// the Spec does not need them.
type Runtime struct {
	Name     string
	Log      *slog.Logger
	DB       *database.DB
	NATS     *nats.Conn
	JS       jetstream.JetStream
	Outbox   events.Outbox
	Server   *server.Server
	Registry *prometheus.Registry
	// Verifier checks access tokens with the keys of users' JWKS.
	Verifier *auth.Verifier
	// Keys is the key set behind Verifier.
	Keys *auth.RemoteKeySet
	// ServiceKeys check the credentials of services calling /internal/
	// routes (auth.RequireService); Credentials sign this service's own.
	ServiceKeys *auth.ServiceKeys
	Credentials *auth.Credentials
	// OpenAPI is the service's API contract (Spec.OpenAPI), or nil.
	OpenAPI *openapi.Document
	// DataDir is where the service may keep local files.
	DataDir string
	// Addr is the address the service listens on.
	Addr string
	// OpsAddr is the address of its operations port (--ops-addr), or "".
	OpsAddr string
	// ConsumerMetrics count events handled by this service's consumers.
	ConsumerMetrics *events.ConsumerMetrics
	// ClientMetrics count this service's calls to others; pass them to
	// client.New.
	ClientMetrics *client.Metrics
	// Telemetry traces the service: pass it to clients (client.Options)
	// and use its Tracer for spans of the service's own work.
	Telemetry *telemetry.Telemetry
	// Transport carries calls to other services: pass it to clients
	// (client.Options). nil means each client's own connection pool; when
	// services share a process it delivers their calls in-process.
	Transport http.RoundTripper
	// System names the system this service belongs to (from the service
	// keys; see auth.ServiceKeys.System), or is empty. Its /readyz says
	// "<name>@<system>"; pass it to clients (client.Options) so they call
	// only replicas of this system.
	System string
	// TLS is this service's identity for mutual TLS (--tls-cert), or nil
	// when the service calls and serves in plain HTTP. Pass it to clients
	// (client.Options).
	TLS *mtls.Identity

	spec      Spec
	urls      map[string]*string // --<name>-url of each service in spec.Needs
	jobs      []job
	consumed  []string // subjects of the consumers made with Consumer
	consumers []*events.Consumer
	wg        sync.WaitGroup
	errs      chan error
}

// job is background work registered with Go.
type job struct {
	name string
	run  func(ctx context.Context) error
}

// Go registers fn as background work. Every job starts once Build has
// returned, in the order registered, with a context that ends when the
// service stops: after its HTTP server has drained, so no request in
// flight loses the work it relies on. The runtime then waits for every
// job to return before it drains NATS and closes the database. An error
// from fn stops the service.
func (rt *Runtime) Go(name string, fn func(ctx context.Context) error) {
	rt.jobs = append(rt.jobs, job{name: name, run: fn})
}

// start runs every registered job with ctx.
func (rt *Runtime) start(ctx context.Context) {
	for _, j := range rt.jobs {
		rt.wg.Add(1)
		go func() {
			defer rt.wg.Done()
			if err := j.run(ctx); err != nil && ctx.Err() == nil {
				select {
				case rt.errs <- fmt.Errorf("%s: %w", j.name, err):
				default:
				}
			}
		}()
	}
}

// Consumer fills in c's database, broker, logger, metrics and tracing
// from the runtime and returns it, to be run as a job:
//
//	rt.Go("consumer "+c.Name, rt.Consumer(c).Run)
//
// Its subjects must be among the Spec's Consumes.
func (rt *Runtime) Consumer(c *events.Consumer) *events.Consumer {
	c.DB, c.JS, c.Log, c.Metrics, c.Telemetry = rt.DB, rt.JS, rt.Log, rt.ConsumerMetrics, rt.Telemetry
	rt.consumed = append(rt.consumed, c.Subjects...)
	rt.consumers = append(rt.consumers, c)
	return c
}

// URL is the base URL of the service named name, from its --<name>-url
// flag; several, comma-separated, for replicas. The service must be one
// the Spec calls (or users): asking for another is a bug, and URL panics.
func (rt *Runtime) URL(name string) string {
	u, ok := rt.urls[name]
	if !ok {
		panic(fmt.Sprintf("%s asks for the URL of %s, which its Spec does not list in Calls", rt.Name, name))
	}
	return *u
}

// ClientOptions are the options of a client of another service that this
// runtime gives: its tracing, transport, system and mutual TLS identity.
func (rt *Runtime) ClientOptions() client.Options {
	return client.Options{Telemetry: rt.Telemetry, Transport: rt.Transport, System: rt.System, TLS: rt.TLS}
}

// checkConsumers reports a difference between the subjects the service's
// consumers read and the ones its Spec says it consumes, so the topology
// cannot drift from what the service does.
func (rt *Runtime) checkConsumers() error {
	var undeclared, unread []string
	for _, s := range rt.consumed {
		if !slices.Contains(rt.spec.Consumes, s) {
			undeclared = append(undeclared, s)
		}
	}
	for _, s := range rt.spec.Consumes {
		if !slices.Contains(rt.consumed, s) {
			unread = append(unread, s)
		}
	}
	for _, c := range rt.consumers {
		for _, s := range c.Subjects {
			if want := events.DurableName(rt.Name, s); c.Name != want {
				return fmt.Errorf("its consumer of %s is named %s; the broker admits it only as %s (events.DurableName)", s, c.Name, want)
			}
			if want := events.StreamName(events.Owner(s)); c.Stream != want {
				return fmt.Errorf("its consumer %s reads %s from stream %s; only %s, the stream of its owner, carries it", c.Name, s, c.Stream, want)
			}
		}
	}
	switch {
	case len(undeclared) > 0:
		return fmt.Errorf("it consumes %s, which its Spec does not list in Consumes", strings.Join(undeclared, ", "))
	case len(unread) > 0:
		return fmt.Errorf("its Spec lists %s in Consumes, but it runs no consumer of them", strings.Join(unread, ", "))
	}
	return nil
}

// Options are what the process gives a service besides its flags and
// environment. The zero value is a service alone in its process.
type Options struct {
	// Registry, when set, is shared by services running in one process
	// (`microshop run --mode monolith`): the service registers its
	// handler there under its own address, and its calls to services
	// registered there (through Runtime.Transport and the JWKS fetch)
	// go in-process, through the same middleware, without a socket. It
	// keeps its own listener too, for everyone else.
	Registry *inproc.Registry
}

// Run runs the service described by spec until ctx is done.
func Run(ctx context.Context, spec Spec, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return RunWith(ctx, spec, args, getenv, stdout, stderr, Options{})
}

// RunWith is Run with options from the process that runs the service.
func RunWith(ctx context.Context, spec Spec, args []string, getenv func(string) string, stdout, stderr io.Writer, opts Options) error {
	fs := flag.NewFlagSet("microshop serve "+spec.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := config.New(fs, getenv)
	var (
		addr      = f.String("addr", ":"+strconv.Itoa(spec.Port), "address to listen on")
		dataDir   = f.String("data", "data", "directory for local files (SQLite databases, key caches)")
		dbSource  = f.String("db", "", "database: a postgres:// URL or a SQLite file path (default <data>/"+spec.Name+".db)")
		natsURL   = f.String("nats", "nats://127.0.0.1:4222", "NATS JetStream URL")
		natsSeed  = f.String("nats-seed", "", "this service's NATS user: its NKey seed (SU...), for a broker that admits only the shop's services; empty connects without one")
		logLevel  = f.String("log-level", "info", "log level: debug, info, warn or error")
		drain     = f.Duration("drain-timeout", 10*time.Second, "how long to wait for requests in flight when stopping")
		drainWait = f.Duration("drain-delay", 0, "when stopping, how long to keep serving with /readyz false before closing, so balancers stop sending first")
		inFlight  = f.Int("max-in-flight", 1024, "requests handled at once; more are answered 503 with Retry-After (0: no limit)")
		sReplicas = f.Int("stream-replicas", 1, "replicas of the service's JetStream stream (3 on a NATS cluster)")
		sMaxAge   = f.Duration("stream-max-age", events.DefaultMaxAge, "how long the service's JetStream stream keeps an event; more than the longest a consumer may be down plus what a reports rebuild replays (0: forever)")
		sMaxBytes = f.Int("stream-max-bytes", 0, "size limit of the service's JetStream stream in bytes; the oldest events go first (0: no limit)")
		svcKey    = f.String("service-key", "", "this service's identity key for calls between services: a base64 Ed25519 seed")
		svcKeys   = f.String("service-keys", "", "public identity keys of the services allowed to call this one: name=<base64>,...")
		bodyGrace = f.Duration("body-grace", 10*time.Second, "time a request body has to start; after it, it must keep up --body-min-rate or is answered 408 and its connection closed (0: no pacing)")
		bodyRate  = f.Int("body-min-rate", 1024, "bytes a second a request body must average after --body-grace")
		writeTO   = f.Duration("write-timeout", 90*time.Second, "time to send an answer, counted from the end of the request body (0: no limit)")
		idleTO    = f.Duration("idle-timeout", 120*time.Second, "how long a keep-alive connection may stay idle")
		maxHeader = f.Int("max-header-bytes", 32<<10, "size limit of a request's line and headers; past it the answer is a 431 problem")
		tlsCert   = f.String("tls-cert", "", "this service's certificate (PEM) for mutual TLS, from the system's CA; with --tls-key and --tls-ca the service serves TLS to clients with a certificate from that CA only, and calls others over mutual TLS at https:// URLs")
		tlsKey    = f.String("tls-key", "", "the private key (PEM) of --tls-cert")
		tlsCA     = f.String("tls-ca", "", "the system's CA certificate (PEM): the only authority whose certificates are trusted, both ways")
		pprofOn   = f.Bool("pprof", false, "serve Go's profiles (net/http/pprof) under /debug/pprof/ on the service's port (and on --ops-addr); off by default, as they expose internals")
		opsAddr   = f.String("ops-addr", "", "address of a plain-HTTP operations port serving only /healthz, /readyz and /metrics (and profiles with --pprof), for kubelet probes and Prometheus, which present no client certificate to a service with --tls-cert; no route of the service is served there (empty: none)")
	)
	urls := map[string]*string{}
	for _, name := range spec.Needs() {
		usage := "base URL of the " + name + " service"
		if name == tokenIssuer {
			usage += ", for its JWKS"
		}
		urls[name] = f.String(name+"-url", spec.Peers[name], usage+" (comma-separated for replicas)")
	}
	if _, ok := urls[tokenIssuer]; !ok {
		// Every service takes the flag, so one configuration fits all;
		// the issuer itself does not use it.
		f.String(tokenIssuer+"-url", spec.Peers[tokenIssuer], "base URL of the "+tokenIssuer+" service (unused: "+spec.Name+" issues the tokens)")
	}
	var build Build
	if spec.Setup != nil {
		build = spec.Setup(f)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: microshop serve %s [flags]\n\n%s\n\nEvery flag can also be set with the environment variable named after it.\n\nFlags:\n", spec.Name, spec.Summary)
		fs.PrintDefaults()
	}
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *sMaxAge != 0 && *sMaxAge < events.DuplicateWindow || *sMaxAge < 0 || *sMaxBytes < 0 {
		return fmt.Errorf("--stream-max-age must be 0 (forever) or at least %s, and --stream-max-bytes 0 or more", events.DuplicateWindow)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	level, err := logging.ParseLevel(*logLevel)
	if err != nil {
		return err
	}
	log := logging.New(stdout, spec.Name, level)
	serviceKeys, err := auth.ParseServiceKeys(spec.Name, *svcKey, *svcKeys)
	if err != nil {
		return err
	}

	identity, err := loadIdentity(spec, mtls.Files{Cert: *tlsCert, Key: *tlsKey, CA: *tlsCA}, urls, getenv, log)
	if err != nil {
		return err
	}

	tel, err := telemetry.New(ctx, spec.Name, getenv)
	if err != nil {
		return err
	}
	defer func() {
		// Flush the last spans; a collector that is gone must not hold
		// up the stop.
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()

	reg := prometheus.NewRegistry()
	rt := &Runtime{Name: spec.Name, Log: log, Registry: reg, DataDir: *dataDir, errs: make(chan error, 1),
		ServiceKeys: serviceKeys, Credentials: auth.NewCredentials(serviceKeys), ClientMetrics: client.NewMetrics(reg), Telemetry: tel,
		System: serviceKeys.System(), OpenAPI: spec.OpenAPI(), spec: spec, urls: urls, TLS: identity}
	checks := map[string]server.Check{}

	if spec.Migrations() != nil {
		db, err := openMigrated(ctx, spec, *dbSource, *dataDir, log)
		if err != nil {
			return err
		}
		defer db.Close()
		rt.DB = db
		checks["database"] = db.Ping
		log.Info("database ready", "dialect", string(db.Dialect), "source", db.Source)
	}
	if len(spec.Publishes) > 0 || len(spec.Consumes) > 0 {
		nc, js, err := broker.Connect(*natsURL, broker.Credential{Name: spec.Name, Seed: *natsSeed}, log)
		if err != nil {
			return err
		}
		defer nc.Close()
		rt.NATS, rt.JS = nc, js
		rt.ConsumerMetrics = events.NewConsumerMetrics(reg)
		checks["nats"] = broker.Check(nc)
	}

	var jwks []string
	usersURL := ""
	if u, ok := urls[tokenIssuer]; ok {
		usersURL = *u
	}
	for _, u := range strings.Split(usersURL, ",") {
		if u = strings.TrimSpace(u); u != "" {
			jwks = append(jwks, strings.TrimRight(u, "/")+"/.well-known/jwks.json")
		}
	}
	var jwksClient *http.Client // nil: the key set's own
	if opts.Registry != nil {
		rt.Transport = opts.Registry.Transport()
		jwksClient = &http.Client{Transport: rt.Transport, Timeout: 5 * time.Second}
	} else if rt.TLS != nil {
		jwksClient = &http.Client{Transport: rt.TLS.Transport(tokenIssuer), Timeout: 5 * time.Second}
	}
	rt.Keys = auth.NewRemoteKeySet(strings.Join(jwks, ","),
		filepath.Join(*dataDir, spec.Name+".jwks-cache.json"), jwksClient, log)
	rt.Verifier = auth.NewVerifier(rt.Keys)
	readyAs := ""
	if rt.System != "" {
		readyAs = spec.Name + "@" + rt.System
	}
	var serverTLS *tls.Config
	if rt.TLS != nil && !spec.Public {
		serverTLS = rt.TLS.ServerConfig()
	}
	rt.Server = server.New(server.Options{Service: spec.Name, Log: log, Registry: reg, Checks: checks, Telemetry: tel,
		MaxInFlight: *inFlight, DrainDelay: *drainWait, Identity: readyAs, TLS: serverTLS,
		Limits: &server.Limits{BodyGrace: *bodyGrace, BodyMinRate: int64(*bodyRate), WriteTimeout: *writeTO,
			IdleTimeout: *idleTO, MaxHeaderBytes: *maxHeader}})

	if *pprofOn {
		server.MountProfiles(rt.Server.Router)
		log.Warn("profiles are served under /debug/pprof/ (--pprof)")
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *addr, err)
	}
	defer ln.Close()
	rt.Addr = ln.Addr().String()
	if *opsAddr != "" {
		// Opened before Build, so that a port in use stops the start
		// rather than a job later on.
		ops, err := net.Listen("tcp", *opsAddr)
		if err != nil {
			return fmt.Errorf("--ops-addr %s: %w", *opsAddr, err)
		}
		defer ops.Close()
		rt.OpsAddr = ops.Addr().String()
		// A job: it ends after the main port has drained, so probes here
		// see /readyz answer 503 for the whole drain.
		rt.Go("operations port", func(ctx context.Context) error { return rt.Server.ServeOps(ctx, ops, *pprofOn) })
	}

	if build != nil {
		if err := build(ctx, rt); err != nil {
			return fmt.Errorf("starting %s: %w", spec.Name, err)
		}
	}
	if err := rt.checkConsumers(); err != nil {
		return fmt.Errorf("starting %s: %w", spec.Name, err)
	}
	if !spec.IssuesTokens {
		rt.Go("jwks refresh", func(ctx context.Context) error {
			rt.Keys.Run(ctx, 5*time.Minute)
			return nil
		})
	}
	if len(spec.Publishes) > 0 {
		rt.Go("stream", func(ctx context.Context) error {
			// The broker may be down at start; keep trying.
			for {
				limits := events.StreamLimits{Replicas: *sReplicas, MaxAge: *sMaxAge, MaxBytes: int64(*sMaxBytes)}
				if _, err := events.EnsureStreamLimits(ctx, rt.JS, spec.Name, limits); err == nil {
					return nil
				} else {
					log.Warn("creating the event stream failed; retrying", "err", err)
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(2 * time.Second):
				}
			}
		})
		relay := events.NewRelay(rt.DB, rt.JS, log, reg)
		relay.Telemetry = tel
		rt.Go("outbox relay", relay.Run)
	}

	var serving net.Listener = ln
	var local *inproc.Registration
	if opts.Registry != nil {
		// Served in-process too, under its own address, until the
		// listener closes: then in-process callers are refused like
		// everyone else, and the requests they have in flight drain.
		local, err = opts.Registry.Register(rt.Server, inprocBases(rt.Addr)...)
		if err != nil {
			return err
		}
		defer local.Close()
		serving = closeHook{Listener: ln, onClose: local.Close}
	}

	// The jobs outlive ctx: they stop once HTTP has drained, below.
	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	rt.start(bg)

	listening := []any{"addr", ln.Addr().String()}
	if rt.OpsAddr != "" {
		listening = append(listening, "ops_addr", rt.OpsAddr)
	}
	log.Info("serving", listening...)

	sctx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	serveErr := make(chan error, 1)
	go func() {
		err := rt.Server.Serve(sctx, serving, *drain)
		if local != nil {
			local.Close()
			wctx, cancel := context.WithTimeout(context.Background(), *drain)
			if werr := local.Wait(wctx); werr != nil && err == nil {
				err = fmt.Errorf("draining in-process requests: %w", werr)
			}
			cancel()
		}
		serveErr <- err
	}()

	select {
	case err = <-serveErr:
	case err = <-rt.errs:
		log.Error("a background task failed; stopping", "err", err)
		stopServing()
		if serr := <-serveErr; serr != nil {
			err = errors.Join(err, serr)
		}
	}
	// HTTP has drained; now stop consumers and the relay, then the stores
	// close through the defers above.
	stopBackground()
	rt.wg.Wait()
	if rt.NATS != nil {
		_ = rt.NATS.Drain()
	}
	log.Info("stopped")
	return err
}

// SkipPeerCheckEnv, set to 1, makes a service with --tls-cert accept any
// server certificate from the services it calls. It exists so the test
// of the check (test/security) can show that a stranger gets requests
// without it; it is no flag, so no configuration sets it by accident.
const SkipPeerCheckEnv = "MICROSHOP_TLS_TEST_SKIP_PEER_CHECK"

// loadIdentity reads the service's mutual TLS identity, or returns nil
// when no --tls-* flag is set. The certificate must name the service,
// and every URL it calls must then be https://.
func loadIdentity(spec Spec, f mtls.Files, urls map[string]*string, getenv func(string) string, log *slog.Logger) (*mtls.Identity, error) {
	if f.Cert == "" && f.Key == "" && f.CA == "" {
		return nil, nil
	}
	id, err := mtls.Load(f)
	if err != nil {
		return nil, err
	}
	if id.Name() != spec.Name {
		return nil, fmt.Errorf("--tls-cert %s names the service %s, not %s", f.Cert, id.Name(), spec.Name)
	}
	for name, u := range urls {
		for _, raw := range strings.Split(*u, ",") {
			if raw = strings.TrimSpace(raw); raw != "" && !strings.HasPrefix(raw, "https://") {
				return nil, fmt.Errorf("--%s-url %q: with --tls-cert every service is called over mutual TLS, so its URLs must be https://", name, raw)
			}
		}
	}
	if getenv(SkipPeerCheckEnv) == "1" {
		id.SkipPeerCheck = true
		log.Warn("mutual TLS: the services called are NOT checked ("+SkipPeerCheckEnv+"=1); for tests only", "service", spec.Name)
	}
	log.Info("mutual TLS", "name", id.Name(), "expires", id.NotAfter().UTC().Format(time.RFC3339), "serving_tls", !spec.Public)
	return id, nil
}

// closeHook runs onClose when the server closes its listener, which it
// does first when it stops.
type closeHook struct {
	net.Listener
	onClose func()
}

func (l closeHook) Close() error {
	l.onClose()
	return l.Listener.Close()
}

// inprocBases are the base URLs callers use for a service listening on
// addr: that address, or the loopback names when it listens on every
// interface.
func inprocBases(addr string) []string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return []string{"http://" + addr}
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return []string{"http://127.0.0.1:" + port, "http://localhost:" + port, "http://[::1]:" + port}
	}
	return []string{"http://" + net.JoinHostPort(host, port)}
}
