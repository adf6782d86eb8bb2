// Package config reads settings from flags, with MICROSHOP_* environment
// variables as the fallback, so the same binary is configured by hand on a
// laptop and by a manifest in a cluster. A flag given on the command line
// wins over the variable, which wins over the default.
package config

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Flags wraps a FlagSet and the environment it falls back to.
type Flags struct {
	*flag.FlagSet
	getenv func(string) string
	errs   []string
}

// New returns Flags over fs reading variables through getenv.
func New(fs *flag.FlagSet, getenv func(string) string) *Flags {
	return &Flags{FlagSet: fs, getenv: getenv}
}

// EnvName is the variable that backs a flag: "reservation-ttl" is
// MICROSHOP_RESERVATION_TTL.
func EnvName(flagName string) string {
	return "MICROSHOP_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (f *Flags) env(name string) (string, string) {
	key := EnvName(name)
	return key, f.getenv(key)
}

// String defines a string flag.
func (f *Flags) String(name, def, usage string) *string {
	key, v := f.env(name)
	if v == "" {
		v = def
	}
	return f.FlagSet.String(name, v, usage+" ($"+key+")")
}

// Int defines an int flag.
func (f *Flags) Int(name string, def int, usage string) *int {
	key, v := f.env(name)
	if v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Sprintf("%s=%q: not an integer", key, v))
		} else {
			def = n
		}
	}
	return f.FlagSet.Int(name, def, usage+" ($"+key+")")
}

// Duration defines a duration flag ("15m", "2s").
func (f *Flags) Duration(name string, def time.Duration, usage string) *time.Duration {
	key, v := f.env(name)
	if v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Sprintf("%s=%q: not a duration such as 30s or 15m", key, v))
		} else {
			def = d
		}
	}
	return f.FlagSet.Duration(name, def, usage+" ($"+key+")")
}

// Bool defines a bool flag.
func (f *Flags) Bool(name string, def bool, usage string) *bool {
	key, v := f.env(name)
	if v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Sprintf("%s=%q: not true or false", key, v))
		} else {
			def = b
		}
	}
	return f.FlagSet.Bool(name, def, usage+" ($"+key+")")
}

// Parse parses args and reports bad environment values as well as bad flags.
func (f *Flags) Parse(args []string) error {
	if err := f.FlagSet.Parse(args); err != nil {
		return err
	}
	if len(f.errs) > 0 {
		return fmt.Errorf("invalid configuration: %s", strings.Join(f.errs, "; "))
	}
	return nil
}
