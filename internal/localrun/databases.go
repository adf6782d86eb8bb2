package localrun

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"regexp"
	"time"

	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/service"
)

var dbName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// createDatabases makes sure every service that keeps data has its own
// database on the Postgres server at server, creating the missing ones,
// and returns each service's database URL.
func createDatabases(ctx context.Context, server, prefix string, specs []service.Spec) (map[string]string, error) {
	if !database.IsPostgres(server) {
		return nil, fmt.Errorf("--db %q: want a Postgres server URL such as postgres://postgres@127.0.0.1:5432/", server)
	}
	base, err := url.Parse(server)
	if err != nil {
		return nil, fmt.Errorf("--db: %w", err)
	}
	admin, err := sql.Open("pgx", server)
	if err != nil {
		return nil, fmt.Errorf("--db: %w", err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("connecting to Postgres at %s: %w", database.Redact(server), err)
	}
	out := map[string]string{}
	for _, spec := range specs {
		if spec.Migrations() == nil {
			continue // keeps nothing
		}
		name := prefix + spec.Name
		if !dbName.MatchString(name) {
			return nil, fmt.Errorf("--db-prefix %q: %q is not a plain database name (lower-case letters, digits, _)", prefix, name)
		}
		var exists bool
		if err := admin.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
			return nil, fmt.Errorf("looking for database %s: %w", name, err)
		}
		if !exists {
			// The name is checked above: it is safe to put in the statement.
			if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil && !database.IsUniqueViolation(err) {
				return nil, fmt.Errorf("creating database %s: %w", name, err)
			}
		}
		u := *base
		u.Path = "/" + name
		out[spec.Name] = u.String()
	}
	return out, nil
}
