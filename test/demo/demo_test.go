// Package demo runs every scenario of `microshop demo` on a real system
// (each starts `microshop run` of its own) and requires a PASS verdict
// with the figures it promises. The whole package is skipped with -short.
package demo

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/demo"
	"github.com/microshop/microshop/test/systemtest"
)

// run runs a scenario through the engine and requires PASS, the PASS
// line, and a figure of each name in figures, printed.
func run(t *testing.T, name string, budget time.Duration, figures ...string) demo.Verdict {
	t.Helper()
	bin := systemtest.Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	var out bytes.Buffer // demo.Run writes it through one reporter, and is over when read
	start := time.Now()
	v, err := demo.Run(ctx, name, demo.Options{Exe: bin, Out: &out})
	t.Logf("microshop demo %s took %s:\n%s", name, time.Since(start).Round(100*time.Millisecond), out.String())
	if err != nil {
		t.Fatalf("demo %s: %v", name, err)
	}
	text := out.String()
	if !v.Pass || !strings.Contains(text, "\nPASS: "+v.Headline+"\n") {
		t.Fatalf("the verdict is not PASS: %+v", v)
	}
	got := map[string]string{}
	for _, f := range v.Figures {
		got[f.Name] = f.Value
		if !strings.Contains(text, f.Name+":") || !strings.Contains(text, f.Value) {
			t.Errorf("figure %q = %q is not in the output", f.Name, f.Value)
		}
	}
	for _, want := range figures {
		if got[want] == "" {
			t.Errorf("no figure %q in the verdict; figures: %v", want, got)
		}
	}
	if strings.Contains(text, "\nFAIL: ") {
		t.Error("the output says FAIL")
	}
	return v
}

