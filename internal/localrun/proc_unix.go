//go:build unix

package localrun

import (
	"errors"
	"os"
	"syscall"
)

// terminate asks p to stop gracefully: SIGTERM, which a service answers by
// draining.
func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }

// Alive reports whether the process pid exists (it may be a zombie not
// yet waited for).
func Alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
