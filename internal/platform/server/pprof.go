package server

import (
	"net/http"
	"net/http/pprof"

	"github.com/go-chi/chi/v5"
)

// MountProfiles serves Go's runtime profiles (net/http/pprof) under
// /debug/pprof/ on r: `go tool pprof http://127.0.0.1:8083/debug/pprof/profile?seconds=30`
// profiles the service's CPU for 30 seconds. The runtime mounts them only
// with --pprof: they expose the process's internals and a CPU profile
// costs a little while it runs.
func MountProfiles(r chi.Router) {
	r.HandleFunc("/debug/pprof/", pprof.Index)
	r.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	r.HandleFunc("/debug/pprof/profile", pprof.Profile)
	r.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	r.HandleFunc("/debug/pprof/trace", pprof.Trace)
	r.Handle("/debug/pprof/{name}", pprofNamed{})
}

// pprofNamed serves a named profile: heap, goroutine, allocs, block, mutex...
type pprofNamed struct{}

func (pprofNamed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	pprof.Handler(chi.URLParam(r, "name")).ServeHTTP(w, r)
}
