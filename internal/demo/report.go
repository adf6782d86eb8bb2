package demo

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/microshop/microshop/internal/loadgen"
)

// reporter prints a demo's progress: numbered steps, and lines stamped
// with the time since the demo began. It is safe for concurrent use.
type reporter struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
	steps int
}

func newReporter(w io.Writer) *reporter { return &reporter{w: w, start: time.Now()} }

// step starts a numbered step.
func (r *reporter) step(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps++
	fmt.Fprintf(r.w, "\n%d. %s\n", r.steps, fmt.Sprintf(format, args...))
}

// logf prints one line of what is happening now.
func (r *reporter) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.w, "  [%5.1fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

// plain prints text as it is, indented, for tables and trees.
func (r *reporter) plain(text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintf(r.w, "    %s\n", l)
	}
}

// Verdict is how a demo ended: PASS or FAIL, in one sentence, with the
// figures it measured.
type Verdict struct {
	Pass     bool
	Headline string
	Figures  []Figure
	// Problems are the reasons for a FAIL, one a line.
	Problems []string
}

// Figure is one measured number, named.
type Figure struct {
	Name, Value string
}

func (v *Verdict) figure(name, format string, args ...any) {
	v.Figures = append(v.Figures, Figure{Name: name, Value: fmt.Sprintf(format, args...)})
}

// check records a condition the verdict needs; a false one is a problem.
func (v *Verdict) check(ok bool, format string, args ...any) {
	if !ok {
		v.Problems = append(v.Problems, fmt.Sprintf(format, args...))
	}
}

// decide sets Pass from the problems and the headline for each outcome.
func (v *Verdict) decide(pass, fail string) {
	v.Pass = len(v.Problems) == 0
	v.Headline = pass
	if !v.Pass {
		v.Headline = fail
	}
}

// print writes the verdict: a PASS or FAIL line, then the figures.
func (v Verdict) print(w io.Writer) {
	word := "PASS"
	if !v.Pass {
		word = "FAIL"
	}
	fmt.Fprintf(w, "\n%s: %s\n", word, v.Headline)
	width := 0
	for _, f := range v.Figures {
		width = max(width, len(f.Name))
	}
	for _, f := range v.Figures {
		fmt.Fprintf(w, "  %-*s  %s\n", width+1, f.Name+":", f.Value)
	}
	for _, p := range v.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
}

// monitor prints the load's figures once a second until stopped: the
// rate of finished checkouts over the last second, and the totals. It is
// a load of one worker whose operation is to print, so loadgen's Load
// paces it and stops it.
type monitor struct {
	*loadgen.Load
	mu   sync.Mutex
	note string
}

func watch(r *reporter, l *loadgen.Load) *monitor {
	m := &monitor{}
	last, lastAt := l.Counts(), time.Now()
	m.Load = loadgen.Start(context.Background(), loadgen.Custom{Workers: 1,
		Think: func(*rand.Rand) time.Duration { return time.Second },
		Op: func(context.Context, *loadgen.Worker) {
			now, c := time.Now(), l.Counts()
			rate := float64(c.Sub(last).Checkouts) / now.Sub(lastAt).Seconds()
			m.mu.Lock()
			note := m.note
			m.mu.Unlock()
			if note != "" {
				note = "  | " + note
			}
			r.logf("%5.1f checkouts/s  confirmed %d  rejected %d  failed %d  requests %d (retried-ok %d, failed %d)%s",
				rate, c.Confirmed, c.Rejected, c.CheckoutFailed, c.Requests, c.RetriedOK, c.Failed, note)
			last, lastAt = c, now
		}})
	return m
}

// say sets the note printed after the figures, such as what is down.
func (m *monitor) say(note string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.note = note
}

// pct formats a share as a percentage.
func pct(part, whole int64) string {
	if whole == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(part)/float64(whole))
}

// money formats cents as dollars.
func money(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s$%d.%02d", sign, cents/100, cents%100)
}
