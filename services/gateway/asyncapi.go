package gateway

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"strconv"

	"github.com/microshop/microshop/internal/platform/httpjson"
)

// asyncAPI is the AsyncAPI 3.0 document of every service's events, made
// from their contract types by internal/asyncapi (whose test keeps this
// copy current). The services' OpenAPI documents are each service's own;
// events cross services, so the one public entry serves their document.
//
//go:embed asyncapi.yaml
var asyncAPI []byte

var asyncAPIETag = func() string {
	sum := sha256.Sum256(asyncAPI)
	// Weak: the gateway's compression changes the bytes, not the document.
	return `W/"` + hex.EncodeToString(sum[:8]) + `"`
}()

// serveAsyncAPI answers GET /api/asyncapi.yaml.
func serveAsyncAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", asyncAPIETag)
	if httpjson.NoneMatch(r.Header.Get("If-None-Match"), asyncAPIETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(asyncAPI)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(asyncAPI)
}
