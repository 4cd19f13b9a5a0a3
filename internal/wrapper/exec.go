package wrapper

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultOutputLimit is how much of each of stdout and stderr Exec keeps
// when Options.OutputLimit is zero.
const DefaultOutputLimit = 4 << 20

// DefaultGracePeriod is how long Exec waits between SIGTERM and SIGKILL
// when Options.GracePeriod is zero.
const DefaultGracePeriod = 10 * time.Second

// Options says how Exec runs a program. The zero value runs it in the
// current directory with the caller's environment.
type Options struct {
	// OutputLimit caps what is kept of each of stdout and stderr; the tail
	// is kept. Zero means DefaultOutputLimit.
	OutputLimit int
	// Dir is the working directory; empty means the caller's.
	Dir string
	// Env is the program's whole environment ("NAME=value"; the last of
	// duplicate names wins). Nil means the caller's environment. The
	// program name is looked up in this environment's PATH.
	Env []string
	// Signals received on this channel are sent to the program's process
	// group.
	Signals <-chan os.Signal
	// GracePeriod is how long a program has to exit after SIGTERM, when ctx
	// is done, before it is killed. Zero means DefaultGracePeriod.
	GracePeriod time.Duration
	// KillWithParent has the kernel kill the program (SIGKILL) when the
	// process calling Exec dies, even by SIGKILL, so that no job outlives a
	// crashed bot. Only the program itself is killed, not what it started.
	// Linux only; elsewhere it has no effect.
	KillWithParent bool
}

// Exec runs argv in a process group of its own and waits for it. The
// program's stdin is empty.
//
// A program that ran gives an Output with its exit code, or 128+signal and
// a note in ExecError when a signal killed it. A program that could not
// start gives ExitCode -1 and the reason in ExecError; that is an Output,
// not an error. When the program exits, whatever it left running in its
// process group is killed.
//
// When ctx is done the process group gets SIGTERM, then SIGKILL after the
// grace period; Exec then returns the partial Output and an error wrapping
// ctx.Err().
func Exec(ctx context.Context, opts Options, argv []string) (Output, error) {
	if len(argv) == 0 {
		return Output{}, errors.New("exec: empty command")
	}
	limit := opts.OutputLimit
	if limit == 0 {
		limit = DefaultOutputLimit
	}
	grace := opts.GracePeriod
	if grace <= 0 {
		grace = DefaultGracePeriod
	}

	start := time.Now()
	out := Output{Version: Version, Stdout: []byte{}, Stderr: []byte{}, StartTimestampNs: start.UnixNano()}
	notStarted := func(err error) (Output, error) {
		out.ExitCode = -1
		out.ExecError = err.Error()
		out.DurationNs = int64(time.Since(start))
		if ctx.Err() != nil {
			return out, fmt.Errorf("exec %s: interrupted before start: %w", argv[0], ctx.Err())
		}
		return out, nil
	}

	path, err := lookPath(argv[0], opts.Env)
	if err != nil {
		return notStarted(err)
	}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		return out, fmt.Errorf("exec %s: stdout pipe: %w", argv[0], err)
	}
	stderrR, stderrW, err := os.Pipe()
	if err != nil {
		closeAll(stdoutR, stdoutW)
		return out, fmt.Errorf("exec %s: stderr pipe: %w", argv[0], err)
	}

	cmd := exec.CommandContext(ctx, path, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Dir = opts.Dir
	cmd.Env = opts.Env
	cmd.Stdout = stdoutW
	cmd.Stderr = stderrW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return signalGroup(cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = grace

	wait, startErr := startCmd(cmd, opts.KillWithParent)
	closeAll(stdoutW, stderrW) // the child holds its own copies
	if startErr != nil {
		closeAll(stdoutR, stderrR)
		return notStarted(startErr)
	}
	pgid := cmd.Process.Pid

	stdout, stderr := newTailBuffer(limit), newTailBuffer(limit)
	var readers sync.WaitGroup
	readers.Go(func() { _, _ = stdout.ReadFrom(stdoutR) })
	readers.Go(func() { _, _ = stderr.ReadFrom(stderrR) })

	exited := make(chan struct{})
	var forwarders sync.WaitGroup
	if opts.Signals != nil {
		forwarders.Go(func() {
			for {
				select {
				case sig := <-opts.Signals:
					if s, ok := sig.(syscall.Signal); ok {
						_ = signalGroup(pgid, s)
					}
				case <-exited:
					return
				}
			}
		})
	}

	waitErr := wait()
	close(exited)
	forwarders.Wait()
	_ = signalGroup(pgid, syscall.SIGKILL) // stragglers left in the group
	awaitReaders(&readers, grace, stdoutR, stderrR)
	closeAll(stdoutR, stderrR)

	out.DurationNs = int64(time.Since(start))
	out.Stdout, out.StdoutTruncated = stdout.Bytes(), stdout.Dropped()
	out.Stderr, out.StderrTruncated = stderr.Bytes(), stderr.Dropped()

	state := cmd.ProcessState
	if state == nil {
		out.ExitCode = -1
		return out, fmt.Errorf("exec %s: wait: %w", argv[0], waitErr)
	}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		out.ExitCode = 128 + int(ws.Signal())
		out.ExecError = fmt.Sprintf("killed by signal %d (%s)", int(ws.Signal()), ws.Signal())
	} else {
		out.ExitCode = state.ExitCode()
	}
	if ctx.Err() != nil {
		return out, fmt.Errorf("exec %s: interrupted: %w", argv[0], ctx.Err())
	}
	return out, nil
}

