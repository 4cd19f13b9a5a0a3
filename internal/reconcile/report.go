package reconcile

import (
	"context"
	"log/slog"
	"sync"

	"github.com/pvnbot/pvnbot/internal/store"
)

// reports hands state changes to the Reporter on a goroutine of their own,
// in order and one at a time, so that a Reporter that is slow, or blocks,
// holds up later reports only, never a decision, a job or a commit. The
// goroutine lives while there is something to deliver.
type reports struct {
	ctx context.Context
	to  Reporter

	mu      sync.Mutex
	queue   []store.TargetState
	busy    bool // a goroutine delivers
	drained *sync.Cond
}

func newReports(ctx context.Context, to Reporter) *reports {
	r := &reports{ctx: ctx, to: to}
	r.drained = sync.NewCond(&r.mu)
	return r
}

// send queues states to be reported after those queued before.
func (r *reports) send(states []store.TargetState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queue = append(r.queue, states...)
	if !r.busy {
		r.busy = true
		go r.deliver()
	}
}

func (r *reports) deliver() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.queue) > 0 {
		batch := r.queue
		r.queue = nil
		r.mu.Unlock()
		for _, st := range batch {
			r.to.TargetChanged(r.ctx, st)
		}
		r.mu.Lock()
	}
	r.busy = false
	r.drained.Broadcast()
}

// wait returns once everything sent so far was reported. r may be nil.
func (r *reports) wait() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.busy {
		r.drained.Wait()
	}
}

// Reporters tells each of rs of every change, in order.
func Reporters(rs ...Reporter) Reporter { return multi(rs) }

type multi []Reporter

func (m multi) TargetChanged(ctx context.Context, st store.TargetState) {
	for _, r := range m {
		r.TargetChanged(ctx, st)
	}
}

// LogReporter logs one line per change of a target, with its reason.
func LogReporter(log *slog.Logger) Reporter { return logReporter{log} }

type logReporter struct{ log *slog.Logger }

func (l logReporter) TargetChanged(ctx context.Context, st store.TargetState) {
	attrs := []any{"target", st.Key().String(), "status", string(st.Status), "commit", st.Target.Commit}
	if st.Message != "" {
		attrs = append(attrs, "reason", st.Message)
	}
	if st.Running.RunID != "" {
		attrs = append(attrs, "run_id", st.Running.RunID)
	}
	l.log.InfoContext(ctx, "target changed", attrs...)
}
