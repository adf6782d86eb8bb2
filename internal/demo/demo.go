// Package demo holds the scenarios of `microshop demo`: each one starts
// its own system (`microshop run` as a child process, in a temporary data
// directory, on free ports), does something a microservices system
// promises to survive or show, prints what it does with live figures, and
// ends with a verdict backed by numbers it measured.
//
// The scenarios talk to the system only as its users and operators do:
// through the gateway's public API (as customers and as an admin) and
// through run's control socket (start, scale, restart), plus SIGKILL for
// the crash of a process.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/internal/shopclient"
)

// Options say how to run a scenario.
type Options struct {
	// Exe is the microshop binary whose `run` command starts the system.
	Exe string
	// Out receives the demo's account of itself (os.Stdout when nil).
	Out io.Writer
	// DataDir, when set, is used (and kept) instead of a temporary
	// directory that is removed at the end. A demo that starts two
	// systems keeps each in a directory of its own under it.
	DataDir string
	// Duration is how long a demo that measures a load loads each system
	// (monolith-vs-microservices; its default when zero).
	Duration time.Duration
}

// Scenario is one demo.
type Scenario struct {
	Name string
	// Summary says in a sentence or two what it shows.
	Summary string
	run     func(ctx context.Context, d *demo) (Verdict, error)
	// alone, instead of run, is a scenario that starts its systems itself.
	alone func(ctx context.Context, opts Options, r *reporter) (Verdict, error)
	// env is the scenario's extra environment for `microshop run`.
	env []string
}

// Scenarios lists every demo, in the order --list shows them.
func Scenarios() []Scenario {
	return []Scenario{
		{Name: "isolated-failure", run: isolatedFailure,
			Summary: "Under load, kills notifications and reports with SIGKILL: checkouts keep succeeding while they are down. " +
				"Started again they catch up: every confirmed order has exactly one receipt, and reports' totals equal the orders'."},
		{Name: "independent-scaling", run: independentScaling, env: scalingEnv,
			Summary: "Gives payments a simulated card processor with 200ms of latency and two connections per process, then measures " +
				"checkout throughput at a fixed concurrency with 1, 3 and again 1 payments replicas, leaving every other service alone."},
		{Name: "rolling-deploy", run: rollingDeploy,
			Summary: "Under load, restarts every service in turn, one replica at a time (start new, wait ready, drain old). " +
				"Counts failed requests (must be 0) apart from requests that succeeded on a retry, then checks the invariants."},
		{Name: "saga-compensation", run: sagaCompensation, env: sagaEnv,
			Summary: "Checkouts that go wrong mid-saga: declined cards, a race for the last units, an order with one line out of " +
				"stock, and a card slower than orders' step timeout. Shows stock and the ledger before and after; the invariant checker judges."},
		{Name: "tracing", run: tracing,
			Summary: "Places one checkout, finds its trace in the built-in collector, and prints it as a tree of spans across " +
				"gateway, orders, inventory, payments and the event consumers, with durations."},
		{Name: "monolith-vs-microservices", alone: monolithVsMicroservices,
			Summary: "Runs the same binary as a monolith, then as microservices, each under a checkout load for --duration (default 10s), " +
				"and prints them side by side: confirmed checkouts/s, p99, CPU per checkout, memory, the cost of deploying a change to payments " +
				"(whole restart against rolling restart) and what a crash of payments leaves working."},
	}
}

// Find returns the scenario called name.
func Find(name string) (Scenario, bool) {
	for _, s := range Scenarios() {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

// Names lists the scenarios' names.
func Names() []string {
	var out []string
	for _, s := range Scenarios() {
		out = append(out, s.Name)
	}
	return out
}

// ErrFailed is returned by Run when the verdict is FAIL.
var ErrFailed = errors.New("the demo's verdict is FAIL")

// Run runs the scenario called name and prints its account and verdict to
// opts.Out. It returns the verdict, and ErrFailed when it is FAIL; any
// other error means the demo could not run to its end.
func Run(ctx context.Context, name string, opts Options) (Verdict, error) {
	sc, ok := Find(name)
	if !ok {
		return Verdict{}, fmt.Errorf("unknown demo %q; the demos are %s", name, strings.Join(Names(), ", "))
	}
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	if opts.Exe == "" {
		return Verdict{}, errors.New("demo: Options.Exe must name the microshop binary")
	}
	r := newReporter(opts.Out)
	fmt.Fprintf(opts.Out, "microshop demo %s\n%s\n", sc.Name, wrap(sc.Summary, 78))
	if sc.alone != nil {
		v, err := sc.alone(ctx, opts, r)
		if err != nil {
			return Verdict{}, fmt.Errorf("%s: %w", sc.Name, err)
		}
		v.print(opts.Out)
		if !v.Pass {
			return v, ErrFailed
		}
		return v, nil
	}

	r.step("Start a system of its own")
	sys, err := startSystem(ctx, opts, sc.env)
	if err != nil {
		return Verdict{}, err
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		r.logf("stopping the system")
		sys.Close()
		if opts.DataDir != "" {
			r.logf("its data stays in %s", sys.Data)
		}
	}
	defer stop()
	shop, err := shopclient.New(sys.Gateway, shopclient.Options{Conns: 256, Timeout: 30 * time.Second, UserAgent: "microshop-demo"})
	if err != nil {
		return Verdict{}, err
	}
	d := &demo{opts: opts, r: r, sys: sys, shop: shop}
	if err := d.boot(ctx); err != nil {
		return Verdict{}, err
	}
	v, err := sc.run(ctx, d)
	if err != nil {
		return Verdict{}, fmt.Errorf("%s: %w", sc.Name, err)
	}
	stop()
	v.print(opts.Out)
	if !v.Pass {
		return v, ErrFailed
	}
	return v, nil
}

// demo is one run of a scenario: the system, and how to talk to it.
type demo struct {
	opts  Options
	r     *reporter
	sys   *system
	shop  *shopclient.Client
	admin *shopclient.Session
}

// boot says what runs, and logs the admin in.
func (d *demo) boot(ctx context.Context) error {
	procs, err := d.sys.processes(ctx)
	if err != nil {
		return err
	}
	d.r.logf("microshop run is up: gateway %s, data in %s", d.sys.Gateway, d.sys.Data)
	d.r.plain(processTable(procs))
	d.admin, err = d.shop.Login(ctx, d.sys.AdminEmail, d.sys.AdminPassword)
	if err != nil {
		return fmt.Errorf("logging in as the admin: %w", err)
	}
	// Each service's balancers probe the replicas of the services it calls
	// once a second; a service that started before its callees has not
	// seen them up yet, and calls it makes meanwhile go looking.
	d.r.logf("letting every service's balancers probe the others (%s)", settle)
	return sleep(ctx, settle)
}

// settle is how long a fresh system is left alone before a demo begins.
const settle = 2500 * time.Millisecond

// pids maps every running process name to its pids, for "who was
// touched" comparisons.
func (d *demo) pids(ctx context.Context) (map[string][]int, error) {
	procs, err := d.sys.processes(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]int{}
	for _, p := range procs {
		if p.Running {
			out[p.Name] = append(out[p.Name], p.PID)
		}
	}
	for _, v := range out {
		sort.Ints(v)
	}
	return out, nil
}

func processTable(procs []localrun.Process) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROCESS\tREPLICA\tPID\tURL")
	for _, p := range procs {
		if p.Running {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", p.Name, p.Replica+1, p.PID, p.URL)
		}
	}
	tw.Flush()
	return b.String()
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// wrap breaks text into lines of at most width characters.
func wrap(text string, width int) string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = w
			continue
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}
