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
	"github.com/pvnbot/pvnbot/internal/store"
)

// gitRepo is what ingestion reads from the repository.
type gitRepo interface {
	Head(branch string) (string, error)
	Log(sinceExclusive, to string) ([]string, error)
	FS(sha string) (fs.FS, error)
}

// ingestLog remembers which commits of a branch were taken.
type ingestLog interface {
	IngestCommit(ctx context.Context, repo, branch, sha string) (int64, error)
	LastIngested(ctx context.Context, repo, branch string) (string, int64, error)
}

// desiredSetter takes the desired set at a commit (the engine).
type desiredSetter interface {
	SetDesired(ctx context.Context, commit string, targets []desired.Target) error
}

// ingester moves the engine along a branch, one commit at a time.
type ingester struct {
	repo     gitRepo
	repoKey  string // how the ingest log names the repository
	branch   string
	links    Links
	log      ingestLog
	engine   desiredSetter
	progress *Progress
}

// catchUp ingests every commit of the branch after the last one ingested,
// oldest first (first parents only). The first time, only the tip is taken.
func (in *ingester) catchUp(ctx context.Context) error {
	head, err := in.repo.Head(in.branch)
	if err != nil {
		return fmt.Errorf("read branch %s: %w", in.branch, err)
	}
	last, _, err := in.log.LastIngested(ctx, in.repoKey, in.branch)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if last == head {
		return nil
	}
	commits, err := in.repo.Log(last, head)
	if err != nil {
		return fmt.Errorf("list commits of %s: %w", in.branch, err)
	}
	for _, sha := range commits {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := in.ingest(ctx, sha); err != nil {
			return err
		}
	}
	return nil
}

// ingest loads the configs at sha from the commit's tree (not the working
// tree), and hands the targets they render to the engine. A commit whose
// configs are invalid is reported and skipped: the engine keeps working
// towards the previous desired state.
func (in *ingester) ingest(ctx context.Context, sha string) error {
	targets, problems, err := Render(in.repo, sha, in.links)
	if err != nil {
		return err
	}
	if problems != nil {
		in.progress.Note("commit %s has invalid configs; the previous desired state stays in force:\n%s",
			short(sha), indent(problems.Error()))
	} else {
		in.progress.Note("commit %s: %d targets", short(sha), len(targets))
		keys := make([]desired.Key, len(targets))
		for i, tg := range targets {
			keys[i] = tg.Key
		}
		in.progress.Expect(keys)
		if err := in.engine.SetDesired(ctx, sha, targets); err != nil {
			return fmt.Errorf("set desired state of commit %s: %w", short(sha), err)
		}
	}
	if _, err := in.log.IngestCommit(ctx, in.repoKey, in.branch, sha); err != nil {
		return err
	}
	return nil
}

// Render loads and validates the configs of commit sha and renders its
// targets. problems holds every config error (path:line:col: message);
// err is a failure to read the commit.
func Render(repo interface{ FS(string) (fs.FS, error) }, sha string, links Links) (targets []desired.Target, problems, err error) {
	tree, err := repo.FS(sha)
	if err != nil {
		return nil, nil, fmt.Errorf("read commit %s: %w", short(sha), err)
	}
	set, loadErr := config.LoadFS(tree)
	if set == nil {
		return nil, nil, fmt.Errorf("load configs of commit %s: %w", short(sha), loadErr)
	}
	if errs := config.Combine(loadErr, set.Validate(links.linked())); errs != nil {
		return nil, withLocalHint(set, links, errs), nil
	}
	targets, err = desired.Build(set, sha, links.desiredOptions())
	if err != nil {
		return nil, err, nil
	}
	return targets, nil, nil
}

// errHint adds a line to config errors.
type errHint struct {
	err  error
	hint string
}

func (e errHint) Error() string { return e.err.Error() + "\n" + e.hint }
func (e errHint) Unwrap() error { return e.err }

// withLocalHint explains, when a runtime names a Kubernetes cluster, that
// local mode has none.
func withLocalHint(set *config.Set, links Links, errs error) error {
	var remote []string
	linked := links.clusterNames()
	for _, rt := range set.Runtimes {
		if pr := rt.Custom.ProxyRuntime.Runtime; pr != "" && !rt.Custom.ProxyRuntime.IsLocal() && !slices.Contains(linked, pr) {
			remote = append(remote, fmt.Sprintf("%s (proxyRuntime %s)", rt.Name, pr))
		}
	}
	if len(remote) == 0 {
		return errs
	}
	slices.Sort(remote)
	return errHint{err: errs, hint: fmt.Sprintf("note: runtimes %s name Kubernetes runtimes bot run is not linked to; "+
		"link them with --kubeconfig FILE (each context is a runtime name) or --bot-config bot.yaml (kubernetesRuntimes), "+
		"or run them as local processes (proxyRuntime: %s)", strings.Join(remote, ", "), config.LocalRuntime)}
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}
