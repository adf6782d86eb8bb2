// Package collector is the built-in trace collector of `microshop run`:
// an OTLP/HTTP receiver that keeps the most recent traces in bounded
// memory, and a small API the web console reads: recent traces, one
// trace's spans, and request rate, error rate and p99 latency per service
// and per edge between services, all derived from the spans themselves.
// Anywhere else, services export to a real OTLP endpoint instead.
package collector

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Span is one received span.
type Span struct {
	TraceID       string            `json:"trace_id"`
	SpanID        string            `json:"span_id"`
	ParentSpanID  string            `json:"parent_span_id,omitempty"`
	Service       string            `json:"service"`
	Name          string            `json:"name"`
	Kind          string            `json:"kind"`
	Start         time.Time         `json:"start"`
	End           time.Time         `json:"end"`
	Status        string            `json:"status"`
	StatusMessage string            `json:"status_message,omitempty"`
	Attributes    map[string]string `json:"attributes,omitempty"`
}

func (s Span) duration() time.Duration { return s.End.Sub(s.Start) }

// Collector keeps up to maxTraces traces (the oldest go first) and, for
// the figures, the spans of the last window.
type Collector struct {
	maxTraces int
	maxSpans  int // per trace
	window    time.Duration
	// Health, when set, says which services are up, for the map.
	Health func(ctx context.Context) map[string]bool
	// Elsewhere, when set, is where the services send their spans
	// instead of here (an OTLP endpoint the operator chose, or "none"),
	// so the console can say why it has no traces.
	Elsewhere string

	mu     sync.Mutex
	traces map[string][]Span
	order  []string // trace ids, oldest first
	recent []Span   // spans that ended within window, oldest first
}

// New returns a collector keeping maxTraces traces.
func New(maxTraces int) *Collector {
	return &Collector{maxTraces: maxTraces, maxSpans: 2000, window: time.Minute, traces: map[string][]Span{}}
}

// Add stores spans.
func (c *Collector) Add(spans ...Span) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range spans {
		t, ok := c.traces[s.TraceID]
		if !ok {
			c.order = append(c.order, s.TraceID)
			for len(c.order) > c.maxTraces {
				delete(c.traces, c.order[0])
				c.order = c.order[1:]
			}
		}
		if len(t) < c.maxSpans {
			c.traces[s.TraceID] = append(t, s)
		}
		c.recent = append(c.recent, s)
	}
	c.trimLocked(time.Now())
}

func (c *Collector) trimLocked(now time.Time) {
	cut := 0
	for cut < len(c.recent) && now.Sub(c.recent[cut].End) > c.window {
		cut++
	}
	// Bound memory under heavy load as well as by time.
	if over := len(c.recent) - cut - 100_000; over > 0 {
		cut += over
	}
	c.recent = append(c.recent[:0], c.recent[cut:]...)
}

// Receiver answers OTLP/HTTP trace exports (protobuf or JSON) on
// POST /v1/traces.
func (c *Collector) Receiver() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req coltrace.ExportTraceServiceRequest
		if r.Header.Get("Content-Type") == "application/json" {
			err = protojson.Unmarshal(body, &req)
		} else {
			err = proto.Unmarshal(body, &req)
		}
		if err != nil {
			http.Error(w, "not an OTLP trace export: "+err.Error(), http.StatusBadRequest)
			return
		}
		c.Add(convert(&req)...)
		resp, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(resp)
	})
	return mux
}

func convert(req *coltrace.ExportTraceServiceRequest) []Span {
	var out []Span
	for _, rs := range req.GetResourceSpans() {
		service := "unknown"
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s := Span{
					TraceID: hex.EncodeToString(sp.GetTraceId()), SpanID: hex.EncodeToString(sp.GetSpanId()),
					Service: service, Name: sp.GetName(), Kind: kindName(sp.GetKind()),
					Start:  time.Unix(0, int64(sp.GetStartTimeUnixNano())).UTC(),
					End:    time.Unix(0, int64(sp.GetEndTimeUnixNano())).UTC(),
					Status: "ok", StatusMessage: sp.GetStatus().GetMessage(),
				}
				if p := sp.GetParentSpanId(); len(p) > 0 {
					s.ParentSpanID = hex.EncodeToString(p)
				}
				if sp.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
					s.Status = "error"
				}
				if attrs := sp.GetAttributes(); len(attrs) > 0 {
					s.Attributes = map[string]string{}
					for _, kv := range attrs {
						s.Attributes[kv.GetKey()] = valueString(kv.GetValue())
					}
				}
				out = append(out, s)
			}
		}
	}
	return out
}

