package users

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/httpjson"
	"github.com/microshop/microshop/internal/platform/openapi"
	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/platform/ratelimit"
	"github.com/microshop/microshop/internal/platform/validation"
	"github.com/microshop/microshop/services/users/usersapi"
)

// Limits are the rate limits on the routes that check passwords or make
// accounts. Zero disables one (load tests do).
//
// Every password check (login, and PATCH /me with current_password)
// counts against two limits: one per client address, and one per pair of
// account and client address. None is kept per account alone: a limit
// that anyone can spend for an account is a way to lock its owner out,
// and the owner, from their own address, has a budget nobody else can
// touch. Someone guessing from many addresses gets AccountPerIP guesses a
// minute from each; argon2's cost and the hashing bound make each dear.
type Limits struct {
	AccountPerIP  int // password checks a minute for one account from one client address
	PerIP         int // password checks, refreshes and logouts a minute from one client address
	RegisterPerIP int // registrations a minute from one client address
	Proxies       ratelimit.Proxies
}

// Routes lists every route of users in one place. keys check the
// credentials of the services calling /internal/ routes, which only
// notifications may.
func Routes(r chi.Router, s *Service, doc *openapi.Document, lim Limits, keys *auth.ServiceKeys, log *slog.Logger) {
	h := &handlers{
		s: s, log: log, proxies: lim.Proxies,
		accountIP:  ratelimit.PerMinute(lim.AccountPerIP),
		passwordIP: ratelimit.PerMinute(lim.PerIP),
		tokenIP:    ratelimit.PerMinute(lim.PerIP),
		registerIP: ratelimit.PerMinute(lim.RegisterPerIP),
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
			r.Use(auth.Private, auth.Authenticate(verifier), auth.Require)
			r.Get("/me", h.me)
			r.Patch("/me", h.updateMe)
			r.Delete("/me", h.eraseMe)
			r.With(auth.RequireRole(auth.RoleAdmin)).Delete("/accounts/{user_id}", h.eraseAccount)
		})
	})
	r.Route("/internal", func(r chi.Router) {
		r.Use(auth.RequireService(keys, "notifications"))
		r.Get("/users/{user_id}", h.contact)
	})
}

type handlers struct {
	s          *Service
	log        *slog.Logger
	proxies    ratelimit.Proxies
	accountIP  *ratelimit.Limiter // password checks, by account and address
	passwordIP *ratelimit.Limiter // password checks, by address
	tokenIP    *ratelimit.Limiter // refreshes and logouts, by address
	registerIP *ratelimit.Limiter
}

func (h *handlers) jwks(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=60")
	httpjson.Write(w, http.StatusOK, h.s.keys.jwks())
}

func (h *handlers) register(w http.ResponseWriter, r *http.Request) {
	if !h.allow(w, r, h.registerIP, "ip:"+h.proxies.ClientIP(r), "registrations from your address") {
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
	ip := h.proxies.ClientIP(r)
	if !h.allow(w, r, h.passwordIP, ip, "password attempts from your address") {
		return
	}
	var req Credentials
	if p := httpjson.Decode(w, r, &req); p != nil {
		problem.Write(w, r, p)
		return
	}
	if !h.allowAccount(w, r, req.Email, ip) {
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
	if !h.allow(w, r, h.tokenIP, h.proxies.ClientIP(r), "token refreshes from your address") {
		return
	}
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
	if !h.allow(w, r, h.tokenIP, h.proxies.ClientIP(r), "logouts from your address") {
		return
	}
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
	claims := auth.FromContext(r.Context())
	if req.Password != nil {
		// A stolen access token must not become a way to guess the
		// password: this check counts like a login's.
		ip := h.proxies.ClientIP(r)
		if !h.allow(w, r, h.passwordIP, ip, "password attempts from your address") || !h.allowAccount(w, r, claims.Email, ip) {
			return
		}
	}
	u, err := h.s.UpdateMe(r.Context(), claims.UserID(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, u)
}

// eraseMe erases the caller's account. Its password check counts like a
// login's, so a stolen access token is no way to guess the password.
func (h *handlers) eraseMe(w http.ResponseWriter, r *http.Request) {
	claims := auth.FromContext(r.Context())
	ip := h.proxies.ClientIP(r)
	if !h.allow(w, r, h.passwordIP, ip, "password attempts from your address") || !h.allowAccount(w, r, claims.Email, ip) {
		return
	}
	var req Erasure
	if p := httpjson.Decode(w, r, &req); p != nil {
		problem.Write(w, r, p)
		return
	}
	if err := h.s.EraseMe(r.Context(), claims.UserID(), req); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handlers) eraseAccount(w http.ResponseWriter, r *http.Request) {
	if err := h.s.EraseAccount(r.Context(), chi.URLParam(r, "user_id")); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handlers) contact(w http.ResponseWriter, r *http.Request) {
	c, err := h.s.Contact(r.Context(), chi.URLParam(r, "user_id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	httpjson.Write(w, http.StatusOK, c)
}

// allowAccount applies the limit of password checks for one account from
// one client address.
func (h *handlers) allowAccount(w http.ResponseWriter, r *http.Request, email, ip string) bool {
	key := strings.ToLower(strings.TrimSpace(email)) + " from " + ip
	return h.allow(w, r, h.accountIP, key, "password attempts for this account from your address")
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
	case database.Unreachable(err):
		h.log.WarnContext(r.Context(), "the database did not answer", "path", r.URL.Path, "err", err)
		problem.Write(w, r, problem.DatabaseUnavailable())
	default:
		h.log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
		problem.Write(w, r, problem.Internal())
	}
}
