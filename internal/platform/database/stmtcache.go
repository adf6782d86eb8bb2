package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
)

// A statement cache for SQLite, below database/sql so that every query in
// every service gets it without changing a line: parsing and planning a
// statement costs SQLite more than running the small ones a service
// sends, and a profile of a checkout under load showed a fifth of the
// services' CPU in sqlite3Prepare. Each connection keeps the statements
// it has prepared, by their SQL text, and runs them again with new
// arguments (SQLite resets a statement after each use). Postgres needs
// none of this: pgx caches prepared statements itself.

// cachedDriverName is the database/sql driver that wraps modernc's
// "sqlite" with a statement cache per connection; writerDriverName is the
// same for the write pool, whose statements also run without the
// caller's cancellation (see group.go: an interrupted statement would
// roll back a merged transaction, other callers' work included).
const (
	cachedDriverName = "microshop-sqlite"
	writerDriverName = "microshop-sqlite-writer"
)

// stmtCacheSize bounds the statements kept per connection. A service uses
// a few dozen distinct statements; the bound only matters for SQL built
// with a varying number of placeholders.
const stmtCacheSize = 128

func init() {
	db, err := sql.Open("sqlite", "")
	if err != nil {
		panic("database: the sqlite driver is not registered: " + err.Error())
	}
	sql.Register(cachedDriverName, cachingDriver{d: db.Driver()})
	sql.Register(writerDriverName, cachingDriver{d: db.Driver(), noCancel: true})
	_ = db.Close()
}

type cachingDriver struct {
	d        driver.Driver
	noCancel bool
}

func (c cachingDriver) Open(name string) (driver.Conn, error) {
	conn, err := c.d.Open(name)
	if err != nil {
		return nil, err
	}
	cc, err := newCachingConn(conn)
	if err != nil {
		return nil, err
	}
	cc.noCancel = c.noCancel
	return cc, nil
}

// baseConn is what the SQLite driver's connection offers and the cache
// relies on.
type baseConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// stmtContext is a prepared statement that takes contexts.
type stmtContext interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

type cachedStmt struct {
	st   stmtContext
	busy bool // its rows are open: the statement cannot run again until they close
	used uint64
}

// cachingConn is a connection with its prepared statements. database/sql
// never uses one connection from two goroutines at once, so it needs no
// lock.
type cachingConn struct {
	baseConn
	stmts    map[string]*cachedStmt
	clock    uint64
	noCancel bool // statements ignore their context's cancellation
}

// detach drops ctx's cancellation on a connection that must not be
// interrupted; its values (trace context) stay.
func (c *cachingConn) detach(ctx context.Context) context.Context {
	if c.noCancel {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// PrepareContext prepares a statement the caller keeps (tx.Prepare); on
// the write pool it too runs without cancellation.
func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := c.baseConn.PrepareContext(c.detach(ctx), query)
	if err != nil || !c.noCancel {
		return st, err
	}
	sc, ok := st.(stmtContext)
	if !ok {
		_ = st.Close()
		return nil, errors.New("database: the sqlite driver's statement lacks the context methods")
	}
	return detachedStmt{sc}, nil
}

// detachedStmt runs a prepared statement without its caller's cancellation.
type detachedStmt struct{ stmtContext }

func (s detachedStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.stmtContext.ExecContext(context.WithoutCancel(ctx), args)
}

func (s detachedStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.stmtContext.QueryContext(context.WithoutCancel(ctx), args)
}

func newCachingConn(c driver.Conn) (*cachingConn, error) {
	bc, ok := c.(baseConn)
	if !ok {
		_ = c.Close()
		return nil, errors.New("database: the sqlite driver's connection lacks the context methods the statement cache needs")
	}
	return &cachingConn{baseConn: bc, stmts: map[string]*cachedStmt{}}, nil
}

// stmt returns the cached statement for query, preparing it the first
// time; nil when it is running already (open rows) or cannot be cached.
func (c *cachingConn) stmt(ctx context.Context, query string) (*cachedStmt, error) {
	c.clock++
	if cs, ok := c.stmts[query]; ok {
		if cs.busy {
			return nil, nil
		}
		cs.used = c.clock
		return cs, nil
	}
	st, err := c.baseConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	sc, ok := st.(stmtContext)
	if !ok {
		_ = st.Close()
		return nil, nil
	}
	if len(c.stmts) >= stmtCacheSize {
		c.evict()
	}
	cs := &cachedStmt{st: sc, used: c.clock}
	c.stmts[query] = cs
	return cs, nil
}

// evict closes the least recently used statement that is not running.
func (c *cachingConn) evict() {
	var oldest string
	var at uint64
	for q, cs := range c.stmts {
		if !cs.busy && (oldest == "" || cs.used < at) {
			oldest, at = q, cs.used
		}
	}
	if oldest != "" {
		_ = c.stmts[oldest].st.Close()
		delete(c.stmts, oldest)
	}
}

// ExecContext runs query as a cached statement.
func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	ctx = c.detach(ctx)
	cs, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.baseConn.ExecContext(ctx, query, args)
	}
	return cs.st.ExecContext(ctx, args)
}

// QueryContext runs query as a cached statement; the statement is busy
// until the rows close.
func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	ctx = c.detach(ctx)
	cs, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.baseConn.QueryContext(ctx, query, args)
	}
	rows, err := cs.st.QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	cs.busy = true
	release := func() { cs.busy = false }
	if fr, ok := rows.(fullRows); ok {
		return &cachedRows{fullRows: fr, release: release}, nil
	}
	return &plainRows{Rows: rows, release: release}, nil
}

// Close finalizes the cached statements, then closes the connection:
// SQLite refuses to close a connection with statements still prepared.
func (c *cachingConn) Close() error {
	var errs []error
	for q, cs := range c.stmts {
		errs = append(errs, cs.st.Close())
		delete(c.stmts, q)
	}
	errs = append(errs, c.baseConn.Close())
	return errors.Join(errs...)
}

// fullRows is what the SQLite driver's rows offer.
type fullRows interface {
	driver.Rows
	driver.RowsColumnTypeDatabaseTypeName
	driver.RowsColumnTypeLength
	driver.RowsColumnTypeNullable
	driver.RowsColumnTypePrecisionScale
	driver.RowsColumnTypeScanType
}

type cachedRows struct {
	fullRows
	release func()
}

func (r *cachedRows) Close() error {
	err := r.fullRows.Close() // resets the statement for its next use
	r.release()
	return err
}

type plainRows struct {
	driver.Rows
	release func()
}

func (r *plainRows) Close() error {
	err := r.Rows.Close()
	r.release()
	return err
}
