package localrun

import (
	"context"
	"fmt"
	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/topology"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/platform/service"
)

// The gateway, the services and the helpers each need a port of their
// own next to the gateway's, as run's help says, and no replica lands on
// another's port.
func TestPortPlanGivesEveryoneTheirOwnPort(t *testing.T) {
	ports := Ports{Gateway: 9000, NATS: 9010}
	specs := []service.Spec{
		{Name: "users", Port: 8081}, {Name: "inventory", Port: 8082}, {Name: "orders", Port: 8083},
		{Name: "payments", Port: 8084}, {Name: "notifications", Port: 8085}, {Name: "reports", Port: 8086},
		{Name: "gateway", Port: 8080},
	}
	used := map[int]string{ports.Mailbox(): "mailbox web API", ports.SMTP(): "mailbox SMTP", ports.Collector(): "trace collector", ports.NATS: "nats"}
	for _, s := range specs {
		for slot := range MaxReplicas {
			p := ports.Replica(s, slot)
			if other, ok := used[p]; ok {
				t.Errorf("%s replica %d and %s share port %d", s.Name, slot, other, p)
			}
			used[p] = s.Name
			if p > 65535 {
				t.Errorf("%s replica %d is on port %d", s.Name, slot, p)
			}
		}
		if p := ports.Service(s); p < ports.Gateway || p >= ports.Gateway+Span {
			t.Errorf("%s is on port %d, outside %d..%d", s.Name, p, ports.Gateway, ports.Gateway+Span-1)
		}
	}
	if used[9000] != "gateway" || used[9001] != "users" || used[9003] != "orders" || used[9104] != "payments" {
		t.Errorf("ports = %v, want the gateway on 9000, users +1, orders +3, payments' replica 1 at +104", used)
	}
	if err := (Ports{Gateway: MaxGatewayPort, NATS: 4222}).check(); err != nil {
		t.Errorf("the highest gateway port is refused: %v", err)
	}
	if err := (Ports{Gateway: MaxGatewayPort + 1, NATS: 4222}).check(); err == nil {
		t.Error("a gateway port leaving no room for the replicas is accepted")
	}
}

func TestFreePortsAreFree(t *testing.T) {
	p, err := FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	if p.NATS != p.Gateway+Span || !blockFree(p.Gateway, Span+1) {
		t.Errorf("FreePorts() = %+v: not a free block with NATS after it", p)
	}
}

// fakeControl answers the control API as a supervisor would, without
// processes.
type fakeControl struct{ monolithControl }

func (fakeControl) snapshot() State {
	return State{Gateway: "http://127.0.0.1:1", Services: []Process{{Name: "orders", PID: 7, Running: true}, {Name: "orders", Replica: 1}}}
}

func (fakeControl) scale(_ context.Context, name string, n int) ([]Process, error) {
	return []Process{{Name: name, Replica: n - 1, Running: true}}, nil
}

// One server, one client: what the client sends arrives, what the server
// answers comes back, in both modes.
func TestControlAPI(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	data := t.TempDir()
	ln, err := serveControl(ctx, data, fakeControl{}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := NewClient(data)
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Running("orders"); len(got) != 1 || got[0].PID != 7 {
		t.Errorf("Status().Running(orders) = %+v, want the one running replica, pid 7", got)
	}
	ps, err := c.Scale(ctx, "payments", 3)
	if err != nil || len(ps) != 1 || ps[0].Name != "payments" || ps[0].Replica != 2 {
		t.Errorf("Scale(payments, 3) = %+v, %v", ps, err)
	}
	// The fake embeds the monolith's answers for start and restart.
	if _, err := c.Restart(ctx, "orders"); err == nil || !strings.Contains(err.Error(), "cannot restart a service in --mode monolith") {
		t.Errorf("Restart in a monolith: %v, want a refusal that names the mode", err)
	}
	if _, err := c.Start(ctx, "orders"); err == nil || !strings.Contains(err.Error(), "cannot start") {
		t.Errorf("Start in a monolith: %v, want a refusal", err)
	}

	// Without a run, the client says which one it looked for.
	none := t.TempDir()
	if _, err := NewClient(none).Status(ctx); err == nil || !strings.Contains(err.Error(), "is `microshop run --data "+none+"` running?") {
		t.Errorf("Status without a run: %v", err)
	}
}

// run keeps an operator's OpenTelemetry settings: its own collector is
// only the default, and the console is told where the spans went.
func TestTraceEnvKeepsTheOperatorsEndpoint(t *testing.T) {
	const collector = "http://127.0.0.1:8089"
	vars := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	cases := []struct {
		name      string
		given     map[string]string
		env       []string
		elsewhere string
	}{
		{"nothing set: run's collector", nil, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + collector, "OTEL_EXPORTER_OTLP_HEADERS=Microshop-Console-Token=t0ken"}, ""},
		{"an OTLP endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"},
			[]string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://jaeger:4318"}, "http://jaeger:4318"},
		{"a traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4318/v1/traces"},
			[]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://tempo:4318/v1/traces"}, "http://tempo:4318/v1/traces"},
		{"tracing off", map[string]string{"OTEL_TRACES_EXPORTER": "none"},
			[]string{"OTEL_TRACES_EXPORTER=none"}, "none (OTEL_TRACES_EXPORTER=none)"},
	}
	for _, c := range cases {
		env, elsewhere := traceEnv(vars(c.given), collector, "t0ken")
		if strings.Join(env, " ") != strings.Join(c.env, " ") || elsewhere != c.elsewhere {
			t.Errorf("%s: got %v, %q; want %v, %q", c.name, env, elsewhere, c.env, c.elsewhere)
		}
	}
}

