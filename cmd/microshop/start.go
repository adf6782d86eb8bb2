package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/microshop/microshop/internal/localrun"
)

// The commands that act on a running `microshop run` through its control
// API (localrun.Client): start, scale and restart.

func start(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	name, data, _, err := controlArgs("start", "<process>", `Starts a process of a running `+"`microshop run`"+` whose process has stopped (for
example after it was killed), on its own port, with its own data.`, args, false, stderr)
	if err != nil {
		return helpOK(err)
	}
	c, err := localrun.NewClient(data).Start(ctx, name)
	if err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	fmt.Fprintf(stdout, "%s started and ready: pid %d on %s\n", name, c.PID, c.URL)
	return nil
}

func scale(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	name, data, n, err := controlArgs("scale", "<service> <replicas>", `Runs that many replicas of a service of a running `+"`microshop run`"+`: new ones
start on ports 100 apart and take traffic once ready (callers probe for
them); surplus ones drain and stop. The gateway cannot be scaled here.`, args, true, stderr)
	if err != nil {
		return helpOK(err)
	}
	replicas, err := localrun.NewClient(data).Scale(ctx, name, n)
	if err != nil {
		return fmt.Errorf("scaling %s: %w", name, err)
	}
	printReplicas(stdout, name, replicas)
	return nil
}

func restart(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	name, data, _, err := controlArgs("restart", "<service>", `Rolling restart of a service of a running `+"`microshop run`"+`: for each
replica, start a new process, wait until it is ready, then drain and stop
the old one. Callers stop sending to a replica as soon as its readiness
turns false, so requests keep succeeding throughout.`, args, false, stderr)
	if err != nil {
		return helpOK(err)
	}
	replicas, err := localrun.NewClient(data).Restart(ctx, name)
	if err != nil {
		return fmt.Errorf("restarting %s: %w", name, err)
	}
	printReplicas(stdout, name, replicas)
	return nil
}

// errHelped means the help text was asked for and printed.
var errHelped = errors.New("help printed")

// controlArgs parses `<cmd> <name> [count] [--data DIR]`.
func controlArgs(cmd, operands, help string, args []string, wantCount bool, stderr io.Writer) (name, data string, n int, err error) {
	fs := flag.NewFlagSet("microshop "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", "data", "the data directory of the running system")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: microshop %s %s [--data DIR]\n\n%s\n\nFlags:\n", cmd, operands, help)
		fs.PrintDefaults()
	}
	var pos []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		pos, args = append(pos, args[0]), args[1:]
	}
	if helped, err := parseFlags(fs, args); err != nil {
		return "", "", 0, err
	} else if helped {
		return "", "", 0, errHelped
	}
	pos = append(pos, fs.Args()...)
	want := 1
	if wantCount {
		want = 2
	}
	if len(pos) != want {
		fs.Usage()
		return "", "", 0, errUsage
	}
	if wantCount {
		if n, err = strconv.Atoi(pos[1]); err != nil || n < 1 {
			return "", "", 0, fmt.Errorf("replicas %q: want a number from 1 to %d", pos[1], localrun.MaxReplicas)
		}
	}
	return pos[0], *dataDir, n, nil
}

// helpOK turns "help was printed" into success.
func helpOK(err error) error {
	if errors.Is(err, errHelped) {
		return nil
	}
	return err
}

func printReplicas(w io.Writer, name string, replicas []localrun.Process) {
	fmt.Fprintf(w, "%s: %d replica(s) running and ready\n", name, len(replicas))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REPLICA\tURL\tPID\tLOG")
	for _, c := range replicas {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\n", c.Replica+1, c.URL, c.PID, c.Log)
	}
	tw.Flush()
}
