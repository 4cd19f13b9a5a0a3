package wrapper

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/proctest"
)

func sh(script string) []string { return []string{"sh", "-c", script} }

func TestExecExitCodesAndStreams(t *testing.T) {
	tests := map[string]struct {
		script   string
		exitCode int
		stdout   string
		stderr   string
	}{
		"success":          {script: "echo out; echo err >&2", stdout: "out\n", stderr: "err\n"},
		"drift":            {script: "echo differs; exit 2", exitCode: 2, stdout: "differs\n"},
		"failure":          {script: "echo boom >&2; exit 7", exitCode: 7, stderr: "boom\n"},
		"interleaved":      {script: "echo a; echo b >&2; echo c; echo d >&2", stdout: "a\nc\n", stderr: "b\nd\n"},
		"binary output":    {script: `printf '\000\377'`, stdout: "\x00\xff"},
		"no output at all": {script: "exit 0"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, err := Exec(t.Context(), Options{}, sh(tc.script))
			require.NoError(t, err)
			assert.Equal(t, Version, out.Version)
			assert.Equal(t, tc.exitCode, out.ExitCode)
			assert.Empty(t, out.ExecError)
			assert.Equal(t, tc.stdout, string(out.Stdout))
			assert.Equal(t, tc.stderr, string(out.Stderr))
			assert.NotNil(t, out.Stdout)
			assert.NotNil(t, out.Stderr)
			assert.Positive(t, out.DurationNs)
			assert.InDelta(t, time.Now().UnixNano(), out.StartTimestampNs, float64(time.Minute))
		})
	}
}

func TestExecCannotStart(t *testing.T) {
	dir := t.TempDir()
	notExecutable := filepath.Join(dir, "script")
	require.NoError(t, os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o644))

	tests := map[string]struct {
		opts Options
		argv []string
		want string
	}{
		"not on PATH":     {argv: []string{"pvn-no-such-program"}, want: `"pvn-no-such-program": executable file not found`},
		"no such path":    {argv: []string{"/nonexistent/prog"}, want: "no such file"},
		"not executable":  {argv: []string{notExecutable}, want: "permission denied"},
		"env has no PATH": {opts: Options{Env: []string{"HOME=/"}}, argv: []string{"true"}, want: "no PATH set"},
		"no such dir":     {opts: Options{Dir: filepath.Join(dir, "missing")}, argv: []string{"true"}, want: "no such file"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, err := Exec(t.Context(), tc.opts, tc.argv)
			require.NoError(t, err, "a program that cannot start is an Output, not an error")
			assert.Equal(t, -1, out.ExitCode)
			assert.Contains(t, out.ExecError, tc.want)
		})
	}
}

func TestExecEmptyArgv(t *testing.T) {
	_, err := Exec(t.Context(), Options{}, nil)
	require.Error(t, err)
}

func TestExecEnvAndDir(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	require.NoError(t, os.Mkdir(bin, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(bin, "hello"), []byte("#!/bin/sh\necho hello from $0\n"), 0o755))

	out, err := Exec(t.Context(), Options{
		Dir: dir,
		Env: []string{"PATH=/usr/bin:/bin", "A=first", "PATH=" + bin + ":/usr/bin:/bin", "A=second"},
	}, sh(`pwd; echo "$A"; hello; [ -z "$HOME" ] && echo no-home`))
	require.NoError(t, err)
	real, err := filepath.EvalSymlinks(dir)
	require.NoError(t, err)
	assert.Equal(t, real+"\nsecond\nhello from "+filepath.Join(bin, "hello")+"\nno-home\n", string(out.Stdout))

	out, err = Exec(t.Context(), Options{Env: []string{"PATH=" + bin}}, []string{"hello"})
	require.NoError(t, err)
	assert.Equal(t, 0, out.ExitCode, "the program is looked up in the given PATH: %s", out.ExecError)
}

func TestExecOutputLimitKeepsTail(t *testing.T) {
	// 3 MiB on each stream, 1 MiB kept.
	script := `head -c 3145728 /dev/zero | tr '\0' a; echo END; head -c 3145728 /dev/zero | tr '\0' b >&2; echo END >&2`
	out, err := Exec(t.Context(), Options{OutputLimit: 1 << 20}, sh(script))
	require.NoError(t, err)
	require.Len(t, out.Stdout, 1<<20)
	require.Len(t, out.Stderr, 1<<20)
	assert.True(t, bytes.HasSuffix(out.Stdout, []byte("aaaEND\n")))
	assert.True(t, bytes.HasSuffix(out.Stderr, []byte("bbbEND\n")))
	assert.Equal(t, int64(3<<20+4-1<<20), out.StdoutTruncated)
	assert.Equal(t, int64(3<<20+4-1<<20), out.StderrTruncated)
}

