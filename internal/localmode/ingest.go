package localmode

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/ingest"
	"github.com/pvnbot/pvnbot/internal/links"
	"github.com/pvnbot/pvnbot/internal/reconcile"
	"github.com/pvnbot/pvnbot/internal/store"
)

// gitRepo is what ingestion reads from the repository.
type gitRepo interface {
	Head(branch string) (string, error)
	Log(sinceExclusive, to string) ([]string, error)
	FS(sha string) (fs.FS, error)
}

// branchWalker moves a repository's engine along a branch on the local
// disk, one commit at a time, through the shared ingest path.
type branchWalker struct {
	git      gitRepo
	branch   string
	links    links.Links
	store    store.Store // the repository's: its ingest log
	ingest   *ingest.Repo
	progress *Progress
	// prepare starts writing the checkout of a commit, for the jobs that
	// follow its ingestion.
	prepare func(sha string)
}

func newBranchWalker(git gitRepo, name, branch string, l links.Links, st store.Store, engine *reconcile.Engine, progress *Progress) *branchWalker {
	return &branchWalker{
		git: git, branch: branch, links: l, store: st, progress: progress,
		ingest: &ingest.Repo{Name: name, Engine: expecting{engine, progress}, Log: st, Options: l.IngestOptions()},
	}
}

// catchUp ingests every commit of the branch after the last one ingested,
// oldest first (first parents only). The first time, only the tip is taken.
func (w *branchWalker) catchUp(ctx context.Context) error {
	head, err := w.git.Head(w.branch)
	if err != nil {
		return fmt.Errorf("read branch %s: %w", w.branch, err)
	}
	last, _, err := w.store.LastIngested(ctx, w.branch)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if last == head {
		return nil
	}
	commits, err := w.git.Log(last, head)
	if err != nil {
		return fmt.Errorf("list commits of %s: %w", w.branch, err)
	}
	if w.prepare != nil {
		// While the commits are ingested: jobs run at the newest.
		w.prepare(head)
	}
	for _, sha := range commits {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := w.take(ctx, sha); err != nil {
			return err
		}
	}
	return nil
}

// take ingests one commit, read from its tree (not the working tree). A
// commit whose configs are invalid is reported and skipped: the engine
// keeps working towards the previous desired state.
func (w *branchWalker) take(ctx context.Context, sha string) error {
	tree, err := w.git.FS(sha)
	if err != nil {
		return fmt.Errorf("read commit %s: %w", short(sha), err)
	}
	res, err := w.ingest.Ingest(ctx, w.branch, sha, tree)
	if err != nil {
		return err
	}
	if len(res.Problems) > 0 {
		w.progress.Note("commit %s has invalid configs; the previous desired state stays in force:\n%s",
			short(sha), indent(res.Problems.Error()+localHint(tree, w.links)))
		return nil
	}
	note := fmt.Sprintf("commit %s: %d targets", short(sha), len(res.Targets))
	if len(res.Warnings) > 0 {
		note += ":\n" + indent(res.Warnings.Error())
	}
	w.progress.Note("%s", note)
	return nil
}

// expecting tells Progress of the targets about to be reported.
type expecting struct {
	*reconcile.Engine
	progress *Progress
}

func (x expecting) SetDesired(ctx context.Context, commit string, targets []desired.Target) error {
	keys := make([]desired.Key, len(targets))
	for i, tg := range targets {
		keys[i] = tg.Key
	}
	x.progress.Expect(keys)
	return x.Engine.SetDesired(ctx, commit, targets)
}

// Render loads and validates the configs of commit sha and renders its
// targets, as bot run would. problems holds every config problem
// (path:line:col: message); err is a failure to read the commit.
func Render(repo interface{ FS(string) (fs.FS, error) }, sha string, l links.Links) ([]desired.Target, config.Errors, error) {
	tree, err := repo.FS(sha)
	if err != nil {
		return nil, nil, fmt.Errorf("read commit %s: %w", short(sha), err)
	}
	res, err := ingest.Render(tree, sha, l.IngestOptions())
	return res.Targets, res.Problems, err
}

// localHint explains, when a runtime names a Kubernetes cluster bot run is
// not linked to, how to link it; "" otherwise.
func localHint(tree fs.FS, l links.Links) string {
	set, _ := config.LoadFS(tree)
	if set == nil {
		return ""
	}
	var remote []string
	linked := l.ClusterNames()
	for _, rt := range set.Runtimes {
		if pr := rt.Custom.ProxyRuntime.Runtime; pr != "" && !rt.Custom.ProxyRuntime.IsLocal() && !slices.Contains(linked, pr) {
			remote = append(remote, fmt.Sprintf("%s (proxyRuntime %s)", rt.Name, pr))
		}
	}
	if len(remote) == 0 {
		return ""
	}
	slices.Sort(remote)
	return fmt.Sprintf("\nnote: runtimes %s name Kubernetes runtimes bot run is not linked to; "+
		"link them with --kubeconfig FILE (each context is a runtime name) or --bot-config bot.yaml (kubernetesRuntimes), "+
		"or run them as local processes (proxyRuntime: %s)", strings.Join(remote, ", "), config.LocalRuntime)
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}
