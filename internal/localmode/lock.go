package localmode

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// errLocked: another process holds the state's lock.
var errLocked = errors.New("state is in use by another process")

// stateLock is an exclusive lock on a state file, held by `bot run` for its
// whole life, so that one engine at a time drives the targets (`bot status`
// and `bot approve` only go through SQLite). The kernel drops it when the
// process dies, even by SIGKILL.
//
// The lock is taken on the file itself (flock(2) on an open descriptor
// locks the inode), so that two paths to one file — through a symlink, a
// hard link, another spelling — are one lock. SQLite's own locks are
// fcntl(2) locks, which flock does not touch. The descriptor must stay open
// while the database is: closing any descriptor of the file would drop
// this process's fcntl locks.
type stateLock struct{ f *os.File }

// tryLock takes the lock of the state file at path, creating the file when
// missing, waiting up to wait for a holder that lets go (a `bot run` that
// is stopping).
func tryLock(path string, wait time.Duration) (*stateLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open state file %s to lock it: %w", path, err)
	}
	deadline := time.Now().Add(wait)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &stateLock{f: f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !time.Now().Before(deadline) {
			f.Close()
			return nil, errLocked
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *stateLock) release() {
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	_ = l.f.Close()
}
