package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/internal/topology"
)

// These call run as main does, with their own arguments, environment and
// output, on the paths that return before anything starts. test/e2e runs
// the whole system.

type result struct {
	err            error
	stdout, stderr string
}

func invoke(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string { return env[k] }
	err := run(ctx, args, getenv, strings.NewReader(""), &stdout, &stderr)
	return result{err: err, stdout: stdout.String(), stderr: stderr.String()}
}

func TestNoArgumentsPrintsUsage(t *testing.T) {
	r := invoke(t, nil)
	if !errors.Is(r.err, errUsage) {
		t.Errorf("err = %v, want errUsage", r.err)
	}
	if !strings.Contains(r.stderr, "Usage:") {
		t.Errorf("stderr holds no usage:\n%s", r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("stdout = %q, want nothing", r.stdout)
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"help", "--help", "-help", "-h"} {
		t.Run(arg, func(t *testing.T) {
			r := invoke(t, nil, arg)
			if r.err != nil {
				t.Errorf("err = %v, want nil", r.err)
			}
			if r.stdout != usage {
				t.Errorf("stdout = %q, want the usage", r.stdout)
			}
			for _, cmd := range []string{"run", "serve", "start", "nats", "version"} {
				if !strings.Contains(r.stdout, "\n  "+cmd+" ") {
					t.Errorf("the usage does not list %q", cmd)
				}
			}
			if r.stderr != "" {
				t.Errorf("stderr = %q, want nothing", r.stderr)
			}
		})
	}
}

func TestUnknownCommand(t *testing.T) {
	r := invoke(t, nil, "frobnicate", "--x")
	if r.err == nil {
		t.Fatal("an unknown command succeeded")
	}
	// main prints nothing more for errUsage, so the name must be on stderr.
	if !errors.Is(r.err, errUsage) {
		t.Errorf("err = %v, want errUsage", r.err)
	}
	if !strings.Contains(r.stderr, `unknown command "frobnicate"`) || !strings.Contains(r.stderr, "Usage:") {
		t.Errorf("stderr does not name the command and show the usage:\n%s", r.stderr)
	}
}

func TestVersion(t *testing.T) {
	r := invoke(t, nil, "version")
	if r.err != nil {
		t.Fatalf("err = %v", r.err)
	}
	line := strings.TrimSuffix(r.stdout, "\n")
	if !strings.HasPrefix(line, "microshop ") || strings.Contains(line, "\n") {
		t.Errorf("stdout = %q, want one line starting with microshop", r.stdout)
	}
	for _, want := range []string{runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH} {
		if !strings.Contains(line, want) {
			t.Errorf("version %q does not hold %q", line, want)
		}
	}
}

func TestCommandHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string // in the help text
	}{
		{[]string{"version", "--help"}, []string{"Usage: microshop version", "Go version"}},
		{[]string{"run", "--help"}, []string{"Usage: microshop run", "-port", "-data", "-mode", "-nats-port", "MICROSHOP_PORT"}},
		{[]string{"run", "-h"}, []string{"Usage: microshop run"}},
		{[]string{"serve", "--help"}, []string{"Usage: microshop serve <service>", "users", "orders"}},
		{[]string{"serve", "users", "--help"}, []string{"Usage: microshop serve users", "-addr", "-db", "-service-key", "MICROSHOP_ADDR"}},
		{[]string{"serve", "orders", "-h"}, []string{"Usage: microshop serve orders"}},
		{[]string{"start", "--help"}, []string{"Usage: microshop start <process>", "-data"}},
		{[]string{"start", "orders", "--help"}, []string{"Usage: microshop start"}},
		{[]string{"nats", "--help"}, []string{"Usage: microshop nats", "-port", "-store"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := invoke(t, nil, tt.args...)
			if r.err != nil {
				t.Errorf("err = %v, want nil", r.err)
			}
			help := r.stdout + r.stderr
			for _, w := range tt.want {
				if !strings.Contains(help, w) {
					t.Errorf("the help does not hold %q:\n%s", w, help)
				}
			}
		})
	}
}

