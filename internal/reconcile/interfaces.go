// Package reconcile is the convergence engine (SPEC §2–§3): for every target
// it runs fetch, apply and getInfo as the seed's rules say, over a Runner, a
// Store, a Reporter and a Clock it is given.
package reconcile

import (
	"context"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
)

// Status is store.Status: where a target stands.
type Status = store.Status

// Runner runs one job to completion.
type Runner interface {
	// Run runs spec and returns how it ended. An error means the job could
	// not be run or awaited; a job that exited non-zero is not an error.
	Run(ctx context.Context, spec runner.Spec) (runner.Result, error)
}

// Store keeps the engine's state durable. store.Store satisfies it.
type Store interface {
	// LoadTargets returns every saved target state.
	LoadTargets(ctx context.Context) ([]store.TargetState, error)
	// SaveTargets inserts or replaces target states and job runs (by ID)
	// in one transaction; a later state of a key or run of an ID in the
	// same call wins.
	SaveTargets(ctx context.Context, states []store.TargetState, runs []store.JobRun) error
	// AddApproval records an approval.
	AddApproval(ctx context.Context, a store.Approval) error
	// Approvals returns the approvals of one target's desired state.
	Approvals(ctx context.Context, key desired.Key, digest string) ([]store.Approval, error)
	// ConsumeApprovals marks unused approvals of a desired state as used by runID.
	ConsumeApprovals(ctx context.Context, key desired.Key, digest, runID string) error
}

// Reporter is told of target state changes, after they are durable, in the
// order they happened.
type Reporter interface {
	// TargetChanged is called with the new state of a target whose status,
	// message, desired state, last apply or getInfo outputs changed.
	TargetChanged(ctx context.Context, st store.TargetState)
}

var _ Store = (store.Store)(nil)
