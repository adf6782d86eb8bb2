package database_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/database/dbtest"
)

// TestUnreachable sorts real failures: a server that refuses the
// connection and a statement past its deadline are the database being
// unreachable (a 503 to the caller); a mistake in the SQL, a missing row
// and a service's own error are not.
func TestUnreachable(t *testing.T) {
	ctx := context.Background()
	_, refused := database.Open(ctx, "postgres://u@127.0.0.1:1/db?sslmode=disable&connect_timeout=2")
	if refused == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	for _, err := range []error{refused, fmt.Errorf("placing the order: %w", refused), context.DeadlineExceeded} {
		if !database.Unreachable(err) {
			t.Errorf("Unreachable(%v) = false, want true", err)
		}
	}
	for _, err := range []error{nil, errors.New("no such product"), fmt.Errorf("wrapped: %w", errors.New("conflict"))} {
		if database.Unreachable(err) {
			t.Errorf("Unreachable(%v) = true, want false", err)
		}
	}

	db := dbtest.Postgres(t)
	if _, err := db.ExecContext(ctx, "SELEC 1"); err == nil || database.Unreachable(err) {
		t.Errorf("a syntax error: Unreachable(%v) = true or no error, want a plain failure", err)
	}
	_, err := db.ExecContext(ctx, "SET statement_timeout = 100; SELECT pg_sleep(2)")
	if err == nil {
		// pgx runs one statement per Exec with parameters only; without,
		// both ran in one go and the sleep must have been cancelled.
		t.Fatal("pg_sleep(2) under statement_timeout=100ms succeeded")
	}
	if !database.Unreachable(err) {
		t.Errorf("a statement cancelled by statement_timeout: Unreachable(%v) = false, want true", err)
	}
}

// TestPostgresSessionDeadlines checks that each connection carries the
// server-side deadlines (database.StatementTimeout and the rest), and
// that a URL naming one keeps its own.
func TestPostgresSessionDeadlines(t *testing.T) {
	ctx := context.Background()
	src := dbtest.PostgresURL(t)
	show := func(db *database.DB, setting string) string {
		t.Helper()
		var v string
		if err := db.QueryRowContext(ctx, "SHOW "+setting).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	db, err := database.Open(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want := map[string]string{
		"statement_timeout":                   fmt.Sprintf("%ds", database.StatementTimeout/time.Second),
		"idle_in_transaction_session_timeout": fmt.Sprintf("%ds", database.IdleInTransactionTimeout/time.Second),
		"tcp_user_timeout":                    fmt.Sprint(database.TCPUserTimeout.Milliseconds()),
	}
	for setting, v := range want {
		if got := show(db, setting); got != v {
			t.Errorf("SHOW %s = %q, want %q", setting, got, v)
		}
	}
	own, err := database.Open(ctx, src+"&statement_timeout=1min")
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	if got := show(own, "statement_timeout"); got != "1min" {
		t.Errorf("with statement_timeout=1min in the URL, SHOW statement_timeout = %q", got)
	}
}
