package users

import (
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/httpjson"
	"github.com/microshop/microshop/internal/platform/openapi"
	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/platform/ratelimit"
	"github.com/microshop/microshop/internal/platform/validation"
	"github.com/microshop/microshop/services/users/usersapi"
)

// Limits are the rate limits on the routes that guess passwords or make
// accounts. Zero disables one (load tests do).
type Limits struct {
	LoginPerAccount int // attempts a minute for one email
	LoginPerIP      int // attempts a minute from one client address
	RegisterPerIP   int // registrations a minute from one client address
	TrustedProxies  []netip.Prefix
}

// Routes lists every route of users in one place.
func Routes(r chi.Router, s *Service, doc *openapi.Document, lim Limits, log *slog.Logger) {
	h := &handlers{
		s: s, log: log, trusted: lim.TrustedProxies,
		loginAccount: ratelimit.PerMinute(lim.LoginPerAccount),
		loginIP:      ratelimit.PerMinute(lim.LoginPerIP),
		registerIP:   ratelimit.PerMinute(lim.RegisterPerIP),
	}
	verifier := auth.NewVerifier(auth.StaticKeys(s.keys.publicKeys))

	r.Method(http.MethodGet, "/openapi.json", doc)
	r.Get("/.well-known/jwks.json", h.jwks)
	r.Route("/api/users", func(r chi.Router) {
		r.Get("/.well-known/jwks.json", h.jwks)
		r.Post("/register", h.register)
		r.Post("/login", h.login)
		r.Post("/refresh", h.refresh)
		r.Post("/logout", h.logout)
		r.Group(func(r chi.Router) {
			r.Use(auth.Authenticate(verifier), auth.Require)
			r.Get("/me", h.me)
			r.Patch("/me", h.updateMe)
		})
	})
}

type handlers struct {
	s            *Service
	log          *slog.Logger
	trusted      []netip.Prefix
	loginAccount *ratelimit.Limiter
	loginIP      *ratelimit.Limiter
	registerIP   *ratelimit.Limiter
}

func (h *handlers) jwks(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=60")
	httpjson.Write(w, http.StatusOK, h.s.keys.jwks())
}

func (h *handlers) register(w http.ResponseWriter, r *http.Request) {
	if !h.allow(w, r, h.registerIP, "ip:"+ratelimit.ClientIP(r, h.trusted), "registrations from your address") {
		return
	}
	var req Registration
	if p := httpjson.Decode(w, r, &req); p != nil {
		problem.Write(w, r, p)
		return
	}
	u, err := h.s.Register(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/users/me")
	httpjson.Write(w, http.StatusCreated, u)
}

func (h *handlers) login(w http.ResponseWriter, r *http.Request) {
	if !h.allow(w, r, h.loginIP, "ip:"+ratelimit.ClientIP(r, h.trusted), "login attempts from your address") {
		return
	}
	var req Credentials
	if p := httpjson.Decode(w, r, &req); p != nil {
		problem.Write(w, r, p)
		return
	}
	account := "account:" + strings.ToLower(strings.TrimSpace(req.Email))
	if !h.allow(w, r, h.loginAccount, account, "login attempts for this account") {
		return
	}
	tokens, err := h.s.Login(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	httpjson.Write(w, http.StatusOK, tokens)
}

// refreshRequest carries a refresh token, for refresh and logout.
type refreshRequest usersapi.RefreshRequest

func (r *refreshRequest) Valid() []problem.FieldError {
	if r.RefreshToken == "" {
		return []problem.FieldError{{Field: "refresh_token", Reason: "is required"}}
	}
	if len(r.RefreshToken) > 256 {
		return []problem.FieldError{{Field: "refresh_token", Reason: "is not a refresh token"}}
	}
	return nil
}

func (h *handlers) refresh(w http.ResponseWriter, r *http.Request) {
	var req refreshRequest
	if p := httpjson.Decode(w, r, &req); p != nil {
		problem.Write(w, r, p)
		return
	}
	tokens, err := h.s.Refresh(r.Context(), req.RefreshToken)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	httpjson.Write(w, http.StatusOK, tokens)
}

func (h *handlers) logout(w http.ResponseWriter, r *http.Request) {
	var req refreshRequest
	if p := httpjson.Decode(w, r, &req); p != nil {
		problem.Write(w, r, p)
		return
	}
	if err := h.s.Logout(r.Context(), req.RefreshToken); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handlers) me(w http.ResponseWriter, r *http.Request) {
	u, err := h.s.Me(r.Context(), auth.FromContext(r.Context()).UserID())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, u)
}

func (h *handlers) updateMe(w http.ResponseWriter, r *http.Request) {
	var req ProfileUpdate
	if p := httpjson.Decode(w, r, &req); p != nil {
		problem.Write(w, r, p)
		return
	}
	u, err := h.s.UpdateMe(r.Context(), auth.FromContext(r.Context()).UserID(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, u)
}

// allow applies a rate limit, answering 429 when key is over it.
func (h *handlers) allow(w http.ResponseWriter, r *http.Request, l *ratelimit.Limiter, key, what string) bool {
	ok, wait := l.Allow(key)
	if ok {
		return true
	}
	secs := int(wait.Seconds()) + 1
	problem.Write(w, r, problem.TooManyRequests("too many "+what+"; try again in "+strconv.Itoa(secs)+"s", secs))
	return false
}

// fail maps the service's errors to problems, in one place.
func (h *handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	var invalid validation.Errors
	switch {
	case errors.As(err, &invalid):
		problem.Write(w, r, problem.Invalid(invalid))
	case errors.Is(err, ErrEmailTaken):
		problem.Write(w, r, problem.Conflict(err.Error()))
	case errors.Is(err, ErrBadCredentials), errors.Is(err, ErrBadRefresh):
		problem.Write(w, r, problem.Unauthorized(err.Error()))
	case errors.Is(err, ErrNotFound):
		problem.Write(w, r, problem.NotFound("the account no longer exists"))
	case r.Context().Err() != nil:
		problem.Write(w, r, problem.Unavailable("the request was cancelled before it finished"))
	default:
		h.log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
		problem.Write(w, r, problem.Internal())
	}
}
