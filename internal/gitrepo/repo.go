// Package gitrepo reads Git repositories with go-git: branch tips, the
// commits between two tips, a commit's tree as an io/fs.FS, bare mirrors of
// remote repositories, and checkouts of commits for jobs to run in.
package gitrepo

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Repo is a repository on the local disk, worktree or bare. It is safe for
// concurrent use: go-git's object storage is not, so every read holds a lock.
type Repo struct {
	path string

	mu  sync.Mutex
	git *git.Repository
}

// Open opens the repository at path: a worktree (with a .git inside) or a
// bare repository.
func Open(path string) (*Repo, error) {
	g, err := openGit(path)
	if err != nil {
		return nil, err
	}
	return &Repo{path: path, git: g}, nil
}

// maxOpenPacks bounds the pack files kept open between reads. go-git opens
// a pack file for every object read otherwise.
const maxOpenPacks = 8

func openGit(path string) (*git.Repository, error) {
	g, err := git.PlainOpen(path)
	if err != nil {
		return nil, fmt.Errorf("open git repository %s: %w", path, err)
	}
	// PlainOpen understands every layout (a .git file pointing elsewhere,
	// linked worktrees); the usual two are opened again keeping packs open.
	dot := filepath.Join(path, git.GitDirName)
	if info, err := os.Stat(dot); err != nil || !info.IsDir() {
		if _, err := g.Worktree(); !errors.Is(err, git.ErrIsBareRepository) {
			return g, nil
		}
		dot = path
	}
	st := filesystem.NewStorageWithOptions(osfs.New(dot), cache.NewObjectLRUDefault(),
		filesystem.Options{MaxOpenDescriptors: maxOpenPacks})
	var wt billy.Filesystem
	if dot != path {
		wt = osfs.New(path)
	}
	fast, err := git.Open(st, wt)
	if err != nil {
		return nil, fmt.Errorf("open git repository %s: %w", path, err)
	}
	return fast, nil
}

// Path is the directory the repository was opened from.
func (r *Repo) Path() string { return r.path }

// do runs fn with the repository locked. Another process (git gc, a fetch)
// may have replaced the packs go-git indexed when it opened the repository;
// when an object or file is missing, the repository is opened again and fn
// retried once.
func (r *Repo) do(fn func(g *git.Repository) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := fn(r.git)
	if err == nil || !(errors.Is(err, plumbing.ErrObjectNotFound) || errors.Is(err, fs.ErrNotExist)) {
		return err
	}
	g, openErr := openGit(r.path)
	if openErr != nil {
		return errors.Join(err, openErr)
	}
	closeGit(r.git)
	r.git = g
	return fn(g)
}

// Close releases the pack files the repository keeps open.
func (r *Repo) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return closeGit(r.git)
}

