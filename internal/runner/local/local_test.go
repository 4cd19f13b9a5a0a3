package local

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/runner"

	"github.com/pvnbot/pvnbot/internal/proctest"
)

const commit = "0123456789abcdef0123456789abcdef01234567"

// fakeCheckouts hands out one directory for every commit and counts what is
// acquired and released.
type fakeCheckouts struct {
	Dir        string
	AcquireErr error

	mu       sync.Mutex
	commits  []string
	released int
}

func (f *fakeCheckouts) Acquire(_ context.Context, commit string) (string, func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.AcquireErr != nil {
		return "", nil, f.AcquireErr
	}
	f.commits = append(f.commits, commit)
	var once sync.Once
	return f.Dir, func() {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.released++
		})
	}, nil
}

func (f *fakeCheckouts) counts() (acquired, released int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.commits), f.released
}

func newRunner(t testing.TB, opts ...Option) (*Runner, *fakeCheckouts) {
	t.Helper()
	co := &fakeCheckouts{Dir: t.TempDir()}
	return New(co, opts...), co
}

func shSpec(script string) runner.Spec {
	return runner.Spec{
		RunID: "run-1", Action: runner.ActionApply, Service: "api", Application: "shop",
		ReleaseChannel: "staging", Runtime: "deployer", Commit: commit,
		Entrypoint: []string{"sh", "-c"}, Cmd: []string{script},
	}
}

func TestRunExitCodesAndStreams(t *testing.T) {
	tests := map[string]struct {
		script    string
		exitCode  int
		stdout    string
		stderr    string
		execError string
	}{
		"converged":           {script: "echo ok", stdout: "ok\n"},
		"drift":               {script: "echo differs; echo detail >&2; exit 2", exitCode: 2, stdout: "differs\n", stderr: "detail\n"},
		"failure":             {script: "echo boom >&2; exit 7", exitCode: 7, stderr: "boom\n"},
		"interleaved":         {script: "echo 1; echo 2 >&2; echo 3; echo 4 >&2", stdout: "1\n3\n", stderr: "2\n4\n"},
		"killed":              {script: "echo before; kill -KILL $$", exitCode: 137, stdout: "before\n", execError: "killed by signal 9"},
		"exit 255":            {script: "exit 255", exitCode: 255},
		"no output":           {script: "true"},
		"last command's code": {script: "false; true"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, co := newRunner(t)
			before := time.Now()
			res, err := r.Run(t.Context(), shSpec(tc.script))
			require.NoError(t, err)
			assert.Equal(t, tc.exitCode, res.ExitCode)
			assert.Equal(t, tc.stdout, string(res.Stdout))
			assert.Equal(t, tc.stderr, string(res.Stderr))
			if tc.execError == "" {
				assert.Empty(t, res.ExecError)
			} else {
				assert.Contains(t, res.ExecError, tc.execError)
			}
			assert.False(t, res.Started.Before(before.Truncate(time.Microsecond)), "started %v before %v", res.Started, before)
			assert.False(t, res.Finished.Before(res.Started))
			acquired, released := co.counts()
			assert.Equal(t, 1, acquired)
			assert.Equal(t, 1, released, "the checkout is released")
			assert.Equal(t, []string{commit}, co.commits)
		})
	}
}

func TestRunArgv(t *testing.T) {
	tests := map[string]struct {
		entrypoint []string
		cmd        []string
		stdout     string
		err        string
	}{
		"entrypoint and cmd": {entrypoint: []string{"sh", "-c", `echo "$0 $1"`}, cmd: []string{"a b", "c"}, stdout: "a b c\n"},
		"entrypoint only":    {entrypoint: []string{"echo", "x"}, stdout: "x\n"},
		"cmd only":           {cmd: []string{"echo", "y", "z"}, stdout: "y z\n"},
		"neither":            {err: "neither entrypoint nor cmd is set"},
		"empty slices":       {entrypoint: []string{}, cmd: []string{}, err: "neither entrypoint nor cmd is set"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, co := newRunner(t)
			spec := shSpec("")
			spec.Entrypoint, spec.Cmd = tc.entrypoint, tc.cmd
			res, err := r.Run(t.Context(), spec)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				acquired, _ := co.counts()
				assert.Zero(t, acquired, "nothing checked out for a job that cannot run")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.stdout, string(res.Stdout))
		})
	}
}

