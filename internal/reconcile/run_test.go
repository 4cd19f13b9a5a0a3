package reconcile

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
)

// running starts Run in the background; the returned stop cancels it and
// waits for it to return.
func (w *world) running() (stop func()) {
	ctx, cancel := context.WithCancel(w.ctx)
	w.ctxOfRun = ctx
	done := make(chan error)
	go func() { done <- w.e.Run(ctx) }()
	return func() {
		cancel()
		require.NoError(w.t, <-done)
	}
}

// convergedCount closes the returned channel once n targets reported CONVERGED.
func (w *world) whenConverged(n int) <-chan struct{} {
	done := make(chan struct{})
	seen := map[desired.Key]bool{}
	w.reporter.onReport = func(st store.TargetState) {
		if st.Status == store.StatusConverged && !seen[st.Key()] {
			seen[st.Key()] = true
			if len(seen) == n {
				close(done)
			}
		}
	}
	return done
}

func TestMaxConcurrencyTwoWithTenTargets(t *testing.T) {
	w := newWorld(t)
	started := make(chan string)
	release := make(chan struct{})
	w.runner.BeforeRun = func(spec runner.Spec) {
		if spec.Action == apply {
			started <- spec.Service
			<-release
		}
	}
	converged := w.whenConverged(10)
	stop := w.running()
	defer stop()

	var targets []desired.Target
	for i := range 10 {
		targets = append(targets, tgt(fmt.Sprintf("s%d", i), "staging", policy(func(p *desired.Policy) { p.MaxConcurrency = 2 })))
	}
	w.set(targets...)

	var order []string
	order = append(order, <-started, <-started)
	for range 8 {
		release <- struct{}{}
		order = append(order, <-started)
	}
	release <- struct{}{}
	release <- struct{}{}
	<-converged

	assert.ElementsMatch(t, []string{"s0", "s1"}, order[:2])
	assert.Equal(t, []string{"s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"}, order[2:], "first come, first served")
	assert.Equal(t, 2, w.runner.maxApply, "never more than 2 applies at once")
	for i := 2; i < 10; i++ {
		k := key(fmt.Sprintf("s%d", i), "staging")
		assert.Contains(t, w.reporter.statuses(k), store.StatusWaitingConcurrency, k.String())
		assert.Equal(t, 1, w.runner.count(k, apply))
	}
}

func TestMaxConcurrencyIsPerRuntime(t *testing.T) {
	w := newWorld(t)
	cStarted := make(chan struct{})
	w.runner.BeforeRun = func(spec runner.Spec) {
		switch {
		case spec.Action != apply:
		case spec.Service == "a":
			// a holds vm's only slot until c, on another runtime, has started.
			select {
			case <-cStarted:
			case <-time.After(5 * time.Second):
				t.Error("c was held up by another runtime's cap")
			}
		case spec.Service == "c":
			close(cStarted)
		}
	}
	converged := w.whenConverged(3)
	stop := w.running()
	defer stop()
	one := policy(func(p *desired.Policy) { p.MaxConcurrency = 1 })
	w.set(tgt("a", "staging", one), tgt("b", "staging", one), tgt("c", "staging", one, runtimeName("other")))
	<-converged
	assert.Contains(t, w.reporter.statuses(key("b", "staging")), store.StatusWaitingConcurrency)
	assert.NotContains(t, w.reporter.statuses(key("c", "staging")), store.StatusWaitingConcurrency)
}

func TestRunFollowsTheClock(t *testing.T) {
	w := newWorld(t)
	w.runner.exits(api, fetch, 2, 0)
	fetched := make(chan time.Duration, 10)
	w.runner.BeforeRun = func(spec runner.Spec) {
		if spec.Action == fetch {
			fetched <- w.clock.Now().Sub(t0)
		}
	}
	converged := w.whenConverged(1)
	stop := w.running()
	defer stop()
	w.set(tgt("api", "staging", withFetch))
	assert.Equal(t, time.Duration(0), <-fetched)
	require.Eventually(t, func() bool { return w.clock.Pending() > 0 }, 5*time.Second, time.Millisecond, "Run sets a timer for the next fetch")
	w.clock.Advance(30 * s)
	assert.Equal(t, 30*s, <-fetched)
	<-converged
	assert.Equal(t, 1, w.runner.count(api, apply))
}

// crashDuringApply starts an apply under Run and stops the engine while the
// apply runs, as a bot killed mid-apply.
func crashDuringApply(t *testing.T, w *world, tg desired.Target) {
	inApply := make(chan struct{})
	w.runner.BeforeRun = func(spec runner.Spec) {
		if spec.Action == apply {
			close(inApply)
			<-w.ctxOfRun.Done()
		}
	}
	stop := w.running()
	w.set(tg)
	<-inApply
	stop()
	w.runner.BeforeRun = nil
	st := w.state(tg.Key)
	require.Equal(t, store.StatusApplying, st.Status)
	require.NotEmpty(t, st.Running.RunID)
}

