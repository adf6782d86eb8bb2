package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/microshop/microshop/internal/platform/broker"
	"github.com/microshop/microshop/internal/platform/logging"
)

// natsServer runs the embedded NATS JetStream server as a process of its
// own; `run` starts it this way so it can be stopped, killed and started
// like any service.
func natsServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("microshop nats", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		host   = fs.String("host", "127.0.0.1", "address to listen on")
		port   = fs.Int("port", 4223, "client port")
		store  = fs.String("store", filepath.Join("data", "nats"), "directory of the JetStream store")
		users  = fs.String("users", "", "a JSON file of the users to admit, each a public NKey with its permissions (run writes <data>/nats-users.json); empty admits anyone")
		maxMem = fs.Int64("max-memory", broker.DefaultMaxMemory, "bytes of JetStream memory storage at most (max_memory_store); the streams themselves are on disk")
	)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: microshop nats [flags]\n\nRuns a NATS server with JetStream, keeping its streams under --store.\n`microshop run` starts one, admitting only the users in --users; use it\nalone to give services a broker without installing NATS.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if helped, err := parseFlags(fs, args); helped || err != nil {
		return err
	}
	log := logging.New(stdout, "nats", 0)
	var admitted []broker.User
	if *users != "" {
		var err error
		if admitted, err = broker.ReadUsers(*users); err != nil {
			return err
		}
	}
	srv, err := broker.StartEmbeddedLimited(*store, *host, *port, admitted, *maxMem, log)
	if err != nil {
		return err
	}
	log.Info("serving", "url", srv.URL(), "store", *store, "users", len(admitted))
	<-ctx.Done()
	srv.Shutdown()
	log.Info("stopped")
	return nil
}
