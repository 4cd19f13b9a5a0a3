// Package runner runs the jobs of custom runtimes: a local backend (one
// process per job) and a Kubernetes backend (one batch/v1 Job per run).
//
// The types here are plain data, shared by the packages that render jobs
// (desired), decide when to run them (reconcile) and run them (the backends).
package runner

import (
	"errors"
	"time"
)

// Action is what a job is for.
type Action string

const (
	ActionApply   Action = "apply"
	ActionFetch   Action = "fetch"
	ActionGetInfo Action = "getInfo"
)

// Spec is one rendered job, ready to run: templates already expanded.
type Spec struct {
	// RunID identifies one run of the job. The Kubernetes backend labels the
	// Job with it so that a run recorded as started is found again after a
	// restart instead of being created twice.
	RunID string

	Action         Action
	Service        string
	Application    string
	ReleaseChannel string
	Runtime        string // the custom runtime's name
	Commit         string // full SHA of the desired state
	DesiredVersion string // the applyId, else the commit

	// ProxyRuntime is "local" or the name of a linked Kubernetes runtime.
	ProxyRuntime string
	// Namespace is the configured Kubernetes namespace; empty means
	// pvn-proxy-runtime-<Runtime>, created when missing.
	Namespace string

	// Task form (taskConfig).
	Image            string // full reference, registry already resolved
	Entrypoint       []string
	Cmd              []string
	WorkingDirectory string // relative to the repository root
	ServiceAccount   string
	TTL              time.Duration // how long a finished Job is kept

	// Manifest form (kubernetesConfig): one batch/v1 Job, already templated.
	Manifest []byte

	// Env holds the program's env, the job's env, PVN_* and PVN_PARAM_*,
	// sorted by name.
	Env []EnvVar

	// Timeout bounds the run; zero means the backend's default.
	Timeout time.Duration
}

// EnvVar is one variable given to a job.
type EnvVar struct {
	Name  string
	Value string
	// SecretRef, when set, takes the value from a Kubernetes secret.
	SecretRef *SecretRef
	// Sensitive values (secret parameters) are never logged or posted.
	Sensitive bool
}

// SecretRef points at a key of a Kubernetes secret.
type SecretRef struct {
	Name string
	Key  string
}

// Result is how a job ended. A job that ran and exited, with any code, is a
// Result; an error from Run means the job could not be run or awaited.
type Result struct {
	ExitCode int
	// Stdout and Stderr are the tails of the job's output (capped by the
	// backend).
	Stdout []byte
	Stderr []byte
	// ExecError explains an unusual end: the program could not start
	// (ExitCode is then -1), was killed by a signal (ExitCode 128+N), or was
	// interrupted or timed out.
	ExecError string
	Started   time.Time
	Finished  time.Time
}

// ExitCodeDrift is fetch's exit code for "not at the desired state".
const ExitCodeDrift = 2

// ErrDetached is the cause to cancel a run's context with
// (context.WithCancelCause) when the bot stops awaiting a job without
// stopping it, as when it shuts down: a backend that can (Kubernetes) leaves
// the job running, and a later run with the same RunID awaits it instead of
// starting another. A backend that cannot (local processes) stops the job as
// on any cancellation.
var ErrDetached = errors.New("stopped awaiting the job, left running")