func TestRunRefusesSpecs(t *testing.T) {
	tests := map[string]struct {
		change func(*runner.Spec)
		want   []string
	}{
		"secret reference": {
			change: func(s *runner.Spec) {
				s.Env = []runner.EnvVar{{Name: "DB_PASSWORD", SecretRef: &runner.SecretRef{Name: "db", Key: "password"}}}
			},
			want: []string{"DB_PASSWORD", `Kubernetes secret "db" (key "password")`, "local runner cannot read"},
		},
		"manifest":         {change: func(s *runner.Spec) { s.Manifest = []byte("kind: Job") }, want: []string{"kubernetesConfig", "not local"}},
		"no commit":        {change: func(s *runner.Spec) { s.Commit = "" }, want: []string{"no commit"}},
		"bad env name":     {change: func(s *runner.Spec) { s.Env = []runner.EnvVar{{Name: "A=B", Value: "x"}} }, want: []string{`invalid variable name "A=B"`}},
		"empty env name":   {change: func(s *runner.Spec) { s.Env = []runner.EnvVar{{Name: "", Value: "x"}} }, want: []string{"invalid variable name"}},
		"names the target": {change: func(s *runner.Spec) { s.Manifest = []byte("x") }, want: []string{"apply of shop/staging/api"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, co := newRunner(t)
			spec := shSpec("echo should not run")
			tc.change(&spec)
			_, err := r.Run(t.Context(), spec)
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			acquired, _ := co.counts()
			assert.Zero(t, acquired)
		})
	}
}

func TestRunCheckoutFails(t *testing.T) {
	co := &fakeCheckouts{AcquireErr: errors.New("object not found")}
	_, err := New(co).Run(t.Context(), shSpec("true"))
	require.ErrorContains(t, err, "check out "+commit+": object not found")
}

func TestRunCannotStart(t *testing.T) {
	r, co := newRunner(t)
	spec := shSpec("")
	spec.Entrypoint, spec.Cmd = []string{"pvn-no-such-program"}, nil
	res, err := r.Run(t.Context(), spec)
	require.NoError(t, err, "a program that cannot start is a Result")
	assert.Equal(t, -1, res.ExitCode)
	assert.Contains(t, res.ExecError, `"pvn-no-such-program": executable file not found`)
	_, released := co.counts()
	assert.Equal(t, 1, released)
}

func TestRunEnvironment(t *testing.T) {
	t.Setenv("GITHUB_PRIVATE_KEY", "-----BEGIN RSA PRIVATE KEY-----")
	t.Setenv("AWS_PROFILE", "deployer")
	t.Setenv("NOT_PASSED", "x")
	t.Setenv("HOME", "/home/bot")
	t.Setenv("LANG", "C.UTF-8")
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	os.Unsetenv("UNSET_BUT_PASSED")

	r, _ := newRunner(t, WithPassEnv("AWS_PROFILE", "UNSET_BUT_PASSED"))
	spec := shSpec("")
	spec.Entrypoint, spec.Cmd = []string{"env"}, nil
	spec.Env = []runner.EnvVar{
		{Name: "HOME", Value: "/home/job"},
		{Name: "PVN_ACTION", Value: "apply"},
		{Name: "PVN_PARAM_TOKEN", Value: "s3cret", Sensitive: true},
		{Name: "PVN_SERVICE", Value: "api"},
	}
	res, err := r.Run(t.Context(), spec)
	require.NoError(t, err)
	require.Equal(t, 0, res.ExitCode, string(res.Stderr))

	assert.Equal(t, map[string]string{
		"PATH":            os.Getenv("PATH"),
		"HOME":            "/home/job", // the job's env wins
		"LANG":            "C.UTF-8",
		"TMPDIR":          tmp,
		"AWS_PROFILE":     "deployer",
		"PVN_ACTION":      "apply",
		"PVN_PARAM_TOKEN": "s3cret",
		"PVN_SERVICE":     "api",
	}, parseEnv(t, res.Stdout), "GITHUB_PRIVATE_KEY and NOT_PASSED stay in the bot")
}

func TestRunPathFromJobEnv(t *testing.T) {
	bin := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bin, "deploy-tool"), []byte("#!/bin/sh\necho deployed\n"), 0o755))
	r, _ := newRunner(t)
	spec := shSpec("")
	spec.Entrypoint, spec.Cmd = []string{"deploy-tool"}, nil
	spec.Env = []runner.EnvVar{{Name: "PATH", Value: bin + ":/usr/bin:/bin"}}
	res, err := r.Run(t.Context(), spec)
	require.NoError(t, err)
	assert.Equal(t, "deployed\n", string(res.Stdout), res.ExecError)
}

