package config_test

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/config"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func newFlags(vars map[string]string) *config.Flags {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return config.New(fs, env(vars))
}

func TestEnvName(t *testing.T) {
	if got, want := config.EnvName("reservation-ttl"), "MICROSHOP_RESERVATION_TTL"; got != want {
		t.Errorf("EnvName = %q, want %q", got, want)
	}
}

func TestPrecedence(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
		n    int
		d    time.Duration
		b    bool
	}{
		{name: "default", want: "def", n: 1, d: time.Second, b: false},
		{
			name: "env beats default",
			env:  map[string]string{"MICROSHOP_ADDR": "env", "MICROSHOP_COUNT": "2", "MICROSHOP_WAIT": "3s", "MICROSHOP_ON": "true"},
			want: "env", n: 2, d: 3 * time.Second, b: true,
		},
		{
			name: "flag beats env",
			env:  map[string]string{"MICROSHOP_ADDR": "env", "MICROSHOP_COUNT": "2", "MICROSHOP_WAIT": "3s", "MICROSHOP_ON": "true"},
			args: []string{"-addr", "flag", "-count", "5", "-wait", "1m", "-on=false"},
			want: "flag", n: 5, d: time.Minute, b: false,
		},
		{
			name: "flag beats default",
			args: []string{"-addr=flag", "-count=9"},
			want: "flag", n: 9, d: time.Second,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFlags(tc.env)
			addr := f.String("addr", "def", "address")
			n := f.Int("count", 1, "count")
			d := f.Duration("wait", time.Second, "wait")
			b := f.Bool("on", false, "on")
			if err := f.Parse(tc.args); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if *addr != tc.want || *n != tc.n || *d != tc.d || *b != tc.b {
				t.Errorf("got addr=%q count=%d wait=%s on=%v; want %q %d %s %v", *addr, *n, *d, *b, tc.want, tc.n, tc.d, tc.b)
			}
		})
	}
}

func TestBadEnvIsAClearError(t *testing.T) {
	for _, tc := range []struct {
		name, key, value string
		define           func(f *config.Flags)
	}{
		{"int", "MICROSHOP_X", "abc", func(f *config.Flags) { f.Int("x", 1, "") }},
		{"duration", "MICROSHOP_TTL", "15", func(f *config.Flags) { f.Duration("ttl", time.Minute, "") }},
		{"bool", "MICROSHOP_ON", "maybe", func(f *config.Flags) { f.Bool("on", false, "") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFlags(map[string]string{tc.key: tc.value})
			tc.define(f)
			err := f.Parse(nil)
			if err == nil {
				t.Fatalf("Parse accepted %s=%s", tc.key, tc.value)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.key) || !strings.Contains(msg, tc.value) {
				t.Errorf("error %q should name the variable %s and its value %q", msg, tc.key, tc.value)
			}
		})
	}
}

func TestBadFlagIsAnError(t *testing.T) {
	f := newFlags(nil)
	f.Int("x", 1, "")
	if err := f.Parse([]string{"-x", "abc"}); err == nil {
		t.Error("Parse accepted -x abc for an int flag")
	}
}

func TestUsageNamesTheVariable(t *testing.T) {
	f := newFlags(nil)
	f.String("users-url", "", "base URL")
	var sb strings.Builder
	f.SetOutput(&sb)
	f.PrintDefaults()
	if !strings.Contains(sb.String(), "$MICROSHOP_USERS_URL") {
		t.Errorf("usage does not name the variable:\n%s", sb.String())
	}
}
