package localmode

import (
	"context"
	"sync"
	"time"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/reconcile"
	"github.com/pvnbot/pvnbot/internal/store"
)

// tracked is the engine's Store as local mode hands it over: it knows the
// job runs in flight (to tell when a --once run has settled and to record
// runs cut short by a stop), signals every write, and makes every target due
// at once when the engine loads them, so that a start finds drift made while
// the bot was down instead of waiting for the steady-state poll.
type tracked struct {
	reconcile.Store
	now func() time.Time

	mu       sync.Mutex
	inFlight map[string]store.JobRun
	writes   uint64
	changed  chan struct{}
}

func newTracked(s reconcile.Store, now func() time.Time) *tracked {
	return &tracked{Store: s, now: now, inFlight: map[string]store.JobRun{}, changed: make(chan struct{}, 1)}
}

// LoadTargets returns the saved targets with every live one due now.
func (t *tracked) LoadTargets(ctx context.Context) ([]store.TargetState, error) {
	states, err := t.Store.LoadTargets(ctx)
	if err != nil {
		return nil, err
	}
	now := t.now()
	for i := range states {
		st := &states[i]
		if st.Status == store.StatusDeleted {
			continue
		}
		checkable := st.Target.Fetch != nil || !st.NextDue.IsZero()
		if checkable && (st.NextDue.IsZero() || st.NextDue.After(now)) {
			st.NextDue = now
		}
	}
	return states, nil
}

func (t *tracked) SaveTarget(ctx context.Context, st store.TargetState) error {
	defer t.wrote()
	return t.Store.SaveTarget(ctx, st)
}

func (t *tracked) StartRun(ctx context.Context, run store.JobRun) error {
	defer t.wrote()
	if err := t.Store.StartRun(ctx, run); err != nil {
		return err
	}
	t.mu.Lock()
	t.inFlight[run.ID] = run
	t.mu.Unlock()
	return nil
}

func (t *tracked) FinishRun(ctx context.Context, run store.JobRun) error {
	defer t.wrote()
	t.mu.Lock()
	delete(t.inFlight, run.ID)
	t.mu.Unlock()
	return t.Store.FinishRun(ctx, run)
}

func (t *tracked) AddApproval(ctx context.Context, a store.Approval) error {
	defer t.wrote()
	return t.Store.AddApproval(ctx, a)
}

func (t *tracked) ConsumeApprovals(ctx context.Context, key desired.Key, digest, runID string) error {
	defer t.wrote()
	return t.Store.ConsumeApprovals(ctx, key, digest, runID)
}

func (t *tracked) wrote() {
	t.mu.Lock()
	t.writes++
	t.mu.Unlock()
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// quiet returns the number of writes so far and whether no job runs.
func (t *tracked) quiet() (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.writes, len(t.inFlight) == 0
}

// recordInterrupted finishes the audit-log entries of the runs a stop cut
// short, saying so. An interrupted apply stays recorded as running in its
// target's state: the next start resolves it (fetch decides, or it runs
// again) and rewrites this entry with how.
func (t *tracked) recordInterrupted(ctx context.Context, why string) error {
	t.mu.Lock()
	runs := make([]store.JobRun, 0, len(t.inFlight))
	for _, r := range t.inFlight {
		runs = append(runs, r)
	}
	t.mu.Unlock()
	var firstErr error
	for _, r := range runs {
		r.Finished, r.ExitCode, r.Error = t.now(), -1, "interrupted: "+why
		if err := t.FinishRun(ctx, r); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}
