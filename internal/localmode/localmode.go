// Package localmode is pvnbot without GitHub: it watches a branch of a Git
// repository on the local disk, ingests each new commit, and converges the
// targets with the local process runner and a SQLite state file (SPEC §6,
// `bot run`, `bot status`, `bot approve`).
package localmode

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/gitrepo"
	"github.com/pvnbot/pvnbot/internal/links"
	"github.com/pvnbot/pvnbot/internal/metrics"
	"github.com/pvnbot/pvnbot/internal/reconcile"
	"github.com/pvnbot/pvnbot/internal/runner/local"
	"github.com/pvnbot/pvnbot/internal/store"
)

// DefaultPoll is how often the branch and the stored approvals are looked at.
const DefaultPoll = 2 * time.Second

// StateDir is the folder, inside the repository, of the default state file.
const StateDir = ".pvnbot"

// DefaultStatePath is where the state of the repository at repoDir is kept
// unless told otherwise: DIR/.pvnbot/pvnbot.db.
func DefaultStatePath(repoDir string) string {
	return filepath.Join(repoDir, StateDir, "pvnbot.db")
}

// RepoName is how the state file names the local repository at repoDir:
// its absolute path.
func RepoName(repoDir string) (string, error) {
	abs, err := filepath.Abs(repoDir)
	if err != nil {
		return "", fmt.Errorf("repository %s: %w", repoDir, err)
	}
	return abs, nil
}

// Options is one `bot run`.
type Options struct {
	RepoDir   string
	Branch    string // empty: the branch HEAD names
	StatePath string // empty: DefaultStatePath(RepoDir)
	// Once stops when every target is converged, waiting for approval or
	// failed, instead of watching the branch.
	Once    bool
	PassEnv []string // variables of the bot's environment given to jobs
	// Links are the Kubernetes clusters and registries runtimes may name,
	// and the source of secret values.
	Links links.Links
	Poll  time.Duration // default DefaultPoll
	// MaxParallelJobs bounds the jobs run at once; 0: the engine's default.
	MaxParallelJobs int

	Out      io.Writer // progress and the final table
	Terminal bool      // Out is a terminal: compact progress lines
	Logger   *slog.Logger
	// Metrics, when set, counts the run's jobs, targets and times to
	// converge (bot run --metrics-listen). A Metrics serves one Run.
	Metrics *metrics.Metrics

	// wrapStore, when set, stands between the engine and the state file
	// (tests: a store whose writes fail).
	wrapStore func(reconcile.Store) reconcile.Store
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
	repoDir, err := RepoName(opts.RepoDir)
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
	if err := makeStateDir(repoDir, opts.StatePath); err != nil {
		return Result{}, err
	}
	emptyNote, err := checkEmpty(repoDir, opts.StatePath)
	if err != nil {
		return Result{}, err
	}
	lock, err := tryLock(opts.StatePath, 5*time.Second)
	if errors.Is(err, errLocked) {
		return Result{}, fmt.Errorf("another bot run is using %s", opts.StatePath)
	}
	if err != nil {
		return Result{}, err
	}
	defer lock.release()
	// SQLite names its -wal and -shm files after the path it opens: the
	// file's own, whatever link led to it, so that every bot shares them.
	dbPath, err := filepath.EvalSymlinks(opts.StatePath)
	if err != nil {
		return Result{}, fmt.Errorf("state file %s: %w", opts.StatePath, err)
	}

	// WAL with synchronous=NORMAL: a commit survives the process being
	// killed (the crash test proves it), not a power loss, which may roll
	// back the last few transitions (never corrupt the file). The engine
	// then repeats a little work; `bot serve` keeps FULL.
	db, err := store.OpenSQLite(ctx, dbPath, store.WithSynchronousNormal())
	if err != nil {
		return Result{}, err
	}
	defer db.Close()
	progress := NewProgress(opts.Out, opts.Terminal)
	if emptyNote != "" {
		progress.Note("%s", emptyNote)
	}
	if opts.StatePath == DefaultStatePath(repoDir) {
		if err := adoptMoved(ctx, db, repoDir, progress); err != nil {
			return Result{}, err
		}
	}
	st := db.Repo(repoDir)
	saved, err := st.LoadTargets(ctx)
	if err != nil {
		return Result{}, db.Corrupt(err)
	}
	progress.Seed(saved)

	worktrees := gitrepo.NewWorktrees(repo, filepath.Join(filepath.Dir(opts.StatePath), "worktrees"))
	kubeJobs, err := opts.Links.KubeRunner(opts.Logger)
	if err != nil {
		return Result{}, err
	}
	jobs := opts.Links.Runner(local.New(worktrees, local.WithPassEnv(opts.PassEnv...), local.WithLogger(opts.Logger)), kubeJobs)
	var reporter reconcile.Reporter = progress
	var converging *metrics.Convergence
	if opts.Metrics != nil {
		jobs = opts.Metrics.Runner(jobs)
		converging = opts.Metrics.Convergence(repoDir, time.Now)
		reporter = reconcile.Reporters(progress, converging)
	}
	logger := opts.Logger.With("repo", repoDir)
	var engineStore reconcile.Store = st
	if opts.wrapStore != nil {
		engineStore = opts.wrapStore(st)
	}
	engine, err := reconcile.New(ctx, reconcile.Options{
		Runner:          jobs,
		Store:           engineStore,
		Reporter:        reporter,
		Logger:          logger,
		MaxParallelJobs: opts.MaxParallelJobs,
		// Drift made while the bot was down is found at start.
		CheckAllOnStart: true,
	})
	if err != nil {
		return Result{}, db.Corrupt(err)
	}
	if opts.Metrics != nil {
		converging.Seed(engine.Snapshot())
		opts.Metrics.Register(metrics.Targets(func() map[string][]store.TargetState {
			return map[string][]store.TargetState{repoDir: engine.Snapshot()}
		}))
	}
	m := &mode{
		opts: opts, engine: engine, progress: progress, store: st, db: db,
		walker: newBranchWalker(repo, repoDir, opts.Branch, opts.Links, st, engine, progress),
	}
	m.walker.prepare = func(sha string) { worktrees.Prepare(ctx, sha) }
	progress.Note("watching %s branch %s; state in %s", repoDir, opts.Branch, opts.StatePath)
	return m.run(ctx)
}

