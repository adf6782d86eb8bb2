package inventory

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/httpjson"
	"github.com/microshop/microshop/internal/platform/openapi"
	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/platform/validation"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
)

// Page sizes of the catalog list.
const (
	defaultLimit = 20
	maxLimit     = 100
)

// Routes lists every route of inventory in one place. verifier checks
// users' access tokens (admin routes); keys check the credentials of the
// services calling /internal/ routes, which only orders may.
func Routes(r chi.Router, s *Service, doc *openapi.Document, verifier *auth.Verifier, keys *auth.ServiceKeys, log *slog.Logger) {
	h := &handlers{s: s, log: log}

	r.Method(http.MethodGet, "/openapi.json", doc)
	r.Route("/api/inventory", func(r chi.Router) {
		r.Get("/products", h.list)
		r.Get("/products/{sku}", h.get)
		r.Group(func(r chi.Router) {
			r.Use(auth.Authenticate(verifier), auth.RequireRole(auth.RoleAdmin))
			r.Post("/products", h.create)
			r.Patch("/products/{sku}", h.update)
			r.Post("/products/{sku}/restock", h.restock)
			r.Get("/stock", h.stock)
		})
	})
	r.Route("/internal", func(r chi.Router) {
		r.Use(auth.RequireService(keys, "orders"))
		r.Post("/quotes", h.quote)
		r.Post("/reservations", h.reserve)
		r.Post("/reservations/{order_id}/commit", h.commit)
		r.Post("/reservations/{order_id}/release", h.release)
	})
}

type handlers struct {
	s   *Service
	log *slog.Logger
}

func (h *handlers) list(w http.ResponseWriter, r *http.Request) {
	q, after, limit, errs := listQuery(r.URL.Query())
	if len(errs) > 0 {
		problem.Write(w, r, problem.Invalid(errs))
		return
	}
	items, more, err := h.s.Products(r.Context(), q, after, limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	page := httpjson.List[inventoryapi.Product]{Items: items}
	if more {
		page.NextPageToken = httpjson.PageToken(items[len(items)-1].SKU)
	}
	// Catalog reads may be kept by any cache, which asks again with the
	// ETag and gets a 304 while nothing changed.
	httpjson.WriteCached(w, r, page)
}

// listQuery reads the catalog list's parameters: q, limit and page_token,
// an opaque token that holds the last sku of the previous page.
func listQuery(v url.Values) (q, after string, limit int, errs []problem.FieldError) {
	q = v.Get("q")
	// Postgres refuses invalid UTF-8 and NUL in text; refuse them first.
	if why := validation.Text(q, maxQuery); why != "" {
		errs = append(errs, problem.FieldError{Field: "q", Reason: why})
	}
	page, pageErrs := httpjson.ReadPage(v, defaultLimit, maxLimit, func(sku string) bool { return skuProblem(sku) == "" })
	return q, page.After, page.Limit, append(errs, pageErrs...)
}

func (h *handlers) get(w http.ResponseWriter, r *http.Request) {
	sku := chi.URLParam(r, "sku")
	if skuProblem(sku) != "" {
		h.fail(w, r, ErrProductNotFound)
		return
	}
	p, err := h.s.Product(r.Context(), sku)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpjson.WriteCached(w, r, p)
}

func (h *handlers) create(w http.ResponseWriter, r *http.Request) {
	var req NewProduct
	if p := httpjson.Decode(w, r, &req); p != nil {
		problem.Write(w, r, p)
		return
	}
	p, err := h.s.CreateProduct(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/inventory/products/"+p.SKU)
	httpjson.Write(w, http.StatusCreated, p)
}

func (h *handlers) update(w http.ResponseWriter, r *http.Request) {
	sku := chi.URLParam(r, "sku")
	if skuProblem(sku) != "" {
		h.fail(w, r, ErrProductNotFound)
		return
	}
	var req ProductUpdate
	if p := httpjson.Decode(w, r, &req); p != nil {
		problem.Write(w, r, p)
		return
	}
	p, err := h.s.UpdateProduct(r.Context(), sku, req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, p)
}

func (h *handlers) restock(w http.ResponseWriter, r *http.Request) {
	sku := chi.URLParam(r, "sku")
	if skuProblem(sku) != "" {
		h.fail(w, r, ErrProductNotFound)
		return
	}
	var req Restock
	if p := httpjson.Decode(w, r, &req); p != nil {
		problem.Write(w, r, p)
		return
	}
	st, err := h.s.Restock(r.Context(), sku, req.Quantity)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, st)
}

func (h *handlers) stock(w http.ResponseWriter, r *http.Request) {
	levels, err := h.s.Stock(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	httpjson.Write(w, http.StatusOK, httpjson.List[inventoryapi.StockLevel]{Items: levels})
}

func (h *handlers) quote(w http.ResponseWriter, r *http.Request) {
	var req QuoteRequest
	if p := httpjson.Decode(w, r, &req); p != nil {
		problem.Write(w, r, p)
		return
	}
	q, err := h.s.Quote(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, q)
}

func (h *handlers) reserve(w http.ResponseWriter, r *http.Request) {
	var req ReserveRequest
	if p := httpjson.Decode(w, r, &req); p != nil {
		problem.Write(w, r, p)
		return
	}
	res, created, err := h.s.Reserve(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	httpjson.Write(w, status, res)
}

func (h *handlers) commit(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "order_id")
	if orderIDProblem(id) != "" {
		h.fail(w, r, ErrReservationNotFound)
		return
	}
	res, err := h.s.Commit(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, res)
}

func (h *handlers) release(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "order_id")
	if orderIDProblem(id) != "" {
		h.fail(w, r, ErrReservationNotFound)
		return
	}
	res, err := h.s.Release(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, res)
}

// fail maps the service's errors to problems, in one place.
func (h *handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	var invalid validation.Errors
	var oos *OutOfStockError
	switch {
	case errors.As(err, &invalid):
		problem.Write(w, r, problem.Invalid(invalid))
	case errors.As(err, &oos):
		p := problem.New(http.StatusConflict, inventoryapi.ProblemOutOfStock, "Out of stock", oos.Error()+"; nothing was reserved")
		skus := make([]string, 0, len(oos.Short))
		for _, s := range oos.Short {
			skus = append(skus, s.SKU)
			p.Errors = append(p.Errors, problem.FieldError{Field: fmt.Sprintf("lines[%d].quantity", s.Line),
				Reason: fmt.Sprintf("%s: %d requested, %d available", s.SKU, s.Requested, s.Available)})
		}
		p.Extensions = map[string]any{"skus": skus}
		problem.Write(w, r, p)
	case errors.Is(err, ErrReservationReleased):
		problem.Write(w, r, problem.New(http.StatusConflict, inventoryapi.ProblemReservationReleased, "Reservation released", err.Error()))
	case errors.Is(err, ErrReservationMismatch):
		problem.Write(w, r, problem.New(http.StatusConflict, inventoryapi.ProblemReservationMismatch, "Reservation mismatch", err.Error()))
	case errors.Is(err, ErrSKUTaken):
		problem.Write(w, r, problem.Conflict(err.Error()))
	case errors.Is(err, ErrProductNotFound), errors.Is(err, ErrReservationNotFound):
		problem.Write(w, r, problem.NotFound(err.Error()))
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
