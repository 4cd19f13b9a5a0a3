package reconcile

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
)

// deadline bounds how long a test waits for the engine, so that a
// regression fails the test instead of hanging it.
const deadline = 20 * time.Second

// untilIdle waits for the running engine to be idle with cond true.
func (w *world) untilIdle(what string, cond func() bool) {
	w.t.Helper()
	timeout := time.After(deadline)
	for {
		idle, changed := w.e.Idle()
		if idle && cond() {
			select {
			case <-changed: // something happened between the two looks
			default:
				return
			}
		}
		select {
		case <-changed:
		case <-timeout:
			w.t.Fatalf("the engine never got to: %s", what)
		}
	}
}

func (w *world) countStatus(s Status) int {
	n := 0
	for _, st := range w.e.Snapshot() {
		if st.Status == s {
			n++
		}
	}
	return n
}

// blockingReads is a store whose approval reads block until released, as
// reads do behind another process's long write.
type blockingReads struct {
	*recordingStore
	reading chan struct{} // a read started
	release chan struct{}
}

func (s *blockingReads) CurrentApprovals(ctx context.Context) ([]store.Approval, error) {
	s.reading <- struct{}{}
	<-s.release
	return s.recordingStore.CurrentApprovals(ctx)
}

// A read of the store that does not return holds up nothing but itself:
// the engine decides from memory, so jobs of other targets start and
// finish, approval gates are decided and approvals are taken meanwhile.
func TestSlowStoreReadsHoldUpNoDecision(t *testing.T) {
	w := newWorld(t)
	slow := &blockingReads{recordingStore: w.store, reading: make(chan struct{}, 1), release: make(chan struct{})}
	w.restartWith(Options{})
	w.e.store = slow
	stop := w.running()
	defer stop()

	var targets []desired.Target
	for i := range 5 {
		targets = append(targets, tgt(fmt.Sprintf("svc-%d", i), "staging"))
	}
	targets = append(targets, tgt("api", "production", manualApproval(false, 1)), tgt("web", "production", manualApproval(false, 1)))
	w.set(targets...)
	w.untilIdle("5 converged, 2 waiting", func() bool {
		return w.countStatus(store.StatusConverged) == 5 && w.countStatus(store.StatusWaitingManualApproval) == 2
	})

	rechecked := make(chan error, 1)
	go func() { rechecked <- w.e.Recheck(w.ctx) }()
	<-slow.reading // Recheck now waits on the store, outside the engine's lock

	more := append(targets, tgt("late", "staging"))
	w.set(more...)
	_, err := w.approve("production", "alice", "api")
	require.NoError(t, err)
	w.untilIdle("the late target and the approved one converged", func() bool {
		return w.status(key("late", "staging")) == store.StatusConverged && w.status(apiProd) == store.StatusConverged
	})
	assert.Equal(t, store.StatusWaitingManualApproval, w.status(key("web", "production")))
	assert.Equal(t, []string{"alice"}, w.runs(apiProd)[0].ApprovedBy)

	close(slow.release)
	require.NoError(t, <-rechecked)
}

// blockingSaves is a store whose commits wait at a gate while it is set.
type blockingSaves struct {
	*recordingStore
	mu      sync.Mutex
	gate    chan struct{}
	entered chan struct{}
}

func (s *blockingSaves) Save(ctx context.Context, b store.Batch) error {
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case s.entered <- struct{}{}:
		default:
		}
		<-gate
	}
	return s.recordingStore.Save(ctx, b)
}

// While a commit is slow, the engine's lock is free: its state can be read,
// and a running job ends (its end waits to be committed, not the engine).
func TestSlowCommitLeavesTheEngineFree(t *testing.T) {
	w := newWorld(t)
	slow := &blockingSaves{recordingStore: w.store, entered: make(chan struct{}, 1)}
	w.restartWith(Options{})
	w.e.store = slow
	applying := make(chan struct{})
	finish := make(chan struct{})
	w.runner.BeforeRun = func(spec runner.Spec) {
		if spec.Service == "api" {
			close(applying)
			<-finish
		}
	}
	stop := w.running()
	defer stop()
	w.set(tgt("api", "staging"))
	<-applying

	slow.mu.Lock()
	slow.gate = make(chan struct{})
	slow.mu.Unlock()
	close(finish) // the apply ends; recording its end waits at the gate
	<-slow.entered

	done := make(chan struct{})
	go func() {
		defer close(done)
		st := w.state(api)
		assert.Equal(t, store.StatusConverged, st.Status, "decided in memory, not yet durable")
		_, _ = w.e.Idle()
		_, err := w.e.Approve(context.WithoutCancel(w.ctx), ApprovalRequest{Application: "shop", ReleaseChannel: "nope", Who: "bob"})
		assert.Error(t, err, "refused from memory, at once")
	}()
	select {
	case <-done:
	case <-time.After(deadline):
		t.Fatal("the engine's lock is held while the store commits")
	}
	close(slow.gate)
	w.untilIdle("the apply's end recorded", func() bool { return w.store.wasSaved(w.state(api)) })
}

// blockingReporter blocks its first report until released.
type blockingReporter struct {
	*fakeReporter
	once    sync.Once
	blocked chan struct{}
	release chan struct{}
}

