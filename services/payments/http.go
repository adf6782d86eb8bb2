package payments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/httpjson"
	"github.com/microshop/microshop/internal/platform/ids"
	"github.com/microshop/microshop/internal/platform/openapi"
	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/platform/validation"
	"github.com/microshop/microshop/services/payments/paymentsapi"
)

// Page sizes of the admin list.
const (
	defaultLimit = 20
	maxLimit     = 100
)

// Routes lists every route of payments in one place. keys check the
// credentials of services calling /internal/ routes, which only orders
// may; verifier checks users' access tokens for the admin routes.
func Routes(r chi.Router, s *Service, doc *openapi.Document, verifier *auth.Verifier, keys *auth.ServiceKeys, log *slog.Logger) {
	h := &handlers{s: s, log: log}

	r.Method(http.MethodGet, "/openapi.json", doc)
	r.Route("/internal/payments", func(r chi.Router) {
		r.Use(auth.RequireService(keys, "orders"))
		r.Get("/", h.byOrder)
		r.Post("/authorize", h.authorize)
		r.Post("/void", h.void)
		r.Post("/{id}/capture", h.capture)
		r.Post("/{id}/refund", h.refund)
	})
	r.Route("/api/payments", func(r chi.Router) {
		r.Use(auth.Authenticate(verifier), auth.RequireRole(auth.RoleAdmin))
		r.Get("/", h.list)
		r.Get("/ledger", h.ledger)
		r.Get("/{id}", h.get)
	})
}

type handlers struct {
	s   *Service
	log *slog.Logger
}

func (h *handlers) authorize(w http.ResponseWriter, r *http.Request) {
	var req paymentsapi.AuthorizeRequest
	h.keyed(w, r, &req, http.StatusCreated,
		func() any { return fingerprintOf(req) },
		func(out Outcome) (any, error) {
			a, errs := newAuthorization(req, h.s.now())
			if len(errs) > 0 {
				return nil, validation.Errors(errs)
			}
			return h.s.Authorize(r.Context(), a, out)
		})
}

func (h *handlers) capture(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	var req paymentsapi.CaptureRequest
	h.keyed(w, r, &req, http.StatusOK,
		func() any { return req },
		func(out Outcome) (any, error) {
			if req.AmountCents != nil {
				if reason := amountProblem(*req.AmountCents); reason != "" {
					return nil, validation.Errors{{Field: "amount_cents", Reason: reason}}
				}
			}
			if !ids.Valid(id) {
				return nil, paymentsapi.ErrNotFound
			}
			return h.s.Capture(r.Context(), id, req.AmountCents, out)
		})
}

func (h *handlers) void(w http.ResponseWriter, r *http.Request) {
	var req paymentsapi.VoidRequest
	h.keyed(w, r, &req, http.StatusOK,
		func() any { return req },
		func(out Outcome) (any, error) {
			if reason := orderIDProblem(req.OrderID); reason != "" {
				return nil, validation.Errors{{Field: "order_id", Reason: reason}}
			}
			return h.s.Void(r.Context(), req.OrderID, out)
		})
}

func (h *handlers) refund(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	var req paymentsapi.RefundRequest
	h.keyed(w, r, &req, http.StatusOK,
		func() any { return req },
		func(out Outcome) (any, error) {
			if reason := amountProblem(req.AmountCents); reason != "" {
				return nil, validation.Errors{{Field: "amount_cents", Reason: reason}}
			}
			if !ids.Valid(id) {
				return nil, paymentsapi.ErrNotFound
			}
			return h.s.Refund(r.Context(), id, req.AmountCents, out)
		})
}

