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
type stateLock struct{ f *os.File }

// tryLock takes the lock of the state file at path, waiting up to wait for
// a holder that lets go (a `bot run` that is stopping).
func tryLock(path string, wait time.Duration) (*stateLock, error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock of %s: %w", path, err)
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
