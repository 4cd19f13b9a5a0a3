// Package local is the runner backend for runtimes whose proxy runtime is
// "local": one process per job, in the repository checked out at the job's
// commit, with an environment of its own rather than the bot's.
package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/wrapper"
)

// Defaults for the options.
const (
	DefaultTimeout     = time.Hour
	DefaultOutputLimit = 1 << 20
	DefaultGracePeriod = 10 * time.Second
)

// ErrTimeout is wrapped, with context.DeadlineExceeded, by the error of a
// run stopped because it took longer than its timeout.
var ErrTimeout = errors.New("job timed out")

// Checkouts gives the repository's files at a commit.
type Checkouts interface {
	// Acquire returns a directory holding the repository at commit. The
	// directory stays as it is until release is called.
	Acquire(ctx context.Context, commit string) (dir string, release func(), err error)
}

// Runner runs jobs as local processes. It is safe for concurrent use.
type Runner struct {
	checkouts      Checkouts
	passEnv        []string
	defaultTimeout time.Duration
	outputLimit    int
	gracePeriod    time.Duration
	log            *slog.Logger
	lookupEnv      func(string) (string, bool)
}

// Option changes one of the Runner's defaults.
type Option func(*Runner)

// WithPassEnv names variables of the bot's environment given to every job,
// besides PATH, HOME, LANG and TMPDIR (localRunner.passEnv, --pass-env).
func WithPassEnv(names ...string) Option {
	return func(r *Runner) { r.passEnv = append(r.passEnv, names...) }
}

// WithDefaultTimeout bounds the jobs whose Spec has no Timeout.
func WithDefaultTimeout(d time.Duration) Option {
	return func(r *Runner) { r.defaultTimeout = d }
}

// WithOutputLimit caps what is kept of each of a job's stdout and stderr;
// the tail is kept.
func WithOutputLimit(bytes int) Option {
	return func(r *Runner) { r.outputLimit = bytes }
}

// WithGracePeriod is how long a stopped job has between SIGTERM and SIGKILL.
func WithGracePeriod(d time.Duration) Option {
	return func(r *Runner) { r.gracePeriod = d }
}

// WithLogger sets the logger; by default nothing is logged.
func WithLogger(l *slog.Logger) Option {
	return func(r *Runner) { r.log = l }
}

