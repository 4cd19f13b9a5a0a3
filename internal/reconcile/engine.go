package reconcile

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/pvnbot/pvnbot/internal/clock"
	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
)

// errorRetry is how long a target waits after the store failed it.
const errorRetry = 10 * time.Second

// Options wires an Engine.
type Options struct {
	Runner   Runner
	Store    Store
	Reporter Reporter    // optional
	Clock    clock.Clock // default: the wall clock
	Logger   *slog.Logger
	// MaxParallelJobs bounds the jobs Run keeps in flight; default 16.
	MaxParallelJobs int
	// NewRunID makes job run IDs; default: 20 random hex digits.
	NewRunID func() string
	// CheckAllOnStart makes the step of every live target due when the
	// engine starts: a converged target with fetch fetches again, so that
	// drift made while the bot was down is found at once rather than at the
	// next steady-state poll.
	CheckAllOnStart bool
}

// Engine converges every target of one repository's desired set. Its
// methods are safe for concurrent use, except that Run and Settle must not
// run at the same time.
type Engine struct {
	runner   Runner
	store    Store
	reports  *reports // nil without a Reporter
	clock    clock.Clock
	log      *slog.Logger
	maxJobs  int
	newRunID func() string

	mu        sync.Mutex
	targets   map[desired.Key]*target
	byService map[[2]string][]*target
	queues    map[string]*runtimeQueue
	sched     schedule
	seq       int64            // last ingest sequence
	commitSeq map[string]int64 // ingest sequence by commit
	queueSeq  int64
	running   int // jobs in flight under Run
	outbox    []store.TargetState
	// activity is closed, and replaced, at the next change of what the
	// engine does: see Idle.
	activity chan struct{}

	w       *writes
	flushMu sync.Mutex
	wake    chan struct{}
	// storeErr is the failure of the last commit to the store, nil once
	// one succeeds: see StoreErr.
	storeErr error
}

type target struct {
	st  store.TargetState
	job *job // in flight

	heapIndex int
	due       time.Time
	dueSeq    int64

	queued    bool // in its runtime's concurrency queue
	holdsSlot bool // an apply to resume after a restart already holds a slot
	lostApply bool // fetch decides about an apply whose result a restart lost
	reported  visible
	// infoFailures counts the getInfo runs failed in a row (not kept
	// across restarts), for getInfo's retryPolicy.
	infoFailures int

	// approvals are those of the current desired state, as the commit
	// that brought it: the engine's decisions read them from here, not
	// from the store.
	approvals []store.Approval
}

// visible is what a Reporter is told about when it changes.
type visible struct {
	status     Status
	message    string
	digest     string
	lastApply  string
	applyEnded time.Time
	fetchExit  int
	infoAt     time.Time
}

func visibleOf(st store.TargetState) visible {
	return visible{
		status: st.Status, message: st.Message, digest: st.Target.Digest,
		lastApply: st.LastApply.RunID, applyEnded: st.LastApply.Finished,
		fetchExit: st.LastFetch.ExitCode, infoAt: st.InfoAt,
	}
}

