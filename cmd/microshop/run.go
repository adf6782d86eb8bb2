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
	}, stdout, stderr)
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
