package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/microshop/microshop/internal/platform/service"
	"github.com/microshop/microshop/internal/topology"
)

// migrate applies one service's migrations and exits.
func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	spec, rest, err := serviceArg(args, "migrate", "Applies a service's database migrations and exits.", stderr)
	if err != nil || spec == nil {
		return err
	}
	return service.Migrate(ctx, *spec, rest, getenv, stdout, stderr)
}

// serve runs one service until ctx ends.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	spec, rest, err := serviceArg(args, "serve", "Runs one service.\n\nRun \"microshop serve <service> --help\" for its flags.", stderr)
	if err != nil || spec == nil {
		return err
	}
	return service.Run(ctx, *spec, rest, getenv, stdout, stderr)
}

// serviceArg reads the service a command names first. Without one it
// prints the command's usage: a nil spec with a nil error means --help was
// asked for.
func serviceArg(args []string, cmd, help string, stderr io.Writer) (*service.Spec, []string, error) {
	names := strings.Join(topology.Names(), ", ")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "Usage: microshop %s <service> [flags]\n\n%s\n\nServices: %s\n", cmd, help, names)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			return nil, nil, nil
		}
		return nil, nil, errUsage
	}
	spec, ok := topology.Find(args[0])
	if !ok {
		return nil, nil, fmt.Errorf("unknown service %q; the services are %s", args[0], names)
	}
	return &spec, args[1:], nil
}