func TestExecCancelTerminatesGroup(t *testing.T) {
	dir := t.TempDir()
	ready := mkfifo(t, dir, "ready")
	pidFile := filepath.Join(dir, "grandchild.pid")
	script := `sleep 1000 & echo $! > ` + pidFile + `; echo partial; echo ready > ` + ready + `; wait`

	ctx, cancel := context.WithCancel(t.Context())
	type result struct {
		out Output
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := Exec(ctx, Options{}, sh(script))
		done <- result{out, err}
	}()
	readLine(t, ready)
	grandchild := proctest.ReadPid(t, pidFile)
	cancel()

	r := <-done
	require.ErrorIs(t, r.err, context.Canceled)
	assert.Equal(t, 128+int(syscall.SIGTERM), r.out.ExitCode)
	assert.Contains(t, r.out.ExecError, "killed by signal 15")
	assert.Equal(t, "partial\n", string(r.out.Stdout), "partial output is kept")
	proctest.AssertGone(t, grandchild)
}

func TestExecCancelKillsAfterGrace(t *testing.T) {
	dir := t.TempDir()
	ready := mkfifo(t, dir, "ready")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan Output, 1)
	go func() {
		out, _ := Exec(ctx, Options{GracePeriod: 50 * time.Millisecond}, sh(`trap "" TERM; echo ready > `+ready+`; while :; do :; done`))
		done <- out
	}()
	readLine(t, ready)
	cancel()
	out := <-done
	assert.Equal(t, 128+int(syscall.SIGKILL), out.ExitCode, "SIGTERM ignored, SIGKILL after the grace period")
}

func TestExecForwardsSignals(t *testing.T) {
	dir := t.TempDir()
	ready := mkfifo(t, dir, "ready")
	signals := make(chan os.Signal, 1)
	done := make(chan Output, 1)
	go func() {
		out, err := Exec(t.Context(), Options{Signals: signals}, sh(`trap 'echo got TERM; exit 9' TERM; echo ready > `+ready+`; sleep 1000 & wait`))
		assert.NoError(t, err)
		done <- out
	}()
	readLine(t, ready)
	signals <- syscall.SIGTERM
	out := <-done
	assert.Equal(t, 9, out.ExitCode)
	assert.Equal(t, "got TERM\n", string(out.Stdout))
}

func TestExecKillsStragglersOnExit(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	// The background sleep keeps stdout open; Exec must not wait for it.
	out, err := Exec(t.Context(), Options{}, sh(`sleep 1000 & echo $! > `+pidFile+`; echo done`))
	require.NoError(t, err)
	assert.Equal(t, 0, out.ExitCode)
	assert.Equal(t, "done\n", string(out.Stdout))
	proctest.AssertGone(t, proctest.ReadPid(t, pidFile))
}

func TestExecContextDoneBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	out, err := Exec(ctx, Options{}, []string{"true"})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, -1, out.ExitCode)
}

func mkfifo(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, syscall.Mkfifo(p, 0o600))
	return p
}

// readLine opens a FIFO for reading, which blocks until the job opens it
// for writing, and returns what the job wrote.
func readLine(t *testing.T, fifo string) string {
	t.Helper()
	b, err := os.ReadFile(fifo)
	require.NoError(t, err)
	return string(b)
}

func TestLookPathRemembersWhileTheFileIsThere(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	write := func(dir string) string {
		p := filepath.Join(dir, "pvn-prog")
		require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755))
		return p
	}
	look := func(path string) string {
		p, err := lookPath("pvn-prog", []string{"PATH=" + path})
		if err != nil {
			return err.Error()
		}
		return p
	}
	both := first + ":" + second

	inSecond := write(second)
	assert.Equal(t, inSecond, look(both))
	inFirst := write(first)
	assert.Equal(t, inSecond, look(both), "remembered while the file found is there, like a shell's hash table")
	assert.Equal(t, inFirst, look(first), "another PATH is looked up on its own")

	require.NoError(t, os.Chmod(inSecond, 0o644))
	assert.Equal(t, inFirst, look(both), "no longer executable: looked up again")
	require.NoError(t, os.Remove(inFirst))
	assert.Contains(t, look(both), "executable file not found", "gone: looked up again")
}
