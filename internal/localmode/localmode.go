// Package localmode is pvnbot without GitHub: it watches a branch of a Git
// repository on the local disk, ingests each new commit, and converges the
// targets with the local process runner and a SQLite state file (SPEC §6,
// `bot run`, `bot status`, `bot approve`).
package localmode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/pvnbot/pvnbot/internal/gitrepo"
	"github.com/pvnbot/pvnbot/internal/reconcile"
	"github.com/pvnbot/pvnbot/internal/runner/local"
	"github.com/pvnbot/pvnbot/internal/store"
)

// DefaultPoll is how often the branch and the approval inbox are looked at.
const DefaultPoll = 2 * time.Second

// StateDir is the folder, inside the repository, of the default state file.
const StateDir = ".pvnbot"

// DefaultStatePath is where the state of the repository at repoDir is kept
// unless told otherwise: DIR/.pvnbot/pvnbot.db.
func DefaultStatePath(repoDir string) string {
	return filepath.Join(repoDir, StateDir, "pvnbot.db")
}

// Options is one `bot run`.
type Options struct {
	RepoDir   string
	Branch    string // empty: the branch HEAD names
	StatePath string // empty: DefaultStatePath(RepoDir)
	// Once stops when every target is converged, waiting for approval or
	// failed, instead of watching the branch.
	Once    bool
	PassEnv []string      // variables of the bot's environment given to jobs
	Poll    time.Duration // default DefaultPoll
	// MaxParallelJobs bounds the jobs run at once; 0: the engine's default.
	MaxParallelJobs int

	Out      io.Writer // progress and the final table
	Terminal bool      // Out is a terminal: compact progress lines
	Logger   *slog.Logger
}

// Result is how a run ended.
type Result struct {
	States []store.TargetState
	// Failed is true when a target's last fetch or apply failed.
	Failed bool
	// Interrupted is true when the context was cancelled (a signal).
	Interrupted bool
}

