package reconcile

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/store"
)

// ApprovalRequest approves the waiting targets of one release channel.
type ApprovalRequest struct {
	Application    string
	ReleaseChannel string
	// Services limits the approval to these services; empty: every target
	// of the channel that waits for approval.
	Services []string
	// Who is the approving person (already authorised by the caller).
	Who string
	// Source says where the approval was given ("comment", "button",
	// "cli"); URL links to it. Both are kept with the approval. The same
	// URL approving again (a retried webhook) is the same approval.
	Source, URL string
	// Commit, when set, is the commit whose desired state is approved
	// (the merge commit of the pull request commented on): targets whose
	// desired state another commit brought are left alone.
	Commit string
}

// RefusedError is an approval that was not taken; Reason is meant for the
// person who asked.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return e.Reason }

// ApprovalStore is where approvals are kept. store.Store satisfies it.
type ApprovalStore interface {
	Approvals(ctx context.Context, key desired.Key, digest string) ([]store.Approval, error)
	Save(ctx context.Context, b store.Batch) error
}

// Approve records req.Who's approval of the current desired state of each
// waiting target it names, and returns those it approved once the approvals
// are durable. When nothing could be approved the error is a *RefusedError
// saying why; any other error means the approvals could not be recorded.
// It decides from the engine's memory: no store I/O happens under its lock.
func (e *Engine) Approve(ctx context.Context, req ApprovalRequest) ([]desired.Key, error) {
	e.mu.Lock()
	var candidates []store.TargetState
	for _, t := range e.targets {
		if approvable(t.st, req) {
			candidates = append(candidates, t.st)
		}
	}
	plan, refused := planApproval(candidates, func(k desired.Key) []store.Approval { return e.targets[k].approvals }, req, e.clock.Now(), e.newRunID)
	if refused != nil {
		e.mu.Unlock()
		return nil, refused
	}
	now := e.clock.Now()
	keys := make([]desired.Key, len(plan))
	for i, a := range plan {
		keys[i] = a.Key
		if a.ID == "" {
			continue // recorded before
		}
		t := e.targets[a.Key]
		t.approvals = append(t.approvals, a)
		e.w.queueApproval(a)
		e.wakeNow(t, now)
	}
	e.mu.Unlock()
	e.poke()
	if err := e.flush(ctx); err != nil {
		return nil, fmt.Errorf("record approval by %s: %w", req.Who, err)
	}
	return keys, nil
}

// RecordApproval is Approve for a process that has the targets' states but
// no running engine (`bot approve` beside a `bot run`): it records, in one
// transaction, req.Who's approval of the current desired state of each
// target of states that req names and that waits for one (for manual
// approval, or for preconditions: an approval may come ahead), and returns
// those approved. The engine that runs them takes the approvals at its next
// Recheck. When nothing could be approved the error is a *RefusedError
// saying why.
func RecordApproval(ctx context.Context, st ApprovalStore, states []store.TargetState, req ApprovalRequest, now time.Time) ([]desired.Key, error) {
	var candidates []store.TargetState
	for _, s := range states {
		if approvable(s, req) {
			candidates = append(candidates, s)
		}
	}
	given := make(map[desired.Key][]store.Approval, len(candidates))
	for _, c := range candidates {
		all, err := st.Approvals(ctx, c.Key(), c.Target.Digest)
		if err != nil {
			return nil, fmt.Errorf("read approvals of %s: %w", c.Key(), err)
		}
		given[c.Key()] = ofDesiredState(c.Target, all)
	}
	plan, refused := planApproval(candidates, func(k desired.Key) []store.Approval { return given[k] }, req, now, randomID)
	if refused != nil {
		return nil, refused
	}
	keys := make([]desired.Key, len(plan))
	var fresh []store.Approval
	for i, a := range plan {
		keys[i] = a.Key
		if a.ID != "" {
			fresh = append(fresh, a)
		}
	}
	if err := st.Save(ctx, store.Batch{Approvals: fresh}); err != nil {
		return nil, fmt.Errorf("record approval by %s: %w", req.Who, err)
	}
	return keys, nil
}

// approvable reports whether req names st and st waits for an approval.
func approvable(st store.TargetState, req ApprovalRequest) bool {
	k := st.Key()
	if k.Application != req.Application || k.ReleaseChannel != req.ReleaseChannel {
		return false
	}
	if len(req.Services) > 0 && !slices.Contains(req.Services, k.Service) {
		return false
	}
	if req.Commit != "" && st.Target.Commit != req.Commit {
		return false
	}
	if need, _, _ := approvalRule(st.Target); !need {
		return false
	}
	return st.Status == store.StatusWaitingManualApproval || st.Status == store.StatusWaitingPreconditions
}

