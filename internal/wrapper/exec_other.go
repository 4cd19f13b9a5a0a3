//go:build !linux

package wrapper

import "syscall"

// setKillWithParent reports that this system cannot tie a child's life to
// its parent's.
func setKillWithParent(*syscall.SysProcAttr) bool { return false }
