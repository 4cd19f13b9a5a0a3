// Package kube is the runner backend for runtimes whose proxy runtime is a
// linked Kubernetes cluster: one batch/v1 Job per run (SPEC §4), awaited by
// watching the Job and its pod, with the exit code read from the pod's
// terminated container state and the output from the pod's log (parsed as
// pvn-wrapper output when it is).
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pvnbot/pvnbot/internal/clock"
	"github.com/pvnbot/pvnbot/internal/runner"
)

// Defaults for the options.
const (
	DefaultTimeout       = time.Hour
	DefaultStartDeadline = 5 * time.Minute
	DefaultOutputLimit   = 1 << 20
	DefaultTTL           = time.Hour
)

var (
	// ErrTimeout is wrapped, with context.DeadlineExceeded, by the error of a
	// run whose Job took longer than its timeout (the Job is deleted).
	ErrTimeout = errors.New("job timed out")
	// ErrNotStarted is wrapped by the error of a run whose pod could not
	// start: unschedulable past the start deadline, image pull failure,
	// pod creation refused. The error says why; the Job is deleted.
	ErrNotStarted = errors.New("job did not start")
	// ErrDetached is runner.ErrDetached: cancel Run's context with it as the
	// cause to leave the Job running; any other cancellation deletes it.
	ErrDetached = runner.ErrDetached
)

// Runner runs jobs as Kubernetes Jobs, in the cluster named by each Spec's
// ProxyRuntime. It is safe for concurrent use.
type Runner struct {
	clusters      map[string]kubernetes.Interface
	clock         clock.Clock
	timeout       time.Duration
	startDeadline time.Duration
	outputLimit   int
	log           *slog.Logger

	mu         sync.Mutex
	namespaces map[string]bool // "<cluster>/<namespace>" known to exist
}

// Option changes one of the Runner's defaults.
type Option func(*Runner)

// WithClock sets the clock measuring timeouts and start deadlines.
func WithClock(c clock.Clock) Option { return func(r *Runner) { r.clock = c } }

// WithDefaultTimeout bounds the jobs whose Spec has no Timeout.
func WithDefaultTimeout(d time.Duration) Option { return func(r *Runner) { r.timeout = d } }

// WithStartDeadline bounds how long a Job may wait for its pod to start
// running (scheduling, image pull) before the run fails with the reason.
func WithStartDeadline(d time.Duration) Option { return func(r *Runner) { r.startDeadline = d } }

// WithOutputLimit caps what is kept of a job's stdout and stderr; the tail is kept.
func WithOutputLimit(bytes int) Option { return func(r *Runner) { r.outputLimit = bytes } }

// WithLogger sets the logger; by default nothing is logged.
func WithLogger(l *slog.Logger) Option { return func(r *Runner) { r.log = l } }

// New returns a Runner over the linked clusters, by proxy runtime name.
func New(clusters map[string]kubernetes.Interface, opts ...Option) *Runner {
	r := &Runner{
		clusters:      maps.Clone(clusters),
		clock:         clock.Real{},
		timeout:       DefaultTimeout,
		startDeadline: DefaultStartDeadline,
		outputLimit:   DefaultOutputLimit,
		log:           slog.New(slog.DiscardHandler),
		namespaces:    map[string]bool{},
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Cluster is a linked Kubernetes runtime (bot.yaml's kubernetesRuntimes) and
// how to reach it.
type Cluster struct {
	Name       string
	Kubeconfig string // kubeconfig file; empty: the default loading rules
	Context    string // kubeconfig context; empty: the current one
	InCluster  bool   // the service account of the pod the bot runs in
}

// NewClients builds one clientset per linked cluster, by name.
func NewClients(clusters []Cluster) (map[string]kubernetes.Interface, error) {
	out := make(map[string]kubernetes.Interface, len(clusters))
	for _, c := range clusters {
		var (
			client kubernetes.Interface
			err    error
		)
		if c.InCluster {
			client, err = InClusterClient()
		} else {
			client, err = ClientFromKubeconfig(c.Kubeconfig, c.Context)
		}
		if err != nil {
			return nil, fmt.Errorf("kubernetes runtime %s: %w", c.Name, err)
		}
		out[c.Name] = client
	}
	return out, nil
}

// ClientFromKubeconfig builds a clientset from a kubeconfig file (empty: the
// default loading rules, $KUBECONFIG then ~/.kube/config) and a context
// (empty: the current one).
func ClientFromKubeconfig(path, kubeContext string) (kubernetes.Interface, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules.ExplicitPath = path
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: kubeContext}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %q (context %q): %w", path, kubeContext, err)
	}
	return newClient(cfg)
}

// InClusterClient builds a clientset from the service account of the pod
// the bot runs in.
func InClusterClient() (kubernetes.Interface, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("in-cluster config: %w", err)
	}
	return newClient(cfg)
}

func newClient(cfg *rest.Config) (kubernetes.Interface, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "pvnbot"
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 20, 40
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build client: %w", err)
	}
	return client, nil
}

// Run runs spec as a Job and waits for it to end. A Job already labelled
// with spec.RunID (a run started before a restart) is awaited instead of
// creating another. Cancelling ctx deletes the Job, unless the cause is
// ErrDetached.
func (r *Runner) Run(ctx context.Context, spec runner.Spec) (runner.Result, error) {
	client, ok := r.clusters[spec.ProxyRuntime]
	if !ok {
		return runner.Result{}, fmt.Errorf("proxy runtime %q is not a linked Kubernetes runtime (linked: %s)",
			spec.ProxyRuntime, strings.Join(slices.Sorted(maps.Keys(r.clusters)), ", "))
	}
	timeout := spec.Timeout
	if timeout <= 0 {
		timeout = r.timeout
	}
	job, err := buildJob(spec, timeout)
	if err != nil {
		return runner.Result{}, err
	}
	ns, err := r.namespace(ctx, client, spec)
	if err != nil {
		return runner.Result{}, err
	}
	job.Namespace = ns

	existing, err := findJob(ctx, client, ns, spec.RunID)
	if err != nil {
		return runner.Result{}, err
	}
	if existing != nil {
		r.log.InfoContext(ctx, "awaiting job started earlier", "namespace", ns, "job", existing.Name, "run_id", spec.RunID)
		job = existing
	} else {
		if job, err = createJob(ctx, client, job, spec); err != nil {
			return runner.Result{}, err
		}
		r.log.InfoContext(ctx, "job created", "namespace", ns, "job", job.Name, "run_id", spec.RunID, "action", spec.Action)
	}

	w := &waiter{r: r, client: client, job: job, timeout: timeout}
	return w.await(ctx)
}
