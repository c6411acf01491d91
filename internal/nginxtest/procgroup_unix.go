//go:build unix

package nginxtest

import (
	"os/exec"
	"syscall"
)

// ownProcessGroup starts nginx in a process group of its own, so that killGroup also reaches its
// workers when the master does not stop them.
func ownProcessGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

// killGroup sends SIGKILL to nginx's whole process group.
func killGroup(cmd *exec.Cmd) { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
