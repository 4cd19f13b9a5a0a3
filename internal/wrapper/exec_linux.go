package wrapper

import "syscall"

// setKillWithParent asks the kernel to SIGKILL the child when the thread
// that starts it exits.
func setKillWithParent(attr *syscall.SysProcAttr) bool {
	attr.Pdeathsig = syscall.SIGKILL
	return true
}
