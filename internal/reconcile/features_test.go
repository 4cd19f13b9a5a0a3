package reconcile

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
)

func TestCheckAllOnStart(t *testing.T) {
	tests := map[string]struct {
		opts       Options
		wantFetch  int
		wantStatus Status
	}{
		"off: a converged target waits for its steady-state poll": {Options{}, 1, store.StatusConverged},
		"on: a converged target fetches at once and finds the drift made while the bot was down": {
			Options{CheckAllOnStart: true}, 2, store.StatusConverging,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t)
			w.runner.exits(api, fetch, 0, 2)
			w.push(tgt("api", "staging", withFetch), tgt("web", "staging"))
			require.Equal(t, store.StatusConverged, w.status(api))
			w.restartWith(tc.opts)
			w.settle()
			assert.Equal(t, tc.wantFetch, w.runner.count(api, fetch))
			assert.Equal(t, tc.wantStatus, w.status(api))
			assert.Equal(t, 1, w.runner.count(web, apply), "without fetch there is nothing to check: no apply again")
		})
	}
}

// stopDuring runs the engine until a job of action a starts, then stops it
// as a signal would, while the job runs.
func stopDuring(t *testing.T, w *world, a runner.Action, tg desired.Target) {
	t.Helper()
	started := make(chan struct{}, 1)
	w.runner.BeforeRun = func(spec runner.Spec) {
		if spec.Action == a {
			select {
			case started <- struct{}{}:
			default:
			}
			<-w.ctxOfRun.Done()
		}
	}
	stop := w.running()
	w.set(tg)
	<-started
	stop()
	w.runner.BeforeRun = nil
}

func TestStoppedRun(t *testing.T) {
	t.Run("a fetch cut short is recorded as interrupted, and runs again after a restart", func(t *testing.T) {
		w := newWorld(t)
		stopDuring(t, w, fetch, tgt("api", "staging", withFetch))
		runs := w.runs(api)
		require.Len(t, runs, 1)
		assert.Equal(t, fetch, runs[0].Action)
		assert.False(t, runs[0].Finished.IsZero(), "finished")
		assert.Equal(t, -1, runs[0].ExitCode)
		assert.Contains(t, runs[0].Error, "interrupted")

		w.restart()
		w.settle()
		assert.Equal(t, 2, w.runner.count(api, fetch), "the first fetch of a desired state is not lost")
		assert.Equal(t, store.StatusConverged, w.status(api))
	})
	t.Run("an apply cut short stays recorded as started, with a note", func(t *testing.T) {
		w := newWorld(t)
		stopDuring(t, w, apply, tgt("api", "staging"))
		runs := w.runs(api)
		require.Len(t, runs, 1)
		assert.True(t, runs[0].Finished.IsZero(), "not finished: a restart resolves it")
		assert.Contains(t, runs[0].Note, "interrupted")
		assert.Equal(t, store.StatusApplying, w.status(api))
	})
	t.Run("an apply left running by a detaching stop says so", func(t *testing.T) {
		w := newWorld(t)
		started := make(chan struct{}, 1)
		w.runner.BeforeRun = func(spec runner.Spec) {
			started <- struct{}{}
			<-w.ctxOfRun.Done()
		}
		ctx, cancel := context.WithCancelCause(w.ctx)
		w.ctxOfRun = ctx
		done := make(chan error, 1)
		go func() { done <- w.e.Run(ctx) }()
		w.set(tgt("api", "staging"))
		<-started
		cancel(runner.ErrDetached)
		require.NoError(t, <-done)
		runs := w.runs(api)
		require.Len(t, runs, 1)
		assert.Contains(t, runs[0].Note, "left it running")
		assert.True(t, runs[0].Finished.IsZero())
	})
	t.Run("a getInfo cut short is recorded as interrupted", func(t *testing.T) {
		w := newWorld(t)
		stopDuring(t, w, getInfo, tgt("api", "staging", withGetInfo))
		var info store.JobRun
		for _, r := range w.runs(api) {
			if r.Action == getInfo {
				info = r
			}
		}
		assert.Contains(t, info.Error, "interrupted")
		assert.False(t, info.Finished.IsZero())
	})
}

func TestLostApplyWithFetchReportingDriftAppliesAgainAtOnce(t *testing.T) {
	w := newWorld(t)
	w.runner.exits(api, fetch, 2, 2, 0)
	crashDuringApply(t, w, tgt("api", "staging", withFetch))
	w.restart()
	w.settle()
	assert.Equal(t, []time.Duration{0, 0}, w.runner.times(api, apply), "no grace period for an apply that never reported")
	assert.Contains(t, w.runs(api)[0].Note, "result was not recorded")
	w.after(30 * s)
	assert.Equal(t, store.StatusConverged, w.status(api))
}

