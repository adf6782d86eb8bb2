// Package database opens a service's own database, SQLite by default or
// Postgres when given a postgres:// URL, and applies its migrations.
//
// Services write portable SQL: $1-style placeholders (both drivers accept
// them), INSERT ... ON CONFLICT, RETURNING, integer money and integer
// unix-millisecond times. Where the dialects truly differ, a migrations
// folder may hold a sub-folder per dialect.
package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib" // also registers the "pgx" driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Dialect names the SQL engine behind a DB.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is one service's database. Reads go through the embedded pool;
// writes go through Write, which for SQLite is a single connection so
// transactions queue in the process instead of failing with SQLITE_BUSY.
type DB struct {
	*sql.DB
	write   *sql.DB
	Dialect Dialect
	// Source is the database's location with any password removed.
	Source string

	group   *groupWriter // SQLite: the one writer, merging transactions (group.go)
	commits signal       // wakes the workers waiting for a commit

	pingMu sync.Mutex
	pinged time.Time // Postgres: the last successful Ping
}

// IsPostgres reports whether source names a Postgres database.
func IsPostgres(source string) bool {
	return strings.HasPrefix(source, "postgres://") || strings.HasPrefix(source, "postgresql://")
}

// Open opens the database at source: a postgres:// URL, or a SQLite file
// path (created, with its directory, when missing).
func Open(ctx context.Context, source string) (*DB, error) {
	if IsPostgres(source) {
		return openPostgres(ctx, source)
	}
	return openSQLite(ctx, strings.TrimPrefix(source, "sqlite:"))
}

// How a connection to Postgres notices that the server is gone. A
// partition or a frozen server leaves connections half-open: nothing
// answers and nothing closes, and without these a query (or a pooled
// connection taken for one) waits for TCP's own retransmission limit,
// about 15 minutes on Linux. With them:
//   - ConnectTimeout bounds opening a connection (unless the URL's
//     connect_timeout says otherwise);
//   - TCP keep-alive probes an idle connection after KeepAliveIdle, every
//     KeepAliveInterval, and drops it after KeepAliveCount unanswered
//     probes, so the pool does not hand out a dead connection;
//   - TCPUserTimeout drops a connection whose sent data stays
//     unacknowledged that long, so a query on a half-open connection
//     fails instead of hanging.
const (
	ConnectTimeout    = 5 * time.Second
	KeepAliveIdle     = 5 * time.Second
	KeepAliveInterval = 2 * time.Second
	KeepAliveCount    = 3
	TCPUserTimeout    = 15 * time.Second
)

// Deadlines the server keeps for each session, so that work whose caller
// set none (a background loop, a request without a deadline) still ends,
// and a transaction whose client vanished behind a partition does not
// hold its locks: the server cancels a statement after StatementTimeout
// (lock waits included) and ends a session left idle inside a
// transaction for IdleInTransactionTimeout. The server also probes and
// drops its side of a dead connection with the client's keep-alive
// figures. A URL that names any of these settings keeps its own.
const (
	StatementTimeout         = 15 * time.Second
	IdleInTransactionTimeout = 30 * time.Second
)

// sessionSettings are the server settings each connection asks for.
func sessionSettings() map[string]string {
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	s := func(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) }
	return map[string]string{
		"statement_timeout":                   ms(StatementTimeout),
		"idle_in_transaction_session_timeout": ms(IdleInTransactionTimeout),
		"tcp_keepalives_idle":                 s(KeepAliveIdle),
		"tcp_keepalives_interval":             s(KeepAliveInterval),
		"tcp_keepalives_count":                strconv.Itoa(KeepAliveCount),
		"tcp_user_timeout":                    ms(TCPUserTimeout),
	}
}

// postgresConfig parses source and sets the connection's timeouts and
// keep-alive (see ConnectTimeout).
func postgresConfig(source string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(source)
	if err != nil {
		return nil, err
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = ConnectTimeout
	}
	for k, v := range sessionSettings() {
		if _, set := cfg.RuntimeParams[k]; !set {
			cfg.RuntimeParams[k] = v
		}
	}
	d := &net.Dialer{
		Timeout: cfg.ConnectTimeout,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: KeepAliveIdle,
			Interval: KeepAliveInterval, Count: KeepAliveCount},
		Control: userTimeout(TCPUserTimeout),
	}
	cfg.DialFunc = d.DialContext
	return cfg, nil
}

