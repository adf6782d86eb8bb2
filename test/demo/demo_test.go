// Package demo runs every scenario of `microshop demo` on a real system
// (each starts `microshop run` of its own) and requires a PASS verdict
// with the figures it promises. The whole package is skipped with -short.
package demo

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
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
		"gateway: POST /api/* [server]", "└─ orders: POST /api/orders [server]", "inventory: POST /internal/reservations [server]",
		"payments: POST /internal/payments/authorize [server]", "notifications: handle orders.confirmed [consumer]"} {
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