// adoptMoved carries the state of a repository that moved over to its new
// path: the default state file lives inside the repository and moves with
// it, so when it holds one repository under another path, and nothing under
// this one, that is this repository.
func adoptMoved(ctx context.Context, db *store.SQLite, repoDir string, progress *Progress) error {
	repos, err := db.Repos(ctx)
	if err != nil || len(repos) != 1 || repos[0] == repoDir {
		return err
	}
	if err := db.RenameRepo(ctx, repos[0], repoDir); err != nil {
		return err
	}
	progress.Note("the repository moved from %s: its state carries over", repos[0])
	return nil
}

// mode is a running `bot run`.
type mode struct {
	opts     Options
	engine   *reconcile.Engine
	progress *Progress
	walker   *branchWalker
	store    store.Store // the repository's, to read what is recorded
	db       *store.SQLite
}

func (m *mode) run(ctx context.Context) (Result, error) {
	if err := m.poll(ctx); err != nil {
		return Result{}, m.db.Corrupt(err)
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
		var changed <-chan struct{} // nil, never ready, unless Once
		if m.opts.Once {
			var done bool
			if done, changed = m.settled(); done {
				break
			}
		}
		select {
		case <-ctx.Done():
			break loop
		case runErr = <-engineDone:
			engineDone = nil
			break loop
		case <-changed:
		case <-ticker.C:
			err := m.poll(ctx)
			if err != nil && ctx.Err() == nil {
				m.opts.Logger.Error("look for new commits and approvals", "err", err)
			}
			// A damaged state file does not heal: stop rather than fail
			// every poll for ever.
			if err = cmp.Or(err, m.engine.StoreErr()); store.IsCorrupt(err) {
				runErr = m.db.Corrupt(err)
				break loop
			}
		}
	}
	stopEngine() // jobs cut short are recorded as interrupted by the engine
	if engineDone != nil {
		runErr = <-engineDone
	}
	if err := m.engine.Flush(context.WithoutCancel(ctx)); err != nil {
		return m.unrecorded(ctx, m.db.Corrupt(err))
	}
	if store.IsCorrupt(runErr) {
		return Result{Failed: true}, runErr
	}
	res := Result{States: m.engine.Snapshot(), Interrupted: ctx.Err() != nil}
	if res.Interrupted {
		m.progress.Note("stopped; the next bot run carries on from here")
	}
	now := time.Now()
	for _, st := range res.States {
		if st.Status != store.StatusDeleted && st.Status.IsFailed() {
			res.Failed = true
		}
		if m.opts.Once && stuck(st, now) {
			res.Failed = true
			m.progress.Note("%s: re-applied %d times and still drifting: --once stops here", st.Key(), st.Reapplies)
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

// unrecorded ends a run whose last state changes could not be made durable
// (a full disk, an I/O error): they are not facts, so neither the engine's
// view nor success is reported. What the state file holds is shown instead;
// the next bot run starts from it.
func (m *mode) unrecorded(ctx context.Context, err error) (Result, error) {
	lost := m.engine.Unsaved()
	msg := fmt.Sprintf("could not record in the state file %s: %v", m.opts.StatePath, err)
	if store.IsCorrupt(err) {
		msg = err.Error()
	}
	if len(lost) > 0 {
		msg += "\nnot recorded:\n  " + strings.Join(lost, "\n  ")
	}
	res := Result{Failed: true, Interrupted: ctx.Err() != nil}
	if store.IsCorrupt(err) {
		return res, errors.New(msg)
	}
	msg += "\nthe next bot run starts from what the state file holds (free space first)"
	if states, lerr := m.store.LoadTargets(context.WithoutCancel(ctx)); lerr == nil {
		res.States = states
		fmt.Fprintf(m.opts.Out, "\nWhat the state file holds:\n")
		if werr := WriteTable(m.opts.Out, states); werr == nil {
			fmt.Fprintf(m.opts.Out, "\n%s\n", Summary(states))
		}
	}
	return res, errors.New(msg)
}

// poll ingests new commits of the branch and has the engine read again the
// approvals `bot approve` stored meanwhile.
func (m *mode) poll(ctx context.Context) error {
	return errors.Join(m.walker.catchUp(ctx), m.engine.Recheck(ctx))
}

// settled reports whether nothing is left to do now: the engine is idle (no
// job runs, no step is due) and every target is converged, waiting (for an
// approval or an upstream channel that is itself settled) or failed, or the
// state file refuses writes. When
// not, the channel is closed at the engine's next change. The states are
// read between two looks at the engine, so a step taken meanwhile is never
// missed.
func (m *mode) settled() (bool, <-chan struct{}) {
	idle, changed := m.engine.Idle()
	if !idle {
		return false, changed
	}
	if m.engine.StoreErr() != nil {
		// Nothing more can be recorded: stop, and say what was not.
		return true, changed
	}
	now := time.Now()
	for _, st := range m.engine.Snapshot() {
		if !settled(st, now) {
			return false, changed
		}
	}
	select {
	case <-changed:
		return false, changed
	default:
		return true, changed
	}
}

func settled(st store.TargetState, now time.Time) bool {
	switch st.Status {
	case store.StatusDeleted:
		return true
	case store.StatusConverged, store.StatusWaitingManualApproval, store.StatusWaitingPreconditions, store.StatusFailed:
	case store.StatusConverging:
		if !stuck(st, now) {
			return false
		}
	default:
		return false
	}
	due := func(t time.Time) bool { return !t.IsZero() && !t.After(now) }
	return !due(st.NextDue) && (st.Target.GetInfo == nil || !due(st.NextInfoDue))
}

// onceReapplies is how many times --once lets a target be re-applied
// without converging before it stops (exit 1).
const onceReapplies = 3

// stuck reports whether a target was re-applied onceReapplies times and
// fetch still reported drift once the grace period of the last apply had
// passed: it is not converging, and waiting for the next re-apply (hours
// away, as they back off) would keep --once running for nothing.
func stuck(st store.TargetState, now time.Time) bool {
	if st.Status != store.StatusConverging || st.Reapplies < onceReapplies || st.ApplyStartedAt.IsZero() {
		return false
	}
	end := st.ApplyStartedAt.Add(cmp.Or(st.Target.Policy.ConvergenceGracePeriod, config.DefaultConvergenceGracePeriod))
	return !now.Before(end) && !st.LastFetch.Finished.Before(end)
}

// Status returns every target's state of one repository from the state
// file at statePath: the repository named repo, or when repo is empty the
// file's only one. It reads while a `bot run` writes, and opens the file
// read-only: it works on a read-only file system.
func Status(ctx context.Context, statePath, repo string) ([]store.TargetState, error) {
	db, st, err := openRepo(ctx, statePath, repo, true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	states, err := st.LoadTargets(ctx)
	return states, db.Corrupt(err)
}

// openRepo opens the state file at statePath, read-only or not, and the
// store of repository repo in it, or when repo is empty of the file's only
// repository.
func openRepo(ctx context.Context, statePath, repo string, readOnly bool) (*store.SQLite, store.Store, error) {
	info, err := os.Stat(statePath)
	if err != nil {
		return nil, nil, fmt.Errorf("no state at %s: has `bot run` run on this repository? (%w)", statePath, err)
	}
	if info.Size() == 0 {
		return nil, nil, fmt.Errorf("state file %s is empty (0 bytes): no bot run has recorded anything in it, or it was truncated (a full disk?)", statePath)
	}
	open := store.OpenSQLite
	if readOnly {
		open = store.OpenSQLiteReadOnly
	}
	db, err := open(ctx, statePath)
	if err != nil {
		return nil, nil, err
	}
	repos, err := db.Repos(ctx)
	if err != nil {
		db.Close()
		return nil, nil, db.Corrupt(err)
	}
	switch {
	case repo == "" && len(repos) == 1:
		repo = repos[0]
	case repo == "" && len(repos) == 0:
		db.Close()
		return nil, nil, fmt.Errorf("state file %s holds no repository yet: has `bot run` ingested a commit?", statePath)
	case repo == "":
		db.Close()
		return nil, nil, fmt.Errorf("state file %s holds several repositories (%s): name one with --repo", statePath, strings.Join(repos, ", "))
	case !slices.Contains(repos, repo):
		db.Close()
		return nil, nil, fmt.Errorf("state file %s has nothing of repository %s (it holds %s)", statePath, repo, strings.Join(repos, ", "))
	}
	return db, db.Repo(repo), nil
}