// The mailbox's and collector's ports answer only who holds the console
// token (and anyone's probes).
func TestConsoleOnly(t *testing.T) {
	h := consoleOnly("s3cret", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	for _, c := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/api/mailbox/messages", "", http.StatusUnauthorized},
		{"GET", "/api/mailbox/messages", "wrong", http.StatusUnauthorized},
		{"POST", "/v1/traces", "", http.StatusUnauthorized},
		{"GET", "/api/mailbox/messages", "s3cret", http.StatusOK},
		{"POST", "/v1/traces", "s3cret", http.StatusOK},
		{"GET", "/readyz", "", http.StatusOK},
		{"GET", "/healthz", "", http.StatusOK},
	} {
		req := httptest.NewRequest(c.method, c.path, nil)
		if c.token != "" {
			req.Header.Set(auth.ConsoleTokenHeader, c.token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s %s with token %q: %d, want %d", c.method, c.path, c.token, rec.Code, c.want)
		}
	}
}

// The merged metrics page never gives a sample one label twice: the
// gateway's own service label becomes exported_service.
func TestLabelSampleKeepsLabelsUnique(t *testing.T) {
	m := &dto.Metric{Label: []*dto.LabelPair{
		{Name: proto.String("service"), Value: proto.String("orders")},
		{Name: proto.String("code"), Value: proto.String("200")},
	}}
	labelSample(m, "gateway", "1")
	got := map[string]string{}
	for _, l := range m.Label {
		if _, twice := got[l.GetName()]; twice {
			t.Fatalf("label %s twice: %v", l.GetName(), m.Label)
		}
		got[l.GetName()] = l.GetValue()
	}
	want := map[string]string{"exported_service": "orders", "code": "200", "service": "gateway", "replica": "1"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("labels %v, want %v", got, want)
	}
}

// Every process run starts gets run's memory limit as GOMEMLIMIT, unless
// run itself was given a GOMEMLIMIT: then that one reaches them unchanged
// (through the environment they inherit) and run adds none.
func TestMemoryEnvLetsAnInheritedLimitWin(t *testing.T) {
	none := func(string) string { return "" }
	if got := memoryEnv(none, 32<<20); len(got) != 1 || got[0] != "GOMEMLIMIT=33554432B" {
		t.Errorf("memoryEnv = %q", got)
	}
	if got := memoryEnv(none, 0); got != nil {
		t.Errorf("no limit: memoryEnv = %q", got)
	}
	inherited := func(k string) string {
		if k == "GOMEMLIMIT" {
			return "100MiB"
		}
		return ""
	}
	if got := memoryEnv(inherited, 32<<20); got != nil {
		t.Errorf("an inherited GOMEMLIMIT: memoryEnv = %q, want nothing added", got)
	}
	// users hashes passwords in 19 MiB each: its limit leaves room.
	users, _ := topology.Find("users")
	if got := serviceMemoryEnv(none, 32<<20, users); len(got) != 1 || got[0] != fmt.Sprintf("GOMEMLIMIT=%dB", 32<<20+users.MemoryHeadroom) || users.MemoryHeadroom < 4*19<<20 {
		t.Errorf("users: %q (headroom %d)", got, users.MemoryHeadroom)
	}
	if got := serviceMemoryEnv(none, 0, users); got != nil {
		t.Errorf("no limit: users gets %q", got)
	}
}
