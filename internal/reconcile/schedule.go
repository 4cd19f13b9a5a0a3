package reconcile

import (
	"container/heap"
	"time"

	"github.com/pvnbot/pvnbot/internal/store"
)

// schedule is a min-heap of targets by due time, then by when they were
// scheduled, so that equal times run in a stable order.
type schedule []*target

func (s schedule) Len() int { return len(s) }
func (s schedule) Less(i, j int) bool {
	if !s[i].due.Equal(s[j].due) {
		return s[i].due.Before(s[j].due)
	}
	return s[i].dueSeq < s[j].dueSeq
}
func (s schedule) Swap(i, j int) {
	s[i], s[j] = s[j], s[i]
	s[i].heapIndex, s[j].heapIndex = i, j
}
func (s *schedule) Push(x any) {
	t := x.(*target)
	t.heapIndex = len(*s)
	*s = append(*s, t)
}
func (s *schedule) Pop() any {
	old := *s
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*s = old[:len(old)-1]
	t.heapIndex = -1
	return t
}

// dueOf is when t next needs a step; zero: only on an event.
func dueOf(t *target) time.Time {
	if t.job != nil || t.st.Status == store.StatusDeleted {
		return time.Time{}
	}
	due := t.st.NextDue
	if info := t.st.NextInfoDue; t.st.Target.GetInfo != nil && !info.IsZero() && (due.IsZero() || info.Before(due)) {
		due = info
	}
	return due
}

// reschedule puts t in the schedule at its due time, or takes it out.
func (e *Engine) reschedule(t *target) {
	e.changed()
	due := dueOf(t)
	if due.IsZero() {
		if t.heapIndex >= 0 {
			heap.Remove(&e.sched, t.heapIndex)
		}
		return
	}
	if t.heapIndex >= 0 && t.due.Equal(due) {
		return
	}
	e.queueSeq++ // shared counter: only its order matters
	t.due, t.dueSeq = due, e.queueSeq
	if t.heapIndex >= 0 {
		heap.Fix(&e.sched, t.heapIndex)
		return
	}
	heap.Push(&e.sched, t)
}

// popDue takes the earliest target due at now, or nil.
func (e *Engine) popDue(now time.Time) *target {
	if len(e.sched) == 0 || e.sched[0].due.After(now) {
		return nil
	}
	return heap.Pop(&e.sched).(*target)
}

// nextDue is when the earliest scheduled step is due; zero: none.
func (e *Engine) nextDue() time.Time {
	if len(e.sched) == 0 {
		return time.Time{}
	}
	return e.sched[0].due
}

// runtimeQueue holds the applies of one runtime: how many run, and who
// waits for a slot, first come first served.
type runtimeQueue struct {
	active  int
	waiting []*target
}

func (e *Engine) queue(runtime string) *runtimeQueue {
	q := e.queues[runtime]
	if q == nil {
		q = &runtimeQueue{}
		e.queues[runtime] = q
	}
	return q
}

// acquire takes an apply slot of t's runtime, or queues t for one.
func (e *Engine) acquire(t *target, now time.Time) bool {
	q := e.queue(t.st.Target.Runtime)
	if t.holdsSlot {
		t.holdsSlot = false
		return true
	}
	limit := t.st.Target.Policy.MaxConcurrency
	if limit <= 0 {
		q.active++
		return true
	}
	if q.active < limit && (len(q.waiting) == 0 || q.waiting[0] == t) {
		if t.queued {
			q.waiting[0] = nil
			q.waiting = q.waiting[1:]
			t.queued = false
		}
		q.active++
		if q.active < limit && len(q.waiting) > 0 {
			e.wakeNow(q.waiting[0], now)
		}
		return true
	}
	if !t.queued {
		q.waiting = append(q.waiting, t)
		t.queued = true
		e.queueSeq++
		t.st.QueueSeq = e.queueSeq
	}
	return false
}

// release gives back an apply slot and wakes the first in line.
func (e *Engine) release(runtime string, now time.Time) {
	q := e.queue(runtime)
	q.active--
	if len(q.waiting) > 0 {
		e.wakeNow(q.waiting[0], now)
	}
}

// position is t's 1-based place in its runtime's queue.
func (e *Engine) position(t *target) int {
	for i, o := range e.queue(t.st.Target.Runtime).waiting {
		if o == t {
			return i + 1
		}
	}
	return 0
}

// dequeue takes t out of its runtime's queue (replaced, deleted, or no
// longer allowed to apply).
func (e *Engine) dequeue(t *target) {
	if !t.queued {
		return
	}
	q := e.queue(t.st.Target.Runtime)
	for i, o := range q.waiting {
		if o == t {
			q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
			break
		}
	}
	t.queued = false
	t.st.QueueSeq = 0
	if len(q.waiting) > 0 {
		e.wakeNow(q.waiting[0], e.clock.Now())
	}
}
