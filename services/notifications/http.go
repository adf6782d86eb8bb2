package notifications

import (
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/httpjson"
	"github.com/microshop/microshop/internal/platform/ids"
	"github.com/microshop/microshop/internal/platform/openapi"
	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/platform/validation"
	"github.com/microshop/microshop/services/notifications/notificationsapi"
)

// Routes lists every route of notifications in one place. All of them are
// for admins.
func Routes(r chi.Router, s *Service, doc *openapi.Document, verifier *auth.Verifier, log *slog.Logger) {
	h := &handlers{s: s, log: log}
	r.Method(http.MethodGet, "/openapi.json", doc)
	r.Route("/api/notifications", func(r chi.Router) {
		r.Use(auth.Authenticate(verifier), auth.RequireRole(auth.RoleAdmin))
		r.Post("/webhooks", h.createWebhook)
		r.Get("/webhooks", h.listWebhooks)
		r.Delete("/webhooks/{id}", h.deleteWebhook)
		r.Get("/deliveries", h.listDeliveries)
		r.Get("/deliveries/{id}", h.getDelivery)
		r.Post("/deliveries/{id}/replay", h.replay)
	})
}

type handlers struct {
	s   *Service
	log *slog.Logger
}

func (h *handlers) createWebhook(w http.ResponseWriter, r *http.Request) {
	var req WebhookRequest
	if p := httpjson.Decode(w, r, &req); p != nil {
		problem.Write(w, r, p)
		return
	}
	wh, err := h.s.CreateWebhook(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store") // it carries the secret
	httpjson.Write(w, http.StatusCreated, wh)
}

func (h *handlers) listWebhooks(w http.ResponseWriter, r *http.Request) {
	list, err := h.s.Webhooks(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, httpjson.List[notificationsapi.Webhook]{Items: list})
}

func (h *handlers) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	if err := h.s.DeleteWebhook(r.Context(), chi.URLParam(r, "id")); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handlers) listDeliveries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, errs := httpjson.ReadPage(q, defaultListLimit, maxListLimit, ids.Valid)
	limit, after := page.Limit, page.After
	f := notificationsapi.DeliveryFilter{EventType: q.Get("event_type"), OrderID: q.Get("order_id"), Status: q.Get("status")}
	if f.EventType != "" && !slices.Contains(EventTypes(), f.EventType) {
		errs = append(errs, problem.FieldError{Field: "event_type", Reason: "is not an event notifications handles"})
	}
	if f.Status != "" && !slices.Contains([]string{StatusPending, StatusFailed, StatusSent, StatusDead}, f.Status) {
		errs = append(errs, problem.FieldError{Field: "status", Reason: "must be pending, failed, sent or dead"})
	}
	if len(f.OrderID) > 100 {
		errs = append(errs, problem.FieldError{Field: "order_id", Reason: "is too long to be an order id"})
	}
	if len(errs) > 0 {
		problem.Write(w, r, problem.Invalid(errs))
		return
	}
	list, err := h.s.Deliveries(r.Context(), f, after, limit+1)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := httpjson.List[notificationsapi.Delivery]{Items: list}
	if len(list) > limit {
		out.Items = list[:limit]
		out.NextPageToken = httpjson.PageToken(list[limit-1].ID)
	}
	httpjson.Write(w, http.StatusOK, out)
}

func (h *handlers) getDelivery(w http.ResponseWriter, r *http.Request) {
	d, err := h.s.Delivery(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, d)
}

func (h *handlers) replay(w http.ResponseWriter, r *http.Request) {
	d, err := h.s.Replay(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, d)
}

// fail maps the service's errors to problems, in one place.
func (h *handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	var invalid validation.Errors
	switch {
	case errors.As(err, &invalid):
		problem.Write(w, r, problem.Invalid(invalid))
	case errors.Is(err, ErrNotFound):
		problem.Write(w, r, problem.NotFound("no such "+resource(r)))
	case errors.Is(err, ErrAlreadyPending):
		problem.Write(w, r, problem.New(http.StatusConflict, notificationsapi.ProblemDeliveryPending, "Delivery pending", err.Error()))
	case errors.Is(err, ErrErased):
		problem.Write(w, r, problem.Conflict(err.Error()))
	case errors.Is(err, ErrTooManyEndpoints):
		problem.Write(w, r, problem.New(http.StatusConflict, notificationsapi.ProblemTooManyWebhooks, "Too many webhook endpoints", err.Error()))
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

// resource names what a route is about, for a 404's detail.
func resource(r *http.Request) string {
	if strings.Contains(r.URL.Path, "/webhooks/") {
		return "webhook endpoint"
	}
	return "delivery"
}
