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
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "Usage: microshop migrate <service> [flags]\n\nApplies a service's database migrations and exits. Services: %s\n",
			strings.Join(topology.Names(), ", "))
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			return nil
		}
		return errUsage
	}
	spec, ok := topology.Find(args[0])
	if !ok {
		return fmt.Errorf("unknown service %q; the services are %s", args[0], strings.Join(topology.Names(), ", "))
	}
	return service.Migrate(ctx, spec, args[1:], getenv, stdout, stderr)
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "Usage: microshop serve <service> [flags]\n\nRuns one service. Services: %s\n\nRun \"microshop serve <service> --help\" for its flags.\n",
			strings.Join(topology.Names(), ", "))
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			return nil
		}
		return errUsage
	}
	spec, ok := topology.Find(args[0])
	if !ok {
		return fmt.Errorf("unknown service %q; the services are %s", args[0], strings.Join(topology.Names(), ", "))
	}
	return service.Run(ctx, spec, args[1:], getenv, stdout, stderr)
}
