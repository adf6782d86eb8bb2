package localrun

import (
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/windows"
)

// DieWithParent puts cmd in a process group of its own, so terminate can
// send it CTRL_BREAK without reaching this process too. Windows cannot
// tie a child's life to its parent's without a job object: a run that is
// killed (not stopped) leaves its services running.
func DieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: windows.CREATE_NEW_PROCESS_GROUP}
}

// terminate asks p to stop gracefully. There is no SIGTERM on Windows:
// CTRL_BREAK, which Go delivers to the child as os.Interrupt, is the
// nearest. When it cannot be sent (no console shared with the child), the
// process is killed, and a service then does not drain.
func terminate(p *os.Process) error {
	if err := windows.GenerateConsoleCtrlEvent(windows.CTRL_BREAK_EVENT, uint32(p.Pid)); err != nil {
		return p.Kill()
	}
	return nil
}

// Alive reports whether the process pid is still running.
func Alive(pid int) bool {
	h, err := windows.OpenProcess(windows.SYNCHRONIZE|windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		return false
	}
	defer windows.CloseHandle(h)
	ev, err := windows.WaitForSingleObject(h, 0)
	return err == nil && ev == uint32(windows.WAIT_TIMEOUT)
}
