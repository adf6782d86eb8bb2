package database_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/database/dbtest"
)

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestOpenSQLite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "nested", "dir", "svc.db")
	db, err := database.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	if db.Dialect != database.SQLite || db.Source != path {
		t.Errorf("Dialect, Source = %q, %q", db.Dialect, db.Source)
	}
	if fi, err := os.Stat(path); err != nil {
		t.Errorf("the database file was not created: %v", err)
	} else if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("the database file has mode %v, want readable by its owner only (0600)", fi.Mode().Perm())
	}
	for name, pool := range map[string]*sql.DB{"read": db.DB, "write": db.Writer()} {
		var mode string
		if err := pool.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" {
			t.Errorf("%s pool journal_mode = %q, want wal", name, mode)
		}
		var fk int
		if err := pool.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
			t.Fatal(err)
		}
		if fk != 1 {
			t.Errorf("%s pool foreign_keys = %d, want 1", name, fk)
		}
	}
	if err := db.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestOpenSQLitePrefixAndErrors(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	db, err := database.Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatalf("Open(sqlite:...): %v", err)
	}
	db.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("sqlite: prefix was not stripped: %v", err)
	}
	if _, err := database.Open(ctx, ""); err == nil {
		t.Error("Open(\"\") = nil error, want one")
	}
	if _, err := database.Open(ctx, "sqlite:"); err == nil {
		t.Error("Open(\"sqlite:\") = nil error, want one")
	}
}

func TestOpenPostgresUnreachable(t *testing.T) {
	ctx := context.Background()
	_, err := database.Open(ctx, "postgres://u:secret@127.0.0.1:1/db?sslmode=disable&connect_timeout=2")
	if err == nil {
		t.Fatal("Open of an unreachable Postgres = nil error")
	}
	if msg := err.Error(); strings.Contains(msg, "secret") {
		t.Errorf("the error leaks the password: %s", msg)
	}
}

func TestIsPostgresAndRedact(t *testing.T) {
	for src, want := range map[string]bool{
		"postgres://h/db": true, "postgresql://h/db": true, "data/x.db": false, "sqlite:x.db": false,
	} {
		if got := database.IsPostgres(src); got != want {
			t.Errorf("IsPostgres(%q) = %v", src, got)
		}
	}
	for in, want := range map[string]string{
		"postgres://u:pw@h:5432/db?sslmode=disable": "postgres://u:xxxxx@h:5432/db?sslmode=disable",
		"postgres://u@h/db":                         "postgres://u@h/db",
		"data/users.db":                             "data/users.db",
	} {
		if got := database.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPostgresSource(t *testing.T) {
	db := dbtest.Postgres(t)
	if db.Dialect != database.Postgres {
		t.Errorf("Dialect = %q", db.Dialect)
	}
	if err := db.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// testMigrations has one set at the root and one per dialect; the
// dialect folders must win over the root.
var testMigrations = fstest.MapFS{
	"00001_root.sql": {Data: []byte("-- +goose Up\nCREATE TABLE from_root (id INTEGER);\n")},
	"sqlite/00001_things.sql": {Data: []byte(`-- +goose Up
CREATE TABLE things (id TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE only_sqlite (id INTEGER);
INSERT INTO things (id, n) VALUES ('seed', 0);
-- +goose Down
DROP TABLE only_sqlite;
DROP TABLE things;
`)},
	"sqlite/00002_more.sql": {Data: []byte("-- +goose Up\nALTER TABLE things ADD COLUMN note TEXT;\n")},
	"postgres/00001_things.sql": {Data: []byte(`-- +goose Up
CREATE TABLE things (id TEXT PRIMARY KEY, n BIGINT NOT NULL);
CREATE TABLE only_postgres (id BIGINT);
INSERT INTO things (id, n) VALUES ('seed', 0);
-- +goose Down
DROP TABLE only_postgres;
DROP TABLE things;
`)},
	"postgres/00002_more.sql": {Data: []byte("-- +goose Up\nALTER TABLE things ADD COLUMN note TEXT;\n")},
}

func migrate(t *testing.T, db *database.DB) {
	t.Helper()
	if err := db.Migrate(context.Background(), quietLog(), "test", testMigrations); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
}

func tableExists(db *database.DB, table string) bool {
	_, err := db.ExecContext(context.Background(), "SELECT COUNT(*) FROM "+table)
	return err == nil
}

func TestMigrate(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		migrate(t, db)
		migrate(t, db) // a second run must change nothing

		var seeds int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM things WHERE id = 'seed'").Scan(&seeds); err != nil {
			t.Fatal(err)
		}
		if seeds != 1 {
			t.Errorf("the seed row exists %d times, want 1: a migration ran twice", seeds)
		}
		var versions int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM goose_test WHERE version_id > 0").Scan(&versions); err != nil {
			t.Fatalf("reading goose_test: %v", err)
		}
		if versions != 2 {
			t.Errorf("goose_test records %d versions, want 2", versions)
		}
		if _, err := db.ExecContext(ctx, "UPDATE things SET note = 'x'"); err != nil {
			t.Errorf("the second migration was not applied: %v", err)
		}

		mine, other := "only_sqlite", "only_postgres"
		if db.Dialect == database.Postgres {
			mine, other = other, mine
		}
		if !tableExists(db, mine) {
			t.Errorf("table %s from the %s folder is missing", mine, db.Dialect)
		}
		if tableExists(db, other) {
			t.Errorf("table %s from the other dialect's folder exists", other)
		}
		if tableExists(db, "from_root") {
			t.Error("the root migrations ran although a dialect folder exists")
		}
	})
}