// New returns an Engine resuming from the targets saved in opts.Store.
func New(ctx context.Context, opts Options) (*Engine, error) {
	if opts.Runner == nil || opts.Store == nil {
		return nil, errors.New("reconcile: Runner and Store are required")
	}
	e := &Engine{
		runner: opts.Runner, store: opts.Store,
		clock: opts.Clock, log: opts.Logger, maxJobs: opts.MaxParallelJobs, newRunID: opts.NewRunID,
		targets: map[desired.Key]*target{}, byService: map[[2]string][]*target{},
		queues: map[string]*runtimeQueue{}, commitSeq: map[string]int64{},
		w: newWrites(), wake: make(chan struct{}, 1),
	}
	if e.clock == nil {
		e.clock = clock.Real{}
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.maxJobs <= 0 {
		e.maxJobs = 16
	}
	if e.newRunID == nil {
		e.newRunID = randomID
	}
	if opts.Reporter != nil {
		e.reports = newReports(context.WithoutCancel(ctx), opts.Reporter)
	}
	if err := e.load(ctx, opts.CheckAllOnStart); err != nil {
		return nil, err
	}
	if err := e.flush(ctx); err != nil {
		return nil, fmt.Errorf("record job runs a restart found lost: %w", err)
	}
	return e, nil
}

// randomID makes a run ID: unique, and increasing with time.
func randomID() string {
	var b [12]byte
	// 48 bits of milliseconds first, so that IDs sort by creation time and
	// the audit log's index grows at its end; then 48 random bits.
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}

// load rebuilds the engine from the store, resolving what a restart
// interrupted: applies in flight are resumed by the next step, a first
// fetch cut short runs again. With checkAll every live target that has a
// step to take takes it now.
func (e *Engine) load(ctx context.Context, checkAll bool) error {
	states, err := e.store.LoadTargets(ctx)
	if err != nil {
		return fmt.Errorf("load target states: %w", err)
	}
	approvals, err := e.store.CurrentApprovals(ctx)
	if err != nil {
		return fmt.Errorf("load approvals: %w", err)
	}
	sort.Slice(states, func(i, j int) bool { return keyLess(states[i].Key(), states[j].Key()) })
	now := e.clock.Now()
	var waiting []*target
	for _, st := range states {
		t := &target{st: st, heapIndex: -1, reported: visibleOf(st)}
		e.add(t)
		e.seq = max(e.seq, st.LatestSeq)
		e.queueSeq = max(e.queueSeq, st.QueueSeq)
		if seq, ok := e.commitSeq[st.Target.Commit]; !ok || st.DesiredSeq < seq {
			e.commitSeq[st.Target.Commit] = st.DesiredSeq
		}
		if st.Status == store.StatusDeleted {
			continue
		}
		if st.Running.RunID != "" && (st.Status != store.StatusApplying || st.Running.Digest != st.Target.Digest) {
			e.lostRun(t, "result not recorded (bot restarted) and the desired state changed since")
			t.st.Running = store.RunRef{}
		}
		switch {
		case st.Status == store.StatusApplying:
			if st.Target.Fetch == nil && st.Running.RunID != "" {
				e.queue(st.Target.Runtime).active++
				t.holdsSlot = true
			}
			t.st.NextDue = now
		case st.Status.IsWaiting():
			t.st.NextDue = now
			if st.Status == store.StatusWaitingConcurrency {
				waiting = append(waiting, t)
			}
		case st.Status == store.StatusPending, st.Status == store.StatusFetching && st.NextDue.IsZero():
			t.st.NextDue = now // the first fetch was cut short, or never started
		case checkAll && (st.Target.Fetch != nil || !st.NextDue.IsZero()) && (st.NextDue.IsZero() || st.NextDue.After(now)):
			t.st.NextDue = now
		}
		e.reschedule(t)
	}
	for _, a := range approvals {
		if t := e.targets[a.Key]; t != nil {
			t.approvals = append(t.approvals, a)
		}
	}
	sort.SliceStable(waiting, func(i, j int) bool { return waiting[i].st.QueueSeq < waiting[j].st.QueueSeq })
	for _, t := range waiting {
		q := e.queue(t.st.Target.Runtime)
		q.waiting = append(q.waiting, t)
		t.queued = true
	}
	return nil
}

func (e *Engine) add(t *target) {
	e.targets[t.st.Key()] = t
	sk := [2]string{t.st.Target.Application, t.st.Target.Service}
	e.byService[sk] = append(e.byService[sk], t)
}

// SetDesired takes the full desired set at commit: new targets start,
// changed ones replace their old desired state (a running job is let
// finish), unchanged ones are left alone and targets missing from the set
// become DELETED.
func (e *Engine) SetDesired(ctx context.Context, commit string, targets []desired.Target) error {
	seen := make(map[desired.Key]bool, len(targets))
	for _, tg := range targets {
		if seen[tg.Key] {
			return fmt.Errorf("set desired state at %s: target %s appears twice", commit, tg.Key)
		}
		seen[tg.Key] = true
	}
	defer e.poke()
	e.mu.Lock()
	seq, ok := e.commitSeq[commit]
	if !ok {
		e.seq++
		seq = e.seq
		e.commitSeq[commit] = seq
	}
	now := e.clock.Now()
	for _, tg := range targets {
		e.setTarget(tg, seq, now)
	}
	keys := make([]desired.Key, 0, len(e.targets))
	for key := range e.targets {
		keys = append(keys, key)
	}
	sort.Slice(keys, func(i, j int) bool { return keyLess(keys[i], keys[j]) })
	for _, key := range keys {
		if t := e.targets[key]; !seen[key] && t.st.Status != store.StatusDeleted {
			e.delete(t, fmt.Sprintf("service removed at commit %s", short(commit)), now)
		}
	}
	e.mu.Unlock()
	if err := e.flush(ctx); err != nil {
		return fmt.Errorf("set desired state at %s: %w", short(commit), err)
	}
	return nil
}

// DeleteAll ends every target as DELETED, saying why (the repository was
// removed from the App): nothing more is run for them, and a running job is
// let finish.
func (e *Engine) DeleteAll(ctx context.Context, reason string) error {
	defer e.poke()
	e.mu.Lock()
	now := e.clock.Now()
	for _, t := range e.targets {
		if t.st.Status != store.StatusDeleted {
			e.delete(t, reason, now)
		}
	}
	e.mu.Unlock()
	return e.flush(ctx)
}

// delete ends t as DELETED. Called with e.mu held.
func (e *Engine) delete(t *target, msg string, now time.Time) {
	e.dequeue(t)
	e.setStatus(t, store.StatusDeleted, msg, now)
	t.st.NextDue, t.st.NextInfoDue = time.Time{}, time.Time{}
	e.reschedule(t)
	e.save(t)
}

func (e *Engine) setTarget(tg desired.Target, seq int64, now time.Time) {
	t := e.targets[tg.Key]
	switch {
	case t == nil:
		t = &target{heapIndex: -1, st: store.TargetState{Target: tg}}
		e.add(t)
	case t.st.Status != store.StatusDeleted && t.st.Target.Digest == tg.Digest:
		if seq <= t.st.LatestSeq {
			return
		}
		t.st.LatestSeq = seq
		e.wakeDownstream(t, now)
		e.save(t)
		return
	default:
		if t.st.Status != store.StatusDeleted {
			t.st.Replaced = store.ReplacedState{Commit: t.st.Target.Commit, Digest: t.st.Target.Digest, Status: t.st.Status, At: now}
		}
		e.dequeue(t)
		t.st.Target = tg
		t.lostApply = false
		t.approvals = nil // they were of another desired state
	}
	t.st.DesiredSeq, t.st.LatestSeq = seq, seq
	t.st.ApplyStartedAt = time.Time{}
	t.st.Attempts, t.st.FetchFailures, t.st.QueueSeq, t.st.Reapplies = 0, 0, 0, 0
	msg := ""
	if t.st.Replaced.Digest != "" && t.st.Replaced.At.Equal(now) {
		msg = fmt.Sprintf("replaces the desired state of commit %s (%s)", short(t.st.Replaced.Commit), t.st.Replaced.Status)
	}
	if t.job != nil {
		msg += fmt.Sprintf("; waiting for the running %s to finish", t.job.run.Action)
	}
	e.setStatus(t, store.StatusPending, msg, now)
	t.st.NextDue = now
	t.st.NextInfoDue = time.Time{}
	if tg.GetInfo != nil {
		t.st.NextInfoDue = now
	}
	e.reschedule(t)
	e.save(t)
}

func (e *Engine) setStatus(t *target, s Status, msg string, now time.Time) {
	if t.st.Status != s || t.st.Message != msg {
		t.st.UpdatedAt = now
	}
	t.st.Status, t.st.Message = s, msg
}

// save queues t's state to be made durable, and a report of it if it
// visibly changed: both happen at the next flush.
func (e *Engine) save(t *target) {
	v := visibleOf(t.st)
	report := e.reports != nil && v != t.reported
	t.reported = v
	e.w.queueState(t.st, report)
	if report {
		e.outbox = append(e.outbox, t.st)
	}
}

// flush makes every write queued so far durable, then hands the Reporter
// the changes queued so far, in order. When the writes cannot be committed
// nobody is told: the reports wait for the next flush.
func (e *Engine) flush(ctx context.Context) error {
	e.flushMu.Lock()
	defer e.flushMu.Unlock()
	e.mu.Lock()
	out := e.outbox
	e.outbox = nil
	e.mu.Unlock()
	if err := e.w.sync(ctx, e.store, e.w.last()); err != nil {
		e.mu.Lock()
		e.outbox = append(out, e.outbox...)
		if e.storeErr == nil {
			e.changed() // Idle's callers look at StoreErr
		}
		e.storeErr = err
		e.mu.Unlock()
		return err
	}
	e.mu.Lock()
	e.storeErr = nil
	e.mu.Unlock()
	if len(out) > 0 {
		e.reports.send(out)
	}
	return nil
}

// Flush makes every state change so far durable. While it fails, nobody is
// told of the changes it holds: they are not facts until they are
// recorded.
func (e *Engine) Flush(ctx context.Context) error { return e.flush(ctx) }

// StoreErr is why the last commit to the store failed (a full disk, an I/O
// error), nil when it succeeded. The engine tries again at its next step
// and at Flush.
func (e *Engine) StoreErr() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.storeErr
}

