package kubetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// pollInterval paces the readiness probes of components that offer no watch
// (etcd's and the apiserver's health endpoints).
const pollInterval = 100 * time.Millisecond

// stopGrace is how long a component has to exit after SIGTERM.
const stopGrace = 10 * time.Second

// process is one running component; its output goes to logs/<name>.log.
type process struct {
	name  string
	cmd   *exec.Cmd
	done  chan struct{}
	err   error
	early bool // exited before the plane was stopped
}

func (p *Plane) spawn(ctx context.Context, name, bin string, args ...string) (*process, error) {
	logFile, err := os.Create(filepath.Join(p.Dir, "logs", name+".log"))
	if err != nil {
		return nil, fmt.Errorf("create %s log: %w", name, err)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = p.Dir
	// The components die with the test binary, even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	proc := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		proc.err = cmd.Wait()
		proc.early = ctx.Err() == nil
		logFile.Close()
		close(proc.done)
	}()
	p.procs = append(p.procs, proc)
	return proc, nil
}

func (proc *process) exited() bool {
	select {
	case <-proc.done:
		return true
	default:
		return false
	}
}

// stop waits for the process to end; the plane's context was cancelled, which
// sent it SIGTERM (and SIGKILL after stopGrace). An exit before that is an
// error: the component crashed while the tests used it.
func (proc *process) stop() error {
	<-proc.done
	if proc.early && proc.err != nil {
		return fmt.Errorf("%s exited early: %w", proc.name, proc.err)
	}
	return nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
