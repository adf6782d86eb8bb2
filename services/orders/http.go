package orders

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/httpjson"
	"github.com/microshop/microshop/internal/platform/ids"
	"github.com/microshop/microshop/internal/platform/openapi"
	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/platform/validation"
	"github.com/microshop/microshop/services/orders/ordersapi"
)

// Routes lists every route of orders in one place.
func Routes(r chi.Router, s *Service, doc *openapi.Document, verifier *auth.Verifier, log *slog.Logger) {
	h := &handlers{s: s, log: log}
	r.Method(http.MethodGet, "/openapi.json", doc)
	r.Route("/api/orders", func(r chi.Router) {
		r.Use(auth.Private, auth.Authenticate(verifier), auth.Require)
		r.Post("/", h.place)
		r.Get("/", h.list)
		r.Get("/{id}", h.get)
		r.Get("/{id}/saga", h.saga)
		r.Post("/{id}/cancel", h.cancel)
	})
}

type handlers struct {
	s   *Service
	log *slog.Logger
}

func (h *handlers) place(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" || len(key) > maxKeyLen {
		problem.Write(w, r, problem.New(http.StatusBadRequest, "idempotency-key-required", "Idempotency-Key required",
			"send an Idempotency-Key header (1 to 200 characters, e.g. a UUID) so a retried request cannot order twice"))
		return
	}
	var req PlaceOrder
	if p := httpjson.Decode(w, r, &req); p != nil {
		problem.Write(w, r, p)
		return
	}
	o, _, err := h.s.Place(r.Context(), auth.FromContext(r.Context()), key, req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeOrder(w, o)
}

// writeOrder answers 201 with an order whose saga has ended, or 202 with
// a Location to poll.
func (h *handlers) writeOrder(w http.ResponseWriter, o order) {
	w.Header().Set("Location", "/api/orders/"+o.ID)
	status := http.StatusCreated
	if !o.final() {
		status = http.StatusAccepted
		w.Header().Set("Retry-After", "1")
	}
	httpjson.Write(w, status, o.public())
}

func (h *handlers) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, errs := httpjson.ReadPage(q, 20, 100, ids.Valid)
	if len(errs) > 0 {
		problem.Write(w, r, problem.Invalid(errs))
		return
	}
	limit, after := page.Limit, page.After
	all := false
	switch v := q.Get("all"); v {
	case "", "false":
	case "true":
		all = true
	default:
		problem.Write(w, r, problem.Invalid([]problem.FieldError{{Field: "all", Reason: "must be true or false"}}))
		return
	}
	orders, err := h.s.List(r.Context(), auth.FromContext(r.Context()), all, after, limit+1)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := httpjson.List[ordersapi.Order]{Items: []ordersapi.Order{}}
	for i, o := range orders {
		if i == limit {
			out.NextPageToken = httpjson.PageToken(orders[i-1].ID)
			break
		}
		out.Items = append(out.Items, o.public())
	}
	httpjson.Write(w, http.StatusOK, out)
}

func (h *handlers) get(w http.ResponseWriter, r *http.Request) {
	o, err := h.s.Get(r.Context(), auth.FromContext(r.Context()), chi.URLParam(r, "id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, o.public())
}

func (h *handlers) saga(w http.ResponseWriter, r *http.Request) {
	log, err := h.s.Saga(r.Context(), auth.FromContext(r.Context()), chi.URLParam(r, "id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, httpjson.List[ordersapi.SagaEntry]{Items: log})
}

func (h *handlers) cancel(w http.ResponseWriter, r *http.Request) {
	o, err := h.s.Cancel(r.Context(), auth.FromContext(r.Context()), chi.URLParam(r, "id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if o.Status != ordersapi.StatusCancelled {
		status = http.StatusAccepted
		w.Header().Set("Location", "/api/orders/"+o.ID)
	}
	httpjson.Write(w, status, o.public())
}

// fail maps the service's errors to problems, in one place.
func (h *handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	var invalid validation.Errors
	switch {
	case errors.As(err, &invalid):
		problem.Write(w, r, problem.Invalid(invalid))
	case errors.Is(err, ErrAdminsOnly):
		problem.Write(w, r, problem.Forbidden(err.Error()))
	case errors.Is(err, ErrNotFound):
		problem.Write(w, r, problem.NotFound("no such order"))
	case errors.Is(err, ErrKeyReused):
		problem.Write(w, r, problem.New(http.StatusUnprocessableEntity, "idempotency-key-reuse", "Idempotency-Key reused", err.Error()))
	case errors.Is(err, ErrNotCancellable):
		problem.Write(w, r, problem.New(http.StatusConflict, "not-cancellable", "Order cannot be cancelled", err.Error()))
	case errors.Is(err, ErrUnknownProduct):
		problem.Write(w, r, problem.Invalid([]problem.FieldError{{Field: "lines", Reason: err.Error()}}))
	case problem.From(err) != nil && problem.From(err).Status < 500:
		// A refusal from inventory or payments that no case above turned
		// into one of ours: pass it on as it came.
		problem.Write(w, r, problem.From(err))
	case errors.Is(err, client.ErrUnavailable):
		p := problem.Unavailable("inventory could not price the order right now; nothing was stored, try again")
		p.RetryAfter = 2
		problem.Write(w, r, p)
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