// Unsaved describes the state changes and job runs not yet durable, one
// line each: what a failing store could not record.
func (e *Engine) Unsaved() []string {
	states, runs := e.w.pending()
	out := make([]string, 0, len(states)+len(runs))
	for _, st := range states {
		out = append(out, fmt.Sprintf("%s: %s", st.Key(), st.Status))
	}
	for _, r := range runs {
		what := fmt.Sprintf("%s of %s at %s", r.Action, r.Key, short(r.Commit))
		switch {
		case r.Finished.IsZero():
			what += ": started"
		case r.Error != "":
			what += ": ended with an error"
		default:
			what += fmt.Sprintf(": ended, exit code %d", r.ExitCode)
		}
		out = append(out, what)
	}
	return out
}

// Idle reports whether no job runs and no step is due now. The channel is
// closed at the next change that may end or start idleness (a job starts or
// ends, a step is taken, the desired set changes, a recheck): wait on it,
// then ask again. A caller that also reads Snapshot can tell that nothing
// happened in between when the channel is still open afterwards.
func (e *Engine) Idle() (bool, <-chan struct{}) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.activity == nil {
		e.activity = make(chan struct{})
	}
	next := e.nextDue()
	idle := e.running == 0 && (next.IsZero() || next.After(e.clock.Now()))
	return idle, e.activity
}

