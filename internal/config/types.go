// Package config reads *.pvn.yaml files (runtimes, applications, services)
// and the bot's own bot.yaml, and validates them as a whole.
//
// Load → Parse → strict decode → defaults → Validate, every problem reported
// as path:line:col: message.
package config

import (
	"fmt"
	"time"
)

// LocalRuntime is the proxy runtime that runs jobs as processes on the bot's
// own machine.
const LocalRuntime = "local"

// Defaults from the seed and SPEC §1.
const (
	DefaultFetchPollInterval       = 30 * time.Second
	DefaultSteadyStatePollInterval = 5 * time.Minute
	DefaultGetInfoPollInterval     = 5 * time.Minute
	DefaultConvergenceGracePeriod  = 10 * time.Minute
	DefaultTaskTTL                 = time.Hour
	DefaultRetryMaxInterval        = 5 * time.Minute
)

// Pos is where a value was written: file (slash-separated, relative to the
// root that was loaded), line and column, both 1-based.
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Set is every config found in a tree at one commit.
type Set struct {
	Runtimes     []*Runtime
	Applications []*Application
	Services     []*Service
	// Files lists the config files read, in the order they were read.
	Files []string
	// Warnings are the problems that do not make the set invalid (each of
	// SeverityWarning), sorted: filled by Parse and the Load functions,
	// then by Validate.
	Warnings Errors
}

// Runtime is a `runtime:` document.
type Runtime struct {
	Pos     Pos
	Name    string
	NamePos Pos
	Custom  CustomRuntime // `custom:` or its alias `extension:`
	// refused: another kind of runtime (reported), not checked further.
	refused bool
}

// CustomRuntime is the body of `runtime.custom`.
type CustomRuntime struct {
	Pos                        Pos
	Type                       string // GENERIC (the default)
	ProxyRuntime               ProxyRuntime
	Apply                      Apply
	Fetch                      *Fetch   // nil: no fetch
	GetInfo                    *GetInfo // nil: no getInfo (`getInfo:`, or its old name `debug:`)
	Parameters                 []Parameter
	ApplyID                    Text // empty Value: no applyId
	ConvergenceGracePeriod     time.Duration
	RequireApprovalBeforeApply bool
}

// ProxyRuntime says where the runtime's jobs execute.
type ProxyRuntime struct {
	Pos        Pos
	Runtime    string // a linked Kubernetes runtime, or LocalRuntime
	RuntimePos Pos    // of the runtime key
	// Namespace is containerOrchestration.k8s.namespace; empty means the
	// generated pvn-proxy-runtime-<runtime> namespace.
	Namespace string
}

// IsLocal reports whether jobs run as local processes.
func (p ProxyRuntime) IsLocal() bool { return p.Runtime == LocalRuntime }

// Text is a string that may hold a template, with where it was written.
type Text struct {
	Value string
	Pos   Pos
}

// Job is what apply, fetch and getInfo have in common: exactly one of
// TaskConfig and KubernetesConfig, and extra environment.
type Job struct {
	Pos              Pos
	TaskConfig       *TaskConfig
	KubernetesConfig *KubernetesConfig
	Env              []EnvVar // sorted by Name
	// Timeout is the job's deadline; zero: the runner's default.
	Timeout time.Duration
}

// Apply is `custom.apply`.
type Apply struct {
	Job
	MaxConcurrency     int // 0: no cap
	RetryPolicy        RetryPolicy
	RetryableExitCodes []int
}

// RetryPolicy is the backoff of a failed job. Zero BaseInterval means the
// fetch pollInterval (or the default fetch interval); zero MaxAttempts means
// unlimited (so does a negative one, as written in Prodvana's configs).
type RetryPolicy struct {
	BaseInterval time.Duration
	MaxInterval  time.Duration
	MaxAttempts  int
}

// FetchMode says how fetch's result is read.
type FetchMode string

const (
	FetchModeExitCode         FetchMode = "EXIT_CODE"
	FetchModeStructuredOutput FetchMode = "STRUCTURED_OUTPUT"
)

// Fetch is `custom.fetch`.
type Fetch struct {
	Job
	PollInterval            time.Duration
	SteadyStatePollInterval time.Duration
	FetchMode               FetchMode
	// RetryPolicy is the backoff after a failed fetch; nil: from
	// pollInterval, doubling up to apply's maxInterval, unlimited.
	RetryPolicy *RetryPolicy
}

// GetInfo is `custom.getInfo` (or `custom.debug`, its old name).
type GetInfo struct {
	Job
	PollInterval time.Duration
	// RetryPolicy is the backoff after a failed getInfo; nil: the next one
	// runs at pollInterval.
	RetryPolicy *RetryPolicy
}

// TaskConfig is the backend-agnostic job description.
type TaskConfig struct {
	Pos     Pos
	Program Program
	TTL     time.Duration
}

// Program is `taskConfig.program`.
type Program struct {
	Pos               Pos
	Cmd               []Text
	Entrypoint        []Text
	Env               []EnvVar // sorted by Name
	WorkingDirectory  Text
	Image             Text
	ImageTag          Text
	ImageRegistryInfo *ImageRegistryInfo
	ServiceAccount    string
}

// ImageRegistryInfo names a linked registry and a repository in it.
type ImageRegistryInfo struct {
	Pos                  Pos
	ContainerRegistry    string
	ContainerRegistryPos Pos
	ImageRepository      string
}

