package reports

import (
	"encoding/csv"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/httpjson"
	"github.com/microshop/microshop/internal/platform/openapi"
	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/services/reports/reportsapi"
)

// Routes lists every route of reports in one place. All of them are for
// admins.
func Routes(r chi.Router, s *Service, doc *openapi.Document, verifier *auth.Verifier, log *slog.Logger) {
	h := &handlers{s: s, log: log}
	r.Method(http.MethodGet, "/openapi.json", doc)
	r.Route("/api/reports", func(r chi.Router) {
		r.Use(auth.Authenticate(verifier), auth.RequireRole(auth.RoleAdmin))
		r.Get("/sales", h.sales)
		r.Get("/top-products", h.topProducts)
		r.Get("/summary", h.summary)
		r.Get("/low-stock", h.lowStock)
		r.Get("/rebuild", h.rebuildStatus)
		r.Post("/rebuild", h.startRebuild)
	})
}

type handlers struct {
	s   *Service
	log *slog.Logger
}

func (h *handlers) sales(w http.ResponseWriter, r *http.Request) {
	asCSV, errs := negotiate(w, r)
	q, qerrs := ParseSalesQuery(r.URL.Query(), h.s.now(), h.s.currency)
	if errs = append(errs, qerrs...); len(errs) > 0 {
		problem.Write(w, r, problem.Invalid(errs))
		return
	}
	rebuilding := h.rebuilding(w, r)
	out, err := h.s.Sales(r.Context(), q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out.Rebuilding = rebuilding()
	if asCSV {
		rows := make([][]string, 0, len(out.Buckets))
		for _, b := range out.Buckets {
			rows = append(rows, []string{b.Start.Format(time.RFC3339), itoa(b.Orders), itoa(b.RevenueCents),
				itoa(b.RefundsCents), itoa(b.NetCents), out.Currency})
		}
		writeCSV(w, "sales", []string{"start", "orders", "revenue_cents", "refunds_cents", "net_cents", "currency"}, rows)
		return
	}
	httpjson.Write(w, http.StatusOK, out)
}

func (h *handlers) topProducts(w http.ResponseWriter, r *http.Request) {
	asCSV, errs := negotiate(w, r)
	q, qerrs := ParseTopQuery(r.URL.Query(), h.s.now(), h.s.currency)
	if errs = append(errs, qerrs...); len(errs) > 0 {
		problem.Write(w, r, problem.Invalid(errs))
		return
	}
	rebuilding := h.rebuilding(w, r)
	out, err := h.s.TopProducts(r.Context(), q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out.Rebuilding = rebuilding()
	if asCSV {
		rows := make([][]string, 0, len(out.Items))
		for _, p := range out.Items {
			rows = append(rows, []string{text(p.SKU), itoa(p.Units), itoa(p.CancelledUnits), itoa(p.RevenueCents), out.Currency})
		}
		writeCSV(w, "top-products", []string{"sku", "units", "cancelled_units", "revenue_cents", "currency"}, rows)
		return
	}
	httpjson.Write(w, http.StatusOK, out)
}

func (h *handlers) summary(w http.ResponseWriter, r *http.Request) {
	asCSV, errs := negotiate(w, r)
	currency, cerrs := parseCurrency(r.URL.Query(), h.s.currency)
	if errs = append(errs, cerrs...); len(errs) > 0 {
		problem.Write(w, r, problem.Invalid(errs))
		return
	}
	rebuilding := h.rebuilding(w, r)
	out, err := h.s.Summary(r.Context(), currency)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out.Rebuilding = rebuilding()
	if asCSV {
		writeCSV(w, "summary", []string{"currency", "orders_confirmed", "orders_rejected", "orders_cancelled",
			"revenue_cents", "refunds_cents", "net_cents", "captured_cents", "payments_failed", "reservations_expired",
			"low_stock_alerts", "events_applied", "events_dead_lettered"},
			[][]string{{out.Currency, itoa(out.OrdersConfirmed), itoa(out.OrdersRejected), itoa(out.OrdersCancelled),
				itoa(out.RevenueCents), itoa(out.RefundsCents), itoa(out.NetCents), itoa(out.CapturedCents),
				itoa(out.PaymentsFailed), itoa(out.ReservationsExpired), itoa(out.LowStockAlerts),
				itoa(out.EventsApplied), itoa(out.EventsDeadLettered)}})
		return
	}
	httpjson.Write(w, http.StatusOK, out)
}

func (h *handlers) lowStock(w http.ResponseWriter, r *http.Request) {
	asCSV, errs := negotiate(w, r)
	limit, lerrs := parseLimit(r.URL.Query(), 50, 1000)
	if errs = append(errs, lerrs...); len(errs) > 0 {
		problem.Write(w, r, problem.Invalid(errs))
		return
	}
	rebuilding := h.rebuilding(w, r)
	out, err := h.s.LowStock(r.Context(), limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out.Rebuilding = rebuilding()
	if asCSV {
		rows := make([][]string, 0, len(out.Items))
		for _, a := range out.Items {
			rows = append(rows, []string{a.At.Format(time.RFC3339Nano), text(a.SKU), text(a.Name), itoa(a.Available), itoa(a.Threshold)})
		}
		writeCSV(w, "low-stock", []string{"at", "sku", "name", "available", "threshold"}, rows)
		return
	}
	httpjson.Write(w, http.StatusOK, out)
}

func (h *handlers) rebuildStatus(w http.ResponseWriter, r *http.Request) {
	out, err := h.s.RebuildStatus(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	httpjson.Write(w, http.StatusOK, out)
}

func (h *handlers) startRebuild(w http.ResponseWriter, r *http.Request) {
	out, err := h.s.StartRebuild(r.Context())
	if errors.Is(err, ErrRebuildRunning) {
		p := problem.New(http.StatusConflict, "rebuild-running", "A rebuild is running",
			"rebuild "+out.ID+" is running; follow it at GET /api/reports/rebuild")
		p.Extensions = map[string]any{"rebuild_id": out.ID}
		w.Header().Set("Location", "/api/reports/rebuild")
		problem.Write(w, r, p)
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/reports/rebuild")
	httpjson.Write(w, http.StatusAccepted, out)
}

// rebuilding notes whether a rebuild runs before the report is read; the
// function it returns checks again after, and says whether one ran at
// either time. It sets the RebuildingHeader then, so JSON and CSV answers
// both carry it.
func (h *handlers) rebuilding(w http.ResponseWriter, r *http.Request) func() bool {
	before, err := h.s.Rebuilding(r.Context())
	if err != nil {
		h.log.WarnContext(r.Context(), "reading the rebuild's state failed", "err", err)
	}
	return func() bool {
		id, err := h.s.Rebuilding(r.Context())
		if err != nil {
			h.log.WarnContext(r.Context(), "reading the rebuild's state failed", "err", err)
		}
		if id == "" {
			id = before
		}
		if id == "" {
			return false
		}
		w.Header().Set(reportsapi.RebuildingHeader, id)
		return true
	}
}

// fail maps the service's errors to problems, in one place.
func (h *handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case r.Context().Err() != nil:
		problem.Write(w, r, problem.Unavailable("the request was cancelled before it finished"))
	case database.Unreachable(err):
		h.log.WarnContext(r.Context(), "the database did not answer", "path", r.URL.Path, "err", err)
		problem.Write(w, r, problem.DatabaseUnavailable())
	default:
		h.log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
		problem.Write(w, r, problem.Internal())
	}
}

// negotiate picks JSON or CSV for a report; the answer varies by Accept.
func negotiate(w http.ResponseWriter, r *http.Request) (bool, []problem.FieldError) {
	w.Header().Set("Vary", "Accept")
	return wantsCSV(r)
}

// wantsCSV says whether the client asked for CSV: ?format=csv, or an
// Accept header that prefers text/csv to JSON. ?format wins over Accept.
func wantsCSV(r *http.Request) (bool, []problem.FieldError) {
	switch f := r.URL.Query().Get("format"); f {
	case "csv":
		return true, nil
	case "json":
		return false, nil
	case "":
	default:
		return false, []problem.FieldError{{Field: "format", Reason: "must be json or csv"}}
	}
	return prefersCSV(r.Header.Values("Accept")), nil
}

// prefersCSV reads Accept headers: text/csv wins when its quality is
// higher than JSON's (application/json, application/*, */*), or equal and
// listed first.
func prefersCSV(accept []string) bool {
	csvQ, jsonQ := -1.0, -1.0
	csvFirst := false
	for _, part := range strings.Split(strings.Join(accept, ","), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		switch mt {
		case "text/csv":
			if csvQ < 0 && jsonQ < 0 {
				csvFirst = true
			}
			csvQ = max(csvQ, q)
		case "application/json", "application/*", "*/*":
			jsonQ = max(jsonQ, q)
		}
	}
	if csvQ <= 0 {
		return false
	}
	return csvQ > jsonQ || (csvQ == jsonQ && csvFirst)
}

// writeCSV answers with a CSV document: a header row, then rows.
func writeCSV(w http.ResponseWriter, name string, header []string, rows [][]string) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name + ".csv"}))
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	_ = cw.Write(header)
	_ = cw.WriteAll(rows) // flushes; a write error means the client left
}

// text makes a text cell safe to open in a spreadsheet: a cell starting
// with = + - @ (or a tab or carriage return) would be read as a formula,
// so it gets a leading apostrophe, as OWASP advises. Numbers are written
// as they are.
func text(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
