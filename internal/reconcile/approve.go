package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

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

// Approve records req.Who's approval of the current desired state of each
// waiting target it names, and returns those it approved. When nothing
// could be approved the error is a *RefusedError saying why.
func (e *Engine) Approve(ctx context.Context, req ApprovalRequest) ([]desired.Key, error) {
	if req.Who == "" {
		return nil, &RefusedError{Reason: "an approval needs the name of who approves"}
	}
	defer e.flush(ctx)
	defer e.poke()
	e.mu.Lock()
	defer e.mu.Unlock()
	channel := req.Application + "/" + req.ReleaseChannel
	var candidates []*target
	for _, t := range e.targets {
		k := t.st.Key()
		if k.Application != req.Application || k.ReleaseChannel != req.ReleaseChannel {
			continue
		}
		if len(req.Services) > 0 && !slices.Contains(req.Services, k.Service) {
			continue
		}
		if need, _, _ := approvalRule(t.st.Target); !need {
			continue
		}
		if s := t.st.Status; s == store.StatusWaitingManualApproval || s == store.StatusWaitingPreconditions {
			candidates = append(candidates, t)
		}
	}
	if len(candidates) == 0 {
		what := channel
		if len(req.Services) > 0 {
			what += " (" + strings.Join(req.Services, ", ") + ")"
		}
		return nil, &RefusedError{Reason: fmt.Sprintf("nothing in %s is waiting for approval", what)}
	}
	sort.Slice(candidates, func(i, j int) bool { return candidates[i].st.Target.Service < candidates[j].st.Target.Service })
	now := e.clock.Now()
	var approved []desired.Key
	var already []string
	var errs []error
	for _, t := range candidates {
		counted, err := e.countedApprovals(ctx, t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if slices.Contains(counted, req.Who) {
			already = append(already, t.st.Target.Service)
			continue
		}
		a := store.Approval{Key: t.st.Key(), Digest: t.st.Target.Digest, Commit: t.st.Target.Commit, Who: req.Who, At: now}
		if err := e.store.AddApproval(ctx, a); err != nil {
			errs = append(errs, fmt.Errorf("record approval of %s: %w", t.st.Key(), err))
			continue
		}
		approved = append(approved, t.st.Key())
		e.wakeNow(t, now)
	}
	if len(approved) == 0 && len(errs) == 0 {
		return nil, &RefusedError{Reason: fmt.Sprintf("%s already approved %s: %s", req.Who, channel, strings.Join(already, ", "))}
	}
	return approved, errors.Join(errs...)
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

// countedApprovals lists the distinct people whose approval counts for t's
// next apply: any approval of this desired state, or only unused ones when
// every apply needs its own.
func (e *Engine) countedApprovals(ctx context.Context, t *target) ([]string, error) {
	_, _, every := approvalRule(t.st.Target)
	all, err := e.store.Approvals(ctx, t.st.Key(), t.st.Target.Digest)
	if err != nil {
		return nil, fmt.Errorf("read approvals of %s: %w", t.st.Key(), err)
	}
	var who []string
	for _, a := range all {
		if every && a.ConsumedBy != "" {
			continue
		}
		if !slices.Contains(who, a.Who) {
			who = append(who, a.Who)
		}
	}
	return who, nil
}

// approvers returns who approved t's next apply, or the reason it waits.
func (e *Engine) approvers(ctx context.Context, t *target) ([]string, string, error) {
	need, minApprovers, every := approvalRule(t.st.Target)
	if !need {
		return nil, "", nil
	}
	who, err := e.countedApprovals(ctx, t)
	if err != nil {
		return nil, "", err
	}
	if len(who) >= minApprovers {
		return who, "", nil
	}
	reason := fmt.Sprintf("waiting for approval: %d of %d approvers", len(who), minApprovers)
	if len(who) > 0 {
		reason += " (" + strings.Join(who, ", ") + ")"
	}
	if every {
		reason += "; every apply needs its own approval"
	}
	return nil, reason, nil
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
