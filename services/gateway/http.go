package gateway

import (
	_ "embed"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/microshop/microshop/internal/platform/httpjson"
)

//go:embed home.html
var homePage []byte

// Routes lists every route of the gateway in one place. All of them count
// against the client's rate limit; the runtime's /healthz, /readyz and
// /metrics, mounted before, do not.
func Routes(r chi.Router, g *Gateway) {
	r.Group(func(r chi.Router) {
		r.Use(g.RateLimit)
		r.Get("/", home)
		r.Get("/favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
		r.Get("/status", g.status)
		r.HandleFunc("/api", g.API) // an unknown service: 404
		r.HandleFunc("/api/*", g.API)
	})
}

// home is a placeholder until the web UI replaces it.
func home(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(homePage)
}

func (g *Gateway) status(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	httpjson.Write(w, http.StatusOK, struct {
		Services []ServiceStatus `json:"services"`
	}{g.Status(r.Context())})
}
