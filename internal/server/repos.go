package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pvnbot/pvnbot/internal/checks"
	"github.com/pvnbot/pvnbot/internal/gitrepo"
	"github.com/pvnbot/pvnbot/internal/ingest"
	"github.com/pvnbot/pvnbot/internal/reconcile"
	"github.com/pvnbot/pvnbot/internal/runner/local"
	"github.com/pvnbot/pvnbot/internal/store"
	"github.com/pvnbot/pvnbot/internal/webhook"
)

// repoService is one served repository: its engine, check-run reporter and
// ingest path, over its share of the store.
type repoService struct {
	meta     store.ServedRepo
	owner    string
	name     string
	log      *slog.Logger
	store    store.Store
	git      *gitrepo.Repo
	wt       *gitrepo.Worktrees
	engine   *reconcile.Engine
	reporter *checks.Reporter
	ingest   *ingest.Repo
	stop     context.CancelFunc
	done     chan struct{}

	mu sync.Mutex // one ingest at a time
}

// serve starts serving a repository, or updates what is known of one
// served already, and records it.
func (s *Server) serve(ctx context.Context, meta store.ServedRepo) (*repoService, error) {
	// One at a time: a push and the installation listing may name a new
	// repository at once, and it must get one engine.
	s.serving.Lock()
	defer s.serving.Unlock()
	s.mu.Lock()
	svc := s.repos[meta.Repo]
	runCtx := s.runCtx
	s.mu.Unlock()
	if svc != nil {
		if svc.meta.InstallationID != meta.InstallationID || svc.meta.CloneURL != meta.CloneURL || svc.meta.DefaultBranch != meta.DefaultBranch {
			// Moved to another installation, renamed or re-branched:
			// served again with what GitHub says now.
			s.retireLocked(ctx, svc, "")
		} else {
			return svc, nil
		}
	}
	if _, _, err := splitFullName(meta.FullName); err != nil {
		return nil, err // never recorded as served
	}
	meta.UpdatedAt = s.clock.Now()
	if err := s.db.SaveServedRepo(ctx, meta); err != nil {
		return nil, err
	}
	svc, err := s.start(runCtx, meta)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.repos[meta.Repo] = svc
	s.mu.Unlock()
	return svc, nil
}

// splitFullName is a repository's owner and name.
func splitFullName(fullName string) (owner, name string, err error) {
	owner, name, ok := strings.Cut(fullName, "/")
	if !ok || owner == "" || name == "" {
		return "", "", fmt.Errorf("repository %q: not owner/name", fullName)
	}
	return owner, name, nil
}

// start runs the engine and reporter of a repository until ctx is done.
func (s *Server) start(ctx context.Context, meta store.ServedRepo) (*repoService, error) {
	owner, name, err := splitFullName(meta.FullName)
	if err != nil {
		return nil, err
	}
	svc := &repoService{meta: meta, owner: owner, name: name, store: s.db.Repo(meta.Repo), done: make(chan struct{})}
	svc.stop = func() {}
	svc.log = s.log.With("repo", meta.Repo)
	if svc.git, err = s.mirror.Repo(meta.CloneURL); err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(meta.Repo))
	svc.wt = gitrepo.NewWorktrees(svc.git, filepath.Join(s.dir, "checkouts", hex.EncodeToString(sum[:8])))
	client, err := s.installationClient(meta.InstallationID)
	if err != nil {
		return nil, err
	}
	svc.reporter = checks.New(checks.Options{
		Owner: owner, Repo: name, API: client.Checks, Records: svc.store, AppID: s.cfg.GitHub.App.IntegrationID,
		ProgressInterval: s.opts.ProgressInterval, Clock: s.clock, Logger: s.log,
	})
	jobs := s.metrics.Runner(s.links.Runner(local.New(svc.wt, local.WithPassEnv(s.cfg.Bot.LocalRunner.PassEnv...), local.WithLogger(svc.log)), s.kube))
	converging := s.metrics.Convergence(owner+"/"+name, s.clock.Now)
	reporters := reconcile.Reporters(svc.reporter, converging, reconcile.LogReporter(svc.log))
	svc.engine, err = reconcile.New(ctx, reconcile.Options{
		Runner: jobs, Store: svc.store, Reporter: reporters, Clock: s.clock, Logger: svc.log,
		// Drift made while the bot was down is found at once.
		CheckAllOnStart: true,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", meta.Repo, err)
	}
	started := svc.engine.Snapshot()
	svc.reporter.Seed(started)
	converging.Seed(started)
	svc.ingest = &ingest.Repo{Name: meta.Repo, Engine: svc.engine, Log: svc.store, Options: s.links.IngestOptions()}

	runCtx, stop := context.WithCancel(ctx)
	svc.stop = stop
	engineDone, reporterDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(engineDone)
		if err := svc.engine.Run(runCtx); err != nil {
			svc.log.Error("engine stopped", "err", err)
		}
	}()
	// The reporter outlives the engine, to write its last states.
	reporterCtx, stopReporter := context.WithCancel(context.WithoutCancel(ctx))
	go func() { defer close(reporterDone); svc.reporter.Run(reporterCtx) }()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(svc.done)
		<-engineDone
		flush, cancel := context.WithTimeout(reporterCtx, 10*time.Second)
		if err := svc.reporter.Flush(flush); err != nil {
			svc.log.Warn("stopping", "err", err)
		}
		cancel()
		stopReporter()
		<-reporterDone
	}()
	svc.log.Info("repository served", "installation_id", meta.InstallationID, "branch", meta.DefaultBranch)
	return svc, nil
}

