package contractcheck

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Outcome is what became of one case.
type Outcome string

const (
	// Pass: the implementation did what the document says.
	Pass Outcome = "pass"
	// Fail: it did not; the detail says how.
	Fail Outcome = "fail"
	// Skip: the checker could not run the case; the detail says why.
	Skip Outcome = "skip"
	// Warn: not a breach of the contract, but worth a look (an event the
	// scripted calls could not cause, a served document that differs).
	Warn Outcome = "warn"
)

// Result is one case of one operation.
type Result struct {
	// Operation is "METHOD /path" as the document writes it, or
	// "GET /openapi.json", or "event <type>" / "events <STREAM>".
	Operation string  `json:"operation"`
	Case      string  `json:"case"`
	Outcome   Outcome `json:"result"`
	// Status is the HTTP status the service answered, when it did.
	Status int    `json:"status,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Report is everything one check found.
type Report struct {
	Service string   `json:"service"`
	URL     string   `json:"url"`
	Results []Result `json:"results"`
	Totals  Totals   `json:"totals"`
}

// Totals counts the results by outcome.
type Totals struct {
	Pass int `json:"pass"`
	Fail int `json:"fail"`
	Skip int `json:"skip"`
	Warn int `json:"warn"`
}

// Failed reports whether any case failed.
func (r *Report) Failed() bool { return r.Totals.Fail > 0 }

// Failures lists the failed results.
func (r *Report) Failures() []Result { return r.only(Fail) }

func (r *Report) only(o Outcome) []Result {
	var out []Result
	for _, res := range r.Results {
		if res.Outcome == o {
			out = append(out, res)
		}
	}
	return out
}

func (r *Report) count() {
	r.Totals = Totals{}
	for _, res := range r.Results {
		switch res.Outcome {
		case Pass:
			r.Totals.Pass++
		case Fail:
			r.Totals.Fail++
		case Skip:
			r.Totals.Skip++
		case Warn:
			r.Totals.Warn++
		}
	}
}

// WriteJSON writes the report as one JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report as a table of operation, case, result and
// detail, one line per case, then the totals.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "contract of %s at %s\n\n", r.Service, r.URL)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "OPERATION\tCASE\tRESULT\tSTATUS\tDETAIL")
	last := ""
	for _, res := range r.Results {
		op := res.Operation
		if op == last {
			op = ""
		} else {
			last = op
		}
		status := ""
		if res.Status != 0 {
			status = fmt.Sprint(res.Status)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", op, res.Case, strings.ToUpper(string(res.Outcome)), status, oneLine(res.Detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	t := r.Totals
	_, err := fmt.Fprintf(w, "\n%d cases: %d passed, %d failed, %d skipped, %d warnings\n",
		len(r.Results), t.Pass, t.Fail, t.Skip, t.Warn)
	return err
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	const max = 400
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}
