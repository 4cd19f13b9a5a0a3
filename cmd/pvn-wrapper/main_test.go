package main

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/wrapper"
)

// binary is pvn-wrapper built the way it ships: CGO_ENABLED=0.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pvn-wrapper-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "pvn-wrapper")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building pvn-wrapper:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

type wrapped struct {
	exitCode int    // the wrapper's own
	stdout   []byte // the wrapper's own
	stderr   string // the wrapper's own
}

func runWrapper(t *testing.T, args ...string) wrapped {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		require.NoError(t, err)
	}
	return wrapped{exitCode: cmd.ProcessState.ExitCode(), stdout: stdout.Bytes(), stderr: stderr.String()}
}

// decode checks that stdout is exactly one JSON line and decodes it.
func decode(t *testing.T, stdout []byte) wrapper.Output {
	t.Helper()
	require.Equal(t, 1, bytes.Count(stdout, []byte("\n")), "one line: %q", stdout)
	require.True(t, bytes.HasSuffix(stdout, []byte("\n")))
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(stdout, &raw))
	for _, key := range []string{"version", "exitCode", "execError", "stdout", "stderr", "startTimestampNs", "durationNs"} {
		assert.Contains(t, raw, key)
	}
	out, ok := wrapper.Parse(stdout)
	require.True(t, ok)
	return out
}

func TestExecExitCodes(t *testing.T) {
	tests := map[string]struct {
		args        []string
		wrapperExit int
		jsonExit    int
	}{
		"0":                               {args: []string{"--", "sh", "-c", "exit 0"}, wrapperExit: 0, jsonExit: 0},
		"2":                               {args: []string{"--", "sh", "-c", "exit 2"}, wrapperExit: 2, jsonExit: 2},
		"7":                               {args: []string{"--", "sh", "-c", "exit 7"}, wrapperExit: 7, jsonExit: 7},
		"2 listed as success":             {args: []string{"--success-exit-codes", "2,7", "--", "sh", "-c", "exit 2"}, wrapperExit: 0, jsonExit: 2},
		"7 listed as success":             {args: []string{"--success-exit-codes=2,7", "--", "sh", "-c", "exit 7"}, wrapperExit: 0, jsonExit: 7},
		"3 not listed":                    {args: []string{"--success-exit-codes", "2,7", "--", "sh", "-c", "exit 3"}, wrapperExit: 3, jsonExit: 3},
		"killed by a signal":              {args: []string{"--", "sh", "-c", "kill -9 $$"}, wrapperExit: 137, jsonExit: 137},
		"without the double dash":         {args: []string{"sh", "-c", "exit 7"}, wrapperExit: 7, jsonExit: 7},
		"the program's flags are its own": {args: []string{"--", "sh", "-c", "exit 7", "--success-exit-codes", "7"}, wrapperExit: 7, jsonExit: 7},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := runWrapper(t, append([]string{"exec"}, tc.args...)...)
			assert.Equal(t, tc.wrapperExit, r.exitCode)
			assert.Empty(t, r.stderr)
			out := decode(t, r.stdout)
			assert.Equal(t, tc.jsonExit, out.ExitCode)
			assert.Equal(t, wrapper.Version, out.Version)
		})
	}
}

func TestExecSeparatesStreams(t *testing.T) {
	r := runWrapper(t, "exec", "--", "sh", "-c", `echo out1; echo err1 >&2; printf 'out2'; printf '\001\000' >&2`)
	require.Equal(t, 0, r.exitCode)
	assert.Empty(t, r.stderr, "the program's stderr goes into the JSON, not the wrapper's stderr")
	out := decode(t, r.stdout)
	assert.Equal(t, "out1\nout2", string(out.Stdout))
	assert.Equal(t, "err1\n\x01\x00", string(out.Stderr))
	assert.Positive(t, out.DurationNs)
	assert.Positive(t, out.StartTimestampNs)
}