// startCmd starts cmd and returns the function that waits for it.
//
// With killWithParent, the kernel signals the child when the thread that
// started it exits, not the process: Start and Wait then run on a goroutine
// holding its OS thread, so that the thread lives as long as the child and
// no other goroutine can end it (a goroutine that exits while locked to a
// thread takes the thread with it).
func startCmd(cmd *exec.Cmd, killWithParent bool) (wait func() error, err error) {
	if !killWithParent || !setKillWithParent(cmd.SysProcAttr) {
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return cmd.Wait, nil
	}
	started := make(chan error, 1)
	waited := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		waited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return func() error { return <-waited }, nil
}

// awaitReaders waits for the output to reach EOF. Processes that left the
// program's process group may still hold the pipes open: they get the grace
// period, then the pipes are closed under them.
func awaitReaders(readers *sync.WaitGroup, grace time.Duration, pipes ...*os.File) {
	done := make(chan struct{})
	go func() { readers.Wait(); close(done) }()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		closeAll(pipes...)
		<-done
	}
}

func signalGroup(pgid int, sig syscall.Signal) error {
	err := syscall.Kill(-pgid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

func closeAll(files ...*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

// lookPath finds a program the way a shell would with env's PATH (the
// caller's when env is nil). Names holding a slash are taken as they are,
// relative to the working directory.
//
// Like a shell's hash table, it remembers where it found each program for
// each PATH, and looks again only when that file is no longer an executable
// regular file: a program installed later in a directory earlier in PATH
// is not seen until then.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path, ok := os.LookupEnv("PATH")
	if env != nil {
		path, ok = envValue(env, "PATH")
	}
	if !ok {
		return "", fmt.Errorf("exec: %q: %w (no PATH set)", name, exec.ErrNotFound)
	}
	key := pathKey{path: path, name: name}
	if p, ok := foundPaths.get(key); ok && isExecutable(p) {
		return p, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		if isExecutable(p) {
			foundPaths.put(key, p)
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q: %w", name, exec.ErrNotFound)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// foundPaths is lookPath's memory.
var foundPaths = pathCache{found: make(map[pathKey]string)}

// maxFoundPaths bounds pathCache; PATH values set by jobs could otherwise
// make it grow without end.
const maxFoundPaths = 1024

type pathKey struct{ path, name string }

type pathCache struct {
	mu    sync.Mutex
	found map[pathKey]string
}

func (c *pathCache) get(k pathKey) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.found[k]
	return p, ok
}

func (c *pathCache) put(k pathKey, path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.found) >= maxFoundPaths {
		clear(c.found)
	}
	c.found[k] = path
}

func envValue(env []string, name string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v, true
		}
	}
	return "", false
}