// New returns a Runner taking its working directories from checkouts.
func New(checkouts Checkouts, opts ...Option) *Runner {
	r := &Runner{
		checkouts:      checkouts,
		defaultTimeout: DefaultTimeout,
		outputLimit:    DefaultOutputLimit,
		gracePeriod:    DefaultGracePeriod,
		log:            slog.New(slog.DiscardHandler),
		lookupEnv:      os.LookupEnv,
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Run runs spec's Entrypoint followed by its Cmd in the repository checked
// out at spec.Commit (or spec.WorkingDirectory inside it) and waits for it.
//
// A job that ran gives a Result with its exit code, or 128+signal and a note
// in ExecError when a signal killed it; a program that could not start gives
// ExitCode -1 and the reason in ExecError. Neither is an error. When ctx is
// done or the timeout passes, the job's whole process group is stopped and
// Run returns the partial Result with an error wrapping ctx.Err() (and
// ErrTimeout for a timeout). On Linux the job's process is also killed when
// the bot's process dies, however it dies.
func (r *Runner) Run(ctx context.Context, spec runner.Spec) (runner.Result, error) {
	argv := append(append([]string{}, spec.Entrypoint...), spec.Cmd...)
	if len(argv) == 0 {
		return runner.Result{}, fmt.Errorf("run %s: neither entrypoint nor cmd is set", describe(spec))
	}
	if len(spec.Manifest) > 0 {
		return runner.Result{}, fmt.Errorf("run %s: a kubernetesConfig job needs a Kubernetes proxy runtime, not local", describe(spec))
	}
	if spec.Commit == "" {
		return runner.Result{}, fmt.Errorf("run %s: no commit to check out", describe(spec))
	}
	env, err := r.environ(spec.Env)
	if err != nil {
		return runner.Result{}, fmt.Errorf("run %s: %w", describe(spec), err)
	}
	redact := runner.NewRedactor(spec.Env).String // secret parameters may be templated into the command

	root, release, err := r.checkouts.Acquire(ctx, spec.Commit)
	if err != nil {
		return runner.Result{}, fmt.Errorf("run %s: check out %s: %w", describe(spec), spec.Commit, err)
	}
	defer release()
	dir, err := workingDir(root, spec.WorkingDirectory)
	if err != nil {
		return runner.Result{}, fmt.Errorf("run %s at %s: %w", describe(spec), spec.Commit, err)
	}

	timeout := spec.Timeout
	if timeout <= 0 {
		timeout = r.defaultTimeout
	}
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	log := r.log.With(
		slog.String("run_id", spec.RunID),
		slog.String("action", string(spec.Action)),
		slog.String("target", spec.Application+"/"+spec.Service+"/"+spec.ReleaseChannel),
		slog.String("commit", spec.Commit),
	)
	log.DebugContext(ctx, "job starting", slog.String("argv", redact(strings.Join(argv, " "))), slog.String("dir", dir))

	out, execErr := wrapper.Exec(runCtx, wrapper.Options{
		OutputLimit: r.outputLimit,
		Dir:         dir,
		Env:         env,
		GracePeriod: r.gracePeriod,
		// A job must not outlive a bot killed with SIGKILL: the next start
		// runs it again.
		KillWithParent: true,
	}, argv)
	started := time.Unix(0, out.StartTimestampNs)
	res := runner.Result{
		ExitCode:  out.ExitCode,
		Stdout:    out.Stdout,
		Stderr:    out.Stderr,
		ExecError: redact(out.ExecError),
		Started:   started,
		Finished:  started.Add(time.Duration(out.DurationNs)),
	}
	attrs := []any{
		slog.Int("exit_code", res.ExitCode),
		slog.Duration("duration", res.Finished.Sub(res.Started)),
		slog.Int64("stdout_dropped_bytes", out.StdoutTruncated),
		slog.Int64("stderr_dropped_bytes", out.StderrTruncated),
	}

	if execErr != nil {
		why := "interrupted"
		if ctx.Err() == nil && errors.Is(runCtx.Err(), context.DeadlineExceeded) {
			why = fmt.Sprintf("timed out after %s", timeout)
			execErr = fmt.Errorf("%w after %s: %w", ErrTimeout, timeout, execErr)
		}
		res.ExecError = strings.TrimSuffix(why+": "+res.ExecError, ": ")
		log.WarnContext(ctx, "job stopped", append(attrs, slog.String("reason", why))...)
		return res, fmt.Errorf("run %s: %w", describe(spec), execErr)
	}
	if res.ExitCode == -1 {
		log.WarnContext(ctx, "job could not start", slog.String("err", res.ExecError))
		return res, nil
	}
	log.DebugContext(ctx, "job finished", attrs...)
	return res, nil
}

// environ builds a job's whole environment: the few variables every program
// expects, those the operator chose to pass, then the job's own (the last of
// duplicate names wins). Nothing else of the bot's environment, which may
// hold the GitHub App's key, reaches the job.
func (r *Runner) environ(vars []runner.EnvVar) ([]string, error) {
	env := make([]string, 0, 4+len(r.passEnv)+len(vars))
	for _, name := range append([]string{"PATH", "HOME", "LANG", "TMPDIR"}, r.passEnv...) {
		if v, ok := r.lookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	for _, v := range vars {
		if v.Name == "" || strings.ContainsAny(v.Name, "=\x00") {
			return nil, fmt.Errorf("env: invalid variable name %q", v.Name)
		}
		if v.SecretRef != nil {
			return nil, fmt.Errorf("env %s: takes its value from the Kubernetes secret %q (key %q), which the local runner cannot read; "+
				"give the value as a secret parameter instead, or run this runtime on a Kubernetes proxy runtime",
				v.Name, v.SecretRef.Name, v.SecretRef.Key)
		}
		env = append(env, v.Name+"="+v.Value)
	}
	return env, nil
}

// workingDir resolves rel inside the checkout at root, refusing a path that
// leads out of it, including through a symbolic link.
func workingDir(root, rel string) (string, error) {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("checkout %s: %w", root, err)
	}
	if rel == "" {
		return realRoot, nil
	}
	if filepath.IsAbs(rel) {
		return "", fmt.Errorf("workingDirectory %q: must be relative to the repository root", rel)
	}
	if !within(realRoot, filepath.Join(realRoot, rel)) {
		return "", fmt.Errorf("workingDirectory %q: leads out of the repository", rel)
	}
	dir, err := filepath.EvalSymlinks(filepath.Join(realRoot, rel))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("workingDirectory %q: no such directory in the repository", rel)
	}
	if err != nil {
		return "", fmt.Errorf("workingDirectory %q: %w", rel, err)
	}
	if !within(realRoot, dir) {
		return "", fmt.Errorf("workingDirectory %q: leads out of the repository through a symbolic link", rel)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("workingDirectory %q: not a directory", rel)
	}
	return dir, nil
}

func within(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func describe(spec runner.Spec) string {
	return fmt.Sprintf("%s of %s/%s/%s", spec.Action, spec.Application, spec.ReleaseChannel, spec.Service)
}