// planApproval decides what req approves among candidates (the targets it
// names that wait for an approval), given the approvals each already has:
// one new approval per target that req.Who had not approved yet (one
// without ID where req's URL approved it already), or the reason nothing is
// approved.
func planApproval(candidates []store.TargetState, approvalsOf func(desired.Key) []store.Approval, req ApprovalRequest, now time.Time, newID func() string) ([]store.Approval, *RefusedError) {
	if req.Who == "" {
		return nil, &RefusedError{Reason: "an approval needs the name of who approves"}
	}
	channel := req.Application + "/" + req.ReleaseChannel
	if len(candidates) == 0 {
		what := channel
		if len(req.Services) > 0 {
			what += " (" + strings.Join(req.Services, ", ") + ")"
		}
		return nil, &RefusedError{Reason: fmt.Sprintf("nothing in %s is waiting for approval", what)}
	}
	sort.Slice(candidates, func(i, j int) bool { return candidates[i].Target.Service < candidates[j].Target.Service })
	var plan []store.Approval
	var already []string
	for _, c := range candidates {
		given := approvalsOf(c.Key())
		if req.URL != "" && slices.ContainsFunc(given, func(a store.Approval) bool { return a.URL == req.URL && a.Who == req.Who }) {
			plan = append(plan, store.Approval{Key: c.Key()}) // recorded before: the same approval again
			continue
		}
		if slices.Contains(countedApprovals(c.Target, given), req.Who) {
			already = append(already, c.Target.Service)
			continue
		}
		plan = append(plan, store.Approval{
			ID: newID(), Key: c.Key(), Digest: c.Target.Digest, Commit: c.Target.Commit,
			Who: req.Who, At: now, Source: req.Source, URL: req.URL,
		})
	}
	if len(plan) == 0 {
		return nil, &RefusedError{Reason: fmt.Sprintf("%s already approved %s: %s", req.Who, channel, strings.Join(already, ", "))}
	}
	return plan, nil
}

// ofDesiredState keeps the approvals of tg's desired state as the commit
// tg.Commit brought it: an approval is of one desired state, and a later
// commit that renders the target the same way again (a revert) needs its
// own.
func ofDesiredState(tg desired.Target, all []store.Approval) []store.Approval {
	out := all[:0:0]
	for _, a := range all {
		if a.Digest == tg.Digest && a.Commit == tg.Commit {
			out = append(out, a)
		}
	}
	return out
}

