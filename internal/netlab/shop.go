//go:build linux

package netlab

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to create the databases
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/internal/mailbox"
	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/broker"
	"github.com/microshop/microshop/internal/platform/mtls"
	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/internal/topology"
)

// Replicated are the services that run twice, each replica on a host of
// its own; every other service runs once.
var Replicated = []string{"inventory", "payments", "orders"}

// Ports of the servers on their hosts. Every host has its own address,
// so they can all use the standard ones.
const (
	PostgresPort = 5432
	NATSPort     = 4222
	RoutePort    = 6222 // NATS cluster routes
	SMTPPort     = 2525 // the mailbox, in the harness (the bridge's address)
	// GatewayMetricsPort serves the gateway's /metrics to other hosts
	// (its --metrics-addr): its public port serves them to loopback only.
	GatewayMetricsPort = 9180
)

// UpstreamTimeout is the gateway's deadline for one request to a service
// (its --upstream-timeout, the default): the documented deadline of a
// request through the gateway.
const UpstreamTimeout = 30 * time.Second

// SlowCardDelay is how long payments takes to authorize the slow test
// card: shorter than a call's 5s attempt, so the authorization succeeds,
// and long enough that a freeze finds the saga midway.
const SlowCardDelay = 3 * time.Second

// ShopOptions say what to run and where.
type ShopOptions struct {
	// Binary is the microshop binary whose "serve" runs the services.
	Binary string
	// Data holds every host's files, the logs and the mailbox.
	Data string
	// NATSServer is the nats-server binary; found on the PATH or in
	// /usr/sbin when empty.
	NATSServer string
	// PostgresBin is the folder with initdb and postgres; the newest
	// /usr/lib/postgresql/*/bin when empty.
	PostgresBin string
	// AdminEmail and AdminPassword make the admin account.
	AdminEmail, AdminPassword string
	// Env is added to every service's environment.
	Env []string
	// ReadyTimeout bounds the start (120s when zero).
	ReadyTimeout time.Duration
	// Logf, when set, receives what the shop does.
	Logf func(format string, args ...any)
}

// Proc is one process of the shop on its host.
type Proc struct {
	// Name is the service ("orders"), "nats" or "postgres"; Replica
	// counts from 0.
	Name    string
	Replica int
	Host    *Host
	URL     string
	Log     string

	cmd    *exec.Cmd
	exited chan struct{}
	frozen bool
}

// Shop is microshop spread over a Lab: PostgreSQL on a host of its own
// (a database per service), a three-node NATS JetStream cluster on three
// hosts with streams at three replicas, each service replica on its own
// host (two replicas of inventory, payments and orders), the gateway on
// its own, and a host for the load generator, which runs in this process
// and dials from that host's namespace (Load().DialContext).
type Shop struct {
	Lab *Lab
	// Gateway is the gateway's base URL.
	Gateway string
	// NATS are the cluster's client URLs.
	NATS []string
	// MailboxFile holds every email notifications sent.
	MailboxFile string

	opts        ShopOptions
	pgUser      *user.User
	seeds       map[string]string
	publics     string
	proxySecret string
	mb          *mailbox.Mailbox
	pgDir       string
	nc          *nats.Conn

	// Mutual TLS between the services, as `microshop run` has it: an
	// authority and a certificate per service under <Data>/tls, and the
	// harness's own ("supervisor") to read the services' state.
	tlsDir     string
	supervisor *mtls.Identity
	// NATS admits only the shop's users, each with its permissions
	// (natsConf, every node's configuration): a seed per service, and
	// the monitor's for the harness.
	natsSeeds map[string]string
	natsConf  string

	clientsMu sync.Mutex
	clients   map[string]*http.Client // ServiceClient's, by process

	mu    sync.Mutex
	procs []*Proc
}

// StartShop makes the hosts on lab and starts everything on them, ready.
// On failure it stops what it started; the caller closes lab.
func StartShop(ctx context.Context, lab *Lab, o ShopOptions) (*Shop, error) {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 120 * time.Second
	}
	var err error
	if o.NATSServer, err = findNATSServer(o.NATSServer); err != nil {
		return nil, err
	}
	if o.PostgresBin, err = findPostgres(o.PostgresBin); err != nil {
		return nil, err
	}
	s := &Shop{Lab: lab, opts: o, MailboxFile: filepath.Join(o.Data, "mailbox.jsonl")}
	if err := s.start(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func findNATSServer(p string) (string, error) {
	if p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nats-server"); err == nil {
		return "/usr/sbin/nats-server", nil
	}
	return "", errors.New("no nats-server binary for the NATS cluster (Debian: apt-get install nats-server)")
}

