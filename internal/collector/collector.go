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
	"unsafe"

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

// Collector keeps the most recent traces within a budget of bytes (the
// oldest go first) and, for the figures, a compact record of the spans of
// the last window. It runs inside `microshop run`, next to the whole
// system, so what it holds is bounded by bytes, not only by count: a
// count of traces says nothing about their size, and under load a trace
// of a checkout has two dozen spans.
type Collector struct {
	maxTraces int
	maxBytes  int64 // for the traces and the window's records together
	window    time.Duration
	// Health, when set, says which services are up, for the map.
	Health func(ctx context.Context) map[string]bool
	// Elsewhere, when set, is where the services send their spans
	// instead of here (an OTLP endpoint the operator chose, or "none"),
	// so the console can say why it has no traces.
	Elsewhere string

	mu          sync.Mutex
	traces      map[string]*held
	order       []string // trace ids, oldest first
	traceBytes  int64    // what the traces hold, as spanSize counts it
	recent      []record // spans that ended within window, oldest first
	recentBytes int64
	intern      map[string]string // service and span names, shared by every span that has them
}

// held is one trace and the bytes its spans take.
type held struct {
	spans []Span
	bytes int64
}

// record is what the figures need of a span: kept for every span of the
// window, so it is small, and it names its parent's service itself, so
// the edges between services survive the eviction of the trace.
type record struct {
	service, parentService string
	traceID, parentSpanID  string // to find the parent's service when the parent came later
	end                    time.Time
	dur                    time.Duration
	kind                   string
	failed                 bool
}

// recordSize is what a record takes in memory: its fields, and the bytes
// of the two ids (the other strings are interned, shared with the spans).
const recordSize = int64(unsafe.Sizeof(record{})) + 32 + 16

// spanSize is an estimate of what s takes in memory: the struct, its
// strings and its attributes. Interned strings (service, name, kind,
// status, attribute keys) are counted too, although shared, so the
// estimate errs high.
func spanSize(s Span) int64 {
	n := int64(unsafe.Sizeof(s)) + int64(len(s.TraceID)+len(s.SpanID)+len(s.ParentSpanID)+len(s.Service)+len(s.Name)+
		len(s.Kind)+len(s.Status)+len(s.StatusMessage))
	if s.Attributes != nil {
		n += 64 // the map's header
		for k, v := range s.Attributes {
			n += 2*16 + int64(len(k)+len(v)) + 8 // two string headers, their bytes, a slot's share of the buckets
		}
	}
	return n
}

// DefaultBytes is the collector's budget when none is given: enough for
// the last few hundred checkouts' traces.
const DefaultBytes = 4 << 20

// New returns a collector keeping at most maxTraces traces in at most
// maxBytes (DefaultBytes when 0 or less). A quarter of the budget at
// most goes to the records of the last minute that the figures are made
// from; the rest holds the traces.
func New(maxTraces int, maxBytes int64) *Collector {
	if maxBytes <= 0 {
		maxBytes = DefaultBytes
	}
	return &Collector{maxTraces: maxTraces, maxBytes: maxBytes, window: time.Minute, traces: map[string]*held{},
		intern: map[string]string{}}
}

// Bytes is what the collector holds now, as it counts it: the traces'
// spans and the window's records. It stays within the budget New was given.
func (c *Collector) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.traceBytes + c.recentBytes
}

// internLocked returns the one copy of s the collector keeps. The table
// is emptied when it grows past a bound, so odd names cannot fill it.
func (c *Collector) internLocked(s string) string {
	if v, ok := c.intern[s]; ok {
		return v
	}
	if len(c.intern) >= 4096 {
		clear(c.intern)
	}
	c.intern[s] = s
	return s
}

