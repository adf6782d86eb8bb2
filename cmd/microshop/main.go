// Command microshop is the one binary that holds every microshop service.
//
//	microshop run              the whole system on this machine
//	microshop serve <service>  one service, as a container runs it
//	microshop version          the build's version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "microshop:", err)
		}
		os.Exit(1)
	}
}

// errUsage means the usage text has already been printed.
var errUsage = errors.New("usage")

const usage = `microshop is a shop built as microservices: users, inventory, orders,
payments, notifications and reports, behind a gateway with a web UI.

Usage:
  microshop <command> [flags]

Commands:
  run       run the whole system on this machine (embedded NATS, SQLite)
  serve     run one service, as a container or a process manager would
  migrate   apply one service's database migrations and exit
  start     start a stopped process of a running system again
  scale     run N replicas of a service of a running system
  restart   rolling restart of a service of a running system, without errors
  chaos     kill random processes of a fresh system under load, then check it
  nats      run the embedded NATS JetStream server alone
  load      put a measured load on a running system (latency percentiles)
  demo      run a scenario on a system of its own and judge it PASS or FAIL (demo --list)
  reports   rebuild the reports read model of a running system, with progress
  contract  check a running service, in any language, against its OpenAPI document and events
  version   print the version

Run "microshop <command> --help" for a command's flags.
`

// run is main without the process: tests call it with their own
// arguments, environment and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return runSystem(ctx, rest, getenv, stdout, stderr)
	case "serve":
		return serve(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, rest, getenv, stdout, stderr)
	case "nats":
		return natsServer(ctx, rest, stdout, stderr)
	case "start":
		return start(ctx, rest, getenv, stdout, stderr)
	case "scale":
		return scale(ctx, rest, getenv, stdout, stderr)
	case "restart":
		return restart(ctx, rest, getenv, stdout, stderr)
	case "chaos":
		return runChaos(ctx, rest, getenv, stdout, stderr)
	case "load":
		return load(ctx, rest, getenv, stdout, stderr)
	case "demo":
		return runDemo(ctx, rest, stdout, stderr)
	case "reports":
		return reportsCommand(ctx, rest, getenv, stdout, stderr)
	case "contract":
		return contract(ctx, rest, getenv, stdout, stderr)
	case "version":
		return version(rest, stdout, stderr)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "microshop: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
}

// parseFlags parses a command's flags, treating --help as success.
func parseFlags(fs *flag.FlagSet, args []string) (helped bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, errUsage
	}
	return false, nil
}
