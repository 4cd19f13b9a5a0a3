package localmode

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/reconcile"
	"github.com/pvnbot/pvnbot/internal/store"
)

// `bot approve` writes approvals straight to the state file, durably, after
// checking them against the targets stored there; the running `bot run`
// reads them at its next poll (Engine.Recheck), and a later `bot run` when
// it starts. reconcile.RecordApproval is the one place that decides what an
// approval means, for the engine and for `bot approve` alike.

// ApproveOptions is one `bot approve`.
type ApproveOptions struct {
	StatePath string
	// Repo names the repository, as RepoName does; empty: the state
	// file's only one.
	Repo    string
	Request reconcile.ApprovalRequest
}

// ApproveResult is what happened to an approval.
type ApproveResult struct {
	// Approved lists the targets approved.
	Approved []desired.Key
}

// RefusedError is an approval that was not taken, with the reason.
type RefusedError = reconcile.RefusedError

// Approve records an approval of the waiting targets of one release
// channel, as SPEC §6's `bot approve`. Unknown names and channels where
// nothing waits are refused with a *RefusedError.
func Approve(ctx context.Context, opts ApproveOptions) (ApproveResult, error) {
	db, st, err := openRepo(ctx, opts.StatePath, opts.Repo, false)
	if err != nil {
		return ApproveResult{}, err
	}
	defer db.Close()
	states, err := st.LoadTargets(ctx)
	if err != nil {
		return ApproveResult{}, db.Corrupt(err)
	}
	if err := checkNames(states, opts.Request); err != nil {
		return ApproveResult{}, err
	}
	keys, err := reconcile.RecordApproval(ctx, st, states, opts.Request, time.Now())
	return ApproveResult{Approved: keys}, err
}

// checkNames refuses an approval naming an application, channel or
// service that has no target.
func checkNames(states []store.TargetState, req reconcile.ApprovalRequest) error {
	apps, channels, services := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, st := range live(states) {
		k := st.Key()
		apps[k.Application] = true
		if k.Application == req.Application {
			channels[k.ReleaseChannel] = true
			if k.ReleaseChannel == req.ReleaseChannel {
				services[k.Service] = true
			}
		}
	}
	switch {
	case !apps[req.Application]:
		return &RefusedError{Reason: fmt.Sprintf("unknown application %q (known: %s)", req.Application, names(apps))}
	case !channels[req.ReleaseChannel]:
		return &RefusedError{Reason: fmt.Sprintf("application %s has no release channel %q (channels: %s)", req.Application, req.ReleaseChannel, names(channels))}
	}
	var unknown []string
	for _, s := range req.Services {
		if !services[s] {
			unknown = append(unknown, fmt.Sprintf("%q", s))
		}
	}
	if len(unknown) > 0 {
		return &RefusedError{Reason: fmt.Sprintf("%s/%s has no service %s (services: %s)", req.Application, req.ReleaseChannel, strings.Join(unknown, ", "), names(services))}
	}
	return nil
}

func names(set map[string]bool) string {
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(slices.Compact(out), ", ")
}
