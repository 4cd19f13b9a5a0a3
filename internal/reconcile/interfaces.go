// Package reconcile is the convergence engine (SPEC §2–§3): for every target
// of one repository it runs fetch, apply and getInfo as the seed's rules
// say, over a Runner, a Store, a Reporter and a Clock it is given.
//
// One Engine serves one repository, over that repository's Store: its
// targets, runtime concurrency queues and approvals are its own, so that
// nothing done for one repository touches another (SPEC §5.1), even when
// both use the same names. A process serving many repositories runs one
// Engine for each.
//
// The engine decides under its mutex from memory; its store I/O happens
// outside it, so that a slow store or reporter holds up no decision.
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

// Store keeps one repository's engine state durable. store.Store satisfies
// it.
type Store interface {
	// LoadTargets returns every saved target state.
	LoadTargets(ctx context.Context) ([]store.TargetState, error)
	// CurrentApprovals returns the approvals of every target's current
	// desired state.
	CurrentApprovals(ctx context.Context) ([]store.Approval, error)
	// Approvals returns the approvals of one target's desired state.
	Approvals(ctx context.Context, key desired.Key, digest string) ([]store.Approval, error)
	// Save writes target states, job runs and approvals in one
	// transaction; a later record of the same key or ID in the same batch
	// wins.
	Save(ctx context.Context, b store.Batch) error
}

// Reporter is told of target state changes, after they are durable, in the
// order they happened. The engine calls it from a goroutine of its own, one
// call at a time, so that a slow Reporter holds up later reports only, never
// the engine; still, it should return soon and do slow work (GitHub calls)
// on its own goroutines, coalescing what piles up.
type Reporter interface {
	// TargetChanged is called with the new state of a target whose status,
	// message, desired state, last apply or getInfo outputs changed.
	TargetChanged(ctx context.Context, st store.TargetState)
}

var _ Store = (store.Store)(nil)
