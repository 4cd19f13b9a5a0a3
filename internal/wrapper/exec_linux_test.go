package wrapper

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// helperDirEnv, when set, makes TestKillWithParentHelper act as the parent
// process of TestExecKillWithParent, working in that directory.
const helperDirEnv = "PVN_WRAPPER_TEST_HELPER_DIR"

// TestKillWithParentHelper runs, in a process of its own, a job that blocks
// on a FIFO nobody writes to; the job writes its pid to the "ready" FIFO.
// KillWithParent is taken from the environment.
func TestKillWithParentHelper(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("helper process of TestExecKillWithParent")
	}
	opts := Options{KillWithParent: os.Getenv("KILL_WITH_PARENT") == "1"}
	script := `echo $$ > ` + filepath.Join(dir, "ready") + `; read x < ` + filepath.Join(dir, "block")
	_, err := Exec(t.Context(), opts, sh(script))
	t.Fatalf("the job was meant to block until this process is killed; it ended: %v", err)
}

func TestExecKillWithParent(t *testing.T) {
	tests := map[string]struct {
		killWithParent bool
		wantGone       bool
	}{
		"KillWithParent: the job dies with the process that started it": {killWithParent: true, wantGone: true},
		"without it the job outlives that process":                      {killWithParent: false, wantGone: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			ready := mkfifo(t, dir, "ready")
			mkfifo(t, dir, "block")

			helper := exec.Command(os.Args[0], "-test.run=^TestKillWithParentHelper$", "-test.count=1")
			helper.Env = append(os.Environ(), helperDirEnv+"="+dir, "KILL_WITH_PARENT="+map[bool]string{true: "1"}[tc.killWithParent])
			var helperOut strings.Builder
			helper.Stdout, helper.Stderr = &helperOut, &helperOut
			require.NoError(t, helper.Start())
			exited := make(chan error, 1)
			go func() { exited <- helper.Wait() }()

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
				t.Fatalf("helper exited before its job started: %v\n%s", err, helperOut.String())
			}
			t.Cleanup(func() { _ = syscall.Kill(job, syscall.SIGKILL) })
			require.True(t, alive(job), "job %d is running before its parent is killed", job)

			require.NoError(t, helper.Process.Signal(syscall.SIGKILL))
			<-exited
			if tc.wantGone {
				assertGone(t, job)
			} else {
				// The job has been reparented by the time the helper can
				// be waited for, and nothing else signals it.
				assert.True(t, alive(job), "job %d outlived its parent", job)
			}
		})
	}
}