func TestRunSensitiveValuesNotLogged(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, _ := newRunner(t, WithLogger(logger))

	spec := shSpec(`echo "token=$PVN_PARAM_TOKEN"; echo --token=hunter2-xyz; exit 3`)
	spec.Env = []runner.EnvVar{{Name: "PVN_PARAM_TOKEN", Value: "hunter2-xyz", Sensitive: true}}
	res, err := r.Run(t.Context(), spec)
	require.NoError(t, err)
	assert.Equal(t, "token=hunter2-xyz\n--token=hunter2-xyz\n", string(res.Stdout), "the job gets the value")
	assert.Contains(t, logs.String(), "job starting")
	assert.Contains(t, logs.String(), "[redacted]")
	assert.NotContains(t, logs.String(), "hunter2")

	logs.Reset()
	spec.Entrypoint, spec.Cmd = []string{"/nonexistent/hunter2-xyz/tool"}, nil
	res, err = r.Run(t.Context(), spec)
	require.NoError(t, err)
	assert.Equal(t, -1, res.ExitCode)
	assert.Contains(t, logs.String(), "could not start")
	assert.NotContains(t, logs.String(), "hunter2")
	assert.NotContains(t, res.ExecError, "hunter2")
}

func TestRunWorkingDirectory(t *testing.T) {
	outside := t.TempDir()
	tests := map[string]struct {
		workingDirectory string
		want             string // relative to the checkout
		err              string
	}{
		"repository root":       {want: "."},
		"inside":                {workingDirectory: "deploy/prod", want: "deploy/prod"},
		"inside, not clean":     {workingDirectory: "deploy/./prod/../prod/", want: "deploy/prod"},
		"link inside":           {workingDirectory: "prod-link", want: "deploy/prod"},
		"dot dot":               {workingDirectory: "../", err: "leads out of the repository"},
		"dot dot deeper":        {workingDirectory: "deploy/../../x", err: "leads out of the repository"},
		"absolute":              {workingDirectory: outside, err: "must be relative"},
		"link out":              {workingDirectory: "escape", err: "through a symbolic link"},
		"link out, then deeper": {workingDirectory: "escape/sub", err: "through a symbolic link"},
		"missing":               {workingDirectory: "nope", err: "no such directory"},
		"a file":                {workingDirectory: "README", err: "not a directory"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, co := newRunner(t)
			require.NoError(t, os.MkdirAll(filepath.Join(co.Dir, "deploy", "prod"), 0o755))
			require.NoError(t, os.MkdirAll(filepath.Join(outside, "sub"), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(co.Dir, "README"), nil, 0o644))
			require.NoError(t, os.Symlink(outside, filepath.Join(co.Dir, "escape")))
			require.NoError(t, os.Symlink("deploy/prod", filepath.Join(co.Dir, "prod-link")))

			spec := shSpec("pwd -P")
			spec.WorkingDirectory = tc.workingDirectory
			res, err := r.Run(t.Context(), spec)
			_, released := co.counts()
			assert.Equal(t, 1, released, "released on every path")
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				assert.Contains(t, err.Error(), strconv.Quote(tc.workingDirectory))
				return
			}
			require.NoError(t, err)
			root, err := filepath.EvalSymlinks(co.Dir)
			require.NoError(t, err)
			assert.Equal(t, filepath.Join(root, tc.want)+"\n", string(res.Stdout))
		})
	}
}

func TestRunOutputLimitKeepsTail(t *testing.T) {
	r, _ := newRunner(t, WithOutputLimit(1000))
	res, err := r.Run(t.Context(), shSpec(`i=0; while [ $i -lt 500 ]; do echo "line $i"; echo "err $i" >&2; i=$((i+1)); done`))
	require.NoError(t, err)
	require.Len(t, res.Stdout, 1000)
	require.Len(t, res.Stderr, 1000)
	assert.True(t, strings.HasSuffix(string(res.Stdout), "line 498\nline 499\n"))
	assert.True(t, strings.HasSuffix(string(res.Stderr), "err 498\nerr 499\n"))
	assert.NotContains(t, string(res.Stdout), "line 1\n")
}

func TestRunDefaultOutputLimit(t *testing.T) {
	r, _ := newRunner(t)
	res, err := r.Run(t.Context(), shSpec(`head -c 3000000 /dev/zero; echo END`))
	require.NoError(t, err)
	assert.Len(t, res.Stdout, DefaultOutputLimit)
	assert.True(t, bytes.HasSuffix(res.Stdout, []byte("\x00END\n")))
}

