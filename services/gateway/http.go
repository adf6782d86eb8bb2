package gateway

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/microshop/microshop/internal/platform/httpjson"
	"github.com/microshop/microshop/web"
)

// Routes lists every route of the gateway in one place. All of them count
// against the client's rate limit; the runtime's /healthz, /readyz and
// /metrics, mounted before, do not. crossOrigin is the CORS policy
// (corsPolicy); it answers browsers' preflight requests before the rate
// limit counts them.
func Routes(r chi.Router, g *Gateway, crossOrigin func(http.Handler) http.Handler) {
	ui := web.Handler()
	r.Group(func(r chi.Router) {
		r.Use(crossOrigin, g.RateLimit)
		// The web UI: one page whose views are hash routes (/#/orders),
		// and the files it loads. It calls the API below, same origin.
		r.Get("/", ui.ServeHTTP)
		r.Head("/", ui.ServeHTTP)
		r.Get("/assets/*", ui.ServeHTTP)
		r.Head("/assets/*", ui.ServeHTTP)
		r.Get("/favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
		r.Get("/status", g.status)
		// The events' contract (AsyncAPI 3.0), beside the services' own
		// OpenAPI documents.
		r.Get("/api/asyncapi.yaml", serveAsyncAPI)
		r.Head("/api/asyncapi.yaml", serveAsyncAPI)
		r.HandleFunc("/api", g.API) // an unknown service: 404
		r.HandleFunc("/api/*", g.API)
	})
}

func (g *Gateway) status(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	httpjson.Write(w, http.StatusOK, struct {
		Services []ServiceStatus `json:"services"`
	}{g.Status(r.Context())})
}
