// Package store keeps pvnbot's durable state: per-target convergence state,
// the audit log of job runs, approvals and the ingest log, each belonging to
// one repository (a DB holds many; DB.Repo gives one's Store), and the
// webhook deliveries. The record types here are plain, JSON-encodable data
// shared by every backend (in memory for tests, SQLite for the bot);
// storetest holds the conformance suite they all pass.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/runner"
)

// ErrNotFound is returned when a record asked for by its identity is absent.
var ErrNotFound = errors.New("not found")

// Status is where a target stands in its convergence (SPEC §3).
type Status string

const (
	// StatusPending: a new desired state, nothing run for it yet.
	StatusPending Status = "PENDING"
	// StatusFetching: the first fetch of a desired state is running.
	StatusFetching Status = "FETCHING"
	// StatusApplying: apply is running.
	StatusApplying Status = "APPLYING"
	// StatusConverging: apply ended well (or asked to try again); fetch is
	// polled until it reports no drift.
	StatusConverging Status = "CONVERGING"
	// StatusConverged: at the desired state.
	StatusConverged Status = "CONVERGED"
	// StatusWaitingPreconditions: an apply is needed but a
	// releaseChannelStable precondition does not hold yet.
	StatusWaitingPreconditions Status = "WAITING_PRECONDITIONS"
	// StatusWaitingManualApproval: an apply is needed and waits for approval.
	StatusWaitingManualApproval Status = "WAITING_MANUAL_APPROVAL"
	// StatusWaitingConcurrency: an apply is queued behind the runtime's
	// maxConcurrency.
	StatusWaitingConcurrency Status = "WAITING_CONCURRENCY"
	// StatusFailed: fetch errored or apply failed; see Message and NextDue.
	StatusFailed Status = "FAILED"
	// StatusReplaced: a desired state superseded by a newer commit. It is
	// recorded in TargetState.Replaced, never as a live target's status.
	StatusReplaced Status = "REPLACED"
	// StatusDeleted: the service is gone from the desired set; nothing runs.
	StatusDeleted Status = "DELETED"
)

// IsConverged reports whether the target is at its desired state.
func (s Status) IsConverged() bool { return s == StatusConverged }

// IsWaiting reports whether the target waits on a precondition, an
// approval or a concurrency slot before it can apply.
func (s Status) IsWaiting() bool {
	switch s {
	case StatusWaitingPreconditions, StatusWaitingManualApproval, StatusWaitingConcurrency:
		return true
	}
	return false
}

// IsInProgress reports whether the target is being worked on: a job runs
// or convergence is being confirmed.
func (s Status) IsInProgress() bool {
	switch s {
	case StatusPending, StatusFetching, StatusApplying, StatusConverging:
		return true
	}
	return false
}

// IsFailed reports whether the last fetch or apply failed.
func (s Status) IsFailed() bool { return s == StatusFailed }

// IsFinal reports whether nothing more will be done for this desired state.
func (s Status) IsFinal() bool { return s == StatusReplaced || s == StatusDeleted }

// TargetState is the durable state of one target: the desired state it
// works towards and where its convergence stands. It is keyed by
// Target.Key.
type TargetState struct {
	Target desired.Target

	// DesiredSeq is the ingest sequence of the commit that brought Target.
	// LatestSeq is the newest ingested commit whose rendering of the target
	// is still Target (a push that changed nothing for it raises LatestSeq
	// only). Converged at LatestSeq means converged on every commit up to it.
	DesiredSeq int64 `json:",omitzero"`
	LatestSeq  int64 `json:",omitzero"`

	Status    Status    `json:",omitzero"`
	Message   string    `json:",omitzero"`
	UpdatedAt time.Time `json:",omitzero"` // last change of Status or Message

	// NextDue is when the next fetch or apply step is due; zero means the
	// target waits for an event (approval, upstream channel, free slot).
	NextDue time.Time `json:",omitzero"`
	// NextInfoDue is when getInfo is next due; zero: not scheduled.
	NextInfoDue time.Time `json:",omitzero"`

	// ApplyStartedAt is when the latest apply of Target started; the
	// convergence grace period is measured from it. Zero once converged,
	// after a failed apply, or for a new desired state.
	ApplyStartedAt time.Time `json:",omitzero"`
	// AppliedDigest is the digest whose apply succeeded, cleared when
	// another apply starts: a desired state is never applied twice once its
	// success is recorded.
	AppliedDigest string `json:",omitzero"`
	// LastAppliedID is the applyId of the last successful apply.
	LastAppliedID string `json:",omitzero"`

	// Attempts counts consecutive failed applies of Target; FetchFailures
	// counts consecutive fetch errors. Both drive the backoff.
	Attempts      int `json:",omitzero"`
	FetchFailures int `json:",omitzero"`
	// Reapplies counts the applies of Target made again because fetch still
	// reported drift after the convergence grace period; they back off
	// exponentially. Zero once converged and for a new desired state.
	Reapplies int `json:",omitzero"`

	// QueueSeq orders targets waiting for a concurrency slot (FIFO).
	QueueSeq int64 `json:",omitzero"`

	// Running is the apply in flight, recorded before it starts so that a
	// restart can resolve it. Zero RunID: none.
	Running RunRef `json:",omitzero"`

	LastFetch   Outcome `json:",omitzero"`
	LastApply   Outcome `json:",omitzero"`
	LastGetInfo Outcome `json:",omitzero"`

	// Info is the last good getInfo output, taken at InfoAt.
	Info   []InfoOutput `json:",omitzero"`
	InfoAt time.Time    `json:",omitzero"`

	// Replaced describes the desired state this one replaced, if any.
	Replaced ReplacedState `json:",omitzero"`
}