// PostgresConns is the most connections a process keeps to its Postgres
// database. The server does the work of a statement, so a few
// connections per process keep its cores busy; one backend per
// goroutine (this was 16 per process, 69 backends in all under load) only
// adds context switches and memory on the server, and callers queue in
// the pool instead.
const PostgresConns = 4

// PingIdle is how long a pooled connection may sit unused before it is
// pinged when taken again (pgx pings after one second by default). Each
// ping is a round trip and, on the server, a transaction, and the
// background loops that take a connection every few seconds when the
// system is idle would each ping. A connection idle for less than this
// was used a moment ago, and TCP keep-alive (KeepAliveIdle) finds one
// whose server went away: the write then fails before anything was sent,
// and database/sql retries on another connection.
const PingIdle = 30 * time.Second

func shouldPing(_ context.Context, p stdlib.ShouldPingParams) bool {
	return p.IdleDuration > PingIdle
}

func openPostgres(ctx context.Context, source string) (*DB, error) {
	cfg, err := postgresConfig(source)
	if err != nil {
		return nil, fmt.Errorf("opening postgres: %w", err)
	}
	pool := sql.OpenDB(lazyBeginConnector{stdlib.GetConnector(*cfg, stdlib.OptionShouldPing(shouldPing))})
	pool.SetMaxOpenConns(PostgresConns)
	pool.SetMaxIdleConns(PostgresConns)
	if err := pool.PingContext(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to postgres at %s: %w", Redact(source), err)
	}
	return &DB{DB: pool, write: pool, Dialect: Postgres, Source: Redact(source)}, nil
}

func openSQLite(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("opening sqlite: no file path given")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("creating the database directory: %w", err)
		}
	}
	// The file holds a service's whole state (password hashes, signing
	// keys, orders): readable by its owner only. SQLite gives the -wal and
	// -shm files it makes the same mode.
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating the database file: %w", err)
	}
	f.Close()
	// WAL lets readers run beside the writer (and beside other processes
	// of the same service); synchronous=NORMAL is durable across process
	// crashes, which is the failure this system is built to survive.
	pragmas := "_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	dsn := "file:" + path + "?" + pragmas
	// Both pools keep their prepared statements (see stmtcache.go).
	write, err := sql.Open(writerDriverName, dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("opening sqlite %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	if err := write.PingContext(ctx); err != nil {
		write.Close()
		return nil, fmt.Errorf("opening sqlite %s: %w", path, err)
	}
	read, err := sql.Open(cachedDriverName, dsn)
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("opening sqlite %s: %w", path, err)
	}
	read.SetMaxOpenConns(4)
	read.SetMaxIdleConns(4)
	db := &DB{DB: read, write: write, Dialect: SQLite, Source: path}
	db.group = newGroupWriter(write, db.commits.notify)
	return db, nil
}

// Close closes both pools.
func (db *DB) Close() error {
	if db.group != nil {
		db.group.close()
	}
	err := db.DB.Close()
	if db.write != db.DB {
		err = errors.Join(err, db.write.Close())
	}
	return err
}

// Writer is the pool that write transactions must use.
func (db *DB) Writer() *sql.DB { return db.write }

// PingEvery is how long a successful Ping of a Postgres database stands
// for the next ones. Every balancer of every caller probes every replica's
// readiness each second, and on Postgres each ping is a transaction: with
// no traffic at all, those alone were several commits a second per
// database. A failed ping is not remembered: the next one asks again.
const PingEvery = 5 * time.Second

