package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// Group commit for SQLite. A SQLite database has one writer, so write
// transactions queue for it; each used to be its own commit, and a commit
// (writing the WAL frames) was 10-19% of every writing service's CPU under
// load. The writer below takes every transaction waiting when it starts
// one, runs them one after another inside a single SQLite transaction,
// each inside a savepoint of its own, and commits them all at once.
//
// What makes merging safe is that no caller can undo another's work:
//
//   - A caller whose function fails (or panics) is rolled back to its
//     savepoint; the others' work stays and commits.
//   - Cancellation is handled outside the merged transaction. The writer
//     begins it without any caller's context, and the write pool's
//     connections run statements without the caller's cancellation
//     (noCancel in stmtcache.go): modernc's driver stops a cancelled
//     statement with sqlite3_interrupt, and SQLite answers an interrupt
//     inside a transaction by rolling the whole transaction back, the
//     others' work included. Instead the writer checks each caller's
//     context before its turn and after its function: a caller cancelled
//     by then gets its context's error and its savepoint rolled back.
//     (database/sql itself refuses a statement for a cancelled context
//     before it reaches the driver, so a function usually learns it from
//     its next statement.)
//   - Should a function still break the transaction (SQLite rolls it all
//     back on a full disk, an I/O error or an explicit ROLLBACK), that
//     caller gets its error and the others who had gone before it in the
//     batch run again in a fresh transaction, as if they had waited longer.
//     A function may therefore run more than once; it must not keep state
//     across runs outside the transaction, which the services' functions,
//     which only set their results, do not.
//
// Each caller's function runs on the caller's own goroutine (the writer
// hands it the transaction and waits), so a panic unwinds the caller,
// as it did without merging, after its savepoint has been rolled back.

// maxGroup bounds the transactions merged into one commit, so one commit
// does not wait for an unbounded queue and callers get answers steadily.
const maxGroup = 64

var errClosed = errors.New("database: closed")

// groupWriter is the one goroutine that writes a SQLite database.
type groupWriter struct {
	write    *sql.DB
	reqs     chan *txReq
	stop     chan struct{}
	stopped  sync.WaitGroup
	closing  sync.Once
	onCommit func()

	// naive merges without savepoints or runs again: only for the test
	// that proves the isolation test can fail.
	naive bool
}

// txReq is one caller's transaction waiting for, or running in, a group.
type txReq struct {
	ctx  context.Context
	turn chan *sql.Tx  // the writer hands over the transaction: run fn
	ran  chan fnResult // the caller's fn returned
	done chan error    // the outcome, once committed or rolled back
}

type fnResult struct {
	err      error
	panicked bool
	value    any
}

func newGroupWriter(write *sql.DB, onCommit func()) *groupWriter {
	g := &groupWriter{write: write, reqs: make(chan *txReq, maxGroup), stop: make(chan struct{}), onCommit: onCommit}
	g.stopped.Add(1)
	go g.loop()
	return g
}

// close stops the writer after the group it is running; callers still
// waiting get errClosed.
func (g *groupWriter) close() {
	g.closing.Do(func() {
		close(g.stop)
		g.stopped.Wait()
		for {
			select {
			case r := <-g.reqs:
				r.done <- errClosed
			default:
				return
			}
		}
	})
}

// inTx runs fn in the next group and returns once its work has committed
// or been rolled back.
func (g *groupWriter) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &txReq{ctx: ctx, turn: make(chan *sql.Tx), ran: make(chan fnResult), done: make(chan error, 1)}
	select {
	case g.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-g.stop:
		return errClosed
	}
	// From here on the writer owns the request: it answers on done, even
	// when ctx is cancelled meanwhile (it checks before the turn).
	var last fnResult
	for {
		select {
		case tx := <-r.turn:
			last = runFn(fn, tx)
			r.ran <- last
		case err := <-r.done:
			if last.panicked {
				panic(last.value)
			}
			return err
		}
	}
}

