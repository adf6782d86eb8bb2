package localrun

import (
	"os/exec"
	"syscall"
)

// DieWithParent makes the kernel send cmd SIGTERM when this process dies,
// so a killed run (or a killed test) leaves no services behind.
func DieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
