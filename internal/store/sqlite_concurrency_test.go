package store_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
	"github.com/pvnbot/pvnbot/internal/store/storetest"
)

func keyN(service string, i int) desired.Key {
	return desired.Key{Application: "app", Service: fmt.Sprintf("%s-%d", service, i), ReleaseChannel: "staging"}
}

// TestSQLiteTwoHandlesConcurrently stands for `bot run` and `bot approve`
// working on one file at once: each handle has its own connections, as a
// second process would, and none may see "database is locked".
func TestSQLiteTwoHandlesConcurrently(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	run, approve := openSQLite(t, path), openSQLite(t, path)
	const n = 40

	var wg sync.WaitGroup
	errs := make(chan error, 8*n)
	do := func(fn func(i int) error) {
		wg.Go(func() {
			for i := range n {
				if err := fn(i); err != nil {
					errs <- err
				}
			}
		})
	}
	for w := range 2 {
		do(func(i int) error {
			return run.SaveTarget(ctx, storetest.FullState(keyN(fmt.Sprintf("w%d", w), i), "d1"))
		})
	}
	do(func(i int) error {
		r := store.JobRun{ID: fmt.Sprintf("run-%d", i), Key: keyN("w0", i), Action: runner.ActionApply, Started: t0}
		if err := run.StartRun(ctx, r); err != nil {
			return err
		}
		r.Finished = t0.Add(time.Second)
		return run.FinishRun(ctx, r)
	})
	do(func(i int) error {
		a := store.Approval{ID: fmt.Sprintf("a%d", i), Key: keyN("w0", i), Digest: "d1", Who: "alice", At: t0}
		if err := approve.AddApproval(ctx, a); err != nil {
			return err
		}
		a.ConsumedBy = fmt.Sprintf("run-%d", i)
		return approve.Save(ctx, store.Batch{Approvals: []store.Approval{a}})
	})
	do(func(i int) error {
		_, err := approve.IngestCommit(ctx, "main", fmt.Sprintf("c%d", i), "")
		return err
	})
	do(func(i int) error {
		if _, err := approve.LoadTargets(ctx); err != nil {
			return err
		}
		_, err := approve.RecentRuns(ctx, 10)
		return err
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}

	targets, err := approve.LoadTargets(ctx)
	require.NoError(t, err)
	assert.Len(t, targets, 2*n, "the other handle sees every target")
	runs, err := approve.RecentRuns(ctx, 0)
	require.NoError(t, err)
	assert.Len(t, runs, n)
	for i := range n {
		got, err := run.Approvals(ctx, keyN("w0", i), "d1")
		require.NoError(t, err)
		require.Len(t, got, 1)
		assert.Equal(t, fmt.Sprintf("run-%d", i), got[0].ConsumedBy)
	}
	_, seq, err := run.LastIngested(ctx, "main")
	require.NoError(t, err)
	assert.EqualValues(t, n, seq)
}

func TestSQLiteConcurrentOpenOfANewFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := store.OpenSQLite(ctx, path)
			if err == nil {
				err = errors.Join(s.Repo(storetest.Repo).SaveTarget(ctx, storetest.FullState(keyN("open", i), "d1")), s.Close())
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	var rows, version int
	require.NoError(t, rawDB(t, path).QueryRowContext(ctx, `SELECT count(*), max(version) FROM schema_version`).Scan(&rows, &version))
	assert.Equal(t, 1, rows)
	assert.Equal(t, store.SchemaVersion(), version)
}

// childEnv switches the test binary into the child of
// TestSQLiteCrossProcess; its value is the state file.
const childEnv = "PVNBOT_STORE_TEST_CHILD"

const crossProcessWrites = 150

// TestSQLiteCrossProcess runs this test binary again as a second process
// that adds approvals while this one saves targets, both on one file.
func TestSQLiteCrossProcess(t *testing.T) {
	if path := os.Getenv(childEnv); path != "" {
		addApprovalsAsChild(t, path)
		return
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSQLiteCrossProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	s := openSQLite(t, path) // opens, and migrates, alongside the child

	lines := bufio.NewReader(stdout)
	var childOut strings.Builder
	for {
		line, err := lines.ReadString('\n')
		childOut.WriteString(line)
		if err != nil {
			waitErr := cmd.Wait() // stderr is complete once Wait returns
			require.Fail(t, "child ended before it was ready", "%v\n%s%s", waitErr, childOut.String(), stderr.String())
		}
		if line == "ready\n" {
			break
		}
	}
	_, err = io.WriteString(stdin, "go\n")
	require.NoError(t, err)

	for i := range crossProcessWrites {
		require.NoError(t, s.SaveTarget(ctx, storetest.FullState(keyN("parent", i), "d1")))
	}
	rest, _ := io.ReadAll(lines)
	childOut.Write(rest)
	require.NoError(t, cmd.Wait(), "child:\n%s%s", childOut.String(), stderr.String())

	targets, err := s.LoadTargets(ctx)
	require.NoError(t, err)
	assert.Len(t, targets, crossProcessWrites)
	for _, i := range []int{0, crossProcessWrites - 1} {
		got, err := s.Approvals(ctx, keyN("child", i), "d1")
		require.NoError(t, err)
		assert.Len(t, got, 1, "the child's approval %d is there", i)
	}
}

func addApprovalsAsChild(t *testing.T, path string) {
	ctx := context.Background()
	s := openSQLite(t, path)
	fmt.Println("ready")
	_, err := bufio.NewReader(os.Stdin).ReadString('\n')
	require.NoError(t, err)
	for i := range crossProcessWrites {
		a := store.Approval{ID: fmt.Sprintf("child-%d", i), Key: keyN("child", i), Digest: "d1", Who: "alice", At: t0}
		require.NoError(t, s.AddApproval(ctx, a))
	}
}
