package reconcile

import (
	"fmt"
	"slices"
	"time"

	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
)

// job is a run handed to the Runner.
type job struct {
	target  *target
	run     store.JobRun
	spec    runner.Spec
	applyID string
	runtime string
}

// decide takes the step of t that is due at now. It changes and saves t's
// state, and returns the job to run, if any. It works from memory alone.
// Called with e.mu held.
func (e *Engine) decide(t *target, now time.Time) *job {
	st := &t.st
	if st.Status == store.StatusDeleted || t.job != nil {
		return nil
	}
	if st.NextDue.IsZero() || st.NextDue.After(now) {
		if st.Target.GetInfo != nil && !st.NextInfoDue.IsZero() && !st.NextInfoDue.After(now) {
			return e.start(t, runner.ActionGetInfo, now)
		}
		e.reschedule(t)
		return nil
	}
	st.NextDue = time.Time{}
	hasFetch := st.Target.Fetch != nil
	switch st.Status {
	case store.StatusApplying:
		return e.resumeApply(t, now)
	case store.StatusPending:
		switch {
		case hasFetch:
			e.setStatus(t, store.StatusFetching, "", now)
			return e.start(t, runner.ActionFetch, now)
		case st.AppliedDigest == st.Target.Digest:
			e.converged(t, "this desired state was applied already", now)
			return nil
		case st.Target.ApplyID != "" && st.Target.ApplyID == st.LastAppliedID:
			e.converged(t, fmt.Sprintf("applyId %q is the last applied: apply not needed", st.Target.ApplyID), now)
			return nil
		}
		return e.gate(t, "new desired state", now)
	case store.StatusConverged:
		if hasFetch {
			return e.start(t, runner.ActionFetch, now)
		}
		e.save(t)
		return nil
	case store.StatusFetching, store.StatusConverging, store.StatusFailed:
		if hasFetch {
			return e.start(t, runner.ActionFetch, now)
		}
		if st.Status == store.StatusFailed && exhausted(st) {
			e.save(t)
			return nil
		}
		return e.gate(t, "apply again", now)
	}
	return e.gate(t, "", now)
}

func exhausted(st *store.TargetState) bool {
	maxAttempts := st.Target.Policy.Retry.MaxAttempts
	return maxAttempts > 0 && st.Attempts >= maxAttempts
}

// converged marks t CONVERGED and schedules its steady-state fetch.
func (e *Engine) converged(t *target, msg string, now time.Time) {
	st := &t.st
	st.FetchFailures, st.Attempts, st.Reapplies = 0, 0, 0
	st.ApplyStartedAt = time.Time{}
	st.NextDue = time.Time{}
	if st.Target.Fetch != nil {
		st.NextDue = now.Add(jitter(st.Key().String(), now, steadyInterval(st.Target.Policy)))
	}
	e.setStatus(t, store.StatusConverged, msg, now)
	e.dequeue(t)
	e.wakeDownstream(t, now)
	e.reschedule(t)
	e.save(t)
}

// gate lets an apply start when the preconditions, approvals and the
// runtime's concurrency allow it; otherwise t waits in the matching status.
// why says what led to the apply; it becomes the run's note.
func (e *Engine) gate(t *target, why string, now time.Time) *job {
	wait := func(s Status, msg string) *job {
		if s != store.StatusWaitingConcurrency {
			e.dequeue(t)
		}
		e.setStatus(t, s, msg, now)
		t.st.NextDue = time.Time{}
		e.reschedule(t)
		e.save(t)
		return nil
	}
	if reason := e.upstreamReason(t); reason != "" {
		return wait(store.StatusWaitingPreconditions, reason)
	}
	approvers, reason := approvalVerdict(t.st.Target, t.approvals)
	if reason != "" {
		return wait(store.StatusWaitingManualApproval, reason)
	}
	if !e.acquire(t, now) {
		return wait(store.StatusWaitingConcurrency, fmt.Sprintf("waiting for an apply slot of runtime %s (maxConcurrency %d), position %d",
			t.st.Target.Runtime, t.st.Target.Policy.MaxConcurrency, e.position(t)))
	}
	return e.startApply(t, approvers, why, "", now)
}

// startApply queues the records of the target as APPLYING, with the run in
// flight (what a restart needs to resolve it), and of the approvals it uses
// up; the caller makes them durable (flush), in one commit, before the job
// starts. The run's own record is written when it ends. runID is reused
// when resuming after a restart.
func (e *Engine) startApply(t *target, approvers []string, note, runID string, now time.Time) *job {
	st := &t.st
	if runID == "" {
		runID = e.newRunID()
	}
	j := e.newJob(t, runner.ActionApply, runID, now)
	j.run.ApprovedBy, j.run.Note = approvers, note
	if needsApproval, _, every := approvalRule(st.Target); needsApproval && every {
		e.consumeApprovals(t, runID)
	}
	st.Running = store.RunRef{
		RunID: runID, Action: runner.ActionApply, Commit: st.Target.Commit, Digest: st.Target.Digest, Started: now,
		ApprovedBy: approvers, Note: note,
	}
	st.ApplyStartedAt = now
	st.AppliedDigest = "" // what is out there is no longer known to be any desired state
	st.QueueSeq = 0
	e.setStatus(t, store.StatusApplying, note, now)
	t.job = j
	e.reschedule(t)
	e.save(t)
	return j
}

