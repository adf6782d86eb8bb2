package web_test

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/microshop/microshop/web"
)

// Every file the page or a module names must be in the embedded tree: with
// no build step, a typo in an import is only found by a browser otherwise.
func TestEveryReferencedFileExists(t *testing.T) {
	files := web.Files()
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	assetRef := regexp.MustCompile(`(?:src|href)="/(assets/[^"]+)"`)
	refs := assetRef.FindAllStringSubmatch(string(index), -1)
	if len(refs) < 3 {
		t.Fatalf("index.html names %d assets; want the script, the stylesheet and the icon", len(refs))
	}
	for _, m := range refs {
		if _, err := fs.Stat(files, m[1]); err != nil {
			t.Errorf("index.html names /%s, which is not embedded", m[1])
		}
	}

	importRef := regexp.MustCompile(`(?m)^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"|^\s*import\s+"([^"]+)"`)
	modules := 0
	err = fs.WalkDir(files, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") {
			return err
		}
		modules++
		b, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		for _, m := range importRef.FindAllStringSubmatch(string(b), -1) {
			spec := m[1] + m[2]
			if !strings.HasPrefix(spec, "./") && !strings.HasPrefix(spec, "../") {
				t.Errorf("%s imports %q: only relative imports of embedded files work without a build step", p, spec)
				continue
			}
			target := path.Join(path.Dir(p), spec)
			if _, err := fs.Stat(files, target); err != nil {
				t.Errorf("%s imports %q (%s), which is not embedded", p, spec, target)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if modules < 10 {
		t.Errorf("found %d modules; the walk is broken", modules)
	}
}

// The page runs under a Content-Security-Policy without 'unsafe-inline'
// scripts, and text from the API must never become markup: no inline
// script or handler in the page, no HTML sinks in the modules.
func TestNoInlineScriptNorHTMLSinks(t *testing.T) {
	files := web.Files()
	index, _ := fs.ReadFile(files, "index.html")
	if regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`).Match(index) || regexp.MustCompile(`\son[a-z]+=`).Match(index) {
		t.Error("index.html has an inline script or event handler; the CSP refuses them")
	}
	sink := regexp.MustCompile(`\.innerHTML\s*=|\.outerHTML\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function\(`)
	_ = fs.WalkDir(files, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") {
			return err
		}
		b, _ := fs.ReadFile(files, p)
		for i, line := range strings.Split(string(b), "\n") {
			if sink.MatchString(line) {
				t.Errorf("%s:%d builds markup from a string: %s", p, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
}

func TestHandler(t *testing.T) {
	h := web.Handler()
	get := func(method, target string, header ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, target, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	cases := []struct {
		target, contentType, contains string
	}{
		{"/", "text/html", `<script type="module" src="/assets/js/app.js">`},
		{"/assets/js/app.js", "text/javascript", "import"},
		{"/assets/app.css", "text/css", ":root"},
		{"/assets/favicon.svg", "image/svg+xml", "<svg"},
	}
	for _, c := range cases {
		rec := get(http.MethodGet, c.target)
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), c.contentType) ||
			!strings.Contains(rec.Body.String(), c.contains) {
			t.Errorf("GET %s = %d %s, want 200 %s with %q", c.target, rec.Code, rec.Header().Get("Content-Type"), c.contentType, c.contains)
			continue
		}
		for _, name := range []string{"Content-Security-Policy", "X-Content-Type-Options", "ETag"} {
			if rec.Header().Get(name) == "" {
				t.Errorf("GET %s has no %s", c.target, name)
			}
		}
		if got := rec.Header().Get("Cache-Control"); got != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache (revalidate, so a new binary's UI loads at once)", c.target, got)
		}
		again := get(http.MethodGet, c.target, "If-None-Match", rec.Header().Get("ETag"))
		if again.Code != http.StatusNotModified || again.Body.Len() != 0 {
			t.Errorf("GET %s with its ETag = %d, want 304 with no body", c.target, again.Code)
		}
	}

	if rec := get(http.MethodHead, "/"); rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Errorf("HEAD / = %d with %d bytes, want 200 and no body", rec.Code, rec.Body.Len())
	}
	for _, target := range []string{"/assets/", "/assets/nope.js", "/index.html", "/static/index.html", "/assets/../web.go", "/orders"} {
		rec := get(http.MethodGet, target)
		if rec.Code != http.StatusNotFound || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/problem+json") {
			t.Errorf("GET %s = %d %s, want a 404 problem", target, rec.Code, rec.Header().Get("Content-Type"))
		}
	}
}