// changed tells Idle's waiters that something happened. Called with e.mu held.
func (e *Engine) changed() {
	if e.activity != nil {
		close(e.activity)
		e.activity = nil
	}
}

// poke wakes Run to look at the schedule again.
func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// wakeNow makes a waiting target's step due now. A target running a job
// (getInfo runs while it waits) takes the step once that job is done.
func (e *Engine) wakeNow(t *target, now time.Time) {
	if t.st.Status == store.StatusDeleted {
		return
	}
	if t.st.NextDue.IsZero() || t.st.NextDue.After(now) {
		t.st.NextDue = now
	}
	e.reschedule(t)
}

// wakeDownstream wakes the targets of the same service waiting on a
// releaseChannelStable precondition.
func (e *Engine) wakeDownstream(t *target, now time.Time) {
	for _, o := range e.byService[[2]string{t.st.Target.Application, t.st.Target.Service}] {
		if o != t && o.st.Status == store.StatusWaitingPreconditions {
			e.wakeNow(o, now)
		}
	}
}

// Snapshot returns every target's state, sorted by key.
func (e *Engine) Snapshot() []store.TargetState {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]store.TargetState, 0, len(e.targets))
	for _, t := range e.targets {
		out = append(out, t.st)
	}
	sort.Slice(out, func(i, j int) bool { return keyLess(out[i].Key(), out[j].Key()) })
	return out
}

// Target returns one target's state.
func (e *Engine) Target(key desired.Key) (store.TargetState, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.targets[key]
	if !ok {
		return store.TargetState{}, false
	}
	return t.st, true
}

// lostRun queues the record that a job run's result is lost.
func (e *Engine) lostRun(t *target, note string) {
	r := t.st.Running
	e.w.queueRun(store.JobRun{
		ID: r.RunID, Key: t.st.Key(), Action: r.Action, Commit: cmp.Or(r.Commit, t.st.Target.Commit),
		Digest: r.Digest, Started: r.Started, ExitCode: -1, ApprovedBy: r.ApprovedBy, Note: joinNote(r.Note, note),
	})
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

func specFor(tg desired.Target, a runner.Action) runner.Spec {
	switch a {
	case runner.ActionFetch:
		return *tg.Fetch
	case runner.ActionGetInfo:
		return *tg.GetInfo
	}
	return tg.Apply
}

func keyLess(a, b desired.Key) bool {
	if a.Application != b.Application {
		return a.Application < b.Application
	}
	if a.Service != b.Service {
		return a.Service < b.Service
	}
	return a.ReleaseChannel < b.ReleaseChannel
}
