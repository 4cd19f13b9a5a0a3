// Package proctest helps tests about processes: whether a process still
// runs, and a test binary re-run as the parent of a job, to be killed.
package proctest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Alive reports whether pid runs; a zombie counts as exited, since reaping
// it is its parent's business.
func Alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// AssertGone waits, within a bound, for pid to have exited.
func AssertGone(t testing.TB, pid int) {
	t.Helper()
	assert.Eventually(t, func() bool { return !Alive(pid) }, 10*time.Second, 5*time.Millisecond, "process %d still running", pid)
}

// ReadPid reads a pid a process wrote into path.
func ReadPid(t testing.TB, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	return pid
}

// helperDirEnv names, in a re-run test binary, the folder of its FIFOs.
const helperDirEnv = "PVN_PROCTEST_HELPER_DIR"

// HelperJob returns, in a test binary re-run by StartParent, a shell script
// for the job to start: it writes its pid to the "ready" FIFO, then blocks
// on another until it is killed. Elsewhere it skips the test, which is only
// a helper.
func HelperJob(t *testing.T) string {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("helper process, run by another test")
	}
	return `echo $$ > ` + filepath.Join(dir, "ready") + `; read x < ` + filepath.Join(dir, "block")
}

// Parent is the test binary re-run as a process that starts a job.
type Parent struct {
	cmd    *exec.Cmd
	exited chan error
	// Job is the pid of the job it started.
	Job int
}

// StartParent re-runs the test binary to run only the test named test,
// with env added, and waits for the job it starts (see HelperJob) to be
// running. The job is killed when t ends.
func StartParent(t *testing.T, test string, env ...string) *Parent {
	t.Helper()
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	require.NoError(t, syscall.Mkfifo(ready, 0o600))
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "block"), 0o600))

	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	// TMPDIR: the helper's own temporary folders go into dir, removed by
	// t, since the helper is killed before it can clean up.
	cmd.Env = append(append(os.Environ(), helperDirEnv+"="+dir, "TMPDIR="+dir), env...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	p := &Parent{cmd: cmd, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()

	line := make(chan string, 1)
	go func() {
		b, _ := os.ReadFile(ready)
		line <- strings.TrimSpace(string(b))
	}()
	select {
	case s := <-line:
		var err error
		p.Job, err = strconv.Atoi(s)
		require.NoError(t, err, "pid from the job: %q", s)
	case err := <-p.exited:
		t.Fatalf("%s exited before its job started: %v\n%s", test, err, out.String())
	}
	t.Cleanup(func() { _ = syscall.Kill(p.Job, syscall.SIGKILL) })
	require.True(t, Alive(p.Job), "job %d is running before its parent is killed", p.Job)
	return p
}

// Kill kills the parent with SIGKILL and waits for it to be gone.
func (p *Parent) Kill(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.exited
}
