package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
)

// The merged transaction must never let one caller undo another's work:
// a caller that fails, panics, is cancelled before its turn or while its
// function runs, or breaks the whole transaction, loses its own work only.
// The callers are queued behind a held writer so that they all land in
// one group, in a known order.
func TestGroupCommitIsolatesCallers(t *testing.T) {
	lost := groupScenario(t, false)
	if len(lost) > 0 {
		t.Fatal(lost)
	}
}

// The same scenario against a writer that merges without savepoints and
// without running again those whose work another broke: the test above
// must be able to fail.
func TestGroupCommitScenarioCatchesNaiveMerging(t *testing.T) {
	if lost := groupScenario(t, true); len(lost) == 0 {
		t.Fatal("a merge without savepoints passed the isolation scenario: the scenario proves nothing")
	}
}

// groupScenario runs the callers and returns what went wrong.
func groupScenario(t *testing.T, naive bool) (problems []string) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "group.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Writer().ExecContext(ctx, "CREATE TABLE t (k TEXT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	db.group.naive = naive
	insert := func(ctx context.Context, tx *sql.Tx, k string) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO t (k) VALUES ($1)", k)
		return err
	}

	// Hold the writer inside a first transaction.
	held, release := make(chan struct{}), make(chan struct{})
	holder := make(chan error, 1)
	go func() {
		holder <- db.InTx(ctx, func(tx *sql.Tx) error {
			if err := insert(ctx, tx, "holder"); err != nil {
				return err
			}
			close(held)
			<-release
			return nil
		})
	}()
	<-held

	type caller struct {
		name string
		ctx  context.Context
		fn   func(ctx context.Context, tx *sql.Tx) error
		// wantKept: its row must be there at the end; wantErr: its InTx
		// must fail.
		wantKept, wantErr bool
	}
	boom := errors.New("boom")
	cancelledCtx, cancelQueued := context.WithCancel(ctx)
	runCtx, cancelRunning := context.WithCancel(ctx)
	merged := make(chan bool, 1)
	callers := []caller{
		{name: "a", ctx: ctx, wantKept: true, fn: func(ctx context.Context, tx *sql.Tx) error { return insert(ctx, tx, "a") }},
		{name: "fails", ctx: ctx, wantErr: true, fn: func(ctx context.Context, tx *sql.Tx) error {
			if err := insert(ctx, tx, "fails"); err != nil {
				return err
			}
			return boom
		}},
		{name: "violates", ctx: ctx, wantErr: true, fn: func(ctx context.Context, tx *sql.Tx) error {
			if err := insert(ctx, tx, "violates"); err != nil {
				return err
			}
			return insert(ctx, tx, "a") // a unique violation: the statement fails, the transaction stays
		}},
		{name: "queued-then-cancelled", ctx: cancelledCtx, wantErr: true, fn: func(ctx context.Context, tx *sql.Tx) error {
			return insert(ctx, tx, "queued-then-cancelled")
		}},
		{name: "cancelled-while-running", ctx: runCtx, wantErr: true, fn: func(ctx context.Context, tx *sql.Tx) error {
			if err := insert(ctx, tx, "cancelled-while-running"); err != nil {
				return err
			}
			// Cancelled during a long write: the driver must not interrupt
			// it (SQLite answers an interrupted write by rolling back the
			// whole transaction), and this caller's work must still not
			// commit. Whether the cancel lands before or during the
			// statement, the outcome asked for is the same.
			go cancelRunning()
			_, err := tx.ExecContext(ctx, `INSERT INTO t (k) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 5000) SELECT 'cwr-' || x FROM c`)
			return err
		}},
		{name: "sees-a", ctx: ctx, wantKept: true, fn: func(ctx context.Context, tx *sql.Tx) error {
			// In the same transaction as a, before it commits.
			var inTx, outside int
			if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM t WHERE k = 'a'").Scan(&inTx); err != nil {
				return err
			}
			if err := db.DB.QueryRowContext(ctx, "SELECT count(*) FROM t WHERE k = 'a'").Scan(&outside); err != nil {
				return err
			}
			select {
			case merged <- inTx == 1 && outside == 0:
			default:
			}
			return insert(ctx, tx, "sees-a")
		}},
		{name: "panics", ctx: ctx, wantErr: true, fn: func(ctx context.Context, tx *sql.Tx) error {
			if err := insert(ctx, tx, "panics"); err != nil {
				return err
			}
			panic("on purpose")
		}},
		{name: "breaks", ctx: ctx, wantErr: true, fn: func(ctx context.Context, tx *sql.Tx) error {
			if err := insert(ctx, tx, "breaks"); err != nil {
				return err
			}
			// What SQLite does on a full disk or an I/O error: the whole
			// transaction is rolled back.
			if _, err := tx.ExecContext(ctx, "ROLLBACK"); err != nil {
				return err
			}
			return boom
		}},
		{name: "after", ctx: ctx, wantKept: true, fn: func(ctx context.Context, tx *sql.Tx) error { return insert(ctx, tx, "after") }},
	}
	errs := make([]error, len(callers))
	var wg sync.WaitGroup
	for i, c := range callers {
		wg.Go(func() {
			defer func() {
				if v := recover(); v != nil {
					errs[i] = fmt.Errorf("panicked: %v", v)
				}
			}()
			errs[i] = db.InTx(c.ctx, func(tx *sql.Tx) error { return c.fn(c.ctx, tx) })
		})
		// Queue them in order, each behind the one before.
		for len(db.group.reqs) < i+1 {
			runtime.Gosched()
		}
	}
	cancelQueued()
	close(release)
	wg.Wait()
	if err := <-holder; err != nil {
		problems = append(problems, fmt.Sprintf("the holder failed: %v", err))
	}

	var kept []string
	rows, err := db.DB.QueryContext(ctx, "SELECT k FROM t")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		kept = append(kept, k)
	}
	rows.Close()
	if !slices.Contains(kept, "holder") {
		problems = append(problems, "the holder's row was lost")
	}
	for i, c := range callers {
		has := slices.Contains(kept, c.name)
		if has != c.wantKept {
			problems = append(problems, fmt.Sprintf("%s: row kept = %v, want %v (err %v)", c.name, has, c.wantKept, errs[i]))
		}
		if (errs[i] != nil) != c.wantErr {
			problems = append(problems, fmt.Sprintf("%s: InTx = %v, want an error: %v", c.name, errs[i], c.wantErr))
		}
	}
	if !naive {
		for i, want := range map[int]error{3: context.Canceled, 4: context.Canceled, 1: boom} {
			if !errors.Is(errs[i], want) {
				problems = append(problems, fmt.Sprintf("%s: InTx = %v, want %v", callers[i].name, errs[i], want))
			}
		}
		select {
		case m := <-merged:
			if !m {
				problems = append(problems, "sees-a did not run in a's transaction: nothing was merged")
			}
		default:
			problems = append(problems, "sees-a never ran")
		}
	}
	return problems
}

// Many writers, some failing: exactly the work of those that succeeded
// commits, and the writers' commits are fewer than their transactions.
func TestGroupCommitUnderContention(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "group.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Writer().ExecContext(ctx, "CREATE TABLE t (k TEXT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	want := map[string]bool{}
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				k := fmt.Sprintf("w%d-%d", w, i)
				fail := (w+i)%3 == 0
				err := db.InTx(ctx, func(tx *sql.Tx) error {
					if _, err := tx.ExecContext(ctx, "INSERT INTO t (k) VALUES ($1)", k); err != nil {
						return err
					}
					if fail {
						return errors.New("on purpose")
					}
					return nil
				})
				if (err != nil) != fail {
					t.Errorf("%s: InTx = %v", k, err)
				}
				mu.Lock()
				want[k] = !fail
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for k, kept := range want {
		var n int
		if err := db.DB.QueryRowContext(ctx, "SELECT count(*) FROM t WHERE k = $1", k).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if (n == 1) != kept {
			t.Errorf("%s: present = %v, want %v", k, n == 1, kept)
		}
	}
}
