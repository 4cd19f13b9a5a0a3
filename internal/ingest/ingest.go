// Package ingest turns one commit of a repository into its desired state:
// the configs in the commit's tree are loaded, validated and rendered into
// targets, which go to that repository's engine, and the commit is recorded
// in the repository's ingest log. `bot run` and `bot serve` both ingest
// through it, so that a commit means the same to both.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/desired"
)

// Options are what a repository's configs may name from outside it.
type Options struct {
	// Linked is what proxy runtimes and container registries are checked
	// against; nil: they are not checked.
	Linked *config.Linked
	// Desired gives the linked registries' URLs and the secret values.
	Desired desired.Options
}

// Engine takes a repository's desired set (reconcile.Engine does).
type Engine interface {
	// SetDesired takes the full desired set at commit.
	SetDesired(ctx context.Context, commit string, targets []desired.Target) error
}

// Log is a repository's ingest log (store.Store is one).
type Log interface {
	// IngestCommit records that sha of branch was ingested, with the
	// problems that kept its configs from being taken (empty: none).
	IngestCommit(ctx context.Context, branch, sha, problems string) (int64, error)
}

// Repo ingests the commits of one repository.
type Repo struct {
	Name    string // as the store names it: github.com/acme/deploys
	Engine  Engine
	Log     Log
	Options Options
}

// Result is what one commit brought.
type Result struct {
	// Targets is the desired set handed to the engine; nil when the
	// commit has problems.
	Targets []desired.Target
	// Problems is every config problem of the commit, each at its file,
	// line and column. A commit with problems changes nothing: the
	// previous desired state stays in force.
	Problems config.Errors
	// Warnings are the configs' warnings (config.SeverityWarning): what
	// was accepted but ignored, or taken with a guess.
	Warnings config.Errors
}

// Ingest takes commit sha of branch, whose tree is tree: its targets go to
// the engine, or its problems are returned; either way the commit is
// recorded in the ingest log, once the engine has taken its targets. An
// error means the commit could not be read or recorded, and may be tried
// again.
func (r *Repo) Ingest(ctx context.Context, branch, sha string, tree fs.FS) (Result, error) {
	res, err := Render(tree, sha, r.Options)
	if err != nil {
		return Result{}, fmt.Errorf("%s: commit %s: %w", r.Name, short(sha), err)
	}
	if len(res.Problems) == 0 {
		if err := r.Engine.SetDesired(ctx, sha, res.Targets); err != nil {
			return Result{}, fmt.Errorf("%s: set the desired state of commit %s: %w", r.Name, short(sha), err)
		}
	}
	if _, err := r.Log.IngestCommit(ctx, branch, sha, problemText(res.Problems)); err != nil {
		return Result{}, fmt.Errorf("%s: %w", r.Name, err)
	}
	return res, nil
}

// Render loads the configs of tree, validates them and renders the targets
// of commit sha. Its Problems hold every config problem, including those
// found while rendering; err is a failure to read the tree.
func Render(tree fs.FS, sha string, opts Options) (Result, error) {
	set, loadErr := config.LoadFS(tree)
	if set == nil {
		return Result{}, fmt.Errorf("load configs: %w", loadErr)
	}
	return RenderSet(set, loadErr, sha, opts)
}

// RenderSet validates a loaded set and renders the targets of commit sha,
// as Render does; loadErr is what loading it reported. `bot validate`
// renders the files it is given through it, as `bot run` and `bot serve`
// render a commit.
func RenderSet(set *config.Set, loadErr error, sha string, opts Options) (res Result, err error) {
	defer func() {
		// No config may bring the bot down: a panic that escaped every
		// check is this commit's problem, not the process's end.
		if r := recover(); r != nil {
			res = Result{Warnings: set.Warnings, Problems: config.Errors{{
				Pos: config.Pos{File: firstFile(set), Line: 1, Col: 1},
				Msg: fmt.Sprintf("internal error while rendering this commit's configs (please report it): %v", r),
			}}}
			err = nil
		}
	}()
	problems, err := split(config.Combine(loadErr, set.Validate(opts.Linked)))
	if err != nil {
		return Result{}, err
	}
	res = Result{Problems: problems, Warnings: set.Warnings}
	if len(problems) > 0 {
		return res, nil
	}
	targets, err := desired.Build(set, sha, opts.Desired)
	if res.Problems, err = split(err); err != nil {
		return Result{}, err
	}
	if len(res.Problems) == 0 {
		res.Targets = targets
	}
	return res, nil
}

func firstFile(set *config.Set) string {
	if len(set.Files) > 0 {
		return set.Files[0]
	}
	return "."
}

// split takes the config problems out of err; what is left is another
// kind of failure.
func split(err error) (config.Errors, error) {
	if err == nil {
		return nil, nil
	}
	var problems config.Errors
	if !errors.As(err, &problems) {
		return nil, err
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var other []error
		for _, e := range joined.Unwrap() {
			if !errors.As(e, new(config.Errors)) {
				other = append(other, e)
			}
		}
		if len(other) > 0 {
			return nil, errors.Join(other...)
		}
	}
	return problems, nil
}

// maxProblemText bounds what the ingest log keeps of a commit's problems.
const maxProblemText = 64 << 10

func problemText(problems config.Errors) string {
	if len(problems) == 0 {
		return ""
	}
	s := problems.Error()
	if len(s) > maxProblemText {
		s = s[:maxProblemText] + "\n…"
	}
	return s
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
