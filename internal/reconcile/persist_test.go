package reconcile

import (
	"context"
	"errors"
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

// batchStore records each Save call; while gate is set, the first
// call waits for it to close.
type batchStore struct {
	nopStore
	mu      sync.Mutex
	batches [][]string // per call: the statuses of the states, then run IDs
	entered chan struct{}
	gate    chan struct{}
}

func (s *batchStore) Save(ctx context.Context, b store.Batch) error {
	s.mu.Lock()
	var got []string
	for _, st := range b.States {
		got = append(got, st.Key().Service+" "+string(st.Status))
	}
	for _, r := range b.Runs {
		got = append(got, "run "+r.ID)
	}
	for _, a := range b.Approvals {
		got = append(got, "approval "+a.ID)
	}
	s.batches = append(s.batches, got)
	gate := s.gate
	s.gate = nil
	s.mu.Unlock()
	if gate != nil {
		close(s.entered)
		<-gate
	}
	return nil
}

func stateOf(service string, status Status) store.TargetState {
	return store.TargetState{Target: desired.Target{Key: key(service, "staging")}, Status: status}
}

func TestWritesReplaceOnlyStatesNobodyIsToldOf(t *testing.T) {
	s := &batchStore{}
	w := newWrites()
	w.queueState(stateOf("api", store.StatusPending), false)
	w.queueState(stateOf("web", store.StatusPending), true)
	w.queueState(stateOf("api", store.StatusFetching), false)
	w.queueState(stateOf("web", store.StatusFetching), true)
	w.queueRun(store.JobRun{ID: "r1"})
	w.queueRun(store.JobRun{ID: "r1", ExitCode: 2})
	require.NoError(t, w.sync(context.Background(), s, w.last()))
	assert.Equal(t, [][]string{{"api FETCHING", "web PENDING", "web FETCHING", "run r1"}}, s.batches,
		"api's first state was superseded before anyone saw it; web's both were reported")
	require.NoError(t, w.sync(context.Background(), s, w.last()))
	assert.Len(t, s.batches, 1, "nothing left to commit")
}

func TestWritesGroupCommit(t *testing.T) {
	gate := make(chan struct{})
	s := &batchStore{entered: make(chan struct{}), gate: gate}
	w := newWrites()
	ctx := context.Background()
	first := w.queueState(stateOf("a", store.StatusApplying), true)
	done := make(chan error, 4)
	go func() { done <- w.sync(ctx, s, first) }()
	<-s.entered
	var seqs []int64
	for _, svc := range []string{"b", "c", "d"} {
		seqs = append(seqs, w.queueState(stateOf(svc, store.StatusConverged), true))
	}
	for _, seq := range seqs {
		go func() { done <- w.sync(ctx, s, seq) }()
	}
	close(gate)
	for range 4 {
		require.NoError(t, <-done)
	}
	assert.Equal(t, [][]string{{"a APPLYING"}, {"b CONVERGED", "c CONVERGED", "d CONVERGED"}}, s.batches,
		"the writes queued while a commit ran share the next one")
}

func TestSetDesiredCommitsOnce(t *testing.T) {
	w := newWorld(t)
	before := w.store.commitCount()
	var targets []desired.Target
	for i := range 100 {
		targets = append(targets, tgt(fmt.Sprintf("s%d", i), "staging"))
	}
	w.set(targets...)
	assert.Equal(t, before+1, w.store.commitCount())
	states, err := w.store.LoadTargets(w.ctx)
	require.NoError(t, err)
	assert.Len(t, states, 100)
}

// An apply starts once the target is durably APPLYING with the run in
// flight, which is what a restart needs to resolve it (and to write the
// run's record if its result is lost); every run's record is written when it
// ends. A fetch or getInfo has nothing to record before it starts: one cut
// short by a crash is run again.
func TestJobsStartOnlyOnceTheirRecordsAreDurable(t *testing.T) {
	w := newWorld(t)
	w.runner.BeforeRun = func(spec runner.Spec) {
		_, err := w.store.Run(w.ctx, spec.RunID)
		assert.ErrorIs(t, err, store.ErrNotFound, "the run of %s %s is recorded when it ends", spec.Action, spec.Service)
		if spec.Action != apply {
			return
		}
		states, err := w.store.LoadTargets(w.ctx)
		require.NoError(t, err)
		for _, st := range states {
			if st.Key().Service == spec.Service {
				assert.Equal(t, store.StatusApplying, st.Status, "%s is saved as applying before its apply starts", st.Key())
				assert.Equal(t, spec.RunID, st.Running.RunID)
				assert.Equal(t, spec.Commit, st.Running.Commit)
			}
		}
	}
	w.runner.exits(api, fetch, 2, 0)
	converged := w.whenConverged(5)
	stop := w.running()
	defer stop()
	w.set(tgt("api", "staging", withFetch), tgt("web", "staging", withGetInfo), tgt("a", "staging"), tgt("b", "staging"), tgt("c", "staging"))
	deadline := time.After(10 * time.Second)
	for {
		select {
		case <-converged:
			return
		case <-deadline:
			t.Fatal("not converged")
		case <-time.After(5 * time.Millisecond):
			w.clock.Advance(30 * s) // api's fetch after its apply
		}
	}
}

func TestJobWhoseStartCannotBeRecordedDoesNotStart(t *testing.T) {
	w := newWorld(t)
	w.set(tgt("api", "staging"))
	w.store.failWith(errors.New("disk full"))
	require.ErrorContains(t, w.e.Settle(w.ctx), "disk full")
	assert.Zero(t, w.runner.count(api, apply), "not started")

	w.store.failWith(nil)
	w.after(errorRetry)
	assert.Equal(t, 1, w.runner.count(api, apply))
	assert.Equal(t, store.StatusConverged, w.status(api))
	runs := w.runs(api)
	require.Len(t, runs, 2)
	assert.Contains(t, runs[1].Error, "not started: its start could not be recorded: disk full", "the audit log says the first never ran")
	assert.Equal(t, 0, runs[0].ExitCode)
	assert.Equal(t, "apply again", runs[0].Note)
	assert.Empty(t, runs[0].Error)
}

// While the store refuses writes the engine knows it, says what it holds
// that is not recorded, and tells nobody of it; once a commit succeeds,
// everything is recorded and reported.
func TestStoreFailureIsKnownAndNothingIsReported(t *testing.T) {
	w := newWorld(t)
	full := errors.New("database or disk is full")
	w.store.failWith(full)
	err := w.e.SetDesired(w.ctx, "c1", []desired.Target{tgt("api", "staging")})
	require.ErrorIs(t, err, full)
	assert.ErrorIs(t, w.e.StoreErr(), full)
	assert.Equal(t, []string{"shop/api/staging: PENDING"}, w.e.Unsaved())
	assert.Empty(t, w.reporter.statuses(api), "nothing reported that is not recorded")

	w.store.failWith(nil)
	require.NoError(t, w.e.Flush(w.ctx))
	assert.NoError(t, w.e.StoreErr())
	assert.Empty(t, w.e.Unsaved())
	w.settle()
	assert.Equal(t, []Status{store.StatusPending, store.StatusApplying, store.StatusConverged}, w.reporter.statuses(api))
}