func kindName(k tracepb.Span_SpanKind) string {
	switch k {
	case tracepb.Span_SPAN_KIND_SERVER:
		return "server"
	case tracepb.Span_SPAN_KIND_CLIENT:
		return "client"
	case tracepb.Span_SPAN_KIND_PRODUCER:
		return "producer"
	case tracepb.Span_SPAN_KIND_CONSUMER:
		return "consumer"
	default:
		return "internal"
	}
}

func valueString(v *common.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *common.AnyValue_StringValue:
		return x.StringValue
	case *common.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *common.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *common.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	default:
		return fmt.Sprint(v.GetValue())
	}
}

// TraceSummary is a line of the recent-traces list.
type TraceSummary struct {
	TraceID     string    `json:"trace_id"`
	RootService string    `json:"root_service"`
	RootName    string    `json:"root_name"`
	StartedAt   time.Time `json:"started_at"`
	DurationMS  float64   `json:"duration_ms"`
	SpanCount   int       `json:"span_count"`
	Services    []string  `json:"services"`
	Errors      int       `json:"errors"`
}

// Traces returns the newest traces first, optionally only those that
// touched service.
func (c *Collector) Traces(service string, limit int) []TraceSummary {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []TraceSummary
	for i := len(c.order) - 1; i >= 0 && len(out) < limit; i-- {
		sum := summarize(c.order[i], c.traces[c.order[i]])
		if service != "" && !contains(sum.Services, service) {
			continue
		}
		out = append(out, sum)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func summarize(id string, spans []Span) TraceSummary {
	sum := TraceSummary{TraceID: id, SpanCount: len(spans)}
	ids := map[string]bool{}
	for _, s := range spans {
		ids[s.SpanID] = true
	}
	services := map[string]bool{}
	var start, end time.Time
	for _, s := range spans {
		services[s.Service] = true
		if s.Status == "error" {
			sum.Errors++
		}
		if start.IsZero() || s.Start.Before(start) {
			start = s.Start
		}
		if s.End.After(end) {
			end = s.End
		}
		if (s.ParentSpanID == "" || !ids[s.ParentSpanID]) && (sum.RootName == "" || s.Start.Before(sum.StartedAt)) {
			sum.RootService, sum.RootName, sum.StartedAt = s.Service, s.Name, s.Start
		}
	}
	sum.StartedAt = start
	sum.DurationMS = float64(end.Sub(start).Microseconds()) / 1000
	for s := range services {
		sum.Services = append(sum.Services, s)
	}
	sort.Strings(sum.Services)
	return sum
}

// Trace returns one trace's spans in start order.
func (c *Collector) Trace(id string) ([]Span, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	spans, ok := c.traces[id]
	if !ok {
		return nil, false
	}
	out := append([]Span(nil), spans...)
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out, true
}

// Figures are rate, errors and p99 latency over the window.
type Figures struct {
	RPS       float64 `json:"rps"`
	ErrorRate float64 `json:"error_rate"`
	P99MS     float64 `json:"p99_ms"`
	Count     int     `json:"count"`
}

// ServiceFigures are one service's figures, from its server and consumer spans.
type ServiceFigures struct {
	Name    string `json:"name"`
	Healthy *bool  `json:"healthy,omitempty"`
	Figures
}

// EdgeFigures are the calls (or events) from one service to another: a
// span of To whose parent belongs to From.
type EdgeFigures struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Async bool   `json:"async"` // carried by events rather than HTTP
	Figures
}

// Map returns the figures of every service and edge seen in the window.
func (c *Collector) Map(ctx context.Context) ([]ServiceFigures, []EdgeFigures) {
	c.mu.Lock()
	c.trimLocked(time.Now())
	recent := append([]Span(nil), c.recent...)
	owner := map[string]string{} // span id -> service, across the recent spans and traces
	for _, spans := range c.traces {
		for _, s := range spans {
			owner[s.SpanID] = s.Service
		}
	}
	c.mu.Unlock()

	type acc struct {
		durs   []time.Duration
		errors int
		async  bool
	}
	services := map[string]*acc{}
	edges := map[[2]string]*acc{}
	for _, s := range recent {
		if s.Kind != "server" && s.Kind != "consumer" {
			continue
		}
		a := services[s.Service]
		if a == nil {
			a = &acc{}
			services[s.Service] = a
		}
		a.durs = append(a.durs, s.duration())
		if s.Status == "error" {
			a.errors++
		}
		if from, ok := owner[s.ParentSpanID]; ok && from != s.Service {
			k := [2]string{from, s.Service}
			e := edges[k]
			if e == nil {
				e = &acc{async: s.Kind == "consumer"}
				edges[k] = e
			}
			e.durs = append(e.durs, s.duration())
			if s.Status == "error" {
				e.errors++
			}
		}
	}
	secs := c.window.Seconds()
	figures := func(a *acc) Figures {
		sort.Slice(a.durs, func(i, j int) bool { return a.durs[i] < a.durs[j] })
		f := Figures{Count: len(a.durs), RPS: float64(len(a.durs)) / secs}
		if len(a.durs) > 0 {
			f.ErrorRate = float64(a.errors) / float64(len(a.durs))
			idx := (len(a.durs)*99 + 99) / 100
			f.P99MS = float64(a.durs[min(idx, len(a.durs))-1].Microseconds()) / 1000
		}
		return f
	}
	var health map[string]bool
	if c.Health != nil {
		health = c.Health(ctx)
		for name := range health {
			if services[name] == nil {
				services[name] = &acc{}
			}
		}
	}
	var outS []ServiceFigures
	for name, a := range services {
		sf := ServiceFigures{Name: name, Figures: figures(a)}
		if h, ok := health[name]; ok {
			sf.Healthy = &h
		}
		outS = append(outS, sf)
	}
	sort.Slice(outS, func(i, j int) bool { return outS[i].Name < outS[j].Name })
	var outE []EdgeFigures
	for k, a := range edges {
		outE = append(outE, EdgeFigures{From: k[0], To: k[1], Async: a.async, Figures: figures(a)})
	}
	sort.Slice(outE, func(i, j int) bool {
		if outE[i].From != outE[j].From {
			return outE[i].From < outE[j].From
		}
		return outE[i].To < outE[j].To
	})
	return outS, outE
}

// API serves what the console reads:
//
//	GET /api/telemetry/traces?service=&limit=
//	GET /api/telemetry/traces/{id}
//	GET /api/telemetry/metrics
func (c *Collector) API() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/telemetry/traces", func(w http.ResponseWriter, r *http.Request) {
		limit := 50
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 500 {
				writeProblem(w, http.StatusUnprocessableEntity, "limit must be an integer from 1 to 500")
				return
			}
			limit = n
		}
		items := c.Traces(r.URL.Query().Get("service"), limit)
		if items == nil {
			items = []TraceSummary{}
		}
		out := map[string]any{"items": items}
		if c.Elsewhere != "" {
			out["exported_elsewhere"] = c.Elsewhere
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("GET /api/telemetry/traces/{id}", func(w http.ResponseWriter, r *http.Request) {
		spans, ok := c.Trace(r.PathValue("id"))
		if !ok {
			writeProblem(w, http.StatusNotFound, "no such trace (only the most recent are kept)")
			return
		}
		writeJSON(w, map[string]any{"trace_id": r.PathValue("id"), "spans": spans})
	})
	mux.HandleFunc("GET /api/telemetry/metrics", func(w http.ResponseWriter, r *http.Request) {
		s, e := c.Map(r.Context())
		if s == nil {
			s = []ServiceFigures{}
		}
		if e == nil {
			e = []EdgeFigures{}
		}
		writeJSON(w, map[string]any{"window_seconds": c.window.Seconds(), "services": s, "edges": e})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail})
}