// Recheck makes the steps of the targets named due now; a FAILED one
// starts its retryPolicy's attempts afresh, since a person asked (Re-run).
// With no keys it looks at every target waiting for manual approval or
// preconditions, reads the approvals again from the Store in one query
// (another process, such as `bot approve`, may have added some), outside
// the engine's lock, and makes its step due when its wait may be over or
// its reason changed; the others are left alone, so that a recheck of
// nothing new writes nothing.
func (e *Engine) Recheck(ctx context.Context, keys ...desired.Key) error {
	defer e.poke()
	e.mu.Lock()
	if len(keys) > 0 {
		now := e.clock.Now()
		for _, k := range keys {
			if t := e.targets[k]; t != nil {
				if t.st.Status == store.StatusFailed {
					t.st.Attempts, t.st.FetchFailures = 0, 0
				}
				e.wakeNow(t, now)
			}
		}
		e.mu.Unlock()
		return nil
	}
	type check struct {
		t      *target
		status Status
		tg     desired.Target
		stored []store.Approval
	}
	var checks []check
	gated := false
	for _, t := range e.targets {
		if s := t.st.Status; s == store.StatusWaitingManualApproval || s == store.StatusWaitingPreconditions {
			checks = append(checks, check{t: t, status: s, tg: t.st.Target})
			need, _, _ := approvalRule(t.st.Target)
			gated = gated || need
		}
	}
	e.mu.Unlock()

	var err error
	if gated {
		var all []store.Approval
		if all, err = e.store.CurrentApprovals(ctx); err != nil {
			err = fmt.Errorf("read approvals: %w", err)
		}
		byKey := map[desired.Key][]store.Approval{}
		for _, a := range all {
			byKey[a.Key] = append(byKey[a.Key], a)
		}
		for i := range checks {
			checks[i].stored = ofDesiredState(checks[i].tg, byKey[checks[i].tg.Key])
		}
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clock.Now()
	for _, c := range checks {
		t := c.t
		if t.st.Status != c.status || t.st.Target.Digest != c.tg.Digest || t.st.Target.Commit != c.tg.Commit {
			continue // moved on meanwhile, and looked at again then
		}
		t.approvals = mergeApprovals(t.approvals, c.stored)
		reason := e.upstreamReason(t)
		if reason == "" {
			_, reason = approvalVerdict(t.st.Target, t.approvals)
		}
		if reason == "" || reason != t.st.Message {
			e.wakeNow(t, now)
		}
	}
	return err
}

// mergeApprovals adds to what the engine knows the approvals the store has
// that it does not (given by another process). A consumption is never
// undone: the engine's may not be written yet.
func mergeApprovals(known, stored []store.Approval) []store.Approval {
	for _, s := range stored {
		i := slices.IndexFunc(known, func(k store.Approval) bool { return k.ID == s.ID })
		switch {
		case i < 0:
			known = append(known, s)
		case known[i].ConsumedBy == "":
			known[i].ConsumedBy = s.ConsumedBy
		}
	}
	return known
}

// approvalRule says whether t's applies need approval, by how many people,
// and whether each apply needs its own (everyAction or the runtime's
// requireApprovalBeforeApply).
func approvalRule(tg desired.Target) (need bool, minApprovers int, everyAction bool) {
	if tg.Policy.RequireApprovalBeforeApply {
		need, minApprovers, everyAction = true, 1, true
	}
	for _, p := range tg.Preconditions {
		if p.ManualApproval == nil {
			continue
		}
		need = true
		minApprovers = max(minApprovers, p.ManualApproval.MinApprovers, 1)
		everyAction = everyAction || p.ManualApproval.EveryAction
	}
	return need, minApprovers, everyAction
}

// countedApprovals lists the distinct people whose approval, among those
// of tg's desired state, counts for tg's next apply: any, or only unused
// ones when every apply needs its own.
func countedApprovals(tg desired.Target, all []store.Approval) []string {
	_, _, every := approvalRule(tg)
	var who []string
	for _, a := range all {
		if every && a.ConsumedBy != "" {
			continue
		}
		if !slices.Contains(who, a.Who) {
			who = append(who, a.Who)
		}
	}
	return who
}

// approvalVerdict returns who approved tg's next apply, given the
// approvals of its desired state, or the reason it waits.
func approvalVerdict(tg desired.Target, all []store.Approval) ([]string, string) {
	need, minApprovers, every := approvalRule(tg)
	if !need {
		return nil, ""
	}
	who := countedApprovals(tg, all)
	if len(who) >= minApprovers {
		return who, ""
	}
	reason := fmt.Sprintf("waiting for approval: %d of %d approvers", len(who), minApprovers)
	if len(who) > 0 {
		reason += " (" + strings.Join(who, ", ") + ")"
	}
	if every {
		reason += "; every apply needs its own approval"
	}
	return nil, reason
}

// consumeApprovals marks the unused approvals of t's desired state as used
// by the apply runID, in memory and in the next commit, which also records
// the run: an approval goes to exactly one apply. Called with e.mu held.
func (e *Engine) consumeApprovals(t *target, runID string) {
	for i := range t.approvals {
		if a := &t.approvals[i]; a.ConsumedBy == "" {
			a.ConsumedBy = runID
			e.w.queueApproval(*a)
		}
	}
}

// upstreamReason says which releaseChannelStable precondition does not
// hold, or "".
func (e *Engine) upstreamReason(t *target) string {
	k := t.st.Key()
	for _, p := range t.st.Target.Preconditions {
		if p.ReleaseChannelStable == "" {
			continue
		}
		up := e.targets[desired.Key{Application: k.Application, Service: k.Service, ReleaseChannel: p.ReleaseChannelStable}]
		switch {
		case up == nil || up.st.Status == store.StatusDeleted:
			return fmt.Sprintf("waiting for release channel %s: %s has no target there", p.ReleaseChannelStable, k.Service)
		case up.st.Status != store.StatusConverged:
			return fmt.Sprintf("waiting for release channel %s to converge (%s)", p.ReleaseChannelStable, up.st.Status)
		case up.st.LatestSeq < t.st.DesiredSeq:
			return fmt.Sprintf("waiting for release channel %s to converge on commit %s", p.ReleaseChannelStable, short(t.st.Target.Commit))
		}
	}
	return ""
}
