// Package web is microshop's web UI: a storefront for customers and an
// operations console for admins, as plain HTML, CSS and JavaScript modules
// embedded in the binary. There is no build step: the files under static/
// are what the browser gets. The UI talks only to the public API, through
// the gateway that serves it (same origin).
//
// The gateway mounts Handler at "/" (the page) and "/assets/" (its files);
// everything else of the UI lives in hash routes (/#/orders), so no other
// path is needed.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/microshop/microshop/internal/platform/httpjson"
	"github.com/microshop/microshop/internal/platform/problem"
)

//go:embed static
var static embed.FS

// Files is the UI's file tree: index.html at the root, the rest under
// assets/.
func Files() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	return sub
}

// ContentSecurityPolicy is sent with every file of the UI. Scripts and
// styles come from the gateway only (no inline script anywhere); images
// from the gateway or data: URLs, so an email shown in the mailbox cannot
// load tracking pixels. Inline styles are allowed because an email's HTML,
// shown in a sandboxed iframe that inherits this policy, is styled that
// way; the sandbox runs none of its scripts.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; connect-src 'self'; frame-src 'self' about:; object-src 'none'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// file is one embedded file, ready to serve.
type file struct {
	body        []byte
	contentType string
	etag        string
}

// Handler serves GET / as index.html and GET /assets/<path> as that file,
// and 404 for anything else. Every answer may be cached but is revalidated
// (no-cache with an ETag of the content), so a new binary's UI shows up on
// the next load without stale modules.
func Handler() http.Handler {
	files := map[string]file{}
	err := fs.WalkDir(Files(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(Files(), p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = http.DetectContentType(b)
		}
		files["/"+p] = file{body: b, contentType: ct, etag: `W/"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		panic(err) // reading the embedded tree cannot fail
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p == "/" {
			p = "/index.html"
		} else if !strings.HasPrefix(p, "/assets/") {
			p = "" // only the page and its assets are the UI's
		}
		f, ok := files[p]
		if !ok {
			problem.Write(w, r, problem.NotFound("the web UI has no file at "+r.URL.Path))
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		if httpjson.NoneMatch(r.Header.Get("If-None-Match"), f.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(f.body)
	})
}