// keyed runs one write under its Idempotency-Key: it decodes the body
// into req, replays the answer stored for the key when the request is the
// same (refusing it when it is not), and otherwise runs write, whose
// Outcome stores its answer. identity gives what identifies the request.
func (h *handlers) keyed(w http.ResponseWriter, r *http.Request, req any, ok int, identity func() any, write func(out Outcome) (any, error)) {
	key, err := idempotencyKey(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if p := httpjson.Decode(w, r, req); p != nil {
		problem.Write(w, r, p)
		return
	}
	sum := fingerprint(r, identity())
	unlock, err := h.s.keys.lock(r.Context(), key)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer unlock()
	if h.replay(w, r, key, sum) {
		return
	}
	rec := &record{key: key, fingerprint: sum, store: h.s.store, now: h.s.now,
		render: func(result any, err error) answer { return h.render(r, ok, result, err) }}
	result, err := write(rec)
	switch {
	case rec.saved != nil && err == rec.savedErr:
		send(w, *rec.saved, false)
	case errors.Is(err, errKeyTaken):
		// Another replica answered this key first; its answer stands.
		if !h.replay(w, r, key, sum) {
			h.fail(w, r, fmt.Errorf("the answer of idempotency key %q vanished: %w", key, err))
		}
	case err != nil:
		// A refusal stores nothing, but it may come from seeing the work
		// of another replica that answered this very key meanwhile (the
		// payment it captured): then that answer stands. A caller that
		// has given up gets the refusal itself.
		if r.Context().Err() != nil || !h.replay(w, r, key, sum) {
			h.fail(w, r, err)
		}
	default:
		httpjson.Write(w, ok, result)
	}
}

// replay sends the answer stored for key, or refuses a different request
// under it, and reports whether it answered.
func (h *handlers) replay(w http.ResponseWriter, r *http.Request, key, sum string) bool {
	a, stored, found, err := h.s.store.answerFor(r.Context(), key)
	switch {
	case err != nil:
		h.fail(w, r, err)
		return true
	case !found:
		return false
	case stored != sum:
		h.fail(w, r, paymentsapi.ErrKeyReuse)
		return true
	}
	send(w, a, true)
	return true
}

// ReplayedHeader marks an answer replayed for a key seen before.
const ReplayedHeader = "Idempotent-Replayed"

func send(w http.ResponseWriter, a answer, replayed bool) {
	w.Header().Set("Content-Type", a.contentType)
	if a.contentType == problem.ContentType {
		w.Header().Set("X-Content-Type-Options", "nosniff")
	}
	if replayed {
		w.Header().Set(ReplayedHeader, "true")
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

// render makes the answer a write sends, and stores for its key.
func (h *handlers) render(r *http.Request, ok int, result any, err error) answer {
	if err != nil {
		p := h.problemFor(r, err)
		p.Instance = r.URL.Path
		p.RequestID = r.Header.Get("X-Request-Id")
		b, _ := json.Marshal(p)
		return answer{status: p.Status, contentType: problem.ContentType, body: append(b, '\n')}
	}
	b, _ := json.Marshal(result)
	return answer{status: ok, contentType: "application/json", body: append(b, '\n')}
}

func (h *handlers) byOrder(w http.ResponseWriter, r *http.Request) {
	orderID := r.URL.Query().Get("order_id")
	if reason := orderIDProblem(orderID); reason != "" {
		problem.Write(w, r, problem.Invalid([]problem.FieldError{{Field: "order_id", Reason: reason}}))
		return
	}
	items, err := h.s.ByOrder(r.Context(), orderID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, httpjson.List[paymentsapi.Payment]{Items: items})
}

func (h *handlers) list(w http.ResponseWriter, r *http.Request) {
	orderID, before, limit, errs := listQuery(r.URL.Query())
	if len(errs) > 0 {
		problem.Write(w, r, problem.Invalid(errs))
		return
	}
	items, more, err := h.s.Payments(r.Context(), orderID, before, limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	page := httpjson.List[paymentsapi.Payment]{Items: items}
	if more {
		page.NextPageToken = httpjson.PageToken(items[len(items)-1].ID)
	}
	httpjson.Write(w, http.StatusOK, page)
}

// listQuery reads the admin list's parameters: order_id, limit, and
// page_token, an opaque token holding the last id of the previous page.
func listQuery(v url.Values) (orderID, before string, limit int, errs []problem.FieldError) {
	orderID = v.Get("order_id")
	if orderID != "" {
		if reason := orderIDProblem(orderID); reason != "" {
			errs = append(errs, problem.FieldError{Field: "order_id", Reason: reason})
		}
	}
	page, pageErrs := httpjson.ReadPage(v, defaultLimit, maxLimit, ids.Valid)
	return orderID, page.After, page.Limit, append(errs, pageErrs...)
}

func (h *handlers) get(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if !ids.Valid(id) {
		h.fail(w, r, paymentsapi.ErrNotFound)
		return
	}
	p, err := h.s.Payment(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, p)
}

func (h *handlers) ledger(w http.ResponseWriter, r *http.Request) {
	paymentID := r.URL.Query().Get("payment_id")
	if paymentID != "" && !ids.Valid(paymentID) {
		problem.Write(w, r, problem.Invalid([]problem.FieldError{{Field: "payment_id", Reason: "is not a payment id"}}))
		return
	}
	l, err := h.s.Ledger(r.Context(), paymentID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, l)
}

// fail writes err as a problem.
func (h *handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	problem.Write(w, r, h.problemFor(r, err))
}

// problemFor maps the service's errors to problems, in one place.
func (h *handlers) problemFor(r *http.Request, err error) *problem.Problem {
	var declined *paymentsapi.DeclinedError
	var invalid validation.Errors
	switch {
	case errors.As(err, &invalid):
		return problem.Invalid(invalid)
	case errors.As(err, &declined):
		p := problem.New(http.StatusPaymentRequired, paymentsapi.ProblemDeclined, "Payment declined",
			"the card was declined ("+declined.Reason+"); nothing was charged")
		p.Extensions = map[string]any{"reason": declined.Reason, "payment_id": declined.PaymentID}
		return p
	case errors.Is(err, paymentsapi.ErrNotFound):
		return problem.NotFound("no such payment")
	case errors.Is(err, paymentsapi.ErrOrderVoided):
		return problem.New(http.StatusConflict, paymentsapi.ProblemOrderVoided, "Order voided",
			"the order's payments were voided; it takes no new authorization")
	case errors.Is(err, paymentsapi.ErrAlreadyCaptured):
		return problem.New(http.StatusConflict, paymentsapi.ProblemAlreadyCaptured, "Already captured",
			"the payment was captured before; a payment is captured once")
	case errors.Is(err, paymentsapi.ErrPaymentVoided):
		return problem.New(http.StatusConflict, paymentsapi.ProblemPaymentVoided, "Payment voided",
			"the payment was voided; it cannot be captured")
	case errors.Is(err, paymentsapi.ErrNotAuthorized):
		return problem.New(http.StatusConflict, paymentsapi.ProblemNotAuthorized, "Payment not authorized",
			"the payment was declined; there is nothing to capture")
	case errors.Is(err, paymentsapi.ErrNotCaptured):
		return problem.New(http.StatusConflict, paymentsapi.ProblemNotCaptured, "Payment not captured",
			"only a captured payment can be refunded")
	case errors.Is(err, paymentsapi.ErrRefundExceeds):
		p := problem.New(http.StatusUnprocessableEntity, paymentsapi.ProblemRefundExceeds, "Refund exceeds the captured amount",
			"the payment's refunds would exceed its captured amount")
		p.Errors = []problem.FieldError{{Field: "amount_cents", Reason: "is more than is left to refund"}}
		return p
	case errors.Is(err, paymentsapi.ErrKeyReuse):
		return problem.New(http.StatusUnprocessableEntity, paymentsapi.ProblemKeyReuse, "Idempotency key reused",
			"this Idempotency-Key was used before with another request; use a new key for a new request")
	case errors.Is(err, errKeyMissing), errors.Is(err, errKeyInvalid):
		return problem.New(http.StatusBadRequest, paymentsapi.ProblemKeyRequired, "Idempotency key required", err.Error())
	case errors.Is(err, ErrNoAnswer):
		return problem.New(http.StatusServiceUnavailable, paymentsapi.ProblemProcessorTimeout, "Card processor timeout",
			"the card processor had not answered when the caller's deadline passed; nothing was charged, retry with the same Idempotency-Key")
	case database.Unreachable(err) && r.Context().Err() == nil:
		h.log.WarnContext(r.Context(), "the database did not answer", "path", r.URL.Path, "err", err)
		return problem.DatabaseUnavailable()
	case r.Context().Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return problem.Unavailable("the request was cancelled before it finished")
	default:
		h.log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
		return problem.Internal()
	}
}
