//go:build unix

package compat

import (
	"os/exec"
	"syscall"
)

// ownGroup puts cmd in a process group of its own, so that cancelling it
// (a -timeout overrun, Ctrl-C) kills the test binary that test2json and
// unshare started, not only test2json.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
