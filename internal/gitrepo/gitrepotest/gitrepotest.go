// Package gitrepotest makes real Git repositories in a test's temporary
// directory: write files, commit, and hand the directory to the code under
// test.
package gitrepotest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/pvnbot/pvnbot/internal/gitrepo"
)

// Repo is a repository with a worktree on branch main. Its methods fail the
// test on error.
type Repo struct {
	// Dir is the worktree's directory.
	Dir string

	t    testing.TB
	git  *git.Repository
	when time.Time
}

// New initialises an empty repository with branch main in a new temporary
// directory.
func New(t testing.TB) *Repo {
	t.Helper()
	dir := t.TempDir()
	g, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.Main},
	})
	if err != nil {
		t.Fatalf("gitrepotest: init %s: %v", dir, err)
	}
	return &Repo{Dir: dir, t: t, git: g, when: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)}
}

// Write writes a regular file (slash-separated path), creating directories.
func (r *Repo) Write(path, content string) { r.write(path, content, 0o644) }

// WriteExec writes an executable file.
func (r *Repo) WriteExec(path, content string) { r.write(path, content, 0o755) }

func (r *Repo) write(path, content string, perm os.FileMode) {
	r.t.Helper()
	full := r.path(path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		r.t.Fatalf("gitrepotest: %v", err)
	}
	_ = os.Remove(full)
	if err := os.WriteFile(full, []byte(content), perm); err != nil {
		r.t.Fatalf("gitrepotest: %v", err)
	}
	if err := os.Chmod(full, perm); err != nil {
		r.t.Fatalf("gitrepotest: %v", err)
	}
}

// Symlink makes path a symbolic link to target.
func (r *Repo) Symlink(path, target string) {
	r.t.Helper()
	full := r.path(path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		r.t.Fatalf("gitrepotest: %v", err)
	}
	_ = os.Remove(full)
	if err := os.Symlink(target, full); err != nil {
		r.t.Fatalf("gitrepotest: %v", err)
	}
}

// Remove deletes a file or a whole directory.
func (r *Repo) Remove(path string) {
	r.t.Helper()
	if err := os.RemoveAll(r.path(path)); err != nil {
		r.t.Fatalf("gitrepotest: %v", err)
	}
}

// Commit stages every change (like git add -A) and commits it on the current
// branch, returning the commit's hash. Commit times start at 2025-01-01 12:00
// UTC and advance a minute per commit, so hashes are reproducible.
func (r *Repo) Commit(msg string) string {
	r.t.Helper()
	wt, err := r.git.Worktree()
	if err != nil {
		r.t.Fatalf("gitrepotest: %v", err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		r.t.Fatalf("gitrepotest: stage: %v", err)
	}
	r.when = r.when.Add(time.Minute)
	sig := &object.Signature{Name: "Test", Email: "test@example.com", When: r.when}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: sig, AllowEmptyCommits: true})
	if err != nil {
		r.t.Fatalf("gitrepotest: commit: %v", err)
	}
	return h.String()
}

// Open opens the repository with gitrepo.
func (r *Repo) Open() *gitrepo.Repo {
	r.t.Helper()
	repo, err := gitrepo.Open(r.Dir)
	if err != nil {
		r.t.Fatalf("gitrepotest: %v", err)
	}
	return repo
}

func (r *Repo) path(p string) string {
	return filepath.Join(r.Dir, filepath.FromSlash(p))
}
