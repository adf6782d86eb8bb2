package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/platform/server"
)

func TestProfilesOnlyWhenMounted(t *testing.T) {
	plain := httptest.NewServer(newServer(t, server.Options{}))
	defer plain.Close()
	res, err := http.Get(plain.URL + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("without MountProfiles /debug/pprof/ answered %d, want 404", res.StatusCode)
	}

	s := newServer(t, server.Options{})
	server.MountProfiles(s.Router)
	srv := httptest.NewServer(s)
	defer srv.Close()
	for path, want := range map[string]string{
		"/debug/pprof/":                  "heap",
		"/debug/pprof/heap?debug=1":      "heap profile",
		"/debug/pprof/goroutine?debug=1": "goroutine profile",
		"/debug/pprof/cmdline":           "",
	} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d %.80q, want 200 with %q", path, res.StatusCode, b, want)
		}
	}
}