func TestRunCancelKillsProcessGroup(t *testing.T) {
	tests := map[string]string{
		"grandchild":                `sh -c 'echo $$ > "$PIDS/grandchild"; exec sleep 1000' &`,
		"grandchild ignoring TERM":  `sh -c 'trap "" TERM; echo $$ > "$PIDS/grandchild"; exec sleep 1000' &`,
		"orphaned grandchild":       `( sh -c 'echo $$ > "$PIDS/grandchild"; exec sleep 1000' & )`,
		"leader ignoring TERM, too": `trap "" TERM; sh -c 'echo $$ > "$PIDS/grandchild"; exec sleep 1000' &`,
	}
	for name, spawn := range tests {
		t.Run(name, func(t *testing.T) {
			pids := t.TempDir()
			ready := filepath.Join(pids, "ready")
			require.NoError(t, syscall.Mkfifo(ready, 0o600))
			r, co := newRunner(t, WithGracePeriod(100*time.Millisecond))
			spec := shSpec(spawn + `
				while [ ! -s "$PIDS/grandchild" ]; do :; done
				echo partial; echo partial-err >&2
				echo ready > "$PIDS/ready"
				while :; do sleep 1; done`)
			spec.Env = []runner.EnvVar{{Name: "PIDS", Value: pids}}

			ctx, cancel := context.WithCancel(t.Context())
			type outcome struct {
				res runner.Result
				err error
			}
			done := make(chan outcome, 1)
			go func() {
				res, err := r.Run(ctx, spec)
				done <- outcome{res, err}
			}()
			_, err := os.ReadFile(ready) // blocks until the job is ready
			require.NoError(t, err)
			grandchild := proctest.ReadPid(t, filepath.Join(pids, "grandchild"))
			require.True(t, proctest.Alive(grandchild))
			cancel()

			o := <-done
			require.ErrorIs(t, o.err, context.Canceled)
			assert.NotErrorIs(t, o.err, ErrTimeout)
			assert.Equal(t, "partial\n", string(o.res.Stdout), "partial output is kept")
			assert.Equal(t, "partial-err\n", string(o.res.Stderr))
			assert.Contains(t, o.res.ExecError, "interrupted: killed by signal")
			assert.Positive(t, o.res.ExitCode)
			proctest.AssertGone(t, grandchild)
			_, released := co.counts()
			assert.Equal(t, 1, released)
		})
	}
}

func TestRunTimeout(t *testing.T) {
	tests := map[string]struct {
		defaultTimeout time.Duration
		specTimeout    time.Duration
		script         string
		timedOut       bool
	}{
		"spec timeout":                    {defaultTimeout: time.Hour, specTimeout: 50 * time.Millisecond, script: "sleep 1000", timedOut: true},
		"default timeout":                 {defaultTimeout: 50 * time.Millisecond, script: "sleep 1000", timedOut: true},
		"spec timeout wins over default":  {defaultTimeout: time.Nanosecond, specTimeout: time.Hour, script: "echo done"},
		"trapped TERM is still a timeout": {defaultTimeout: 50 * time.Millisecond, script: `trap 'exit 0' TERM; sleep 1000 & wait`, timedOut: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, _ := newRunner(t, WithDefaultTimeout(tc.defaultTimeout))
			spec := shSpec(tc.script)
			spec.Timeout = tc.specTimeout
			res, err := r.Run(t.Context(), spec)
			if !tc.timedOut {
				require.NoError(t, err)
				assert.Equal(t, "done\n", string(res.Stdout))
				return
			}
			require.ErrorIs(t, err, ErrTimeout)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Contains(t, err.Error(), "job timed out after 50ms")
			assert.Contains(t, res.ExecError, "timed out after 50ms")
		})
	}
}

func BenchmarkRunTrue(b *testing.B) {
	r, _ := newRunner(b)
	spec := shSpec("")
	spec.Entrypoint, spec.Cmd = []string{"true"}, nil
	for b.Loop() {
		res, err := r.Run(b.Context(), spec)
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("run: %v, %+v", err, res)
		}
	}
}

func parseEnv(t *testing.T, out []byte) map[string]string {
	t.Helper()
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), "=")
		require.True(t, ok, "line %q", sc.Text())
		env[name] = value
	}
	return env
}

// A sensitive value that starts another one does not let the rest of the
// longer one through: the longest is replaced first.
func TestRunLogsNoPartOfASecretThatStartsWithAnother(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, _ := newRunner(t, WithLogger(logger))
	spec := shSpec(`exit 0`)
	spec.Cmd = append(spec.Cmd, "--token=abcd-efgh-ijkl")
	spec.Env = []runner.EnvVar{
		{Name: "PVN_PARAM_SHORT", Value: "abcd", Sensitive: true},
		{Name: "PVN_PARAM_LONG", Value: "abcd-efgh-ijkl", Sensitive: true},
	}
	_, err := r.Run(t.Context(), spec)
	require.NoError(t, err)
	assert.Contains(t, logs.String(), "--token=[redacted]")
	assert.NotContains(t, logs.String(), "efgh")
}
