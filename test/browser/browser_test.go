// Package browser tests the web UI in a real headless Chromium against the
// real system (`microshop run`), the way a customer and an admin use it:
// clicking, typing and reading what the page shows.
//
// Chromium is found as $MICROSHOP_CHROME, or chromium, chromium-browser,
// google-chrome or google-chrome-stable on PATH; without one the tests
// skip and say so. On failure a test saves a full-page screenshot (see
// screenshot). With MICROSHOP_SCREENSHOTS=<dir> the tests also save
// screenshots of the main pages there, to look at.
package browser

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"

	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/test/systemtest"
)

// findChrome returns the browser to run, or "" when there is none.
func findChrome() string {
	if p := os.Getenv("MICROSHOP_CHROME"); p != "" {
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser is one headless Chromium with a fresh profile; each test opens
// its own tab in it.
type browser struct {
	ctx context.Context
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	if testing.Short() {
		t.Skip("the browser tests run the whole system; skipped with -short")
	}
	chrome := findChrome()
	if chrome == "" {
		t.Skip("no Chromium found: set MICROSHOP_CHROME or put chromium, chromium-browser or google-chrome on PATH " +
			"(on Debian: apt-get install -y chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no deadline
		t.Fatalf("starting %s: %v", chrome, err)
	}
	return &browser{ctx: ctx}
}

// page is one browser tab driven by one test.
type page struct {
	t    *testing.T
	ctx  context.Context
	base string // the gateway's URL

	mu         sync.Mutex
	exceptions []string
}

// open opens a tab for t. When t fails, the tab's last state is saved as
// a screenshot; an uncaught JavaScript exception fails t.
func (b *browser) open(t *testing.T, base string) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	p := &page{t: t, ctx: ctx, base: base}
	console := chromedp.Console(ctx)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.IsException() {
				p.mu.Lock()
				p.exceptions = append(p.exceptions, m.String())
				p.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		p.mu.Lock()
		for _, e := range p.exceptions {
			t.Errorf("uncaught exception in the page: %s", e)
		}
		p.mu.Unlock()
		if t.Failed() {
			p.screenshot("failure")
		}
		cancel()
	})
	return p
}

// do runs actions with a deadline, failing the test with what was going on.
func (p *page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v (at %s)", what, err, p.location())
	}
}

// visit goes to a hash route of the UI, e.g. "/#/cart".
func (p *page) visit(path string) {
	p.t.Helper()
	p.do("visiting "+path, chromedp.Navigate(p.base+path))
}

// js evaluates expression and decodes its value into T.
func js[T any](p *page, expression string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expression, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", expression, err)
	}
	return v
}

// waitFor waits until the JavaScript expression is truthy.
func (p *page) waitFor(what, expression string, timeout time.Duration) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, timeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expression,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		p.t.Fatalf("waiting for %s: %v (at %s; the page says: %q)", what, err, p.location(), p.mainText())
	}
}

// waitText waits until the element that selector names shows want.
func (p *page) waitText(selector, want string, timeout time.Duration) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("%q in %s", want, selector),
		fmt.Sprintf(`[...document.querySelectorAll(%q)].some((el) => el.innerText.includes(%q))`, selector, want), timeout)
}

func (p *page) text(selector string) string {
	p.t.Helper()
	return js[string](p, fmt.Sprintf(`document.querySelector(%q)?.innerText ?? ""`, selector))
}

func (p *page) location() string {
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
	defer cancel()
	v, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash`))
	return v
}

func (p *page) mainText() string {
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
	defer cancel()
	v, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("main")?.innerText ?? ""`))
	if len(v) > 600 {
		v = v[:600] + "…"
	}
	return v
}

func (p *page) click(selector string) {
	p.t.Helper()
	p.do("clicking "+selector, chromedp.Click(chromedp.CSS(selector), chromedp.NodeVisible))
}

