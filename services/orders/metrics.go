package orders

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// sagaMetrics are the checkout figures operators watch.
type sagaMetrics struct {
	outcomes      *prometheus.CounterVec
	duration      prometheus.Histogram
	retries       *prometheus.CounterVec
	compensations *prometheus.CounterVec
	resumes       prometheus.Counter
}

func newSagaMetrics(reg prometheus.Registerer, counts func(context.Context) (map[string]int, error)) *sagaMetrics {
	m := &sagaMetrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orders_saga_finished_total", Help: "Sagas that ended, by final order status and reason.",
		}, []string{"status", "reason"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "orders_saga_duration_seconds", Help: "Time from order creation to the saga's end.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orders_saga_step_retries_total", Help: "Saga step retries, by step.",
		}, []string{"step"}),
		compensations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orders_saga_compensations_total", Help: "Sagas turned to compensation, by reason.",
		}, []string{"reason"}),
		resumes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orders_saga_resumed_total", Help: "Sagas resumed after a restart or another replica's crash.",
		}),
	}
	reg.MustRegister(m.outcomes, m.duration, m.retries, m.compensations, m.resumes)
	reg.MustRegister(&inFlight{counts: counts})
	return m
}

func (m *sagaMetrics) finished(status, reason string, took time.Duration) {
	m.outcomes.WithLabelValues(status, reason).Inc()
	m.duration.Observe(took.Seconds())
}
func (m *sagaMetrics) retry(step string)          { m.retries.WithLabelValues(step).Inc() }
func (m *sagaMetrics) compensation(reason string) { m.compensations.WithLabelValues(reason).Inc() }
func (m *sagaMetrics) resumed()                   { m.resumes.Inc() }

// inFlight reports unfinished sagas by step from the database at scrape
// time, so the figure is true across replicas and restarts.
type inFlight struct {
	counts func(context.Context) (map[string]int, error)
}

var inFlightDesc = prometheus.NewDesc("orders_sagas_in_flight", "Unfinished sagas by the step they are at.", []string{"step"}, nil)

func (c *inFlight) Describe(ch chan<- *prometheus.Desc) { ch <- inFlightDesc }

func (c *inFlight) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.counts(ctx)
	if err != nil {
		return
	}
	for _, step := range []string{stepReserve, stepAuthorize, stepCommit, stepCapture, stepVoid, stepRelease, stepRefund, stepReturn} {
		ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(counts[step]), step)
	}
}