func TestServe(t *testing.T) {
	t.Run("without a service", func(t *testing.T) {
		r := invoke(t, nil, "serve")
		if !errors.Is(r.err, errUsage) {
			t.Errorf("err = %v, want errUsage", r.err)
		}
		if !strings.Contains(r.stderr, "Usage: microshop serve") {
			t.Errorf("stderr:\n%s", r.stderr)
		}
	})
	t.Run("an unknown service", func(t *testing.T) {
		r := invoke(t, nil, "serve", "nosuch")
		if r.err == nil {
			t.Fatal("serving an unknown service succeeded")
		}
		msg := r.err.Error()
		if !strings.Contains(msg, `"nosuch"`) {
			t.Errorf("the error does not name the service: %v", msg)
		}
		for _, name := range topology.Names() {
			if !strings.Contains(msg, name) {
				t.Errorf("the error does not list %s: %v", name, msg)
			}
		}
	})
	t.Run("a stray argument", func(t *testing.T) {
		r := invoke(t, nil, "serve", "users", "extra")
		if r.err == nil || !strings.Contains(r.err.Error(), "extra") {
			t.Errorf("err = %v, want it to name the unexpected argument", r.err)
		}
	})
}

func TestRunRefusesBadFlags(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string // in the error
	}{
		{"a port past the range", nil, []string{"--port", "70000"}, []string{"--port 70000", fmt.Sprint(localrun.MaxGatewayPort)}},
		{"port 0", nil, []string{"--port", "0"}, []string{"--port 0"}},
		{"a port leaving no room for the services", nil, []string{"--port", "65530"}, []string{"--port 65530"}},
		{"a port from the environment", map[string]string{"MICROSHOP_PORT": "70000"}, nil, []string{"--port 70000"}},
		{"a port in the environment that is not a number", map[string]string{"MICROSHOP_PORT": "eighty"}, nil, []string{"MICROSHOP_PORT", "eighty"}},
		{"an unknown mode", nil, []string{"--mode", "mesh"}, []string{`"mesh"`, "microservices", "monolith"}},
		{"replicas in a monolith", nil, []string{"--mode", "monolith", "--replicas", "payments=2"}, []string{"--replicas", "monolith"}},
		{"a bad log level", nil, []string{"--log-level", "loud"}, []string{"loud"}},
		{"a memory limit that is no size", nil, []string{"--memory-limit", "lots"}, []string{"--memory-limit", "lots"}},
		{"a memory limit too small to run in", map[string]string{"MICROSHOP_MEMORY_LIMIT": "1MiB"}, nil, []string{"--memory-limit", "1MiB"}},
		{"no memory for traces", nil, []string{"--traces-mib", "0"}, []string{"--traces-mib"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := t.TempDir()
			r := invoke(t, tt.env, append([]string{"run", "--data", data}, tt.args...)...)
			if r.err == nil {
				t.Fatal("run accepted the flags")
			}
			for _, w := range tt.want {
				if !strings.Contains(r.err.Error(), w) {
					t.Errorf("the error %q does not hold %q", r.err, w)
				}
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q: nothing should have started", r.stdout)
			}
		})
	}
}

func TestRunRefusesUnknownFlag(t *testing.T) {
	r := invoke(t, nil, "run", "--no-such-flag")
	if !errors.Is(r.err, errUsage) {
		t.Errorf("err = %v, want errUsage", r.err)
	}
	if !strings.Contains(r.stderr, "no-such-flag") || !strings.Contains(r.stderr, "Usage: microshop run") {
		t.Errorf("stderr does not name the flag and show the usage:\n%s", r.stderr)
	}
}

func TestStart(t *testing.T) {
	t.Run("without a running system", func(t *testing.T) {
		data := t.TempDir()
		r := invoke(t, nil, "start", "orders", "--data", data)
		if r.err == nil {
			t.Fatal("start succeeded with no system running")
		}
		msg := r.err.Error()
		if !strings.Contains(msg, data) || !strings.Contains(msg, "is `microshop run --data "+data+"` running?") {
			t.Errorf("the error does not say the system under %s is not running: %v", data, msg)
		}
		if r.stdout != "" {
			t.Errorf("stdout = %q", r.stdout)
		}
	})
	t.Run("without a name", func(t *testing.T) {
		r := invoke(t, nil, "start", "--data", t.TempDir())
		if !errors.Is(r.err, errUsage) {
			t.Errorf("err = %v, want errUsage", r.err)
		}
		if !strings.Contains(r.stderr, "Usage: microshop start") {
			t.Errorf("stderr:\n%s", r.stderr)
		}
	})
}

func TestParseMemory(t *testing.T) {
	for in, want := range map[string]int64{"32MiB": 32 << 20, "1GiB": 1 << 30, "8388608": 8 << 20, "6000KiB": 6000 << 10, "off": 0, "64MiB ": 64 << 20} {
		if got, err := parseMemory(in); err != nil || got != want {
			t.Errorf("parseMemory(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "32MB", "-1MiB", "1KiB", "MiB", "99999999999TiB"} {
		if got, err := parseMemory(in); err == nil {
			t.Errorf("parseMemory(%q) = %d, want an error", in, got)
		}
	}
}
