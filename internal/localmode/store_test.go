package localmode_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/gitrepo/gitrepotest"
	"github.com/pvnbot/pvnbot/internal/localmode"
	"github.com/pvnbot/pvnbot/internal/reconcile"
	"github.com/pvnbot/pvnbot/internal/store"
)

// oneShot applies once per desired state: no fetch.
const oneShot = `runtime:
  name: files
  custom:
    proxyRuntime: {runtime: local}
    apply:
      taskConfig: {program: {cmd: [sh, -c, "echo deployed {{.Params.version}}"]}}
    parameters:
    - {name: version, string: {defaultValue: "1"}}
---
application:
  name: shop
  releaseChannels: [{name: staging, runtimes: [{runtime: files}]}]
---
service: {name: web, application: shop}
`

// runOnce is `bot run --once` in this process, with wrap (if not nil)
// between the engine and the state file.
func runOnce(repoDir, statePath string, wrap func(reconcile.Store) reconcile.Store) (localmode.Result, string, error) {
	var out bytes.Buffer
	opts := localmode.Options{RepoDir: repoDir, StatePath: statePath, Once: true, Out: &out, Poll: 50 * time.Millisecond}
	if wrap != nil {
		localmode.WrapStore(&opts, wrap)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := localmode.Run(ctx, opts)
	return res, out.String(), err
}

// failingAfterApplyStart is a store whose writes start failing with err
// once an apply's start is recorded: the apply runs, its end cannot be
// recorded (a full disk, damage where the check at open does not look).
type failingAfterApplyStart struct {
	reconcile.Store
	err     error
	failing atomic.Bool
}

func (d *failingAfterApplyStart) Save(ctx context.Context, b store.Batch) error {
	if d.failing.Load() {
		return d.err
	}
	if err := d.Store.Save(ctx, b); err != nil {
		return err
	}
	for _, st := range b.States {
		if st.Running.RunID != "" {
			d.failing.Store(true)
		}
	}
	return nil
}

// A job's end that the store cannot record is never reported as done: bot
// run says what was not recorded, shows what the state file holds and
// fails; the next start goes by the recorded facts.
func TestRunOnceFailsWhenTheStoreCannotRecord(t *testing.T) {
	repo := gitrepotest.New(t)
	repo.Write("all.pvn.yaml", oneShot)
	repo.Commit("web")
	statePath := t.TempDir() + "/state.db"
	run := func(wrap func(reconcile.Store) reconcile.Store) (localmode.Result, string, error) {
		return runOnce(repo.Dir, statePath, wrap)
	}

	disk := &failingAfterApplyStart{err: errors.New("database or disk is full (13)")}
	res, out, err := run(func(s reconcile.Store) reconcile.Store { disk.Store = s; return disk })
	require.Error(t, err)
	assert.True(t, res.Failed)
	assert.Contains(t, err.Error(), "could not record in the state file "+statePath+": ")
	assert.Contains(t, err.Error(), "database or disk is full")
	assert.Contains(t, err.Error(), "not recorded:\n  shop/web/staging: CONVERGED\n  apply of shop/web/staging at ")
	assert.Contains(t, err.Error(), ": ended, exit code 0")
	assert.NotContains(t, out, "1 converged", "nothing converged as far as the state file knows")
	assert.Contains(t, out, "What the state file holds:")
	assert.Contains(t, out, "1 applying")

	// The next start goes by what was recorded: an apply that started
	// and whose end is unknown runs again, then converges.
	res, out, err = run(nil)
	require.NoError(t, err, out)
	assert.False(t, res.Failed)
	require.Len(t, res.States, 1)
	assert.Equal(t, store.StatusConverged, res.States[0].Status)
	assert.Contains(t, out, "1 converged")
}
