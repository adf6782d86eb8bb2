package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/loadgen"
)

// TestQuickRun runs `bench/run --quick` as CI does, and checks that it
// completes and that its results file is well formed: the machine
// section, every table, numbers in every cell that should hold one, and
// rows for both modes. It does not judge the figures: a quick run on a
// busy machine measures little.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: bench/run --quick takes a minute or two")
	}
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "bench", "run"), "--quick", "--out", out)
	cmd.Dir = root
	cmd.WaitDelay = 10 * time.Second
	output, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench/run --quick: %v\n%s", err, output)
	}
	files, _ := filepath.Glob(filepath.Join(out, "*-quick.md"))
	if len(files) != 1 {
		t.Fatalf("want one results file in %s, found %v\n%s", out, files, output)
	}
	if want := filepath.Join(out, time.Now().Format("2006-01-02")+"-"+hostID()+"-quick.md"); files[0] != want &&
		!strings.HasSuffix(files[0], "-"+hostID()+"-quick.md") {
		t.Errorf("results file %s, want %s", files[0], want)
	}
	if !strings.Contains(string(output), files[0]) {
		t.Errorf("bench/run did not print the results file's path:\n%s", output)
	}
	for _, want := range []string{"microservices memory: whole system PSS under load", "microservices memory: run (supervisor, mailbox, collector) RSS",
		"microservices memory: orders RSS under load"} {
		if !strings.Contains(string(output), want) {
			t.Errorf("bench/run did not print %q:\n%s", want, output)
		}
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	if problems := checkResults(doc); len(problems) > 0 {
		t.Fatalf("the results file is malformed: %v\n%s", problems, doc)
	}
	lines := strings.Split(doc, "\n")
	at := func(heading string) int {
		for i, l := range lines {
			if l == heading {
				return i
			}
		}
		t.Fatalf("no %s", heading)
		return 0
	}
	machine := map[string]string{}
	for _, r := range tableAfter(lines, at(machineHeading)) {
		machine[r[0]] = r[1]
	}
	if machine["cores"] != strconv.Itoa(runtime.NumCPU()) || !strings.Contains(machine["Go"], "go1.") {
		t.Errorf("machine section: %v", machine)
	}
	if rows := tableAfter(lines, at("## Ceiling")); len(rows) != 2 {
		t.Errorf("the ceiling table has %d rows, want 2 (one hop, two hops)", len(rows))
	}
	// Both modes have a row in the checkout table, measured (numbers,
	// not n/a): microservices always, monolith now that run has it.
	for _, mode := range []string{"microservices", "monolith"} {
		found := false
		for _, r := range tableAfter(lines, at("## Checkout")) {
			if r[0] != mode {
				continue
			}
			found = true
			for _, c := range r[1:] {
				if _, err := strconv.ParseFloat(c, 64); err != nil {
					t.Errorf("%s checkout row has %q where a figure belongs: %v", mode, c, r)
					break
				}
			}
		}
		if !found {
			t.Errorf("no %s row in the checkout table", mode)
		}
	}
}

// TestCheckResults: the checker accepts what render writes and catches a
// missing table or a cell that is not a number.
func TestCheckResults(t *testing.T) {
	ok := &loadgen.Result{ConfirmedCheckouts: 10, ConfirmedCheckoutsPerSecond: 5,
		Operations: []loadgen.OpResult{{Name: loadgen.OpCheckout, Count: 10}}, Totals: loadgen.OpResult{Count: 10, RatePerSecond: 5}}
	r := &results{
		Settings: quickSettings(),
		Machine:  machine{Cores: 2, Model: "a CPU", GoVersion: "go version go1.26.8 linux/amd64", Kernel: "6.1", HostID: "abcd1234"},
		Started:  time.Now(), Finished: time.Now(),
		Ceiling: []*ceilingRow{{Name: "one hop", Workers: 4, Sat: hits{Rate: 100}}, {Name: "two hops", Workers: 4, Sat: hits{Rate: 50}}},
		Modes: []*modeResult{
			{Mode: "microservices", Browse: hits{Rate: 10}, Mix: ok, Checkout: ok, CheckoutOpen: ok, FinalDrained: true,
				Procs: []procFig{{Label: "gateway", PID: 1, RSSIdle: 1 << 20, RSSLoad: 2 << 20}}},
			{Mode: "monolith", Skipped: "not in this build"},
			{Mode: postgresMode, Browse: hits{Rate: 10}, Mix: ok, Checkout: ok, CheckoutOpen: ok, FinalDrained: true,
				PG:    &pgFigs{IdleSeconds: 30, IdleCommits: 2.5, IdleBackends: 7, PeakBackends: 24, CommitsPer: 20, BackendCPUPer: 3},
				Procs: []procFig{{Label: "gateway", PID: 2, RSSIdle: 1 << 20, RSSLoad: 2 << 20}}},
		},
	}
	doc := render(r)
	if problems := checkResults(doc); len(problems) > 0 {
		t.Fatalf("render's own output fails the check: %v\n%s", problems, doc)
	}
	if !strings.Contains(doc, pgHeading) || !strings.Contains(doc, "| backends, most at once in the checkout closed loop | 24 |") {
		t.Errorf("no PostgreSQL table with the postgres mode's figures:\n%s", doc)
	}
	if problems := checkResults(strings.Replace(doc, "| backends, idle | 7 |", "| backends, idle | some |", 1)); len(problems) == 0 {
		t.Errorf("a PostgreSQL cell that is not a number passed the check")
	}
	if !strings.Contains(doc, "| one hop | 4 | 100 |") {
		t.Fatalf("the ceiling row is not as expected:\n%s", doc)
	}
	broken := strings.Replace(doc, "| one hop | 4 | 100 |", "| one hop | 4 | lots |", 1)
	if problems := checkResults(broken); len(problems) == 0 {
		t.Errorf("a cell that is not a number passed the check")
	}
	if problems := checkResults(strings.Replace(doc, "## Ratios", "## Something else", 1)); len(problems) == 0 {
		t.Errorf("a missing table passed the check")
	}
	if problems := checkResults(strings.Replace(doc, "| cores |", "| kernels |", 1)); len(problems) == 0 {
		t.Errorf("a machine section without cores passed the check")
	}
}