func (r *blockingReporter) TargetChanged(ctx context.Context, st store.TargetState) {
	r.once.Do(func() {
		close(r.blocked)
		<-r.release
	})
	r.fakeReporter.TargetChanged(ctx, st)
}

// A Reporter that does not return holds up later reports only: the engine
// converges every target meanwhile, and the reports follow, in order, once
// it returns.
func TestBlockedReporterHoldsUpNoTarget(t *testing.T) {
	w := newWorld(t)
	rep := &blockingReporter{fakeReporter: w.reporter, blocked: make(chan struct{}), release: make(chan struct{})}
	w.restartWith(Options{})
	w.e.reports = newReports(w.ctx, rep)
	stop := w.running()

	var targets []desired.Target
	for i := range 20 {
		targets = append(targets, tgt(fmt.Sprintf("svc-%d", i), "staging"))
	}
	w.set(targets...)
	<-rep.blocked
	w.untilIdle("20 converged", func() bool { return w.countStatus(store.StatusConverged) == 20 })
	for _, tg := range targets {
		assert.Equal(t, 1, w.runner.count(tg.Key, apply), "%s applied while the reporter was blocked", tg.Key)
	}

	close(rep.release)
	stop() // returns once everything was reported
	for _, tg := range targets {
		assert.Equal(t, []Status{store.StatusPending, store.StatusApplying, store.StatusConverged}, w.reporter.statuses(tg.Key), tg.Key.String())
	}
}

// 50 people approve 50 targets at once while other targets' jobs run; a few
// approve the same target again. Each approval is recorded once and used by
// exactly one apply.
func TestConcurrentApprovals(t *testing.T) {
	w := newWorld(t)
	stop := w.running()
	defer stop()
	const n = 50
	var targets []desired.Target
	for i := range n {
		targets = append(targets, tgt(fmt.Sprintf("gated-%d", i), "production", manualApproval(true, 1)))
		targets = append(targets, tgt(fmt.Sprintf("free-%d", i), "staging"))
	}
	w.set(targets...)
	w.untilIdle("the gated targets wait", func() bool { return w.countStatus(store.StatusWaitingManualApproval) == n })

	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	refused := make(chan string, 2*n)
	for i := range n {
		service, who := fmt.Sprintf("gated-%d", i), fmt.Sprintf("person-%d", i)
		tries := 1
		if i%10 == 0 {
			tries = 3 // the same person, three times at once
		}
		for range tries {
			wg.Go(func() {
				_, err := w.e.Approve(w.ctx, ApprovalRequest{Application: "shop", ReleaseChannel: "production", Services: []string{service}, Who: who})
				var r *RefusedError
				switch {
				case errorsAs(err, &r):
					refused <- r.Reason
				case err != nil:
					errs <- err
				}
			})
		}
		// Meanwhile, new work arrives for the free targets.
		w.e.Recheck(w.ctx, key(fmt.Sprintf("free-%d", i), "staging"))
	}
	wg.Wait()
	close(errs)
	close(refused)
	for err := range errs {
		require.NoError(t, err)
	}
	for reason := range refused {
		// An apply may use the approval before the repeat is looked at:
		// then nothing waits any more.
		assert.Regexp(t, `already approved|nothing in shop/production`, reason)
	}
	w.untilIdle("every target converged", func() bool { return w.countStatus(store.StatusConverged) == 2*n })

	for i := range n {
		k := key(fmt.Sprintf("gated-%d", i), "production")
		runs := w.runs(k)
		require.Len(t, runs, 1, "%s applied once", k)
		who := fmt.Sprintf("person-%d", i)
		assert.Equal(t, []string{who}, runs[0].ApprovedBy)
		approvals, err := w.store.Approvals(w.ctx, k, w.state(k).Target.Digest)
		require.NoError(t, err)
		require.Len(t, approvals, 1, "%s: one approval recorded", k)
		assert.Equal(t, runs[0].ID, approvals[0].ConsumedBy, "used by that apply")
	}
}

// Approve answers only once its approvals are durable, and says when they
// could not be recorded.
func TestApproveReportsAFailedCommit(t *testing.T) {
	w := newWorld(t)
	w.push(tgt("api", "production", manualApproval(false, 1)))
	w.store.failWith(fmt.Errorf("disk full"))
	_, err := w.approve("production", "alice")
	require.ErrorContains(t, err, "disk full")
	var refused *RefusedError
	assert.False(t, errorsAs(err, &refused), "not a refusal: the approval could not be recorded")
	w.store.failWith(nil)
	w.settle()
	assert.Equal(t, store.StatusConverged, w.status(apiProd), "recorded by the next commit, then taken")
}

// Targets converged at one moment spread their steady-state polls.
func TestSteadyPollsAreJittered(t *testing.T) {
	w := newWorld(t)
	var targets []desired.Target
	for i := range 200 {
		targets = append(targets, tgt(fmt.Sprintf("svc-%d", i), "staging", withFetch))
	}
	w.push(targets...)
	seconds := map[int64]bool{}
	for _, st := range w.e.Snapshot() {
		require.Equal(t, store.StatusConverged, st.Status)
		d := st.NextDue.Sub(t0)
		assertSteady(t, 5*time.Minute, d)
		seconds[int64(d/time.Second)] = true
	}
	assert.Greater(t, len(seconds), 40, "200 polls spread over the 60 seconds either side of 5m")
}