func TestMigrateRootWithoutDialectFolder(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		fsys := fstest.MapFS{"00001_a.sql": {Data: []byte("-- +goose Up\nCREATE TABLE portable (id TEXT PRIMARY KEY);\n")}}
		if err := db.Migrate(context.Background(), quietLog(), "portable", fsys); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		if !tableExists(db, "portable") {
			t.Error("the root migration was not applied")
		}
		// Sets are tracked apart: another set's version 1 is still applied.
		migrate(t, db)
		if !tableExists(db, "things") {
			t.Error("the second set was skipped because the first had the same version")
		}
	})
}

func TestMigrateBadSQLFails(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		fsys := fstest.MapFS{"00001_bad.sql": {Data: []byte("-- +goose Up\nCREATE TABLEX nope;\n")}}
		if err := db.Migrate(context.Background(), quietLog(), "bad", fsys); err == nil {
			t.Error("Migrate with invalid SQL = nil error")
		}
	})
}

// Replicas that start together, each with its own pools, must migrate
// once between them and all start: on SQLite they share the service's
// file, on Postgres its database.
func TestMigrateReplicasStartingTogether(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		// Several rounds: the race is timing-dependent.
		for range 10 {
			replicasMigrate(t, filepath.Join(t.TempDir(), "shared.db"))
		}
	})
	t.Run("postgres", func(t *testing.T) { replicasMigrate(t, dbtest.PostgresURL(t)) })
}

