package main

import (
	"errors"
	"strings"
	"testing"
)

// The chaos command's paths that return before it starts a system; the
// whole run is internal/chaos.

func TestChaosHelp(t *testing.T) {
	r := invoke(t, nil, "chaos", "--help")
	if r.err != nil {
		t.Fatalf("err = %v, want nil", r.err)
	}
	for _, want := range []string{"Usage: microshop chaos", "--seed", "-duration", "-shoppers", "exit status is 1"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the help does not say %q:\n%s", want, r.stderr)
		}
	}
}

func TestChaosRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in the error; "" for errUsage
	}{
		{[]string{"--bogus"}, ""},
		{[]string{"extra"}, ""},
		{[]string{"--duration", "0s"}, "--duration"},
		{[]string{"--shoppers", "0"}, "--shoppers 0"},
		{[]string{"--shoppers", "101"}, "--shoppers 101"},
		{[]string{"--settle-timeout", "-1s"}, "--settle-timeout"},
		{[]string{"--gap", "5s"}, "--gap"},
		{[]string{"--gap", "5s-1s"}, "--gap"},
		{[]string{"--down", "0s-1s"}, "--down"},
		{[]string{"--down", "1s-x"}, "--down"},
	} {
		r := invoke(t, nil, append([]string{"chaos"}, tc.args...)...)
		switch {
		case tc.want == "" && !errors.Is(r.err, errUsage):
			t.Errorf("%v: err = %v, want errUsage", tc.args, r.err)
		case tc.want != "" && (r.err == nil || !strings.Contains(r.err.Error(), tc.want)):
			t.Errorf("%v: err = %v, want it to name %s", tc.args, r.err, tc.want)
		}
	}
}
