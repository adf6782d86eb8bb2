package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

func version(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("microshop version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: microshop version\n\nPrints the module version, the VCS revision it was built from, and the Go version.")
	}
	if helped, err := parseFlags(fs, args); helped || err != nil {
		return err
	}
	fmt.Fprintln(stdout, versionString())
	return nil
}

func versionString() string {
	v, rev, dirty := "(devel)", "", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
				if len(rev) > 12 {
					rev = rev[:12]
				}
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
	}
	if rev != "" {
		v += " " + rev + dirty
	}
	return fmt.Sprintf("microshop %s %s %s/%s", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