func TestIdle(t *testing.T) {
	w := newWorld(t)
	w.set(tgt("api", "staging"))
	idle, _ := w.e.Idle()
	assert.False(t, idle, "a step is due")

	inApply, release := make(chan struct{}, 1), make(chan struct{})
	w.runner.BeforeRun = func(spec runner.Spec) {
		if spec.Action == apply {
			inApply <- struct{}{}
			<-release
		}
	}
	stop := w.running()
	defer stop()
	<-inApply
	idle, changed := w.e.Idle()
	assert.False(t, idle, "a job runs")
	select {
	case <-changed:
		t.Fatal("changed while nothing happened")
	default:
	}
	close(release)
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("the end of the apply was not signalled")
	}
	require.Eventually(t, func() bool { idle, _ := w.e.Idle(); return idle }, 10*time.Second, time.Millisecond)
	assert.Equal(t, store.StatusConverged, w.status(api))
}

// approvedElsewhere records an approval in the store directly, as `bot
// approve` does beside a running engine.
func (w *world) approvedElsewhere(k desired.Key, who string) {
	w.t.Helper()
	st := w.state(k)
	require.NoError(w.t, w.store.AddApproval(w.ctx, store.Approval{ID: "elsewhere-" + who, Key: k, Digest: st.Target.Digest, Commit: st.Target.Commit, Who: who, At: w.clock.Now()}))
}

func TestRecheck(t *testing.T) {
	t.Run("approvals written by another process are taken at the next recheck", func(t *testing.T) {
		w := newWorld(t)
		w.push(tgt("api", "production", manualApproval(false, 1)))
		w.approvedElsewhere(apiProd, "alice")
		w.after(time.Hour)
		assert.Equal(t, store.StatusWaitingManualApproval, w.status(apiProd), "the engine does not poll the store")
		require.NoError(t, w.e.Recheck(w.ctx))
		w.settle()
		assert.Equal(t, store.StatusConverged, w.status(apiProd))
		assert.Equal(t, []string{"alice"}, w.runs(apiProd)[0].ApprovedBy)
	})
	t.Run("one approval of two updates the reason", func(t *testing.T) {
		w := newWorld(t)
		w.push(tgt("api", "production", manualApproval(false, 2)))
		w.approvedElsewhere(apiProd, "alice")
		require.NoError(t, w.e.Recheck(w.ctx))
		w.settle()
		assert.Contains(t, w.state(apiProd).Message, "1 of 2 approvers (alice)")
		assert.Zero(t, w.runner.count(apiProd, apply))
	})
	t.Run("a recheck that finds nothing new writes nothing", func(t *testing.T) {
		w := newWorld(t)
		w.push(tgt("api", "staging"), tgt("api", "production", manualApproval(false, 1)), tgt("web", "production", stableAfter("staging")))
		saves := w.store.saveCount()
		require.NoError(t, w.e.Recheck(w.ctx))
		w.settle()
		assert.Equal(t, saves, w.store.saveCount())
	})
	t.Run("named targets are due at once", func(t *testing.T) {
		w := newWorld(t)
		w.runner.exits(api, fetch, 0, 2)
		w.push(tgt("api", "staging", withFetch))
		require.NoError(t, w.e.Recheck(w.ctx, api))
		w.settle()
		assert.Equal(t, 2, w.runner.count(api, fetch))
		assert.Equal(t, 1, w.runner.count(api, apply))
	})
	t.Run("RecordApproval over stored states, then a recheck", func(t *testing.T) {
		w := newWorld(t)
		w.push(tgt("api", "production", manualApproval(false, 1)), tgt("web", "production", manualApproval(false, 1)))
		states, err := w.store.LoadTargets(w.ctx)
		require.NoError(t, err)
		keys, err := RecordApproval(w.ctx, w.store, states, ApprovalRequest{Application: "shop", ReleaseChannel: "production", Services: []string{"web"}, Who: "bob"}, t0)
		require.NoError(t, err)
		assert.Equal(t, []desired.Key{key("web", "production")}, keys)
		_, err = RecordApproval(w.ctx, w.store, states, ApprovalRequest{Application: "shop", ReleaseChannel: "production", Services: []string{"web"}, Who: "bob"}, t0)
		var refused *RefusedError
		require.ErrorAs(t, err, &refused)
		assert.Equal(t, "bob already approved shop/production: web", refused.Reason)
		require.NoError(t, w.e.Recheck(w.ctx))
		w.settle()
		assert.Equal(t, store.StatusConverged, w.status(key("web", "production")))
		assert.Equal(t, store.StatusWaitingManualApproval, w.status(apiProd))
	})
}