func replicasMigrate(t *testing.T, source string) {
	t.Helper()
	ctx := context.Background()
	replicas := make([]*database.DB, 3)
	for i := range replicas {
		db, err := database.Open(ctx, source)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		replicas[i] = db
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(replicas))
	start := make(chan struct{})
	for _, db := range replicas {
		wg.Go(func() {
			<-start
			errs <- db.Migrate(ctx, quietLog(), "test", testMigrations)
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a replica failed to migrate: %v", err)
		}
	}
	if n := count(t, replicas[0]); n != 1 {
		t.Errorf("%d seed rows, want 1: a migration ran twice", n)
	}
}

func count(t *testing.T, db *database.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM things").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestInTx(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		migrate(t, db)
		before := count(t, db)

		err := db.InTx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO things (id, n) VALUES ($1, $2)", "committed", 1)
			return err
		})
		if err != nil {
			t.Fatalf("InTx: %v", err)
		}
		if got := count(t, db); got != before+1 {
			t.Errorf("after a commit: %d rows, want %d", got, before+1)
		}

		boom := errors.New("boom")
		err = db.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO things (id, n) VALUES ($1, $2)", "rolled-back", 1); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "UPDATE things SET n = 99 WHERE id = 'committed'"); err != nil {
				return err
			}
			return fmt.Errorf("failing on purpose: %w", boom)
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx = %v, want the function's error", err)
		}
		if got := count(t, db); got != before+1 {
			t.Errorf("after a rollback: %d rows, want %d", got, before+1)
		}
		var n int
		if err := db.QueryRowContext(ctx, "SELECT n FROM things WHERE id = 'committed'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("a rolled-back update is visible: n = %d", n)
		}
	})
}

func TestInTxCancelledContext(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		migrate(t, db)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		called := false
		err := db.InTx(ctx, func(*sql.Tx) error { called = true; return nil })
		if err == nil || called {
			t.Errorf("InTx with a cancelled context = %v (fn called: %v), want an error before fn", err, called)
		}
		// The writer is still usable afterwards.
		if err := db.InTx(context.Background(), func(tx *sql.Tx) error {
			_, err := tx.Exec("INSERT INTO things (id, n) VALUES ('after', 1)")
			return err
		}); err != nil {
			t.Errorf("InTx after a cancelled one: %v", err)
		}
	})
}

// Concurrent writers queue instead of failing (SQLITE_BUSY on SQLite).
func TestConcurrentWriters(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		migrate(t, db)
		const writers, each = 8, 20
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					errs <- db.InTx(ctx, func(tx *sql.Tx) error {
						if _, err := tx.ExecContext(ctx, "INSERT INTO things (id, n) VALUES ($1, $2)", fmt.Sprintf("w%d-%d", w, i), i); err != nil {
							return err
						}
						_, err := tx.ExecContext(ctx, "UPDATE things SET n = n + 1 WHERE id = 'seed'")
						return err
					})
				}
			})
		}
		// Reads go on beside the writers.
		for range 20 {
			count(t, db)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("a concurrent write failed: %v", err)
			}
		}
		var n int
		if err := db.QueryRowContext(ctx, "SELECT n FROM things WHERE id = 'seed'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != writers*each {
			t.Errorf("seed counter = %d, want %d (lost updates)", n, writers*each)
		}
	})
}

func TestIsUniqueViolation(t *testing.T) {
	dbtest.Dialects(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		migrate(t, db)
		insert := func(id string) error {
			return db.InTx(ctx, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, "INSERT INTO things (id, n) VALUES ($1, 1)", id)
				return err
			})
		}
		if err := insert("dup"); err != nil {
			t.Fatal(err)
		}
		err := insert("dup")
		if err == nil {
			t.Fatal("a duplicate insert succeeded")
		}
		if !database.IsUniqueViolation(err) {
			t.Errorf("IsUniqueViolation(%v) = false for a duplicate key", err)
		}
		if !database.IsUniqueViolation(fmt.Errorf("storing: %w", err)) {
			t.Error("IsUniqueViolation is false for a wrapped duplicate-key error")
		}

		notNull := db.InTx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO things (id, n) VALUES ($1, NULL)", "nn")
			return err
		})
		if notNull == nil {
			t.Fatal("inserting NULL into a NOT NULL column succeeded")
		}
		if database.IsUniqueViolation(notNull) {
			t.Errorf("IsUniqueViolation(%v) = true for a NOT NULL violation", notNull)
		}
		_, syntax := db.ExecContext(ctx, "SELEC 1")
		if database.IsUniqueViolation(syntax) {
			t.Errorf("IsUniqueViolation(%v) = true for a syntax error", syntax)
		}
		if database.IsUniqueViolation(nil) {
			t.Error("IsUniqueViolation(nil) = true")
		}
	})
}
