package localrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/microshop/microshop/internal/collector"
	"github.com/microshop/microshop/internal/platform/broker"
)

// runCollector is the built-in trace collector of `run`: services export
// OTLP to it, and the console reads it through the gateway at
// /api/telemetry. It also reports the event streams and their consumers'
// lag, read from NATS.
type runCollector struct {
	*collector.Collector
	url string
	srv *http.Server
}

func startCollector(port int, natsURL, elsewhere, token string, maxBytes int64, cred broker.Credential, sup *supervisor, log *slog.Logger) (*runCollector, error) {
	c := collector.New(500, maxBytes)
	c.Elsewhere = elsewhere
	c.Health = func(context.Context) map[string]bool {
		out := map[string]bool{}
		for _, ch := range sup.snapshot().Services {
			out[ch.Name] = ch.Running
		}
		return out
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("the trace collector's port: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", c.Receiver())
	// Probes, so the gateway's health panel sees the collector like a service.
	for _, probe := range []string{"GET /healthz", "GET /readyz"} {
		mux.HandleFunc(probe, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
		})
	}
	mux.Handle("/api/telemetry/", c.API())
	mux.HandleFunc("GET /api/telemetry/scrape", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
		if err := scrapeAll(r.Context(), sup, w); err != nil {
			log.Warn("gathering the services' metrics", "err", err)
		}
	})
	mux.HandleFunc("GET /api/telemetry/streams", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		streams, err := streamReport(ctx, natsURL, cred)
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": "Service unavailable", "status": 503,
				"detail": "the broker could not be asked about its streams: " + err.Error()})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"items": streams})
	})
	srv := &http.Server{Handler: consoleOnly(token, mux), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("the trace collector stopped", "err", err)
		}
	}()
	return &runCollector{Collector: c, url: "http://" + addr, srv: srv}, nil
}

func (c *runCollector) Close() error { return c.srv.Close() }

type streamInfo struct {
	Name      string         `json:"name"`
	Subjects  []string       `json:"subjects"`
	Messages  uint64         `json:"messages"`
	Bytes     uint64         `json:"bytes"`
	LastSeq   uint64         `json:"last_seq"`
	Consumers []consumerInfo `json:"consumers"`
}

type consumerInfo struct {
	Name string `json:"name"`
	// Lag is how many events wait for the consumer (JetStream's pending).
	Lag         uint64 `json:"lag"`
	AckPending  int    `json:"ack_pending"`
	Redelivered int    `json:"redelivered"`
	Filter      string `json:"filter"`
}

// streamReport lists every stream with its consumers' lag, as cred: the
// monitor, which may only look.
func streamReport(ctx context.Context, natsURL string, cred broker.Credential) ([]streamInfo, error) {
	opts, err := cred.Options()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(natsURL, append(opts, nats.Timeout(2*time.Second))...)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	out := []streamInfo{}
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return nil, err
		}
		info := s.CachedInfo()
		si := streamInfo{Name: name, Subjects: info.Config.Subjects, Messages: info.State.Msgs, Bytes: info.State.Bytes,
			LastSeq: info.State.LastSeq, Consumers: []consumerInfo{}}
		cl := s.ListConsumers(ctx)
		for ci := range cl.Info() {
			si.Consumers = append(si.Consumers, consumerInfo{Name: ci.Name, Lag: ci.NumPending, AckPending: ci.NumAckPending,
				Redelivered: ci.NumRedelivered, Filter: ci.Config.FilterSubject})
		}
		if err := cl.Err(); err != nil {
			return nil, err
		}
		out = append(out, si)
	}
	if err := names.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return nil, err
	}
	return out, nil
}

// labelSample adds the service and replica a sample came from. A label of
// the same name the sample has already (the gateway counts its upstream
// calls by service) becomes exported_<name>, as Prometheus does on a
// scrape, since a sample may not carry one label twice.
func labelSample(m *dto.Metric, service, replica string) {
	for _, l := range m.Label {
		if n := l.GetName(); n == "service" || n == "replica" {
			l.Name = proto.String("exported_" + n)
		}
	}
	m.Label = append(m.Label,
		&dto.LabelPair{Name: proto.String("service"), Value: proto.String(service)},
		&dto.LabelPair{Name: proto.String("replica"), Value: proto.String(replica)})
}

// scrapeAll gathers every running service's /metrics into one Prometheus
// text page, each sample labelled with its service and replica, so the
// console (or a person with curl) needs no Prometheus server.
func scrapeAll(ctx context.Context, sup *supervisor, w io.Writer) error {
	merged := map[string]*dto.MetricFamily{}
	for _, c := range sup.snapshot().Services {
		if !c.Running || !strings.HasPrefix(c.URL, "http") { // NATS has no /metrics
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/metrics", nil)
		if err != nil {
			continue
		}
		resp, err := sup.http.get(c.Name).Do(req)
		if err != nil {
			continue // a service that is down has no figures to give
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			continue
		}
		service, replica := c.Name, strconv.Itoa(c.Replica+1)
		for name, fam := range families {
			for _, m := range fam.Metric {
				labelSample(m, service, replica)
			}
			if have, ok := merged[name]; ok {
				have.Metric = append(have.Metric, fam.Metric...)
			} else {
				merged[name] = fam
			}
		}
	}
	names := make([]string, 0, len(merged))
	for name := range merged {
		names = append(names, name)
	}
	sort.Strings(names)
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, name := range names {
		if err := enc.Encode(merged[name]); err != nil {
			return err
		}
	}
	return nil
}