func closeGit(g *git.Repository) error {
	if c, ok := g.Storer.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Head returns the commit at the tip of refs/heads/<branch>. When the branch
// does not exist, the error lists the branches that do.
func (r *Repo) Head(branch string) (string, error) {
	var sha string
	err := r.do(func(g *git.Repository) error {
		ref, err := g.Reference(plumbing.NewBranchReferenceName(branch), true)
		if errors.Is(err, plumbing.ErrReferenceNotFound) {
			return r.missingBranch(g, branch)
		}
		if err != nil {
			return fmt.Errorf("resolve branch %q in %s: %w", branch, r.path, err)
		}
		sha = ref.Hash().String()
		return nil
	})
	return sha, err
}

func (r *Repo) missingBranch(g *git.Repository, branch string) error {
	var names []string
	if iter, err := g.Branches(); err == nil {
		_ = iter.ForEach(func(ref *plumbing.Reference) error {
			names = append(names, ref.Name().Short())
			return nil
		})
	}
	slices.Sort(names)
	if len(names) == 0 {
		return fmt.Errorf("branch %q not found in %s: the repository has no branches (no commit yet?)", branch, r.path)
	}
	return fmt.Errorf("branch %q not found in %s (branches: %s)", branch, r.path, strings.Join(names, ", "))
}

// DefaultBranch returns the branch HEAD points to, e.g. "main".
func (r *Repo) DefaultBranch() (string, error) {
	var name string
	err := r.do(func(g *git.Repository) error {
		ref, err := g.Storer.Reference(plumbing.HEAD)
		if err != nil {
			return fmt.Errorf("read HEAD of %s: %w", r.path, err)
		}
		if ref.Type() != plumbing.SymbolicReference || !ref.Target().IsBranch() {
			return fmt.Errorf("HEAD of %s does not name a branch (detached at %s)", r.path, ref.Hash())
		}
		name = ref.Target().Short()
		return nil
	})
	return name, err
}

// Log returns the commits after sinceExclusive up to and including to, oldest
// first, following first parents from to: the commits a branch went through
// when it moved from since to to. With since empty, equal to to, or not an
// ancestor of to (a force push), only to is returned (nothing when equal).
func (r *Repo) Log(sinceExclusive, to string) ([]string, error) {
	if sinceExclusive == to && to != "" {
		return nil, nil
	}
	var out []string
	err := r.do(func(g *git.Repository) error {
		var err error
		out, err = logFirstParent(g, sinceExclusive, to)
		return err
	})
	return out, err
}

func logFirstParent(g *git.Repository, since, to string) ([]string, error) {
	tip, err := commitObject(g, to)
	if err != nil {
		return nil, err
	}
	if since == "" {
		return []string{tip.Hash.String()}, nil
	}
	base, err := commitObject(g, since)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return []string{tip.Hash.String()}, nil
	}
	if err != nil {
		return nil, err
	}
	if base.Hash == tip.Hash {
		return nil, nil
	}

	var line []*object.Commit
	for c := tip; ; {
		if c.Hash == base.Hash {
			return hashesOldestFirst(line), nil
		}
		line = append(line, c)
		if c.NumParents() == 0 {
			break
		}
		if c, err = c.Parent(0); err != nil {
			return nil, fmt.Errorf("read first parent of %s: %w", line[len(line)-1].Hash, err)
		}
	}

	// since is not on the first-parent line. If it was merged in from the
	// side, the new commits are those of the line that since cannot reach.
	ok, err := base.IsAncestor(tip)
	if err != nil {
		return nil, fmt.Errorf("check whether %s is an ancestor of %s: %w", base.Hash, tip.Hash, err)
	}
	if !ok {
		return []string{tip.Hash.String()}, nil
	}
	for i, c := range line {
		reached, err := c.IsAncestor(base)
		if err != nil {
			return nil, fmt.Errorf("check whether %s is an ancestor of %s: %w", c.Hash, base.Hash, err)
		}
		if reached {
			return hashesOldestFirst(line[:i]), nil
		}
	}
	return hashesOldestFirst(line), nil
}

func hashesOldestFirst(newestFirst []*object.Commit) []string {
	out := make([]string, len(newestFirst))
	for i, c := range newestFirst {
		out[len(out)-1-i] = c.Hash.String()
	}
	return out
}

// IsAncestor reports whether commit a is an ancestor of commit b (a commit
// is not its own ancestor).
func (r *Repo) IsAncestor(a, b string) (bool, error) {
	var is bool
	err := r.do(func(g *git.Repository) error {
		ca, err := commitObject(g, a)
		if err != nil {
			return err
		}
		cb, err := commitObject(g, b)
		if err != nil {
			return err
		}
		if ca.Hash == cb.Hash {
			return nil
		}
		is, err = ca.IsAncestor(cb)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("is %s an ancestor of %s: %w", a, b, err)
	}
	return is, nil
}

// ResolveCommit returns the full hash of rev: a hash (full or abbreviated) or
// a reference such as a branch name.
func (r *Repo) ResolveCommit(rev string) (string, error) {
	var sha string
	err := r.do(func(g *git.Repository) error {
		c, err := commitObject(g, rev)
		if err != nil {
			return err
		}
		sha = c.Hash.String()
		return nil
	})
	return sha, err
}

// HasCommit reports whether the commit sha is in the repository.
func (r *Repo) HasCommit(sha string) bool {
	if !plumbing.IsHash(sha) {
		return false
	}
	err := r.do(func(g *git.Repository) error {
		_, err := g.CommitObject(plumbing.NewHash(sha))
		return err
	})
	return err == nil
}

func commitObject(g *git.Repository, rev string) (*object.Commit, error) {
	if rev == "" {
		return nil, errors.New("resolve commit: empty revision")
	}
	h := plumbing.NewHash(rev)
	if !plumbing.IsHash(rev) {
		resolved, err := g.ResolveRevision(plumbing.Revision(rev))
		if err != nil {
			return nil, fmt.Errorf("resolve commit %q: %w", rev, err)
		}
		h = *resolved
	}
	c, err := g.CommitObject(h)
	if err != nil {
		return nil, fmt.Errorf("read commit %s: %w", rev, err)
	}
	return c, nil
}
