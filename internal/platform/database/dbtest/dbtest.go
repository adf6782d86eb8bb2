// Package dbtest gives tests a fresh database of each dialect: a SQLite
// file in the test's temporary directory, and, when
// MICROSHOP_TEST_POSTGRES_URL is set, a new Postgres database dropped at
// the end of the test.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/database"
)

// PostgresEnv names the variable that points tests at a Postgres server.
const PostgresEnv = "MICROSHOP_TEST_POSTGRES_URL"

// Dialects runs fn once per available dialect, as a subtest, with a fresh
// empty database.
func Dialects(t *testing.T, fn func(t *testing.T, db *database.DB)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}

// SQLite opens a new SQLite database in t's temporary directory.
func SQLite(t testing.TB) *database.DB {
	t.Helper()
	db, err := database.Open(context.Background(), filepath.Join(t.TempDir(), "test.db"))
	if err != nil {
		t.Fatalf("opening sqlite: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// PostgresURL creates a fresh database on the server named by
// MICROSHOP_TEST_POSTGRES_URL and returns its URL; it skips t when the
// variable is unset. The database is dropped when t ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Skipf("%s is not set; skipping the Postgres run (set it to a server URL such as postgres://postgres@127.0.0.1:5432/postgres)", PostgresEnv)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "microshop_test_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("opening %s: %v", database.Redact(base), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("dropping test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parsing %s: %v", PostgresEnv, err)
	}
	u.Path = "/" + name
	return u.String()
}

// Postgres opens a fresh Postgres database, or skips t (see PostgresURL).
func Postgres(t testing.TB) *database.DB {
	t.Helper()
	src := PostgresURL(t)
	db, err := database.Open(context.Background(), src)
	if err != nil {
		t.Fatalf("opening postgres: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