func figure(v demo.Verdict, name string) string {
	for _, f := range v.Figures {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

func TestIsolatedFailure(t *testing.T) {
	v := run(t, "isolated-failure", 90*time.Second,
		"checkouts while up", "checkouts while down", "receipts sent while down", "confirmed orders", "receipts", "reports summary", "caught up")
	if down := figure(v, "checkouts while down"); !strings.Contains(down, "(100.0%), 0 failed") {
		t.Errorf("checkouts while down: %s", down)
	}
	if r := figure(v, "receipts"); !strings.Contains(r, "0 missing, 0 doubled, 0 for unknown orders") {
		t.Errorf("receipts: %s", r)
	}
}

func TestIndependentScaling(t *testing.T) {
	v := run(t, "independent-scaling", 90*time.Second,
		"throughput, 1 replica", "throughput, 3 replicas", "throughput, back to 1", "ratio 3 : 1", "split over 3 replicas", "other services")
	if !strings.Contains(figure(v, "other services"), "0 restarted") {
		t.Errorf("other services: %s", figure(v, "other services"))
	}
}

func TestRollingDeploy(t *testing.T) {
	v := run(t, "rolling-deploy", 90*time.Second,
		"services restarted", "requests", "failed requests", "retried then succeeded", "checkouts", "invariants")
	if figure(v, "failed requests") != "0" {
		t.Errorf("failed requests: %s", figure(v, "failed requests"))
	}
	if !strings.Contains(figure(v, "invariants"), ", 0 violations") {
		t.Errorf("invariants: %s", figure(v, "invariants"))
	}
}

func TestSagaCompensation(t *testing.T) {
	v := run(t, "saga-compensation", 60*time.Second,
		"orders", "DEMO-SAGA-LAMP", "DEMO-SAGA-LAST", "ledger", "invariant violations")
	for _, want := range []string{"payment_declined", "out_of_stock", "payment_unavailable", "CONFIRMED"} {
		if !strings.Contains(figure(v, "orders"), want) {
			t.Errorf("orders: %s, want some %s", figure(v, "orders"), want)
		}
	}
	if figure(v, "invariant violations") != "0" || !strings.Contains(figure(v, "ledger"), "balanced true, total $0.00") {
		t.Errorf("invariants %s, ledger %s", figure(v, "invariant violations"), figure(v, "ledger"))
	}
}

// TestTracing runs its demo through the command, as a person does: exit
// status 0, and the tree and verdict on stdout.
func TestTracing(t *testing.T) {
	bin := systemtest.Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "demo", "tracing")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("microshop demo tracing:\n%s%s", stdout.String(), stderr.String())
	if err != nil {
		t.Fatalf("microshop demo tracing: %v", err)
	}
	text := stdout.String()
	for _, want := range []string{"\nPASS: one checkout is one trace", "  spans:", "  trace:", "  links across processes:",
		"gateway: POST /api/orders [server]", "└─ orders: POST /api/orders [server]", "inventory: POST /internal/reservations [server]",
		"payments: POST /internal/payments/authorize [server]", "notifications: orders.confirmed process [consumer]"} {
		if !strings.Contains(text, want) {
			t.Errorf("the output lacks %q", want)
		}
	}
}

func TestListAndUnknown(t *testing.T) {
	bin := systemtest.Binary(t)
	out, err := exec.Command(bin, "demo", "--list").CombinedOutput()
	if err != nil {
		t.Fatalf("demo --list: %v\n%s", err, out)
	}
	for _, s := range demo.Scenarios() {
		if !strings.Contains(string(out), s.Name+"\n    ") {
			t.Errorf("--list does not describe %s:\n%s", s.Name, out)
		}
	}
	out, err = exec.Command(bin, "demo", "no-such-demo").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "isolated-failure") {
		t.Errorf("an unknown demo: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "demo").CombinedOutput()
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "Usage: microshop demo") {
		t.Errorf("no demo named: %v\n%s", err, out)
	}
}

// TestMonolithVsMicroservices runs the comparison through the command, as
// a person does, with a short load, and reads its table: every row there
// with a number above 0 for each mode where one is due; the monolith's
// crash leaves nothing answering; the microservices' keeps the catalog
// up; the rolling restart loses no request.
func TestMonolithVsMicroservices(t *testing.T) {
	bin := systemtest.Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "demo", "monolith-vs-microservices", "--duration", "3s")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("microshop demo monolith-vs-microservices:\n%s%s", stdout.String(), stderr.String())
	if err != nil {
		t.Fatalf("microshop demo monolith-vs-microservices: %v", err)
	}
	text := stdout.String()
	if !strings.Contains(text, "\nPASS: ") {
		t.Fatal("no PASS verdict")
	}
	// A figure line of the verdict: "  <row>:  monolith: <a> | microservices: <b>".
	row := func(name string) (mono, micro string) {
		t.Helper()
		re := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(name) + `:\s+monolith: (.*) \| microservices: (.*)$`)
		m := re.FindStringSubmatch(text)
		if m == nil {
			t.Errorf("no row %q in the verdict", name)
			return "", ""
		}
		return m[1], m[2]
	}
	positive := func(name string, cell string) {
		t.Helper()
		f := strings.Fields(cell)
		if len(f) == 0 {
			t.Errorf("%s: empty cell", name)
			return
		}
		n, err := strconv.ParseFloat(f[0], 64)
		if err != nil || n <= 0 {
			t.Errorf("%s: %q is not a number above 0", name, cell)
		}
	}
	for _, name := range []string{"ready after start, s", "confirmed checkouts/s", "checkout p99, ms", "memory under load, PSS MiB (RSS MiB)", "  took, s"} {
		mono, micro := row(name)
		positive(name+", monolith", mono)
		positive(name+", microservices", micro)
	}
	if runtime.GOOS == "linux" {
		mono, micro := row("CPU per confirmed checkout, ms")
		positive("CPU, monolith", mono)
		positive("CPU, microservices", micro)
	}
	if mono, micro := row("deploy a change to payments"); mono != "whole restart" || micro != "rolling restart of payments" {
		t.Errorf("deploy: %q | %q", mono, micro)
	}
	if _, micro := row("  failed requests of shoppers who retry"); !strings.HasPrefix(micro, "0 of ") {
		t.Errorf("the rolling restart lost requests: %s", micro)
	}
	if mono, _ := row("  failed probes"); strings.HasPrefix(mono, "0 of ") {
		t.Errorf("the monolith's whole restart failed no probe (%s): did it restart at all?", mono)
	}
	for _, what := range []string{"browse the catalog", "log in", "read order history", "check out"} {
		mono, micro := row("after payments crashes: " + what)
		if !strings.HasPrefix(mono, "fails") {
			t.Errorf("the monolith's crash left %q answering: %s", what, mono)
		}
		if what != "check out" && !strings.HasPrefix(micro, "works") {
			t.Errorf("the microservices' crash of payments took %q down: %s", what, micro)
		}
		if what == "check out" && strings.HasPrefix(micro, "works: CONFIRMED") {
			t.Errorf("a checkout was confirmed with payments dead: %s", micro)
		}
	}
}
