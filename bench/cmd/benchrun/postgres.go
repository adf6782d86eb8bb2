package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
)

// The postgres mode: microservices mode with every service's database on
// the machine's PostgreSQL (`microshop run --db`), each run in databases
// of its own, dropped after. What the services do on the server is
// measured from the server's side: commits from pg_stat_database, the
// backends from pg_stat_activity, and their CPU from /proc (the server's
// shared processes, such as its WAL writer and checkpointer, are not
// counted).

// postgresMode is the name of the mode in --modes and in the results.
const postgresMode = "postgres"

// pgServer is the PostgreSQL server of one mode's run.
type pgServer struct {
	url    string  // the server URL given to `microshop run --db`
	admin  *sql.DB // connected to the database named in url
	prefix string  // this run's databases are named prefix+service
}

// openPG connects to server and picks a fresh database-name prefix.
func openPG(ctx context.Context, server string) (*pgServer, error) {
	u, err := url.Parse(server)
	if err != nil {
		return nil, fmt.Errorf("--postgres: %w", err)
	}
	admin, err := sql.Open("pgx", server)
	if err != nil {
		return nil, fmt.Errorf("--postgres: %w", err)
	}
	admin.SetMaxOpenConns(2)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		return nil, fmt.Errorf("no PostgreSQL at %s: %w", u.Redacted(), err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &pgServer{url: server, admin: admin, prefix: "bench_" + hex.EncodeToString(b[:]) + "_"}, nil
}

// drop drops this run's databases and closes the connection.
func (pg *pgServer) drop() error {
	defer pg.admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := pg.admin.QueryContext(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, pg.prefix)
	if err != nil {
		return err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		names = append(names, n)
	}
	rows.Close()
	for _, n := range names {
		// The names are prefix+service, all plain: safe in the statement.
		if _, err := pg.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+n+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("dropping %s: %w", n, err)
		}
	}
	return nil
}

// commits is the sum of xact_commit over this run's databases. Every
// statement run outside a transaction block counts as one too, so this
// counts the services' round trips that are not inside a transaction.
// The server publishes these counters with a delay of up to a second.
func (pg *pgServer) commits(ctx context.Context) (int64, error) {
	var n int64
	err := pg.admin.QueryRowContext(ctx, `SELECT coalesce(sum(xact_commit), 0)::bigint FROM pg_stat_database WHERE starts_with(datname, $1)`,
		pg.prefix).Scan(&n)
	return n, err
}

// backends are the pids of the server processes connected to this run's
// databases.
func (pg *pgServer) backends(ctx context.Context) ([]int, error) {
	rows, err := pg.admin.QueryContext(ctx, `SELECT pid FROM pg_stat_activity WHERE starts_with(datname, $1)`, pg.prefix)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var p int
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// pgFigs is what the postgres mode measured on the server.
type pgFigs struct {
	IdleSeconds    float64
	IdleCommits    float64 // commits/s across the run's databases with no traffic
	IdleBackends   int
	PeakBackends   int     // the most backends seen during the checkout closed loop
	CommitsPer     float64 // commits (and lone statements) per confirmed checkout
	BackendCPUPer  float64 // ms of the backends' CPU per confirmed checkout
	BackendsSeen   int     // backends that were seen during the checkout loop
	measureErrored string
}

// measureIdle counts the commits over d with no traffic, and the backends.
func (pg *pgServer) measureIdle(ctx context.Context, d time.Duration, f *pgFigs) {
	// Let the counters of what came before be published first.
	sleep(ctx, 1500*time.Millisecond)
	a, err := pg.commits(ctx)
	if err != nil {
		f.measureErrored = err.Error()
		return
	}
	start := time.Now()
	sleep(ctx, d)
	// The counters lag: wait as long again as they may, then read.
	sleep(ctx, 1500*time.Millisecond)
	b, err := pg.commits(ctx)
	if err != nil {
		f.measureErrored = err.Error()
		return
	}
	// The 1.5s after the window is idle too: count it in.
	f.IdleSeconds = time.Since(start).Seconds()
	f.IdleCommits = float64(b-a) / f.IdleSeconds
	if bs, err := pg.backends(ctx); err == nil {
		f.IdleBackends = len(bs)
	}
}

// backendWatch follows the backends during a load phase: their number
// and, for each one seen, its CPU time when first seen and last read.
type backendWatch struct {
	pg      *pgServer
	mu      sync.Mutex
	first   map[int]float64
	last    map[int]float64
	peak    int
	commits int64
	stop    chan struct{}
	done    chan struct{}
}

func (pg *pgServer) watch(ctx context.Context) *backendWatch {
	w := &backendWatch{pg: pg, first: map[int]float64{}, last: map[int]float64{}, stop: make(chan struct{}), done: make(chan struct{})}
	w.commits, _ = pg.commits(ctx)
	w.sample(ctx)
	go func() {
		defer close(w.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				w.sample(ctx)
			}
		}
	}()
	return w
}

func (w *backendWatch) sample(ctx context.Context) {
	pids, err := w.pg.backends(ctx)
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.peak = max(w.peak, len(pids))
	for _, p := range pids {
		s, err := cpuSeconds(p)
		if err != nil {
			continue
		}
		if _, ok := w.first[p]; !ok {
			w.first[p] = s
		}
		w.last[p] = s
	}
}

// finish stops the watch and fills f for n confirmed checkouts. A backend
// first seen during the phase counts from when it was first seen, and one
// that ended between two samples loses its last quarter second: both
// undercount a little.
func (w *backendWatch) finish(ctx context.Context, n int64, f *pgFigs) {
	close(w.stop)
	<-w.done
	w.sample(ctx)
	sleep(ctx, 1500*time.Millisecond) // the commit counters lag
	c, err := w.pg.commits(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	var cpu float64
	for p, s := range w.last {
		cpu += s - w.first[p]
	}
	f.PeakBackends, f.BackendsSeen = w.peak, len(w.first)
	f.BackendCPUPer = perOp(cpu, n)
	if err == nil && n > 0 {
		f.CommitsPer = float64(c-w.commits) / float64(n)
	}
}
