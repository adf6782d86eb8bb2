package database_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/microshop/microshop/internal/platform/database"
)

// The statement cache is invisible: a statement runs again with new
// arguments, the same query may run while its own rows are still open,
// errors and rollbacks leave statements usable, a schema change is seen,
// many statements (more than the cache holds) all work, and the
// database closes cleanly with statements cached.
func TestStatementCacheIsInvisible(t *testing.T) {
	ctx := context.Background()
	db, err := database.Open(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Writer().ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)`)
	const insert = `INSERT INTO t (id, v) VALUES ($1, $2)`
	for i := range 50 {
		exec(insert, i, fmt.Sprint("v", i))
	}
	// A failing run of a cached statement (a unique violation) leaves it usable.
	if _, err := db.Writer().ExecContext(ctx, insert, 1000, "v1"); !database.IsUniqueViolation(err) {
		t.Fatalf("duplicate insert: %v, want a unique violation", err)
	}
	exec(insert, 50, "v50")

	// The same query while its rows are open, in one transaction (one connection).
	const byID = `SELECT v FROM t WHERE id >= $1 ORDER BY id LIMIT 3`
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, byID, 10)
		if err != nil {
			return err
		}
		defer rows.Close()
		var outer []string
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				return err
			}
			outer = append(outer, v)
			var inner string
			if err := tx.QueryRowContext(ctx, byID, 20).Scan(&inner); err != nil {
				return err
			}
			if inner != "v20" {
				return fmt.Errorf("inner query while the outer is open: %q, want v20", inner)
			}
		}
		if fmt.Sprint(outer) != "[v10 v11 v12]" {
			return fmt.Errorf("outer rows %v", outer)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}

	// A rolled-back transaction leaves nothing and breaks nothing.
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, insert, 99, "rolled back"); err != nil {
			return err
		}
		return fmt.Errorf("roll back")
	})
	if err == nil {
		t.Fatal("InTx did not report the rollback")
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM t WHERE id = $1`, 99).Scan(&n); err != nil || n != 0 {
		t.Fatalf("rolled back row: n=%d err=%v", n, err)
	}

	// A schema change is seen by a statement prepared before it.
	const all = `SELECT * FROM t WHERE id = $1`
	var id int
	var v string
	if err := db.Writer().QueryRowContext(ctx, all, 1).Scan(&id, &v); err != nil {
		t.Fatal(err)
	}
	exec(`ALTER TABLE t ADD COLUMN w TEXT NOT NULL DEFAULT 'w'`)
	var w string
	if err := db.Writer().QueryRowContext(ctx, all, 1).Scan(&id, &v, &w); err != nil || w != "w" {
		t.Fatalf("after ALTER TABLE: %q %v", w, err)
	}

	// More distinct statements than the cache holds, from many readers at once.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 300 {
				q := fmt.Sprintf(`SELECT v FROM t WHERE id = $1 AND %d = %d`, i, i)
				var got string
				if err := db.QueryRowContext(ctx, q, (i+g)%50).Scan(&got); err != nil {
					errs <- err
					return
				}
				if want := fmt.Sprint("v", (i+g)%50); got != want {
					errs <- fmt.Errorf("%s: %q, want %q", q, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// A script of several statements still runs whole.
	exec(`INSERT INTO t (id, v) VALUES (200, 'a'); INSERT INTO t (id, v) VALUES (201, 'b')`)
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM t WHERE id >= 200`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("a two-statement script inserted %d rows (%v), want 2", n, err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close with statements cached: %v", err)
	}
}
