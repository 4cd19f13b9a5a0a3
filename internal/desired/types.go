// Package desired turns the validated configs at a commit into targets: one
// per (application, service, release channel), with the runtime connection
// resolved, the parameter values worked out and the apply / fetch / getInfo
// jobs rendered. It is pure: no I/O, no clock.
package desired

import (
	"slices"
	"time"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/runner"
)

// Key names a target.
type Key struct {
	Application    string
	Service        string
	ReleaseChannel string
}

// String is "application/service/channel".
func (k Key) String() string {
	return k.Application + "/" + k.Service + "/" + k.ReleaseChannel
}

// Target is the desired state of one (application, service, release channel)
// at one commit.
type Target struct {
	Key
	Runtime    string // the custom runtime's name
	Connection string // the runtime connection name in the channel
	Commit     string // full SHA

	// Digest identifies what was rendered (jobs, parameter values with
	// secrets hashed, policy). Two commits that render a target the same
	// way give the same digest: such a push leaves the target alone.
	Digest string

	// ApplyID is the rendered applyId; empty when the runtime has none.
	ApplyID string
	// DesiredVersion is ApplyID, else Commit.
	DesiredVersion string

	Apply   runner.Spec
	Fetch   *runner.Spec // nil: the runtime has no fetch
	GetInfo *runner.Spec // nil: the runtime has no getInfo

	Policy        Policy
	Preconditions []Precondition

	// Params are the final parameter values by name. Secret values are
	// given as Sensitive in the jobs' env and left out of here.
	Params map[string]string
	// SecretParams names the secret parameters, sorted. Their values are
	// only in the jobs' env (PVN_PARAM_<NAME>, Sensitive).
	SecretParams []string
}

// Policy is the timing and gating of a target, from its runtime's config.
type Policy struct {
	FetchMode               config.FetchMode
	FetchPollInterval       time.Duration
	SteadyStatePollInterval time.Duration
	GetInfoPollInterval     time.Duration
	ConvergenceGracePeriod  time.Duration

	MaxConcurrency     int // runtime-wide cap on concurrent applies; 0: none
	Retry              config.RetryPolicy
	RetryableExitCodes []int

	// FetchRetry is the backoff after a failed fetch, as fetch's
	// retryPolicy gives it; zero fields: from FetchPollInterval, doubling
	// up to Retry.MaxInterval, unlimited.
	FetchRetry config.RetryPolicy
	// GetInfoRetry is the backoff after a failed getInfo; zero
	// BaseInterval: no retry, the next getInfo runs at GetInfoPollInterval.
	GetInfoRetry config.RetryPolicy

	RequireApprovalBeforeApply bool
}

// Precondition gates the applies of a target. Exactly one field is set.
type Precondition struct {
	// ReleaseChannelStable names the upstream channel whose target for the
	// same service must be converged on this commit or a later one.
	ReleaseChannelStable string
	ManualApproval       *config.ManualApproval
}

// NeedsApproval reports whether the target's applies wait for a person's
// approval: a manualApproval precondition, or the runtime's
// requireApprovalBeforeApply.
func (t Target) NeedsApproval() bool {
	return t.Policy.RequireApprovalBeforeApply || slices.ContainsFunc(t.Preconditions, func(p Precondition) bool { return p.ManualApproval != nil })
}
