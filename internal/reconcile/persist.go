package reconcile

import (
	"context"
	"slices"
	"sync"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/store"
)

// writes queues the engine's store writes so that they are committed
// together: the engine changes a target's state under its mutex and queues
// the new state; whoever then needs it durable (before a job starts, before
// a report, before an approval is acknowledged) syncs, outside the mutex,
// and one transaction commits what every goroutine queued meanwhile (group
// commit). Records are committed in the order they were queued.
type writes struct {
	mu        sync.Mutex
	states    []pendingState
	runs      []store.JobRun
	approvals []store.Approval
	// stateAt indexes the queued states nobody will be told of, which a
	// newer state of the same target replaces: a state superseded before
	// anyone saw it, or any job started on it, is never written.
	stateAt    map[desired.Key]int
	runAt      map[string]int
	approvalAt map[string]int
	queued     int64 // sequence number of the last write queued
	done       int64 // of the last write committed
	// turn is held by the goroutine committing.
	turn chan struct{}
}

type pendingState struct {
	st       store.TargetState
	reported bool
}

func newWrites() *writes {
	return &writes{
		stateAt: map[desired.Key]int{}, runAt: map[string]int{}, approvalAt: map[string]int{},
		turn: make(chan struct{}, 1),
	}
}

// queueState queues st; reported says a Reporter will be told of it, so it
// must be written as it is. It returns the write's sequence number.
func (w *writes) queueState(st store.TargetState, reported bool) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := st.Key()
	if i, ok := w.stateAt[k]; ok {
		w.states[i] = pendingState{st: st, reported: reported}
	} else {
		w.states = append(w.states, pendingState{st: st, reported: reported})
		w.stateAt[k] = len(w.states) - 1
	}
	if reported {
		delete(w.stateAt, k)
	}
	w.queued++
	return w.queued
}

// queueRun queues a job run record; a later record of the same run
// replaces it.
func (w *writes) queueRun(run store.JobRun) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.runs = upsert(w.runs, w.runAt, run.ID, run)
	w.queued++
	return w.queued
}

// queueApproval queues an approval, new or newly consumed; a later record
// of the same approval replaces it.
func (w *writes) queueApproval(a store.Approval) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.approvals = upsert(w.approvals, w.approvalAt, a.ID, a)
	w.queued++
	return w.queued
}

// upsert replaces the queued record of id, or appends v.
func upsert[T any](list []T, at map[string]int, id string, v T) []T {
	if i, ok := at[id]; ok {
		list[i] = v
		return list
	}
	at[id] = len(list)
	return append(list, v)
}

// pending returns the states and runs queued and not yet committed.
func (w *writes) pending() ([]store.TargetState, []store.JobRun) {
	w.mu.Lock()
	defer w.mu.Unlock()
	states := make([]store.TargetState, len(w.states))
	for i, p := range w.states {
		states[i] = p.st
	}
	return states, slices.Clone(w.runs)
}

// last is the sequence number of the last write queued.
func (w *writes) last() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.queued
}

// sync returns once every write up to upto is committed, committing what
// is queued if nobody else is. A failed commit stays queued, to be tried
// again by the next sync. The commit itself is not cut short by ctx: a
// write a job or a report waits for is never left half done.
func (w *writes) sync(ctx context.Context, s Store, upto int64) error {
	for {
		w.mu.Lock()
		if w.done >= upto {
			w.mu.Unlock()
			return nil
		}
		w.mu.Unlock()

		w.turn <- struct{}{}
		w.mu.Lock()
		if w.done >= upto {
			w.mu.Unlock()
			<-w.turn
			return nil
		}
		pending, runs, approvals, last := w.states, w.runs, w.approvals, w.queued
		w.states, w.runs, w.approvals = nil, nil, nil
		clear(w.stateAt)
		clear(w.runAt)
		clear(w.approvalAt)
		w.mu.Unlock()

		states := make([]store.TargetState, len(pending))
		for i, p := range pending {
			states[i] = p.st
		}
		err := s.Save(context.WithoutCancel(ctx), store.Batch{States: states, Runs: runs, Approvals: approvals})

		w.mu.Lock()
		if err == nil {
			w.done = last
		} else {
			// In front of what was queued meanwhile, which no longer
			// replaces any of it: the order stays that of the queue.
			w.states = append(pending, w.states...)
			w.runs = append(runs, w.runs...)
			w.approvals = append(approvals, w.approvals...)
			clear(w.stateAt)
			clear(w.runAt)
			clear(w.approvalAt)
		}
		w.mu.Unlock()
		<-w.turn
		if err != nil {
			return err
		}
	}
}
