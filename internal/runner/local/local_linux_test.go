package local

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// helperDirEnv, when set, makes TestRunHelperProcess act as the bot process
// of TestRunJobDiesWithTheBot, working in that directory.
const helperDirEnv = "PVN_LOCAL_TEST_HELPER_DIR"

// TestRunHelperProcess runs, in a process of its own, a job that blocks on a
// FIFO nobody writes to; the job writes its pid to the "ready" FIFO.
func TestRunHelperProcess(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("helper process of TestRunJobDiesWithTheBot")
	}
	r, _ := newRunner(t)
	_, err := r.Run(t.Context(), shSpec(`echo $$ > `+filepath.Join(dir, "ready")+`; read x < `+filepath.Join(dir, "block")))
	t.Fatalf("the job was meant to block until this process is killed; it ended: %v", err)
}

func TestRunJobDiesWithTheBot(t *testing.T) {
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	require.NoError(t, syscall.Mkfifo(ready, 0o600))
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "block"), 0o600))

	bot := exec.Command(os.Args[0], "-test.run=^TestRunHelperProcess$", "-test.count=1")
	// TMPDIR: the helper's own temporary folders go into dir, removed by
	// this test, since the helper is killed before it can clean up.
	bot.Env = append(os.Environ(), helperDirEnv+"="+dir, "TMPDIR="+dir)
	var botOut strings.Builder
	bot.Stdout, bot.Stderr = &botOut, &botOut
	require.NoError(t, bot.Start())
	exited := make(chan error, 1)
	go func() { exited <- bot.Wait() }()

	line := make(chan string, 1)
	go func() {
		b, _ := os.ReadFile(ready)
		line <- strings.TrimSpace(string(b))
	}()
	var job int
	select {
	case s := <-line:
		var err error
		job, err = strconv.Atoi(s)
		require.NoError(t, err, "pid from the job: %q", s)
	case err := <-exited:
		t.Fatalf("bot exited before its job started: %v\n%s", err, botOut.String())
	}
	t.Cleanup(func() { _ = syscall.Kill(job, syscall.SIGKILL) })
	require.True(t, alive(job), "job %d is running before the bot is killed", job)

	require.NoError(t, bot.Process.Signal(syscall.SIGKILL))
	<-exited
	assertGone(t, job)
}