func runFn(fn func(tx *sql.Tx) error, tx *sql.Tx) (res fnResult) {
	defer func() {
		if v := recover(); v != nil {
			res = fnResult{err: fmt.Errorf("panic: %v", v), panicked: true, value: v}
		}
	}()
	return fnResult{err: fn(tx)}
}

func (g *groupWriter) loop() {
	defer g.stopped.Done()
	var again []*txReq
	for {
		batch := again
		again = nil
		if len(batch) == 0 {
			select {
			case r := <-g.reqs:
				batch = append(batch, r)
			case <-g.stop:
				return
			}
		}
	gather:
		for len(batch) < maxGroup {
			select {
			case r := <-g.reqs:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		again = g.run(batch)
	}
}

// run runs batch in one transaction and returns the callers whose work
// was lost with a transaction another caller broke, to run again.
func (g *groupWriter) run(batch []*txReq) (again []*txReq) {
	tx, err := g.write.BeginTx(context.Background(), nil)
	if err != nil {
		answer(batch, fmt.Errorf("beginning a transaction: %w", err))
		return nil
	}
	if g.naive {
		return g.runNaive(tx, batch)
	}
	// One caller alone needs no savepoint: its failure is the whole
	// transaction's.
	alone := len(batch) == 1
	var kept []*txReq
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- err
			continue
		}
		if !alone {
			if _, err := tx.Exec("SAVEPOINT caller"); err != nil {
				// Not any caller's doing (the one before was released
				// cleanly): the transaction fails for all still waiting.
				_ = tx.Rollback()
				answer(append(kept, batch[i:]...), fmt.Errorf("beginning a savepoint: %w", err))
				return nil
			}
		}
		r.turn <- tx
		res := <-r.ran
		if res.err == nil {
			if err := r.ctx.Err(); err != nil {
				res.err = err // cancelled while it ran: its work must not commit
			}
		}
		if res.err == nil {
			if !alone {
				if _, err := tx.Exec("RELEASE caller"); err != nil {
					// r's function broke the transaction and did not say
					// so: r fails, those before it run again.
					_ = tx.Rollback()
					r.done <- fmt.Errorf("committing: %w", err)
					return append(kept, batch[i+1:]...)
				}
			}
			kept = append(kept, r)
			continue
		}
		if alone {
			_ = tx.Rollback()
			r.done <- res.err
			return nil
		}
		if err := rollbackTo(tx); err != nil {
			// r's function broke the transaction: SQLite rolled back all
			// of it. r has its answer; those before it run again.
			_ = tx.Rollback()
			r.done <- res.err
			return append(kept, batch[i+1:]...)
		}
		r.done <- res.err
	}
	if len(kept) == 0 {
		_ = tx.Rollback()
		return nil
	}
	err = tx.Commit()
	if err != nil {
		err = fmt.Errorf("committing: %w", err)
	} else if g.onCommit != nil {
		g.onCommit()
	}
	answer(kept, err)
	return nil
}

// answer gives every request in rs the outcome err (nil: committed).
func answer(rs []*txReq, err error) {
	for _, r := range rs {
		r.done <- err
	}
}

// rollbackTo undoes the work of the caller whose savepoint is open; an
// error means the transaction itself is gone.
func rollbackTo(tx *sql.Tx) error {
	if _, err := tx.Exec("ROLLBACK TO caller"); err != nil {
		return err
	}
	_, err := tx.Exec("RELEASE caller")
	return err
}

// runNaive is group commit done wrong, for the test: every function runs
// in the one transaction with nothing to undo a failure, and all commit.
func (g *groupWriter) runNaive(tx *sql.Tx, batch []*txReq) []*txReq {
	errs := make([]error, len(batch))
	for i, r := range batch {
		if errs[i] = r.ctx.Err(); errs[i] != nil {
			continue
		}
		r.turn <- tx
		errs[i] = (<-r.ran).err
	}
	err := tx.Commit()
	for i, r := range batch {
		r.done <- errors.Join(errs[i], err)
	}
	return nil
}
