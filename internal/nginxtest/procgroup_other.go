//go:build !unix

package nginxtest

import "os/exec"

// ownProcessGroup does nothing outside unix: there are no process groups to start nginx in.
func ownProcessGroup(cmd *exec.Cmd) {}

// killGroup kills the nginx master; outside unix its workers are not reached.
func killGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
