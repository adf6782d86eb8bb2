package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// BEGIN sent with the first statement. On Postgres every statement is a
// round trip, and database/sql's BeginTx is one more of its own: BEGIN
// goes out and the transaction waits for its answer before the first
// real statement. A saga step of two statements was four round trips, of
// which BEGIN was a quarter for nothing: it cannot fail in any way the
// statement after it would not show.
//
// The connections below hold BEGIN back and send it in one pipeline with
// the transaction's first Exec (a pgx batch: both messages, one Sync, one
// answer), so that statement costs the round trip BEGIN used to. A
// transaction whose first statement is a query sends BEGIN alone first,
// as before: its rows have to come back through database/sql's own Rows.
// Commit and Rollback send nothing when no statement was sent, and
// Commit reports a transaction the server rolled back as pgx does.

// lazyBeginConnector makes connections that hold BEGIN back.
type lazyBeginConnector struct{ driver.Connector }

func (c lazyBeginConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := conn.(*stdlib.Conn)
	if !ok {
		return conn, nil
	}
	return &lazyBeginConn{Conn: sc}, nil
}

// lazyBeginConn is pgx's database/sql connection with BEGIN held back
// until the transaction's first statement.
type lazyBeginConn struct {
	*stdlib.Conn
	pending bool // a transaction has begun for database/sql, not yet on the server
	// aborted: the transaction's first statement failed before BEGIN
	// reached the server (pgx prepares a new statement before it sends
	// the pipeline, and the server refused it). On the server there is
	// no transaction; for its user it is one a statement failed in, as
	// Postgres would have it: later statements are refused and Commit
	// fails.
	aborted bool
}

// errAborted is what a statement gets in a transaction whose first
// statement failed before BEGIN was sent, in Postgres' words.
var errAborted = errors.New("current transaction is aborted, commands ignored until end of transaction block")

// BeginTx begins a transaction of the default isolation lazily; any
// other kind is begun at once by pgx.
func (c *lazyBeginConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if opts.ReadOnly || sql.IsolationLevel(opts.Isolation) != sql.LevelDefault {
		return c.Conn.BeginTx(ctx, opts)
	}
	if c.Conn.Conn().IsClosed() {
		return nil, driver.ErrBadConn
	}
	c.pending = true
	return &lazyTx{c: c, ctx: ctx}, nil
}

func (c *lazyBeginConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if c.aborted {
		return nil, errAborted
	}
	if !c.pending {
		return c.Conn.ExecContext(ctx, query, args)
	}
	c.pending = false
	var b pgx.Batch
	b.Queue("begin")
	b.Queue(query, values(args)...)
	br := c.Conn.Conn().SendBatch(ctx, &b)
	_, err := br.Exec()
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if c.Conn.Conn().PgConn().TxStatus() == 'I' {
			c.aborted = true
		}
		return nil, err
	}
	return driver.RowsAffected(tag.RowsAffected()), nil
}

func (c *lazyBeginConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if c.aborted {
		return nil, errAborted
	}
	if err := c.begin(ctx); err != nil {
		return nil, err
	}
	return c.Conn.QueryContext(ctx, query, args)
}

// PrepareContext makes a statement that database/sql may run inside the
// transaction (tx.Stmt, tx.PrepareContext), so BEGIN goes first.
func (c *lazyBeginConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if c.aborted {
		return nil, errAborted
	}
	if err := c.begin(ctx); err != nil {
		return nil, err
	}
	return c.Conn.PrepareContext(ctx, query)
}

// begin sends a held-back BEGIN on its own.
func (c *lazyBeginConn) begin(ctx context.Context) error {
	if !c.pending {
		return nil
	}
	c.pending = false
	if _, err := c.Conn.Conn().Exec(ctx, "begin"); err != nil {
		return fmt.Errorf("beginning a transaction: %w", err)
	}
	return nil
}

// ResetSession drops a connection whose transaction was never ended;
// database/sql always ends one, so this only guards the pool.
func (c *lazyBeginConn) ResetSession(ctx context.Context) error {
	if c.pending || c.aborted {
		return driver.ErrBadConn
	}
	return c.Conn.ResetSession(ctx)
}

// lazyTx ends a transaction begun by lazyBeginConn. Like pgx's own, it
// commits and rolls back under the context the transaction began with.
type lazyTx struct {
	c   *lazyBeginConn
	ctx context.Context
}

func (tx *lazyTx) Commit() error {
	if tx.c.aborted {
		tx.c.aborted = false
		return pgx.ErrTxCommitRollback
	}
	if tx.c.pending { // nothing was sent: nothing to commit
		tx.c.pending = false
		return nil
	}
	tag, err := tx.c.Conn.Conn().Exec(tx.ctx, "commit")
	if err != nil {
		if tx.c.Conn.Conn().PgConn().TxStatus() != 'I' {
			_ = tx.c.Conn.Close()
		}
		return err
	}
	if tag.String() == "ROLLBACK" { // a statement had failed: the server rolled it all back
		return pgx.ErrTxCommitRollback
	}
	return nil
}

func (tx *lazyTx) Rollback() error {
	if tx.c.pending || tx.c.aborted {
		tx.c.pending, tx.c.aborted = false, false
		return nil
	}
	if tx.c.Conn.Conn().IsClosed() {
		return errors.New("rolling back: the connection is closed")
	}
	_, err := tx.c.Conn.Conn().Exec(tx.ctx, "rollback")
	if err != nil {
		_ = tx.c.Conn.Close()
	}
	return err
}

// values turns database/sql's arguments into pgx's (pgx takes
// driver.Valuer and sql.Scanner values as they are, like its stdlib
// connection does).
func values(args []driver.NamedValue) []any {
	out := make([]any, len(args))
	for i, a := range args {
		out[i] = a.Value
	}
	return out
}