func findPostgres(dir string) (string, error) {
	if dir == "" {
		found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
		sort.Slice(found, func(i, j int) bool { return pgVersion(found[i]) < pgVersion(found[j]) })
		if len(found) == 0 {
			return "", errors.New("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)")
		}
		dir = filepath.Dir(found[len(found)-1])
	}
	for _, b := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("PostgreSQL: no %s in %s", b, dir)
		}
	}
	return dir, nil
}

func pgVersion(path string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return n
}

// Hosts of the shop, in the order they are made.
func hostNames() []string {
	names := []string{"postgres", "nats1", "nats2", "nats3"}
	for _, spec := range topology.Services() {
		if slices.Contains(Replicated, spec.Name) {
			names = append(names, spec.Name+"1", spec.Name+"2")
		} else {
			names = append(names, spec.Name)
		}
	}
	return append(names, "load")
}

// hostOf is the host of a process.
func hostOf(name string, replica int) string {
	switch {
	case name == "postgres":
		return name
	case name == "nats" || slices.Contains(Replicated, name):
		return fmt.Sprintf("%s%d", name, replica+1)
	}
	return name
}

func (s *Shop) start(ctx context.Context) error {
	o := s.opts
	if err := os.MkdirAll(filepath.Join(o.Data, "logs"), 0o755); err != nil {
		return err
	}
	// PostgreSQL runs as its own user, which must reach its folder: one
	// of its own, as the caller's may sit below folders only root enters.
	var err error
	if s.pgDir, err = os.MkdirTemp("", "microshop-netlab-postgres-"); err != nil {
		return err
	}
	if err := os.Chmod(s.pgDir, 0o755); err != nil {
		return err
	}
	for _, name := range hostNames() {
		if _, err := s.Lab.AddHost(ctx, name); err != nil {
			return err
		}
	}
	if s.seeds, s.publics, err = auth.GenerateServiceKeys(topology.Names()); err != nil {
		return fmt.Errorf("making service keys: %w", err)
	}
	s.proxySecret = strconv.FormatInt(time.Now().UnixNano(), 36) + "-netlab"
	if err := s.makeTLS(); err != nil {
		return err
	}
	if err := s.makeNATSUsers(); err != nil {
		return err
	}

	// The mailbox listens in the harness, on the bridge's address.
	s.mb, err = mailbox.Open(s.MailboxFile, 1000, 0, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(s.Lab.Gateway(), strconv.Itoa(SMTPPort)))
	if err != nil {
		return fmt.Errorf("the mailbox's SMTP port: %w", err)
	}
	s.mb.ListenSMTP(ln)

	o.Logf("starting PostgreSQL on %s", s.Lab.Host("postgres").IP)
	if err := s.startPostgres(ctx); err != nil {
		return err
	}
	if err := s.createDatabases(ctx); err != nil {
		return err
	}
	for i := range 3 {
		s.NATS = append(s.NATS, fmt.Sprintf("nats://%s:%d", s.Lab.Host(hostOf("nats", i)).IP, NATSPort))
	}
	o.Logf("starting the NATS cluster on %s", strings.Join(s.NATS, ", "))
	for i := range 3 {
		if _, err := s.launch("nats", i); err != nil {
			return err
		}
	}
	if err := s.waitJetStream(ctx); err != nil {
		return err
	}
	o.Logf("starting the services")
	for _, spec := range topology.Services() {
		for r := range replicas(spec.Name) {
			if _, err := s.launch(spec.Name, r); err != nil {
				return err
			}
		}
	}
	s.Gateway = s.serviceURL("gateway", 0)
	return s.waitReady(ctx)
}

func replicas(name string) int {
	if slices.Contains(Replicated, name) {
		return 2
	}
	return 1
}

// serviceURL is a replica's base URL: https, as the services serve
// mutual TLS, but for the gateway's public port.
func (s *Shop) serviceURL(name string, replica int) string {
	spec, _ := topology.Find(name)
	scheme := "https"
	if spec.Public {
		scheme = "http"
	}
	return fmt.Sprintf("%s://%s:%d", scheme, s.Lab.Host(hostOf(name, replica)).IP, spec.Port)
}