func TestRestart(t *testing.T) {
	t.Run("an apply recorded as started but not finished: fetch decides", func(t *testing.T) {
		w := newWorld(t)
		w.runner.exits(api, fetch, 2, 0)
		crashDuringApply(t, w, tgt("api", "staging", withFetch))
		w.restart()
		w.settle()
		assert.Equal(t, store.StatusConverged, w.status(api))
		assert.Equal(t, 1, w.runner.count(api, apply), "fetch said converged: no second apply")
		var lost store.JobRun
		for _, r := range w.runs(api) {
			if r.Action == apply {
				lost = r
			}
		}
		assert.Contains(t, lost.Note, "fetch decides")
	})
	t.Run("an apply recorded as started but not finished, without fetch: run again under the same run ID", func(t *testing.T) {
		w := newWorld(t)
		crashDuringApply(t, w, tgt("api", "staging"))
		firstID := w.runner.callsOf(api, apply)[0].RunID
		w.restart()
		w.settle()
		calls := w.runner.callsOf(api, apply)
		require.Len(t, calls, 2)
		assert.Equal(t, firstID, calls[1].RunID, "a backend can find the job still running by its run ID")
		runs := w.runs(api)
		require.Len(t, runs, 1)
		assert.Equal(t, "re-run: previous apply's result was not recorded", runs[0].Note)
		assert.Equal(t, store.StatusConverged, w.status(api))
	})
	t.Run("a recorded successful apply is never run twice", func(t *testing.T) {
		w := newWorld(t)
		w.push(tgt("api", "staging"))
		w.restart()
		w.push(tgt("api", "staging"))
		w.after(time.Hour)
		assert.Equal(t, 1, w.runner.count(api, apply))
		assert.Equal(t, store.StatusConverged, w.status(api))
	})
	t.Run("targets waiting for a slot keep their order", func(t *testing.T) {
		w := newWorld(t)
		release := make(chan struct{})
		inApply := make(chan struct{}, 1)
		w.runner.BeforeRun = func(spec runner.Spec) {
			if spec.Action == apply {
				select {
				case inApply <- struct{}{}: // only the first is awaited
				default:
				}
				<-release
			}
		}
		one := policy(func(p *desired.Policy) { p.MaxConcurrency = 1 })
		stop := w.running()
		w.set(tgt("a", "staging", one), tgt("b", "staging", one), tgt("c", "staging", one))
		<-inApply
		assert.Eventually(t, func() bool { return w.status(key("c", "staging")) == store.StatusWaitingConcurrency }, 5*time.Second, time.Millisecond)
		close(release)
		stop()
		w.runner.BeforeRun = nil
		w.restart()
		w.settle()
		var order []string
		for _, c := range w.runner.calls {
			if c.Action == apply {
				order = append(order, c.Key.Service)
			}
		}
		assert.Equal(t, []string{"a", "b", "c"}, order[len(order)-3:])
	})
}

func TestSlotFreedWhileTheNextInLineRunsGetInfo(t *testing.T) {
	w := newWorld(t)
	aApplying, releaseA := make(chan struct{}), make(chan struct{})
	bInfo, releaseBInfo := make(chan struct{}), make(chan struct{})
	w.runner.BeforeRun = func(spec runner.Spec) {
		switch {
		case spec.Service == "a" && spec.Action == apply:
			close(aApplying)
			<-releaseA
		case spec.Service == "b" && spec.Action == getInfo:
			select {
			case <-bInfo:
			default:
				close(bInfo)
				<-releaseBInfo
			}
		}
	}
	converged := w.whenConverged(2)
	stop := w.running()
	defer stop()
	one := policy(func(p *desired.Policy) { p.MaxConcurrency = 1 })
	w.set(tgt("a", "staging", one, withGetInfo), tgt("b", "staging", one, withGetInfo))

	<-aApplying
	<-bInfo
	require.Eventually(t, func() bool { return w.status(key("b", "staging")) == store.StatusWaitingConcurrency }, 5*time.Second, time.Millisecond)
	close(releaseA)
	require.Eventually(t, func() bool { return w.status(key("a", "staging")) == store.StatusConverged }, 5*time.Second, time.Millisecond)
	close(releaseBInfo)
	select {
	case <-converged:
	case <-time.After(10 * time.Second):
		t.Fatalf("b never got the slot a freed while b's getInfo ran: %s", w.status(key("b", "staging")))
	}
}

// A bot killed during an apply leaves no record of the run but the target's
// run in flight: the next start writes the run's record from it, approvers
// and note included, and fetch decides.
func TestRestartRecordsTheLostApplyFromTheTarget(t *testing.T) {
	w := newWorld(t)
	tg := tgt("api", "production", withFetch, manualApproval(false, 1))
	tg.Commit = "c9"
	started := t0.Add(-time.Minute)
	require.NoError(t, w.store.SaveTarget(w.ctx, store.TargetState{
		Target: tg, Status: store.StatusApplying, DesiredSeq: 1, LatestSeq: 1, ApplyStartedAt: started,
		Running: store.RunRef{RunID: "lost-1", Action: apply, Commit: "c9", Digest: tg.Digest, Started: started, ApprovedBy: []string{"alice"}, Note: "new desired state"},
	}))
	w.runner.exits(apiProd, fetch, 0)
	w.restart()
	w.settle()
	assert.Equal(t, store.StatusConverged, w.status(apiProd))
	run, err := w.store.Run(w.ctx, "lost-1")
	require.NoError(t, err)
	assert.Equal(t, store.JobRun{
		ID: "lost-1", Key: apiProd, Action: apply, Commit: "c9", Digest: tg.Digest, Started: started, ExitCode: -1,
		ApprovedBy: []string{"alice"}, Note: "new desired state; result not recorded (bot restarted): fetch decides",
	}, run)
}
