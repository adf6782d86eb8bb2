package database_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/database/dbtest"
)

// countingProxy forwards TCP to target and counts the reads it makes of
// what the client sends. A client that waits for each answer before it
// sends the next message makes one read per round trip; messages sent in
// one pipeline arrive together and make one.
type countingProxy struct {
	addr  string
	reads atomic.Int64
}

func startCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			wg.Go(func() {
				defer s.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						p.reads.Add(1)
						if _, werr := s.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			})
			wg.Go(func() {
				defer c.Close()
				_, _ = io.Copy(c, s)
			})
		}
	})
	return p
}

// TestPostgresBeginGoesWithFirstStatement: a transaction that starts
// with an Exec costs two round trips (BEGIN and the statement in one
// pipeline, then COMMIT), not three.
func TestPostgresBeginGoesWithFirstStatement(t *testing.T) {
	src := dbtest.PostgresURL(t)
	u, err := url.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startCountingProxy(t, u.Host)
	u.Host = proxy.addr
	ctx := context.Background()
	db, err := database.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	migrate(t, db)
	base := count(t, db)
	// Once, so that pgx has prepared the statement and the pool holds a
	// connection that needs no ping.
	insert := func(id string) error {
		return db.InTx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO things (id, n) VALUES ($1, $2)", id, 1)
			return err
		})
	}
	if err := insert("warm"); err != nil {
		t.Fatal(err)
	}
	before := proxy.reads.Load()
	if err := insert("counted"); err != nil {
		t.Fatal(err)
	}
	if n := proxy.reads.Load() - before; n != 2 {
		t.Errorf("a transaction of one INSERT took %d round trips, want 2 (BEGIN with the INSERT, then COMMIT)", n)
	}
	if got := count(t, db); got != base+2 {
		t.Errorf("%d rows, want %d", got, base+2)
	}
}

// TestPostgresLazyBegin: holding BEGIN back changes nothing a
// transaction's user can see.
func TestPostgresLazyBegin(t *testing.T) {
	db := dbtest.Postgres(t)
	ctx := context.Background()
	migrate(t, db)
	base := count(t, db)
	w := db.Writer()

	// A failing first statement: its error, Commit refuses, the
	// connection goes on serving.
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO no_such_table (id) VALUES ($1)", "x"); err == nil {
		t.Fatal("an INSERT into a missing table succeeded")
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO things (id, n) VALUES ('after-failure', 1)"); err == nil {
		t.Error("a statement after a failed one succeeded; Postgres refuses it")
	}
	if err := tx.Commit(); err == nil {
		t.Error("Commit after a failed statement succeeded; the server rolled the transaction back")
	}

	// A first statement that fails on a row: nothing of the transaction stays.
	if _, err := w.ExecContext(ctx, "INSERT INTO things (id, n) VALUES ('taken', 1)"); err != nil {
		t.Fatal(err)
	}
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "UPDATE things SET n = 2 WHERE id = 'taken'"); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO things (id, n) VALUES ('taken', 3)")
		return err
	})
	if err == nil {
		t.Fatal("a duplicate key committed")
	}
	var n int
	if err := w.QueryRowContext(ctx, "SELECT n FROM things WHERE id = 'taken'").Scan(&n); err != nil || n != 1 {
		t.Errorf("after the failed transaction n = %d (%v), want 1", n, err)
	}

	// Rollback after an Exec discards it; an empty transaction commits.
	tx, err = w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO things (id, n) VALUES ('gone', 1)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := db.InTx(ctx, func(*sql.Tx) error { return nil }); err != nil {
		t.Errorf("an empty transaction: %v", err)
	}

	// A transaction that starts with a query sees its own later writes
	// and the isolation it asked for.
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		var c int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM things").Scan(&c); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO things (id, n) VALUES ('after-query', $1)", c); err != nil {
			return err
		}
		var inTx bool
		if err := tx.QueryRowContext(ctx, "SELECT now() = statement_timestamp()").Scan(&inTx); err != nil {
			return err
		}
		if inTx {
			return errors.New("the query ran outside a transaction: now() is the statement's time")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := count(t, db); got != base+2 {
		t.Errorf("%d rows, want %d (taken, after-query)", got, base+2)
	}
	ro, err := w.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.ExecContext(ctx, "INSERT INTO things (id, n) VALUES ('ro', 1)"); err == nil {
		t.Error("an INSERT in a read-only transaction succeeded")
	}
	_ = ro.Rollback()
}