// makeTLS issues the authority and a certificate for every service and
// for the harness.
func (s *Shop) makeTLS() error {
	s.tlsDir = filepath.Join(s.opts.Data, "tls")
	names := append([]string{mtls.Supervisor}, topology.Names()...)
	if _, err := mtls.Ensure(s.tlsDir, names, time.Now()); err != nil {
		return fmt.Errorf("the services' certificates: %w", err)
	}
	var err error
	s.supervisor, err = mtls.Load(mtls.FilesIn(s.tlsDir, mtls.Supervisor))
	return err
}

// makeNATSUsers makes a NATS key for every service that uses the broker
// and for the monitor, and the nodes' configuration admitting them only.
func (s *Shop) makeNATSUsers() error {
	s.natsSeeds = map[string]string{}
	publics := map[string]string{}
	var roles []broker.Role
	names := []string{broker.Monitor}
	for _, spec := range topology.Services() {
		if len(spec.Publishes) == 0 && len(spec.Consumes) == 0 {
			continue // it never connects: no user
		}
		names = append(names, spec.Name)
		roles = append(roles, spec.BrokerRole())
	}
	for _, name := range names {
		seed, pub, err := broker.NewUserKey()
		if err != nil {
			return err
		}
		s.natsSeeds[name], publics[name] = seed, pub
	}
	users, err := broker.Users(roles, publics)
	if err != nil {
		return err
	}
	conf, err := broker.ServerConfig(users)
	if err != nil {
		return err
	}
	s.natsConf = filepath.Join(s.opts.Data, "nats.conf")
	return os.WriteFile(s.natsConf, conf, 0o600)
}

// client reaches the process name at its URL: over mutual TLS with the
// harness's certificate, checking that it is name, or in plain HTTP at an
// http:// URL.
func (s *Shop) client(name, url string, timeout time.Duration) *http.Client {
	c := &http.Client{Timeout: timeout}
	if strings.HasPrefix(url, "https://") {
		c.Transport = s.supervisor.Transport(name)
	}
	return c
}

func (s *Shop) pgData() string { return filepath.Join(s.pgDir, "data") }

// dbURL is the service's own database.
func (s *Shop) dbURL(db string) string {
	return fmt.Sprintf("postgres://postgres@%s:%d/%s?sslmode=disable", s.Lab.Host("postgres").IP, PostgresPort, db)
}