// EnvVar is one entry of an `env:` map: a literal (templated) value or a
// reference to a Kubernetes secret.
type EnvVar struct {
	Pos              Pos
	Name             string
	Value            *Text
	KubernetesSecret *SecretKeyRef
}

// SecretKeyRef points at one key of a Kubernetes secret.
type SecretKeyRef struct {
	SecretName string
	Key        string
}

// KubernetesConfig is a job described by a Kubernetes manifest file.
type KubernetesConfig struct {
	Pos  Pos
	Type string // KUBERNETES
	// Path is local.path as written, relative to the config file's folder.
	Path    string
	PathPos Pos // of the path key
	// File is Path resolved against the repository root (slash-separated).
	File string
	// Manifest is the file's content, read at load time; parameters are
	// templated inside it at render time.
	Manifest []byte
}

// ParamType is the type of a parameter.
type ParamType string

const (
	ParamString      ParamType = "string"
	ParamInt         ParamType = "int"
	ParamSecret      ParamType = "secret"
	ParamDockerImage ParamType = "dockerImage"
	ParamCommit      ParamType = "commit"
	ParamBlob        ParamType = "blob"
)

// ValueKey is the key of a parameter value of type t: dockerImageTag for a
// dockerImage parameter, the type's name for the others.
func (t ParamType) ValueKey() string {
	if t == ParamDockerImage {
		return "dockerImageTag"
	}
	return string(t)
}

// ValueForm is how a value of type t is written, for hints.
func (t ParamType) ValueForm() string {
	switch t {
	case ParamInt:
		return "int: N"
	case ParamSecret:
		return "secret: {secretRef: {key: KEY}}"
	case ParamDockerImage:
		return "dockerImageTag: TAG"
	case ParamCommit:
		return "commit: SHA"
	case ParamBlob:
		return "blob: {inlined: TEXT}"
	}
	return "string: TEXT"
}

// Parameter is a declared parameter of a runtime or a service.
type Parameter struct {
	Pos         Pos
	Name        string
	Description string
	NamePos     Pos
	Required    bool
	Type        ParamType
	// Default is the default value in its text form (ints formatted in
	// decimal; a dockerImage's defaultTag); nil when there is none.
	Default *string
	// DockerImage is where a dockerImage parameter's image is: its value
	// is a tag of DockerImage.ImageRepository in DockerImage's registry.
	DockerImage *ImageRegistryInfo
	// Commit names the repository and branch of a commit parameter, as
	// written (shown to people; pvnbot does not fetch them).
	Commit *CommitSource
}

// CommitSource is the body of a commit parameter.
type CommitSource struct {
	Repository string
	Branch     string
}

// ParameterValue is a value given to a parameter by a service.
type ParameterValue struct {
	Pos     Pos
	Name    string
	Type    ParamType
	NamePos Pos
	TypePos Pos // of the string, int, secret, dockerImageTag, commit or blob key
	// Value is the value in text form (for strings, dockerImage tags,
	// commits and blobs, a template rendered with the service's
	// parameters). For secrets it is the secret's key: the value itself is
	// looked up by the bot, never written in a repository.
	Value Text
	// SecretVersion is the optional version of a secret value.
	SecretVersion string
}

// Application is an `application:` document.
type Application struct {
	Pos             Pos
	Name            string
	NamePos         Pos
	ReleaseChannels []ReleaseChannel
}

// ReleaseChannel is one stage of an application, such as staging.
type ReleaseChannel struct {
	Pos           Pos
	Name          string
	NamePos       Pos
	Runtimes      []RuntimeLink
	Preconditions []Precondition
}

// RuntimeLink connects a release channel to a runtime under a connection
// name (the runtime's name when not given).
type RuntimeLink struct {
	Pos        Pos
	Runtime    string
	Name       string
	Type       string // EXTENSION, the only type, when written
	RuntimePos Pos
	NamePos    Pos // of the name key; RuntimePos when defaulted
}

// Precondition gates applies in a release channel. Exactly one field is set.
type Precondition struct {
	Pos                  Pos
	ReleaseChannelStable *ReleaseChannelStable
	ManualApproval       *ManualApproval
}

// ReleaseChannelStable holds until the same service is converged in
// ReleaseChannel on the same (or a later) commit.
type ReleaseChannelStable struct {
	ReleaseChannel string
	Pos            Pos // of the releaseChannel key
}

// ManualApproval holds until MinApprovers distinct people approved
// (minApprovers: 0, or none, is one).
type ManualApproval struct {
	Name         string
	Description  string
	EveryAction  bool
	MinApprovers int // defaulted to 1
}

// Service is a `service:` document.
type Service struct {
	Pos                  Pos
	Name                 string
	Application          string
	RuntimeConnection    string
	NamePos              Pos
	ApplicationPos       Pos
	RuntimeConnectionPos Pos
	CustomRuntime        CustomRuntimeValues // `customRuntime:` or its alias `runtimeExtension:`
	Parameters           []Parameter
	PerReleaseChannel    []ReleaseChannelOverride
	// refused: another kind of service (reported), not checked further.
	refused bool
}

// CustomRuntimeValues is `service.customRuntime`.
type CustomRuntimeValues struct {
	Pos             Pos
	ParameterValues []ParameterValue
}

// ReleaseChannelOverride replaces parameter values, and the runtime
// connection when given, in one channel.
type ReleaseChannelOverride struct {
	Pos                  Pos
	ReleaseChannel       string
	ReleaseChannelPos    Pos
	RuntimeConnection    string // empty: the service's
	RuntimeConnectionPos Pos
	CustomRuntime        CustomRuntimeValues
}
