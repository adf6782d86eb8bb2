package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/internal/platform/config"
	"github.com/microshop/microshop/internal/topology"
)

func runSystem(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("microshop run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := config.New(fs, getenv)
	var (
		dataDir   = f.String("data", "data", "directory for every service's SQLite file, the NATS store and the logs")
		port      = f.Int("port", 8080, "the gateway's port; services listen on the next six ports (users +1 ... reports +6)")
		natsPort  = f.Int("nats-port", 4223, "port of the embedded NATS JetStream server")
		mode      = f.String("mode", "microservices", "microservices: one process per service; monolith: every service in this one process, their calls to each other in-process")
		logLevel  = f.String("log-level", "info", "log level of the services: debug, info, warn or error")
		timeout   = f.Duration("ready-timeout", 30*time.Second, "how long to wait for every service to become ready")
		replicas  = f.String("replicas", "", "replicas per service, e.g. payments=3,inventory=2 (default 1 each; at most 5)")
		dbURL     = f.String("db", "", "a Postgres server URL such as postgres://user@host:5432/ to keep every service's database there (one database per service, created when missing) instead of SQLite files")
		dbPrefix  = f.String("db-prefix", "", "prefix of the per-service database names on --db (e.g. test1_ gives test1_users, ...)")
		extNATS   = f.String("nats", "", "an outside NATS JetStream URL such as nats://host:4222 to use instead of starting one")
		memLimit  = f.String("memory-limit", "32MiB", "the Go memory limit (GOMEMLIMIT) of every process run starts and of run itself, e.g. 32MiB or 1GiB; in monolith mode run's is this times the number of services; off for none. A GOMEMLIMIT in run's environment wins")
		tracesMiB = f.Int("traces-mib", 4, "MiB of memory the built-in trace collector keeps the newest traces in (the oldest go first)")
		useMTLS   = f.Bool("mtls", true, "mutual TLS between the services (microservices mode): each serves TLS with a certificate from the CA under <data>/tls/, and calls only peers that prove to be the service called; false runs them in plain HTTP")
		mailMiB   = f.Int("mailbox-mib", 2, "MiB of memory the built-in mailbox keeps the newest messages in (every message stays in <data>/mailbox.jsonl until it is compacted)")
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
SMTP server +8 and the trace collector +9; NATS on --nats-port. Replica k
of a service listens 100×k above the service's port.

Logs go to <data>/logs/<process>.log, the processes are listed in
<data>/run.json, and "microshop start|scale|restart ... --data <dir>" act
on the running system through <data>/control.sock.

On Linux the services stop when run dies; on macOS and Windows a run that
is killed (rather than stopped) leaves them running. On Windows a service
is stopped with CTRL_BREAK, or killed when that cannot be sent.

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
	scaleTo, err := parseReplicas(*replicas)
	if err != nil {
		return err
	}
	limit, err := parseMemory(*memLimit)
	if err != nil {
		return fmt.Errorf("--memory-limit: %w", err)
	}
	if *tracesMiB < 1 || *mailMiB < 1 {
		return fmt.Errorf("--traces-mib and --mailbox-mib: want 1 or more, not %d and %d", *tracesMiB, *mailMiB)
	}
	return localrun.Run(ctx, localrun.Config{
		Specs:        topology.Services(),
		Data:         *dataDir,
		Ports:        localrun.Ports{Gateway: *port, NATS: *natsPort},
		Mode:         *mode,
		LogLevel:     *logLevel,
		ReadyTimeout: *timeout,
		Replicas:     scaleTo,
		DB:           *dbURL,
		DBPrefix:     *dbPrefix,
		NATS:         *extNATS,
		Getenv:       getenv,
		PlainHTTP:    !*useMTLS,
		MemoryLimit:  limit,
		TracesBytes:  int64(*tracesMiB) << 20,
		MailboxBytes: int64(*mailMiB) << 20,
	}, stdout, stderr)
}

// parseMemory reads a size as GOMEMLIMIT writes it (a number of bytes
// with an optional B, KiB, MiB, GiB or TiB), or "off" for no limit.
func parseMemory(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return 0, nil
	}
	units := []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}
	num, shift := s, uint(0)
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			num, shift = v, u.shift
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("%q: want a size such as 32MiB, 512KiB or 1GiB, or off", s)
	}
	if n<<shift < 4<<20 {
		return 0, fmt.Errorf("%q is below 4MiB: no Go process runs in that", s)
	}
	return n << shift, nil
}

// parseReplicas reads "payments=3,inventory=2"; localrun checks the names
// and counts.
func parseReplicas(s string) (map[string]int, error) {
	out := map[string]int{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, pair := range strings.Split(s, ",") {
		name, count, ok := strings.Cut(strings.TrimSpace(pair), "=")
		n, err := strconv.Atoi(count)
		if !ok || err != nil {
			return nil, fmt.Errorf("--replicas %q: want service=count pairs such as payments=3,inventory=2", s)
		}
		out[name] = n
	}
	return out, nil
}