// startPostgres initialises a cluster (trusting the lab's addresses) and
// starts the server on its host, as the postgres user (the server
// refuses to run as root).
func (s *Shop) startPostgres(ctx context.Context) error {
	u, err := user.Lookup("postgres")
	if err != nil {
		if u, err = user.Lookup("nobody"); err != nil {
			return fmt.Errorf("no user to run PostgreSQL as: %w", err)
		}
	}
	s.pgUser = u
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	data := s.pgData()
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	if err := os.Chown(data, uid, gid); err != nil {
		return err
	}
	initdb := exec.CommandContext(ctx, "setpriv", "--reuid="+u.Uid, "--regid="+u.Gid, "--init-groups",
		filepath.Join(s.opts.PostgresBin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v: %s", err, out)
	}
	hba, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(hba, "host all all 198.18.0.0/15 trust\n")
	if cerr := hba.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if _, err := s.launch("postgres", 0); err != nil {
		return err
	}
	addr := net.JoinHostPort(s.Lab.Host("postgres").IP, strconv.Itoa(PostgresPort))
	return waitFor(ctx, 30*time.Second, "PostgreSQL at "+addr, func() bool {
		db, err := sql.Open("pgx", s.dbURL("postgres"))
		if err != nil {
			return false
		}
		defer db.Close()
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return db.PingContext(pctx) == nil
	})
}

func (s *Shop) createDatabases(ctx context.Context) error {
	db, err := sql.Open("pgx", s.dbURL("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	for _, spec := range topology.Services() {
		if spec.Migrations() == nil {
			continue
		}
		// The names are the topology's own: safe in the statement.
		if _, err := db.ExecContext(ctx, "CREATE DATABASE "+spec.Name); err != nil {
			return fmt.Errorf("creating database %s: %w", spec.Name, err)
		}
	}
	return nil
}

// waitJetStream waits until the cluster has elected its JetStream meta
// leader: the services create their streams at start.
func (s *Shop) waitJetStream(ctx context.Context) error {
	opts, err := broker.Credential{Name: broker.Monitor, Seed: s.natsSeeds[broker.Monitor]}.Options()
	if err != nil {
		return err
	}
	nc, err := nats.Connect(strings.Join(s.NATS, ","), append(opts, nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1),
		nats.PingInterval(broker.PingInterval), nats.MaxPingsOutstanding(broker.MaxPingsOutstanding))...)
	if err != nil {
		return err
	}
	s.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	return waitFor(ctx, 60*time.Second, "the NATS cluster's JetStream", func() bool {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := js.AccountInfo(actx)
		return err == nil
	})
}

func (s *Shop) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(s.opts.ReadyTimeout)
	procs, _ := s.Processes()
	for _, p := range procs {
		if !strings.HasPrefix(p.URL, "http") {
			continue
		}
		client := s.client(p.Name, p.URL, 2*time.Second)
		err := waitFor(ctx, time.Until(deadline), p.Name+" on "+hostOf(p.Name, p.Replica), func() bool {
			resp, err := client.Get(p.URL + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		if err != nil {
			return fmt.Errorf("%w (see %s)", err, p.Log)
		}
	}
	return nil
}

func waitFor(ctx context.Context, d time.Duration, what string, ok func() bool) error {
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s was not ready within %s", what, d.Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// command is the command line and environment of a process of the
// shop. serviceCommand makes the services'.
func (s *Shop) command(name string, replica int) (args, env []string, url string) {
	h := s.Lab.Host(hostOf(name, replica))
	switch name {
	case "postgres":
		// Keep-alive and a user timeout on the server's side too, so
		// the backends of clients behind a partition go, with their locks.
		return []string{"setpriv", "--reuid=" + s.pgUser.Uid, "--regid=" + s.pgUser.Gid, "--init-groups",
			filepath.Join(s.opts.PostgresBin, "postgres"), "-D", s.pgData(),
			"-c", "listen_addresses=" + h.IP, "-c", "port=" + strconv.Itoa(PostgresPort), "-c", "unix_socket_directories=" + s.pgData(),
			"-c", "max_connections=300", "-c", "shared_buffers=64MB",
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "tcp_keepalives_idle=5", "-c", "tcp_keepalives_interval=2", "-c", "tcp_keepalives_count=3",
			"-c", "tcp_user_timeout=15000"}, nil, s.dbURL("postgres")
	case "nats":
		var routes []string
		for i := range 3 {
			routes = append(routes, fmt.Sprintf("nats-route://%s:%d", s.Lab.Host(hostOf("nats", i)).IP, RoutePort))
		}
		return []string{s.opts.NATSServer, "-c", s.natsConf, "-a", h.IP, "-p", strconv.Itoa(NATSPort), "-js",
			"-sd", filepath.Join(s.opts.Data, h.Name), "--server_name", h.Name, "--cluster_name", "microshop-netlab",
			"--cluster", fmt.Sprintf("nats://%s:%d", h.IP, RoutePort), "--routes", strings.Join(routes, ",")}, nil, s.NATS[replica]
	}
	args, env = s.serviceCommand(name, replica)
	return args, env, s.serviceURL(name, replica)
}

// serviceCommand is the one place that says how a service runs on the
// lab: `microshop serve <name>` on its host's address, its own database
// on the PostgreSQL host, the NATS cluster with streams at three
// replicas, and its peers' addresses (every replica of each).
func (s *Shop) serviceCommand(name string, replica int) (args, env []string) {
	spec, _ := topology.Find(name)
	h := s.Lab.Host(hostOf(name, replica))
	args = []string{s.opts.Binary, "serve", name,
		"--addr", net.JoinHostPort(h.IP, strconv.Itoa(spec.Port)),
		"--data", filepath.Join(s.opts.Data, h.Name),
		"--nats", strings.Join(s.NATS, ","),
		"--stream-replicas", "3",
		"--log-level", "info",
	}
	if spec.Migrations() != nil {
		args = append(args, "--db", s.dbURL(name))
	}
	switch name {
	case "notifications":
		args = append(args, "--smtp-url", fmt.Sprintf("smtp://%s:%d", s.Lab.Gateway(), SMTPPort))
	case "gateway":
		args = append(args, "--upstream-timeout", UpstreamTimeout.String(),
			"--metrics-addr", net.JoinHostPort(h.IP, strconv.Itoa(GatewayMetricsPort)))
	case "orders":
		args = append(args, "--replica-id", h.Name)
	case "payments":
		args = append(args, "--slow-card-delay", SlowCardDelay.String())
	}
	env = append(env, s.opts.Env...)
	env = append(env, topology.Env(spec, func(peer string) string {
		var urls []string
		for r := range replicas(peer) {
			urls = append(urls, s.serviceURL(peer, r))
		}
		return strings.Join(urls, ",")
	})...)
	tlsFiles := mtls.FilesIn(s.tlsDir, name)
	env = append(env,
		"MICROSHOP_TLS_CERT="+tlsFiles.Cert, "MICROSHOP_TLS_KEY="+tlsFiles.Key, "MICROSHOP_TLS_CA="+tlsFiles.CA,
		"MICROSHOP_NATS_SEED="+s.natsSeeds[name],
		"MICROSHOP_SERVICE_KEY="+s.seeds[name],
		"MICROSHOP_SERVICE_KEYS="+s.publics,
		"MICROSHOP_PROXY_SECRET="+s.proxySecret,
		"MICROSHOP_ADMIN_EMAIL="+s.opts.AdminEmail,
		"MICROSHOP_ADMIN_PASSWORD="+s.opts.AdminPassword,
		"OTEL_TRACES_EXPORTER=none",
	)
	return args, env
}

// launch starts a process of the shop on its host.
func (s *Shop) launch(name string, replica int) (*Proc, error) {
	args, env, url := s.command(name, replica)
	h := s.Lab.Host(hostOf(name, replica))
	logPath := filepath.Join(s.opts.Data, "logs", h.Name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	localrun.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s on %s: %w", name, h.Name, err)
	}
	p := &Proc{Name: name, Replica: replica, Host: h, URL: url, Log: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	s.mu.Lock()
	s.procs = slices.DeleteFunc(s.procs, func(q *Proc) bool { return q.Name == name && q.Replica == replica })
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p, nil
}

// Proc returns the named process, or nil.
func (s *Shop) Proc(name string, replica int) *Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.procs {
		if p.Name == name && p.Replica == replica {
			return p
		}
	}
	return nil
}

func (p *Proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Processes lists the shop's processes (chaos.System).
func (s *Shop) Processes() ([]localrun.Process, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]localrun.Process, 0, len(s.procs))
	for _, p := range s.procs {
		lp := localrun.Process{Name: p.Name, Replica: p.Replica, URL: p.URL, Log: p.Log, Running: p.running()}
		if p.cmd.Process != nil {
			lp.PID = p.cmd.Process.Pid
		}
		out = append(out, lp)
	}
	return out, nil
}

// Kill kills replica 0 of the named process with SIGKILL and waits until
// it is gone (chaos.System).
func (s *Shop) Kill(name string) (int, error) {
	p := s.Proc(name, 0)
	if p == nil {
		return 0, fmt.Errorf("no process %s", name)
	}
	pid := p.cmd.Process.Pid
	_ = p.cmd.Process.Kill()
	<-p.exited
	return pid, nil
}

// Start starts replica 0 of the named process again and waits until it
// is ready (chaos.System).
func (s *Shop) Start(ctx context.Context, name string) (localrun.Process, error) {
	return s.StartReplica(ctx, name, 0)
}

// StartReplica starts a process that is not running again.
func (s *Shop) StartReplica(ctx context.Context, name string, replica int) (localrun.Process, error) {
	if p := s.Proc(name, replica); p != nil && p.running() {
		return localrun.Process{}, fmt.Errorf("%s %d is already running", name, replica)
	}
	p, err := s.launch(name, replica)
	if err != nil {
		return localrun.Process{}, err
	}
	if strings.HasPrefix(p.URL, "http") {
		client := &http.Client{Timeout: 2 * time.Second}
		if err := waitFor(ctx, 60*time.Second, name, func() bool {
			resp, err := client.Get(p.URL + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}); err != nil {
			return localrun.Process{}, err
		}
	}
	return localrun.Process{Name: name, Replica: replica, URL: p.URL, PID: p.cmd.Process.Pid, Log: p.Log, Running: true}, nil
}

// Freeze stops a process with SIGSTOP: it holds its connections and
// answers nothing, like a machine that hangs.
func (s *Shop) Freeze(name string, replica int) (int, error) {
	return s.signal(name, replica, syscall.SIGSTOP, true)
}

// SagasHeld counts the unfinished sagas whose lease the orders replica
// holds now, read from orders' database (the harness reads the lease
// columns, lease_owner being the replica's --replica-id, its host's name):
// a freeze of that replica is to catch sagas midway.
func (s *Shop) SagasHeld(ctx context.Context, replica int) (int, error) {
	db, err := sql.Open("pgx", s.dbURL("orders"))
	if err != nil {
		return 0, err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var n int
	err = db.QueryRowContext(ctx, `SELECT count(*) FROM orders WHERE saga_step <> 'done' AND lease_owner = $1 AND lease_until > $2`,
		hostOf("orders", replica), time.Now().UnixMilli()).Scan(&n)
	return n, err
}

// Thaw continues a frozen process with SIGCONT.
func (s *Shop) Thaw(name string, replica int) (int, error) {
	return s.signal(name, replica, syscall.SIGCONT, false)
}

func (s *Shop) signal(name string, replica int, sig syscall.Signal, frozen bool) (int, error) {
	p := s.Proc(name, replica)
	if p == nil || !p.running() {
		return 0, fmt.Errorf("%s %d is not running", name, replica)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return 0, err
	}
	s.mu.Lock()
	p.frozen = frozen
	s.mu.Unlock()
	return p.cmd.Process.Pid, nil
}

// Heal thaws every frozen process and undoes every network fault.
func (s *Shop) Heal(ctx context.Context) error {
	s.mu.Lock()
	var frozen []*Proc
	for _, p := range s.procs {
		if p.frozen {
			frozen = append(frozen, p)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, p := range frozen {
		_, err := s.Thaw(p.Name, p.Replica)
		errs = append(errs, err)
	}
	return errors.Join(append(errs, s.Lab.Heal(ctx))...)
}

// Load is the load generator's host.
func (s *Shop) Load() *Host { return s.Lab.Host("load") }

// Streams reports the broker's streams and their consumers' lag, read
// from the harness (chaos.Config.Streams).
func (s *Shop) Streams(ctx context.Context) ([]shopclient.Stream, error) {
	js, err := jetstream.New(s.nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var out []shopclient.Stream
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		st, err := js.Stream(ctx, name)
		if err != nil {
			return nil, err
		}
		info := st.CachedInfo()
		ss := shopclient.Stream{Name: name, Messages: info.State.Msgs}
		cons := st.ListConsumers(ctx)
		for c := range cons.Info() {
			ss.Consumers = append(ss.Consumers, shopclient.Consumer{Name: c.Name, Lag: c.NumPending, AckPending: c.NumAckPending, Redelivered: c.NumRedelivered})
		}
		if err := cons.Err(); err != nil {
			return nil, err
		}
		out = append(out, ss)
	}
	return out, names.Err()
}

// Stop thaws and stops every process: the gateway and the services with
// SIGTERM (they drain), then the broker and the database; whatever
// remains after a while is killed. It closes the mailbox.
func (s *Shop) Stop() {
	s.mu.Lock()
	procs := slices.Clone(s.procs)
	s.mu.Unlock()
	rank := func(p *Proc) int {
		switch p.Name {
		case "postgres":
			return 2
		case "nats":
			return 1
		}
		return 0
	}
	for stage := range 3 {
		var wg sync.WaitGroup
		for _, p := range procs {
			if rank(p) != stage || !p.running() {
				continue
			}
			wg.Go(func() {
				stop := syscall.SIGTERM // the services drain
				if p.Name == "postgres" {
					stop = syscall.SIGINT // fast shutdown: its clients are gone
				}
				_ = p.cmd.Process.Signal(syscall.SIGCONT)
				_ = p.cmd.Process.Signal(stop)
				select {
				case <-p.exited:
				case <-time.After(10 * time.Second):
					_ = p.cmd.Process.Kill()
					<-p.exited
				}
			})
		}
		wg.Wait()
	}
	if s.nc != nil {
		s.nc.Close()
	}
	if s.mb != nil {
		_ = s.mb.Close()
	}
	if s.pgDir != "" {
		_ = os.RemoveAll(s.pgDir)
	}
}

// ServiceClient reaches a process of the shop to read its state: a
// service over mutual TLS with the harness's certificate, the gateway,
// whose public port serves /metrics to loopback only, at its metrics
// port (GatewayMetricsPort) in plain HTTP.
func (s *Shop) ServiceClient(name string) *http.Client {
	s.clientsMu.Lock()
	defer s.clientsMu.Unlock()
	if c, ok := s.clients[name]; ok {
		return c
	}
	if s.clients == nil {
		s.clients = map[string]*http.Client{}
	}
	c := s.client(name, s.serviceURL(name, 0), 10*time.Second)
	if name == "gateway" {
		metrics := net.JoinHostPort(s.Lab.Host(hostOf("gateway", 0)).IP, strconv.Itoa(GatewayMetricsPort))
		var d net.Dialer
		c.Transport = &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, metrics)
		}}
	}
	s.clients[name] = c
	return c
}