// resumeApply resolves an apply a restart found recorded as started but
// not finished: fetch decides when there is one; otherwise the apply runs
// again under the same run ID (a backend may find the job still running).
func (e *Engine) resumeApply(t *target, now time.Time) *job {
	st := &t.st
	if st.Running.RunID == "" {
		return e.gate(t, "apply again", now)
	}
	if st.Target.Fetch != nil {
		// An apply that never reported is not one that ran and did not
		// converge: no grace period for it.
		e.lostRun(t, "result not recorded (bot restarted): fetch decides")
		st.Running = store.RunRef{}
		st.ApplyStartedAt = time.Time{}
		t.lostApply = true
		e.setStatus(t, store.StatusConverging, "restarted during apply: fetch decides", now)
		return e.start(t, runner.ActionFetch, now)
	}
	if !t.holdsSlot {
		e.queue(st.Target.Runtime).active++
	}
	t.holdsSlot = false
	return e.startApply(t, nil, "re-run: previous apply's result was not recorded", st.Running.RunID, now)
}

// start returns the job of a fetch or getInfo run, whose record is written
// when it ends: one interrupted by a crash is simply run again. A visible
// change of the target is made durable (flush) before the job starts.
func (e *Engine) start(t *target, a runner.Action, now time.Time) *job {
	j := e.newJob(t, a, e.newRunID(), now)
	if visibleOf(t.st) != t.reported {
		e.save(t)
	}
	t.job = j
	e.reschedule(t)
	return j
}

func (e *Engine) newJob(t *target, a runner.Action, runID string, now time.Time) *job {
	tg := t.st.Target
	spec := specFor(tg, a)
	spec.RunID = runID
	return &job{
		target: t, spec: spec, applyID: tg.ApplyID, runtime: tg.Runtime,
		run: store.JobRun{
			ID: runID, Key: tg.Key, Action: a, Commit: tg.Commit, Digest: tg.Digest,
			DesiredVersion: tg.DesiredVersion, Started: now,
		},
	}
}

// finish takes the result of j: it queues the target's state, then the
// run's record. It returns a follow-up job (an apply after fetch found
// drift), to start once they are durable (flush). Called with e.mu held.
func (e *Engine) finish(j *job, res runner.Result, runErr error) *job {
	t := j.target
	st := &t.st
	now := e.clock.Now()
	t.job = nil
	// What is parsed is read from the output as printed, then redacted
	// once decoded; everything else from the redacted output.
	red := runner.NewRedactor(j.spec.Env)
	printed := res
	res, runErr = red.Result(res, runErr)
	out := store.Outcome{RunID: j.run.ID, Commit: j.run.Commit, Started: j.run.Started, Finished: now, ExitCode: res.ExitCode}
	switch {
	case runErr != nil:
		out.ExitCode, out.Error = -1, runErr.Error()
	case res.ExecError != "":
		out.Error = res.ExecError
	}
	ran := out.Error == ""
	j.run.Finished, j.run.ExitCode, j.run.Error = now, out.ExitCode, out.Error
	j.run.OutputTail = tail(res.Stdout, res.Stderr)

	current := st.Status != store.StatusDeleted && st.Target.Digest == j.run.Digest
	if !current {
		j.run.Note = joinNote(j.run.Note, fmt.Sprintf("desired state %s while running", map[bool]string{true: "deleted", false: "replaced"}[st.Status == store.StatusDeleted]))
	}
	var next *job
	switch j.run.Action {
	case runner.ActionApply:
		e.release(j.runtime, now)
		st.Running = store.RunRef{}
		st.LastApply = out
		ok := ran && out.ExitCode == 0
		if ok {
			st.LastAppliedID = j.applyID
		}
		if st.Target.GetInfo != nil && st.Status != store.StatusDeleted {
			st.NextInfoDue = now
		}
		if current {
			e.applied(t, j, ok, ran, now)
		}
	case runner.ActionFetch:
		st.LastFetch = out
		if current {
			next = e.fetched(t, printed, red, out, now)
		}
	case runner.ActionGetInfo:
		st.LastGetInfo = out
		failed := true
		if outputs, perr := parseInfo(printed.Stdout); ran && out.ExitCode == 0 && perr == nil {
			for i := range outputs {
				outputs[i].Name, outputs[i].Text = red.String(outputs[i].Name), red.String(outputs[i].Text)
			}
			st.Info, st.InfoAt = outputs, now
			failed = false
		} else if ran && out.ExitCode == 0 {
			j.run.Error = red.String(perr.Error())
			st.LastGetInfo.Error = j.run.Error
		}
		if st.Status != store.StatusDeleted {
			st.NextInfoDue = now.Add(t.nextInfo(failed))
		}
	}
	e.reschedule(t)
	e.save(t)
	e.w.queueRun(j.run)
	return next
}