// Run runs the engine on the repository until ctx is cancelled, or with
// Once until every target has settled. On cancellation running jobs are
// stopped (their process groups killed) and their interruption is recorded;
// the next Run carries on.
func Run(ctx context.Context, opts Options) (Result, error) {
	if opts.Poll <= 0 {
		opts.Poll = DefaultPoll
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	repoDir, err := filepath.Abs(opts.RepoDir)
	if err != nil {
		return Result{}, err
	}
	repo, err := gitrepo.Open(repoDir)
	if err != nil {
		return Result{}, err
	}
	if opts.Branch == "" {
		if opts.Branch, err = repo.DefaultBranch(); err != nil {
			return Result{}, fmt.Errorf("find the branch to watch (use --branch): %w", err)
		}
	}
	if opts.StatePath == "" {
		opts.StatePath = DefaultStatePath(repoDir)
	}
	if err := os.MkdirAll(filepath.Dir(opts.StatePath), 0o700); err != nil {
		return Result{}, fmt.Errorf("create state folder: %w", err)
	}
	lock, err := tryLock(opts.StatePath, 5*time.Second)
	if errors.Is(err, errLocked) {
		return Result{}, fmt.Errorf("another bot run is using %s", opts.StatePath)
	}
	if err != nil {
		return Result{}, err
	}
	defer lock.release()

	st, err := store.OpenSQLite(ctx, opts.StatePath)
	if err != nil {
		return Result{}, err
	}
	defer st.Close()
	saved, err := st.LoadTargets(ctx)
	if err != nil {
		return Result{}, err
	}
	progress := NewProgress(opts.Out, opts.Terminal)
	progress.Seed(saved)

	worktrees := gitrepo.NewWorktrees(repo, filepath.Join(filepath.Dir(opts.StatePath), "worktrees"))
	tracked := newTracked(st, time.Now)
	engine, err := reconcile.New(ctx, reconcile.Options{
		Runner:          local.New(worktrees, local.WithPassEnv(opts.PassEnv...), local.WithLogger(opts.Logger)),
		Store:           tracked,
		Reporter:        progress,
		Logger:          opts.Logger,
		MaxParallelJobs: opts.MaxParallelJobs,
	})
	if err != nil {
		return Result{}, err
	}
	m := &mode{
		opts: opts, engine: engine, tracked: tracked, progress: progress,
		inbox: inboxDir(opts.StatePath),
		ingester: &ingester{
			repo: repo, repoKey: repoDir, branch: opts.Branch, log: st,
			engine: engine, progress: progress,
		},
	}
	progress.Note("watching %s branch %s; state in %s", repoDir, opts.Branch, opts.StatePath)
	return m.run(ctx)
}

// mode is a running `bot run`.
type mode struct {
	opts     Options
	engine   *reconcile.Engine
	tracked  *tracked
	progress *Progress
	ingester *ingester
	inbox    string
}

func (m *mode) run(ctx context.Context) (Result, error) {
	if err := m.poll(ctx); err != nil {
		return Result{}, err
	}
	engineCtx, stopEngine := context.WithCancel(ctx)
	defer stopEngine()
	engineDone := make(chan error, 1)
	go func() { engineDone <- m.engine.Run(engineCtx) }()

	ticker := time.NewTicker(m.opts.Poll)
	defer ticker.Stop()
	var runErr error
loop:
	for {
		if m.opts.Once && m.settled() {
			break
		}
		select {
		case <-ctx.Done():
			break loop
		case runErr = <-engineDone:
			engineDone = nil
			break loop
		case <-m.tracked.changed:
		case <-ticker.C:
			if err := m.poll(ctx); err != nil && ctx.Err() == nil {
				m.opts.Logger.Error("look for new commits and approvals", "err", err)
			}
		}
	}
	stopEngine()
	if engineDone != nil {
		runErr = <-engineDone
	}
	res := Result{States: m.engine.Snapshot(), Interrupted: ctx.Err() != nil}
	if res.Interrupted {
		if err := m.tracked.recordInterrupted(context.WithoutCancel(ctx), "bot run was stopped"); err != nil {
			runErr = errors.Join(runErr, err)
		}
		m.progress.Note("stopped; the next bot run carries on from here")
	}
	for _, st := range res.States {
		if st.Status != store.StatusDeleted && st.Status.IsFailed() {
			res.Failed = true
		}
	}
	if m.opts.Once || res.Interrupted {
		fmt.Fprintln(m.opts.Out)
		if err := WriteTable(m.opts.Out, res.States); err != nil {
			return res, err
		}
		fmt.Fprintf(m.opts.Out, "\n%s\n", Summary(res.States))
	}
	return res, runErr
}

// poll ingests new commits of the branch and hands waiting approvals to
// the engine.
func (m *mode) poll(ctx context.Context) error {
	return errors.Join(m.ingester.catchUp(ctx), processInbox(ctx, m.inbox, m.engine))
}

// settled reports whether nothing is left to do now: no job runs, no step
// is due, and every target is converged, waiting (for an approval or an
// upstream channel that is itself settled) or failed. The state is read
// between two looks at the store's writes, so a step taken meanwhile is
// never missed.
func (m *mode) settled() bool {
	before, idle := m.tracked.quiet()
	if !idle {
		return false
	}
	states := m.engine.Snapshot()
	now := time.Now()
	for _, st := range states {
		if !settled(st, now) {
			return false
		}
	}
	after, idle := m.tracked.quiet()
	return idle && after == before
}

func settled(st store.TargetState, now time.Time) bool {
	switch st.Status {
	case store.StatusDeleted:
		return true
	case store.StatusConverged, store.StatusWaitingManualApproval, store.StatusWaitingPreconditions, store.StatusFailed:
	default:
		return false
	}
	due := func(t time.Time) bool { return !t.IsZero() && !t.After(now) }
	return !due(st.NextDue) && (st.Target.GetInfo == nil || !due(st.NextInfoDue))
}

// Status returns every target's state from the state file at statePath. It
// reads while a `bot run` writes.
func Status(ctx context.Context, statePath string) ([]store.TargetState, error) {
	if _, err := os.Stat(statePath); err != nil {
		return nil, fmt.Errorf("no state at %s: has `bot run` run on this repository? (%w)", statePath, err)
	}
	st, err := store.OpenSQLite(ctx, statePath)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return st.LoadTargets(ctx)
}