// Add stores spans. A trace's spans beyond a quarter of the budget are
// dropped, so that one huge trace cannot push every other one out.
func (c *Collector) Add(spans ...Span) {
	c.mu.Lock()
	defer c.mu.Unlock()
	traceBudget := c.maxBytes - c.maxBytes/4
	for _, s := range spans {
		s.Service, s.Name, s.Kind, s.Status = c.internLocked(s.Service), c.internLocked(s.Name), c.internLocked(s.Kind), c.internLocked(s.Status)
		if s.Attributes != nil {
			attrs := make(map[string]string, len(s.Attributes))
			for k, v := range s.Attributes {
				attrs[c.internLocked(k)] = v
			}
			s.Attributes = attrs
		}
		rec := record{service: s.Service, traceID: s.TraceID, parentSpanID: s.ParentSpanID, end: s.End, dur: s.duration(),
			kind: s.Kind, failed: s.Status == "error"}
		t, ok := c.traces[s.TraceID]
		if !ok {
			t = &held{}
			c.traces[s.TraceID] = t
			c.order = append(c.order, s.TraceID)
		}
		if s.ParentSpanID != "" {
			for _, p := range t.spans { // the parent, when it came first
				if p.SpanID == s.ParentSpanID {
					rec.parentService = p.Service
					break
				}
			}
		}
		if size := spanSize(s); t.bytes+size <= c.maxBytes/4 {
			t.spans = append(t.spans, s)
			t.bytes += size
			c.traceBytes += size
		}
		if s.Kind == "server" || s.Kind == "consumer" {
			c.recent = append(c.recent, rec)
			c.recentBytes += recordSize
		}
	}
	// The oldest traces go first, until both bounds hold; the newest
	// trace always stays.
	for len(c.order) > 1 && (len(c.order) > c.maxTraces || c.traceBytes > traceBudget) {
		c.evictOldestLocked()
	}
	c.trimLocked(time.Now())
}

func (c *Collector) evictOldestLocked() {
	id := c.order[0]
	if t, ok := c.traces[id]; ok {
		c.traceBytes -= t.bytes
		delete(c.traces, id)
	}
	c.order[0] = ""
	c.order = c.order[1:]
	// Reslicing from the front never frees the array: copy once the
	// live part is small against it.
	if cap(c.order) > 64 && len(c.order) < cap(c.order)/4 {
		c.order = append([]string(nil), c.order...)
	}
}

// trimLocked drops the records older than the window, and the oldest
// beyond a quarter of the budget.
func (c *Collector) trimLocked(now time.Time) {
	cut := 0
	for cut < len(c.recent) && now.Sub(c.recent[cut].end) > c.window {
		cut++
	}
	if over := int64(len(c.recent)-cut) - (c.maxBytes/4)/recordSize; over > 0 {
		cut += int(over)
	}
	if cut == 0 {
		return
	}
	c.recent = append(c.recent[:0], c.recent[cut:]...)
	c.recentBytes = int64(len(c.recent)) * recordSize
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
		sum := summarize(c.order[i], c.traces[c.order[i]].spans)
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
	t, ok := c.traces[id]
	if !ok {
		return nil, false
	}
	out := append([]Span(nil), t.spans...)
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
	// A parent that arrived after its child (another process exported
	// it later) is looked up now, in its trace while that is kept, and
	// remembered.
	for i := range c.recent {
		r := &c.recent[i]
		if r.parentService != "" || r.parentSpanID == "" {
			continue
		}
		if t, ok := c.traces[r.traceID]; ok {
			for _, p := range t.spans {
				if p.SpanID == r.parentSpanID {
					r.parentService = p.Service
					break
				}
			}
		}
	}
	recent := append([]record(nil), c.recent...)
	c.mu.Unlock()

	type acc struct {
		durs   []time.Duration
		errors int
		async  bool
	}
	services := map[string]*acc{}
	edges := map[[2]string]*acc{}
	for _, s := range recent {
		a := services[s.service]
		if a == nil {
			a = &acc{}
			services[s.service] = a
		}
		a.durs = append(a.durs, s.dur)
		if s.failed {
			a.errors++
		}
		if from := s.parentService; from != "" && from != s.service {
			k := [2]string{from, s.service}
			e := edges[k]
			if e == nil {
				e = &acc{async: s.kind == "consumer"}
				edges[k] = e
			}
			e.durs = append(e.durs, s.dur)
			if s.failed {
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