// Ping checks the read pool; it backs the service's readiness check. On
// Postgres a success stands for PingEvery.
func (db *DB) Ping(ctx context.Context) error {
	if db.Dialect == Postgres {
		db.pingMu.Lock()
		fresh := time.Since(db.pinged) < PingEvery
		db.pingMu.Unlock()
		if fresh {
			return nil
		}
	}
	if err := db.DB.PingContext(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if db.Dialect == Postgres {
		db.pingMu.Lock()
		db.pinged = time.Now()
		db.pingMu.Unlock()
	}
	return nil
}

// InTx runs fn in a write transaction, committing when it returns nil
// and rolling back otherwise.
//
// On SQLite, transactions waiting for the one writer are merged into one
// commit, each in a savepoint of its own (group.go): fn's work commits
// with others' or is rolled back alone, and fn may run again when another
// caller's failure broke the merged transaction before it committed, so
// fn must only set its results, not accumulate them.
func (db *DB) InTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if db.group != nil {
		return db.group.inTx(ctx, fn)
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning a transaction: %w", err)
	}
	// A panic in fn must not leave the single SQLite writer held.
	defer func() {
		if v := recover(); v != nil {
			_ = tx.Rollback()
			panic(v)
		}
	}()
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	db.commits.notify()
	return nil
}

// Commits returns a channel that receives after each commit of InTx in
// this process (several commits may give one wake-up), and a func that
// stops it. Workers that look for new rows (the outbox relay, the
// notifications dispatcher) wait on it instead of polling the database.
func (db *DB) Commits() (<-chan struct{}, func()) { return db.commits.subscribe() }

// Migrate applies the migrations in fsys that are not yet applied,
// tracking them in the table goose_<name>. A sub-folder named for the
// dialect ("sqlite", "postgres"), when present, is used instead of the root.
// On Postgres a session advisory lock makes replicas that start together
// migrate once; on SQLite a lock file beside the database does.
func (db *DB) Migrate(ctx context.Context, log *slog.Logger, name string, fsys fs.FS) error {
	if db.Dialect == SQLite {
		unlock, err := lockSQLiteMigrations(ctx, db.Source)
		if err != nil {
			return err
		}
		defer unlock()
	}
	if sub, err := fs.Sub(fsys, string(db.Dialect)); err == nil {
		if st, err := fs.Stat(sub, "."); err == nil && st.IsDir() {
			fsys = sub
		}
	}
	gooseDialect := database.DialectSQLite3
	opts := []goose.ProviderOption{}
	if db.Dialect == Postgres {
		gooseDialect = database.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return fmt.Errorf("making the migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	store, err := database.NewStore(gooseDialect, "goose_"+name)
	if err != nil {
		return fmt.Errorf("migration store: %w", err)
	}
	opts = append(opts, goose.WithStore(store))
	p, err := goose.NewProvider("", db.write, fsys, opts...)
	if err != nil {
		return fmt.Errorf("loading %s migrations: %w", name, err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("applying %s migrations: %w", name, err)
	}
	for _, r := range results {
		log.Info("migration applied", "set", name, "version", r.Source.Version, "file", r.Source.Path)
	}
	return nil
}

// lockSQLiteMigrations makes the processes that share a SQLite file
// migrate it one at a time: it holds an exclusive transaction on a small
// lock database beside the file. The operating system releases the lock
// if the process dies.
func lockSQLiteMigrations(ctx context.Context, path string) (unlock func(), err error) {
	lockDB, err := sql.Open("sqlite", "file:"+path+".migrate-lock?_pragma=busy_timeout(50)")
	if err != nil {
		return nil, fmt.Errorf("opening the migration lock: %w", err)
	}
	conn, err := lockDB.Conn(ctx)
	if err != nil {
		lockDB.Close()
		return nil, fmt.Errorf("opening the migration lock: %w", err)
	}
	for {
		_, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE")
		if err == nil {
			break
		}
		if ctx.Err() != nil || !strings.Contains(err.Error(), "database is locked") {
			conn.Close()
			lockDB.Close()
			return nil, fmt.Errorf("taking the migration lock: %w", err)
		}
		time.Sleep(20 * time.Millisecond) // another process is migrating
	}
	return func() {
		_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
		conn.Close()
		lockDB.Close()
	}, nil
}

// Redact removes a password from a database URL so it can be logged.
func Redact(source string) string {
	u, err := url.Parse(source)
	if err != nil || u.User == nil {
		return source
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// IsUniqueViolation reports whether err is a unique-constraint failure in
// either dialect, so stores can turn it into a domain error (a 409).
func IsUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || // sqlite
		strings.Contains(msg, "SQLSTATE 23505") // postgres unique_violation
}