// retire stops serving a repository; with a reason its targets end as
// DELETED with it first (the repository left the App), the store keeping
// their records.
func (s *Server) retire(ctx context.Context, svc *repoService, reason string) {
	s.serving.Lock()
	defer s.serving.Unlock()
	s.retireLocked(ctx, svc, reason)
}

// retireLocked is retire with s.serving held.
func (s *Server) retireLocked(ctx context.Context, svc *repoService, reason string) {
	s.mu.Lock()
	if s.repos[svc.meta.Repo] == svc {
		delete(s.repos, svc.meta.Repo)
	}
	s.mu.Unlock()
	if reason != "" {
		if err := svc.engine.DeleteAll(ctx, reason); err != nil {
			svc.log.Error("end the targets of a removed repository", "err", err)
		}
		if err := s.db.RemoveServedRepo(ctx, svc.meta.Repo); err != nil {
			svc.log.Error("forget a removed repository", "err", err)
		}
		svc.log.Info("repository no longer served", "reason", reason)
	}
	svc.stop()
	<-svc.done
}

// branch is the branch a repository deploys: its default branch, unless
// bot.yaml's branches names others (then the default branch if listed,
// else the first listed).
func (s *Server) branch(meta store.ServedRepo) string { return deployBranch(s.cfg.Bot.Branches, meta) }

func deployBranch(branches []string, meta store.ServedRepo) string {
	if len(branches) == 0 || slices.Contains(branches, meta.DefaultBranch) {
		return meta.DefaultBranch
	}
	return branches[0]
}

func (s *Server) metaOf(r webhook.Repo) store.ServedRepo {
	return store.ServedRepo{
		Repo: s.repoName(r.FullName), FullName: r.FullName, InstallationID: r.InstallationID,
		CloneURL: r.CloneURL, DefaultBranch: r.DefaultBranch,
	}
}

// Push implements webhook.Deployer: a new head of the deploy branch is
// fetched and ingested; pushes to other branches are not deploys.
func (s *Server) Push(ctx context.Context, r webhook.Repo, branch, sha string) error {
	svc, err := s.serve(ctx, s.metaOf(r))
	if err != nil {
		return err
	}
	if deploy := s.branch(svc.meta); branch != deploy {
		svc.log.Debug("push ignored: not the deploy branch", "branch", branch, "deploy_branch", deploy)
		return nil
	}
	return s.sync(ctx, svc, branch, sha)
}

// sync fetches commit sha of the deploy branch into the repository's mirror
// and ingests it, unless it was ingested already or is older than what was.
func (s *Server) sync(ctx context.Context, svc *repoService, branch, sha string) error {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	log := withDelivery(ctx, svc.log).With("commit", sha)
	last, _, err := svc.store.LastIngested(ctx, branch)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if last == sha {
		log.Debug("commit ingested already")
		return nil
	}
	token, err := s.token(ctx, svc.meta.InstallationID)
	if err != nil {
		return err
	}
	git, err := s.mirror.Sync(ctx, svc.meta.CloneURL, sha, token)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", sha, err)
	}
	if last != "" && git.HasCommit(last) {
		if older, err := git.IsAncestor(sha, last); err == nil && older {
			log.Info("push ignored: older than the ingested commit", "ingested", last)
			return nil
		}
	}
	svc.wt.Prepare(context.WithoutCancel(ctx), sha)
	tree, err := git.FS(sha)
	if err != nil {
		return fmt.Errorf("read commit %s: %w", sha, err)
	}
	res, err := svc.ingest.Ingest(ctx, branch, sha, tree)
	if err != nil {
		return err
	}
	svc.reporter.ReportProblems(sha, res.Problems, res.Warnings)
	if len(res.Problems) > 0 {
		log.Warn("commit has invalid configs: the previous desired state stays in force", "problems", len(res.Problems))
		return nil
	}
	log.Info("commit ingested", "targets", len(res.Targets), "warnings", len(res.Warnings))
	return nil
}

// AddRepos implements webhook.Deployer: each repository is looked up and
// served, and its deploy branch's head ingested.
func (s *Server) AddRepos(ctx context.Context, installationID int64, fullNames []string) error {
	client, err := s.installationClient(installationID)
	if err != nil {
		return err
	}
	var errs []error
	for _, full := range fullNames {
		owner, name, _ := strings.Cut(full, "/")
		repo, _, err := client.Repositories.Get(ctx, owner, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("look up %s: %w", full, err))
			continue
		}
		svc, err := s.serve(ctx, store.ServedRepo{
			Repo: s.repoName(repo.GetFullName()), FullName: repo.GetFullName(), InstallationID: installationID,
			CloneURL: repo.GetCloneURL(), DefaultBranch: repo.GetDefaultBranch(),
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := s.resyncRepo(ctx, svc); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RemoveRepos implements webhook.Deployer: the repositories (every one of
// the installation when none is named) stop being served and their targets
// end as DELETED.
func (s *Server) RemoveRepos(ctx context.Context, installationID int64, fullNames []string) error {
	s.mu.Lock()
	var gone []*repoService
	for _, svc := range s.repos {
		if svc.meta.InstallationID == installationID && (len(fullNames) == 0 || slices.Contains(fullNames, svc.meta.FullName)) {
			gone = append(gone, svc)
		}
	}
	s.mu.Unlock()
	for _, svc := range gone {
		s.retire(ctx, svc, "repository removed from the pvnbot App: no longer reconciled")
	}
	return nil
}

var _ webhook.Deployer = (*Server)(nil)