// fill replaces the value of the field that selector names: it empties
// the field, then types value key by key as a person would.
func (p *page) fill(selector, value string) {
	p.t.Helper()
	p.do("filling "+selector,
		chromedp.WaitVisible(chromedp.CSS(selector)),
		// chromedp's SetValue cannot set "" (it sends no argument, and the
		// field becomes "undefined"), so empty the field in the page.
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).value = ""`, selector)),
		chromedp.SendKeys(chromedp.CSS(selector), value))
}

// screenshot saves the whole page as a PNG named for the test, in the
// test's artifact directory when `go test -artifacts` keeps them, else in
// a directory that outlives the test; the path is logged.
func (p *page) screenshot(name string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Logf("no screenshot: %v", err)
		return ""
	}
	path := filepath.Join(artifactDir(p.t), fileName(p.t.Name()+"-"+name)+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Logf("no screenshot: %v", err)
		return ""
	}
	p.t.Logf("screenshot: %s", path)
	return path
}

// keep saves a screenshot of the page for a person to look at, when
// MICROSHOP_SCREENSHOTS names a directory.
func (p *page) keep(name string) {
	p.t.Helper()
	dir := os.Getenv("MICROSHOP_SCREENSHOTS")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
	}
	if err != nil {
		p.t.Errorf("saving the screenshot %s: %v", name, err)
	}
}

func artifactDir(t *testing.T) string {
	if f := flag.Lookup("test.artifacts"); f != nil && f.Value.String() == "true" {
		return t.ArtifactDir()
	}
	dir, err := os.MkdirTemp("", "microshop-browser-")
	if err != nil {
		return os.TempDir()
	}
	return dir
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func fileName(s string) string {
	s = unsafeName.ReplaceAllString(s, "_")
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// runningServices names the services `microshop run` started (from its
// run.json), the gateway and the broker aside: those the console must
// show ready.
func runningServices(t *testing.T, s *systemtest.System) []string {
	t.Helper()
	st, err := localrun.ReadState(s.Data)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, svc := range st.Services {
		if svc.Name != "gateway" && svc.Name != "nats" {
			names = append(names, svc.Name)
		}
	}
	return names
}

// looksRaw reports whether text shown to a person looks like something
// for programmers: JSON, a problem's fields, a stack trace.
func looksRaw(text string) bool {
	for _, s := range []string{"{", "}", `":`, "problem", "about:blank", "request_id", "Error:", "at http", "undefined", "[object"} {
		if strings.Contains(text, s) {
			return true
		}
	}
	return false
}

// answer is a canned HTTP answer: JSON, or problem+json from 400 up.
type answer struct {
	status int
	body   string
}

// answerFor makes the tab answer requests whose path starts with one of
// the prefixes itself, without sending them: how a page behaves when a
// service is down does not depend on which services happen to run.
func answerFor(t *testing.T, p *page, answers map[string]answer) {
	t.Helper()
	var patterns []*fetch.RequestPattern
	for prefix := range answers {
		patterns = append(patterns, &fetch.RequestPattern{URLPattern: "*" + prefix + "*"})
	}
	paused := chromedp.Events(p.ctx, fetch.RequestPaused)
	if _, err := chromedp.Call(p.ctx, fetch.Enable, fetch.EnableParams{Patterns: patterns}); err != nil {
		t.Fatalf("intercepting requests: %v", err)
	}
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			path := ev.Request.URL
			if u, err := url.Parse(path); err == nil {
				path = u.Path
			}
			// The longest prefix that matches decides.
			a, ok, best := answer{}, false, -1
			for prefix, candidate := range answers {
				if strings.HasPrefix(path, prefix) && len(prefix) > best {
					a, ok, best = candidate, true, len(prefix)
				}
			}
			if !ok {
				_, _ = chromedp.Call(p.ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
				continue
			}
			ct := "application/json"
			if a.status >= 400 {
				ct = "application/problem+json"
			}
			_, _ = chromedp.Call(p.ctx, fetch.FulfillRequest, fetch.FulfillRequestParams{
				RequestID:       ev.RequestID,
				ResponseCode:    int64(a.status),
				ResponseHeaders: []*fetch.HeaderEntry{{Name: "Content-Type", Value: ct}},
				Body:            []byte(a.body),
			})
		}
	}()
}
