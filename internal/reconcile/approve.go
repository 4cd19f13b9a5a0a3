package reconcile

import (
	"context"
	"errors"
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
}

// RefusedError is an approval that was not taken; Reason is meant for the
// person who asked.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return e.Reason }

// ApprovalStore is where approvals are kept.
type ApprovalStore interface {
	AddApproval(ctx context.Context, a store.Approval) error
	Approvals(ctx context.Context, key desired.Key, digest string) ([]store.Approval, error)
}

// Approve records req.Who's approval of the current desired state of each
// waiting target it names, and returns those it approved. When nothing
// could be approved the error is a *RefusedError saying why.
func (e *Engine) Approve(ctx context.Context, req ApprovalRequest) ([]desired.Key, error) {
	defer e.flush(ctx)
	defer e.poke()
	e.mu.Lock()
	defer e.mu.Unlock()
	states := make([]store.TargetState, 0, len(e.targets))
	for _, t := range e.targets {
		states = append(states, t.st)
	}
	now := e.clock.Now()
	approved, err := RecordApproval(ctx, e.store, states, req, now)
	for _, k := range approved {
		e.wakeNow(e.targets[k], now)
	}
	return approved, err
}

// RecordApproval is Approve for a process that has the targets' states but
// no running engine (`bot approve` beside a `bot run`): it records req.Who's
// approval of the current desired state of each target of states that req
// names and that waits for one (for manual approval, or for preconditions:
// an approval may come ahead), and returns those approved. The engine that
// runs them takes the approvals at its next Recheck. When nothing could be
// approved the error is a *RefusedError saying why.
func RecordApproval(ctx context.Context, st ApprovalStore, states []store.TargetState, req ApprovalRequest, now time.Time) ([]desired.Key, error) {
	if req.Who == "" {
		return nil, &RefusedError{Reason: "an approval needs the name of who approves"}
	}
	channel := req.Application + "/" + req.ReleaseChannel
	var candidates []store.TargetState
	for _, s := range states {
		k := s.Key()
		if k.Application != req.Application || k.ReleaseChannel != req.ReleaseChannel {
			continue
		}
		if len(req.Services) > 0 && !slices.Contains(req.Services, k.Service) {
			continue
		}
		if need, _, _ := approvalRule(s.Target); !need {
			continue
		}
		if s.Status == store.StatusWaitingManualApproval || s.Status == store.StatusWaitingPreconditions {
			candidates = append(candidates, s)
		}
	}
	if len(candidates) == 0 {
		what := channel
		if len(req.Services) > 0 {
			what += " (" + strings.Join(req.Services, ", ") + ")"
		}
		return nil, &RefusedError{Reason: fmt.Sprintf("nothing in %s is waiting for approval", what)}
	}
	sort.Slice(candidates, func(i, j int) bool { return candidates[i].Target.Service < candidates[j].Target.Service })
	var approved []desired.Key
	var already []string
	var errs []error
	for _, c := range candidates {
		all, err := st.Approvals(ctx, c.Key(), c.Target.Digest)
		if err != nil {
			errs = append(errs, fmt.Errorf("read approvals of %s: %w", c.Key(), err))
			continue
		}
		if slices.Contains(countedApprovals(c.Target, all), req.Who) {
			already = append(already, c.Target.Service)
			continue
		}
		a := store.Approval{Key: c.Key(), Digest: c.Target.Digest, Commit: c.Target.Commit, Who: req.Who, At: now}
		if err := st.AddApproval(ctx, a); err != nil {
			errs = append(errs, fmt.Errorf("record approval of %s: %w", c.Key(), err))
			continue
		}
		approved = append(approved, c.Key())
	}
	if len(approved) == 0 && len(errs) == 0 {
		return nil, &RefusedError{Reason: fmt.Sprintf("%s already approved %s: %s", req.Who, channel, strings.Join(already, ", "))}
	}
	return approved, errors.Join(errs...)
}

// Recheck makes the steps of the targets named due now. With no keys it
// looks at every target waiting for manual approval or preconditions,
// reads its approvals again from the Store (another process, such as `bot
// approve`, may have added some) and makes its step due when its wait may
// be over or its reason changed; the others are left alone, so that a
// recheck of nothing new writes nothing.
func (e *Engine) Recheck(ctx context.Context, keys ...desired.Key) error {
	defer e.poke()
	e.mu.Lock()
	if len(keys) > 0 {
		now := e.clock.Now()
		for _, k := range keys {
			if t := e.targets[k]; t != nil {
				e.wakeNow(t, now)
			}
		}
		e.mu.Unlock()
		return nil
	}
	type check struct {
		t         *target
		status    Status
		tg        desired.Target
		approvals []store.Approval
	}
	var checks []check
	for _, t := range e.targets {
		if s := t.st.Status; s == store.StatusWaitingManualApproval || s == store.StatusWaitingPreconditions {
			checks = append(checks, check{t: t, status: s, tg: t.st.Target})
		}
	}
	e.mu.Unlock()

	var errs []error
	for i := range checks {
		c := &checks[i]
		if need, _, _ := approvalRule(c.tg); !need {
			continue
		}
		all, err := e.store.Approvals(ctx, c.tg.Key, c.tg.Digest)
		if err != nil {
			errs = append(errs, fmt.Errorf("read approvals of %s: %w", c.tg.Key, err))
			continue
		}
		c.approvals = all
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clock.Now()
	for _, c := range checks {
		t := c.t
		if t.st.Status != c.status || t.st.Target.Digest != c.tg.Digest {
			continue // moved on meanwhile, and looked at again then
		}
		reason := e.upstreamReason(t)
		if reason == "" {
			_, reason = approvalVerdict(t.st.Target, c.approvals)
		}
		if reason == "" || reason != t.st.Message {
			e.wakeNow(t, now)
		}
	}
	return errors.Join(errs...)
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

// countedApprovals lists the distinct people whose approval, among all of a
// desired state's, counts for tg's next apply: any, or only unused ones when
// every apply needs its own.
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

// approvers returns who approved t's next apply, or the reason it waits.
func (e *Engine) approvers(ctx context.Context, t *target) ([]string, string, error) {
	if need, _, _ := approvalRule(t.st.Target); !need {
		return nil, "", nil
	}
	all, err := e.store.Approvals(ctx, t.st.Key(), t.st.Target.Digest)
	if err != nil {
		return nil, "", fmt.Errorf("read approvals of %s: %w", t.st.Key(), err)
	}
	who, reason := approvalVerdict(t.st.Target, all)
	return who, reason, nil
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
