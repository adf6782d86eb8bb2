package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/microshop/microshop/internal/demo"
)

// runDemo is `microshop demo <scenario>` and `microshop demo --list`.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("microshop demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		list = fs.Bool("list", false, "describe every demo and exit")
		data = fs.String("data", "", "run the demo's system in this new or empty directory and keep it (default: a temporary one, removed at the end)")
		dur  = fs.Duration("duration", 0, "monolith-vs-microservices: how long each mode is loaded (default 10s)")
	)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: microshop demo <scenario> [flags]
       microshop demo --list

Runs one scenario on a system of its own: it starts "microshop run" in a
temporary data directory on free ports, does what the scenario says while
printing each step with live figures, and ends with a PASS or FAIL verdict
backed by the numbers it measured (exit status 1 on FAIL).

Scenarios: %s

monolith-vs-microservices runs the same binary both ways, one after the
other, and prints a table side by side: confirmed checkouts/s, p99 and CPU
per checkout under --duration of load, memory (PSS and RSS of every
process), the cost of deploying a change to payments (the monolith
restarts whole; microservices replace payments alone, one process at a
time) and what still works once payments crashes.

Flags:
`, strings.Join(demo.Names(), ", "))
		fs.PrintDefaults()
	}
	// The scenario may come before or after the flags.
	var pos []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		pos, args = append(pos, args[0]), args[1:]
	}
	if helped, err := parseFlags(fs, args); helped || err != nil {
		return err
	}
	pos = append(pos, fs.Args()...)
	if *list {
		for _, s := range demo.Scenarios() {
			fmt.Fprintf(stdout, "%s\n%s\n\n", s.Name, indent(wrapText(s.Summary, 74), "    "))
		}
		fmt.Fprintln(stdout, `Run one with "microshop demo <scenario>".`)
		return nil
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	if _, ok := demo.Find(pos[0]); !ok {
		return fmt.Errorf("unknown demo %q; the demos are %s (microshop demo --list describes them)", pos[0], strings.Join(demo.Names(), ", "))
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary to start the system: %w", err)
	}
	if *data != "" {
		if entries, err := os.ReadDir(*data); err == nil && len(entries) > 0 {
			return fmt.Errorf("--data %s is not empty; a demo needs a new system", *data)
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("--data: %w", err)
		}
		if err := os.MkdirAll(*data, 0o750); err != nil {
			return fmt.Errorf("--data: %w", err)
		}
	}
	// On FAIL the verdict has said why; the error makes the exit status 1.
	if *dur < 0 {
		return fmt.Errorf("--duration %s: want a positive duration such as 10s", *dur)
	}
	_, err = demo.Run(ctx, pos[0], demo.Options{Exe: exe, Out: stdout, DataDir: *data, Duration: *dur})
	return err
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

func wrapText(text string, width int) string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return strings.Join(append(lines, line), "\n")
}
