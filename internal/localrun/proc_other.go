//go:build !linux && !windows

package localrun

import "os/exec"

// DieWithParent does nothing here: only Linux can tie a child's life to
// its parent's. A run that is killed (not stopped) leaves its services
// running; stop them by the pids in <data>/run.json.
func DieWithParent(*exec.Cmd) {}