// Key is the target's identity.
func (s TargetState) Key() desired.Key { return s.Target.Key }

// RunRef is an apply in flight: its run's record is written when it ends,
// and from this one when a restart finds its result lost.
type RunRef struct {
	RunID      string        `json:",omitzero"`
	Action     runner.Action `json:",omitzero"`
	Commit     string        `json:",omitzero"`
	Digest     string        `json:",omitzero"`
	Started    time.Time     `json:",omitzero"`
	ApprovedBy []string      `json:",omitzero"`
	Note       string        `json:",omitzero"`
}

// Outcome is how the last run of one action ended. Zero RunID: never run.
type Outcome struct {
	RunID    string    `json:",omitzero"`
	Commit   string    `json:",omitzero"`
	Started  time.Time `json:",omitzero"`
	Finished time.Time `json:",omitzero"`
	ExitCode int       `json:",omitzero"`
	// Error says why the job could not run or be read (runner error,
	// exec error, unreadable output); empty when it ran.
	Error string `json:",omitzero"`
}

// InfoOutput is one entry of getInfo's {"outputs":[{"name","text"}]}.
type InfoOutput struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

// ReplacedState is a desired state superseded by a newer one.
type ReplacedState struct {
	Commit string `json:",omitzero"`
	Digest string `json:",omitzero"`
	// Status is what the replaced desired state had reached.
	Status Status    `json:",omitzero"`
	At     time.Time `json:",omitzero"`
}

// JobRun is one entry of the audit log: a job started for a target.
type JobRun struct {
	ID             string
	Key            desired.Key
	Action         runner.Action
	Commit         string
	Digest         string
	DesiredVersion string

	Started  time.Time
	Finished time.Time // zero while running or if the result was lost
	ExitCode int
	Error    string
	// OutputTail is the end of stdout and stderr.
	OutputTail string

	// ApprovedBy lists the distinct people whose approvals let this apply run.
	ApprovedBy []string
	// Note explains anything unusual, e.g. "re-run: previous apply's result
	// was not recorded" or that the desired state was replaced meanwhile.
	Note string
}

// Approval is one person's approval of one target's desired state: the
// desired state with Digest that the commit Commit brought. It counts for
// that desired state only.
type Approval struct {
	// ID identifies the approval; a later write of the same ID updates it.
	ID     string
	Key    desired.Key
	Digest string
	Commit string
	Who    string
	At     time.Time
	// Source says where it was given ("comment", "button", "cli"); URL
	// links to it (the comment) when it has one.
	Source string `json:",omitzero"`
	URL    string `json:",omitzero"`
	// ConsumedBy is the ID of the apply run that used this approval (only
	// when every apply needs its own approval); empty while unused.
	ConsumedBy string `json:",omitzero"`
}

// Batch is what one transaction writes for one repository: every write is
// committed, or none. A later state of the same key, run of the same ID or
// approval of the same ID replaces an earlier one of the same batch.
type Batch struct {
	States    []TargetState // inserted or replaced by key
	Runs      []JobRun      // inserted or replaced by ID
	Approvals []Approval    // inserted, or their ConsumedBy set, by ID
}

// Store is the durable state of one repository (SPEC §5.1): nothing read or
// written through it belongs to another. Every method is safe for
// concurrent use.
type Store interface {
	// LoadTargets returns every target state, in no particular order.
	LoadTargets(ctx context.Context) ([]TargetState, error)
	// SaveTarget inserts or replaces the state of st.Key().
	SaveTarget(ctx context.Context, st TargetState) error
	// Save writes a batch in one transaction.
	Save(ctx context.Context, b Batch) error

	// StartRun inserts a job run, or replaces the one with the same ID.
	StartRun(ctx context.Context, run JobRun) error
	// FinishRun replaces a job run by ID, inserting it if absent.
	FinishRun(ctx context.Context, run JobRun) error
	// Run returns the job run with that ID, or ErrNotFound.
	Run(ctx context.Context, id string) (JobRun, error)
	// Runs returns a target's job runs, newest first (by Started, then
	// insertion), at most limit of them (limit <= 0: all).
	Runs(ctx context.Context, key desired.Key, limit int) ([]JobRun, error)

	// AddApproval records an approval (or updates the one with its ID).
	AddApproval(ctx context.Context, a Approval) error
	// Approvals returns the approvals of one target's desired state, oldest
	// first, whatever commit brought it.
	Approvals(ctx context.Context, key desired.Key, digest string) ([]Approval, error)
	// CurrentApprovals returns, oldest first, the approvals of every
	// target's current desired state: its digest, brought by its commit.
	CurrentApprovals(ctx context.Context) ([]Approval, error)

	// IngestCommit records that commit sha of branch was ingested, with
	// the problems that kept its configs from being taken (empty: none),
	// and returns its sequence number. Sequence numbers increase with every
	// commit ingested and are never reused. A sha already recorded for the
	// branch keeps its first record and sequence number: a branch reset to
	// an older commit does not move the cursor LastIngested reports.
	IngestCommit(ctx context.Context, branch, sha, problems string) (seq int64, err error)
	// LastIngested returns the commit of branch ingested last and its
	// sequence number, or ErrNotFound when none was.
	LastIngested(ctx context.Context, branch string) (sha string, seq int64, err error)
}

// DB is a whole state file: the records of every repository it serves.
type DB interface {
	// Repo returns the store of one repository, named as the bot knows it
	// (github.com/acme/deploys, or a local repository's path).
	Repo(name string) Store
	// Repos lists the repositories that have targets or ingested commits.
	Repos(ctx context.Context) ([]string, error)
	Close() error
}
