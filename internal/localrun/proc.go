package localrun

import (
	"fmt"
	"os"
	"time"
)

// Process control differs by system; the files proc_*.go hold what does.
// Linux stops run's children when run dies (Pdeathsig); on macOS and
// Windows they outlive a run that is killed (a run stopped with Ctrl-C
// stops them itself). A graceful stop is SIGTERM on Unix and CTRL_BREAK on
// Windows, which Go delivers to the child as os.Interrupt.

// Kill ends the process pid at once (SIGKILL on Unix, TerminateProcess
// on Windows) and waits, at most within, until it is gone.
func Kill(pid int, within time.Duration) error {
	if pid <= 1 || pid == os.Getpid() {
		return fmt.Errorf("refusing to kill pid %d", pid)
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return fmt.Errorf("finding pid %d: %w", pid, err)
	}
	if err := p.Kill(); err != nil {
		return fmt.Errorf("killing pid %d: %w", pid, err)
	}
	_ = p.Release()
	deadline := time.Now().Add(within)
	for Alive(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d was still there %s after it was killed", pid, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}
