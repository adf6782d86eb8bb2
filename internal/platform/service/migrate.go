package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/microshop/microshop/internal/platform/config"
	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/logging"
)

// Migrate applies a service's migrations (the events tables and its own)
// to its database and returns, without serving: a deploy step that runs
// before the new version starts. On Postgres a session advisory lock makes
// concurrent runs migrate once.
func Migrate(ctx context.Context, spec Spec, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("microshop migrate "+spec.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := config.New(fs, getenv)
	var (
		dataDir  = f.String("data", "data", "directory of the SQLite database")
		dbSource = f.String("db", "", "database: a postgres:// URL or a SQLite file path (default <data>/"+spec.Name+".db)")
		logLevel = f.String("log-level", "info", "log level: debug, info, warn or error")
	)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: microshop migrate %s [flags]\n\nApplies the %s service's database migrations and exits.\n\nFlags:\n", spec.Name, spec.Name)
		fs.PrintDefaults()
	}
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	migrations := spec.Migrations()
	if migrations == nil {
		return fmt.Errorf("%s keeps no database; there is nothing to migrate", spec.Name)
	}
	level, err := logging.ParseLevel(*logLevel)
	if err != nil {
		return err
	}
	log := logging.New(stdout, spec.Name, level)
	db, err := openMigrated(ctx, spec, *dbSource, *dataDir, log)
	if err != nil {
		return err
	}
	defer db.Close()
	log.Info("migrations are up to date", "dialect", string(db.Dialect), "source", db.Source)
	return nil
}

// openMigrated opens spec's database (source, or the SQLite file
// <dataDir>/<name>.db when source is empty) and applies the platform's
// event tables' migrations and then the service's own.
func openMigrated(ctx context.Context, spec Spec, source, dataDir string, log *slog.Logger) (*database.DB, error) {
	if source == "" {
		source = filepath.Join(dataDir, spec.Name+".db")
	}
	db, err := database.Open(ctx, source)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, log, "events", events.Migrations()); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.Migrate(ctx, log, spec.Name, spec.Migrations()); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}