// applied moves t on after its apply ended (SPEC §3.5).
func (e *Engine) applied(t *target, j *job, ok, ran bool, now time.Time) {
	st := &t.st
	p := st.Target.Policy
	hasFetch := st.Target.Fetch != nil
	retryable := ran && slices.Contains(p.RetryableExitCodes, st.LastApply.ExitCode)
	switch {
	case ok:
		st.Attempts = 0
		st.AppliedDigest = st.Target.Digest
		if !hasFetch {
			st.ApplyStartedAt = time.Time{}
			e.setStatus(t, store.StatusConverged, "", now)
			e.wakeDownstream(t, now)
			return
		}
		e.setStatus(t, store.StatusConverging, "applied: waiting for fetch to report no drift", now)
		st.NextDue = now.Add(pollInterval(p))
	case retryable:
		e.setStatus(t, store.StatusConverging, fmt.Sprintf("apply exited %d: trying again", st.LastApply.ExitCode), now)
		st.NextDue = now.Add(pollInterval(p))
	default:
		st.Attempts++
		st.ApplyStartedAt = time.Time{}
		msg := "apply failed: " + describe(st.LastApply, j.run.OutputTail)
		if exhausted(st) {
			msg += fmt.Sprintf("; gave up after %d attempts", st.Attempts)
			st.NextDue = time.Time{}
		} else {
			st.NextDue = now.Add(backoff(st.Key().String(), retryBase(p), retryMax(p), st.Attempts))
		}
		e.setStatus(t, store.StatusFailed, msg, now)
	}
}

// fetched moves t on after fetch ended (SPEC §3.1, §3.5–§3.7). res is the
// output as printed: what fetch says of it is redacted with red.
func (e *Engine) fetched(t *target, res runner.Result, red *runner.Redactor, out store.Outcome, now time.Time) *job {
	st := &t.st
	p := st.Target.Policy
	v, msg := fetchVerdict(p.FetchMode, st.Target.DesiredVersion, res, out)
	msg = red.String(msg)
	if v != verdictError {
		defer func() { t.lostApply = false }()
	}
	switch v {
	case verdictError:
		st.FetchFailures++
		msg = "fetch failed: " + msg
		if n := p.FetchRetry.MaxAttempts; n > 0 && st.FetchFailures >= n {
			msg += fmt.Sprintf("; gave up after %d attempts", st.FetchFailures)
			st.NextDue = time.Time{}
		} else {
			st.NextDue = now.Add(backoff(st.Key().String(), fetchRetryBase(p), fetchRetryMax(p), st.FetchFailures))
		}
		e.setStatus(t, store.StatusFailed, msg, now)
		return nil
	case verdictConverged:
		e.converged(t, "", now)
		return nil
	}
	st.FetchFailures = 0
	why := "fetch reports drift"
	if msg != "" {
		why += ": " + msg
	}
	if t.lostApply {
		why += " after an apply whose result was not recorded (bot restarted): apply again"
	}
	if !st.ApplyStartedAt.IsZero() {
		grace := graceperiod(p)
		next := st.ApplyStartedAt.Add(reapplyWait(grace, st.Reapplies))
		if now.Before(next) {
			msg := fmt.Sprintf("applied: fetch still reports drift (grace period until %s)", next.UTC().Format(time.RFC3339))
			if st.Reapplies > 0 {
				msg = fmt.Sprintf("still drifting after %d applies; next apply at %s", st.Reapplies+1, next.UTC().Format(time.RFC3339))
			}
			e.setStatus(t, store.StatusConverging, msg, now)
			st.NextDue = now.Add(pollInterval(p))
			return nil
		}
		why = fmt.Sprintf("convergence grace period of %s exceeded: apply again", grace)
		if st.Reapplies > 0 {
			why = fmt.Sprintf("still drifting after %d applies: apply again", st.Reapplies+1)
		}
		st.Reapplies++
	}
	return e.gate(t, why, now)
}

// maxReapplyWait caps the backoff of re-applies.
const maxReapplyWait = 24 * time.Hour

// reapplyWait is how long after an apply started fetch may report drift
// before the apply runs again: the grace period, then after each re-apply
// twice as long (grace·2ⁿ after the n-th), up to maxReapplyWait, so that
// drift nothing fixes is retried ever more rarely, not every grace period.
func reapplyWait(grace time.Duration, reapplies int) time.Duration {
	d := grace
	for range reapplies {
		if d >= maxReapplyWait {
			break
		}
		d *= 2
	}
	return min(d, maxReapplyWait)
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