func TestExecLargeOutputs(t *testing.T) {
	const mib = 1 << 20
	t.Run("3 MiB on each stream, all kept", func(t *testing.T) {
		r := runWrapper(t, "exec", "--", "sh", "-c", `head -c 3145728 /dev/urandom | od -An -v -tx1 | head -c 3145728; head -c 3145728 /dev/zero >&2`)
		require.Equal(t, 0, r.exitCode)
		out := decode(t, r.stdout)
		assert.Len(t, out.Stdout, 3*mib)
		assert.Equal(t, make([]byte, 3*mib), out.Stderr)
		assert.Zero(t, out.StdoutTruncated)
	})
	t.Run("9 MiB keeps the last 4 MiB", func(t *testing.T) {
		r := runWrapper(t, "exec", "--", "sh", "-c", `head -c 9437184 /dev/zero | tr '\0' x; echo LAST`)
		require.Equal(t, 0, r.exitCode)
		out := decode(t, r.stdout)
		assert.Len(t, out.Stdout, wrapper.DefaultOutputLimit)
		assert.True(t, bytes.HasSuffix(out.Stdout, []byte("xxxLAST\n")))
		assert.Equal(t, int64(9*mib+5-wrapper.DefaultOutputLimit), out.StdoutTruncated)
	})
	t.Run("--output-limit", func(t *testing.T) {
		r := runWrapper(t, "exec", "--output-limit", "4", "--", "sh", "-c", `echo 123456789`)
		out := decode(t, r.stdout)
		assert.Equal(t, "789\n", string(out.Stdout))
		assert.Equal(t, int64(6), out.StdoutTruncated)
	})
}

func TestExecCannotStart(t *testing.T) {
	r := runWrapper(t, "exec", "--", "pvn-no-such-program", "arg")
	assert.Equal(t, 127, r.exitCode)
	out := decode(t, r.stdout)
	assert.Equal(t, -1, out.ExitCode)
	assert.Contains(t, out.ExecError, `"pvn-no-such-program": executable file not found`)
}

func TestExecPassesSignalsThrough(t *testing.T) {
	tests := map[string]struct {
		signal syscall.Signal
		trap   string
	}{
		"SIGTERM": {signal: syscall.SIGTERM, trap: "TERM"},
		"SIGINT":  {signal: syscall.SIGINT, trap: "INT"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ready := filepath.Join(t.TempDir(), "ready")
			require.NoError(t, syscall.Mkfifo(ready, 0o600))
			script := fmt.Sprintf(`trap 'echo got %s; exit 9' %s; echo ready > %s; sleep 1000 & wait`, tc.trap, tc.trap, ready)
			cmd := exec.Command(binary, "exec", "--", "sh", "-c", script)
			var stdout bytes.Buffer
			cmd.Stdout = &stdout
			require.NoError(t, cmd.Start())

			// Opening the FIFO blocks until the program has set its trap.
			_, err := os.ReadFile(ready)
			require.NoError(t, err)
			require.NoError(t, cmd.Process.Signal(tc.signal))

			err = cmd.Wait()
			var exitErr *exec.ExitError
			require.ErrorAs(t, err, &exitErr)
			assert.Equal(t, 9, exitErr.ExitCode(), "the wrapper exits with the program's code")
			out := decode(t, stdout.Bytes())
			assert.Equal(t, 9, out.ExitCode)
			assert.Equal(t, "got "+tc.trap+"\n", string(out.Stdout), "the program's trap saw the signal")
		})
	}
}

func TestUsage(t *testing.T) {
	tests := map[string][]string{
		"no arguments":              {},
		"unknown command":           {"run", "--", "true"},
		"unknown flag":              {"exec", "--bogus", "--", "true"},
		"no program":                {"exec", "--"},
		"bad success exit code":     {"exec", "--success-exit-codes", "2,x", "--", "true"},
		"success exit code too big": {"exec", "--success-exit-codes", "256", "--", "true"},
		"flag value missing":        {"exec", "--success-exit-codes"},
		"output limit not positive": {"exec", "--output-limit", "0", "--", "true"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			r := runWrapper(t, args...)
			assert.Equal(t, 2, r.exitCode)
			assert.Empty(t, r.stdout, "no JSON line when nothing ran")
			assert.Contains(t, r.stderr, "usage:")
		})
	}
}

func TestVersion(t *testing.T) {
	r := runWrapper(t, "version")
	assert.Equal(t, 0, r.exitCode)
	assert.True(t, strings.HasPrefix(string(r.stdout), "pvn-wrapper output format "+wrapper.Version))
}

func TestBinaryIsStatic(t *testing.T) {
	f, err := elf.Open(binary)
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		assert.NotEqual(t, elf.PT_INTERP, p.Type, "a static binary has no ELF interpreter")
	}
	_, err = f.DynamicSymbols()
	assert.Error(t, err, "a static binary has no dynamic symbols")
}
