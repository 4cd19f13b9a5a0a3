// Package gitrepotest makes real Git repositories in a test's temporary
// directory: write files, commit, and hand the directory to the code under
// test.
package gitrepotest

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/pvnbot/pvnbot/internal/gitrepo"
)

// Repo is a repository with a worktree on branch main. Files are written to
// the worktree and committed from it. Its methods fail the test on error.
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

// Commit records the directory's files as they are (like git add -A; git
// commit) on the branch HEAD names, returning the commit's hash. Modes come
// from the disk: executable bits and symlinks are kept. Commit times start at 2025-01-01 12:00 UTC and advance a minute
// per commit, so hashes are reproducible.
func (r *Repo) Commit(msg string) string {
	r.t.Helper()
	tree, err := r.storeTree(r.Dir)
	if err != nil {
		r.t.Fatalf("gitrepotest: commit: %v", err)
	}
	head, err := r.git.Storer.Reference(plumbing.HEAD)
	if err != nil {
		r.t.Fatalf("gitrepotest: read HEAD: %v", err)
	}
	branch := head.Target()
	var parents []plumbing.Hash
	if tip, err := r.git.Storer.Reference(branch); err == nil {
		parents = append(parents, tip.Hash())
	}
	r.when = r.when.Add(time.Minute)
	sig := object.Signature{Name: "Test", Email: "test@example.com", When: r.when}
	c := &object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: tree, ParentHashes: parents}
	h, err := r.store(c)
	if err != nil {
		r.t.Fatalf("gitrepotest: commit: %v", err)
	}
	if err := r.git.Storer.SetReference(plumbing.NewHashReference(branch, h)); err != nil {
		r.t.Fatalf("gitrepotest: update %s: %v", branch, err)
	}
	// Match the index to the commit, so that git status is clean and the
	// git CLI can carry on from here.
	wt, err := r.git.Worktree()
	if err == nil {
		err = wt.Reset(&git.ResetOptions{Mode: git.MixedReset, Commit: h})
	}
	if err != nil {
		r.t.Fatalf("gitrepotest: write index: %v", err)
	}
	return h.String()
}

func (r *Repo) storeTree(dir string) (plumbing.Hash, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	tree := &object.Tree{}
	for _, e := range entries {
		if dir == r.Dir && e.Name() == ".git" {
			continue
		}
		full := filepath.Join(dir, e.Name())
		var (
			h    plumbing.Hash
			mode filemode.FileMode
			err  error
		)
		switch {
		case e.IsDir():
			mode = filemode.Dir
			h, err = r.storeTree(full)
			if err == nil && h == emptyTree {
				continue
			}
		case e.Type()&fs.ModeSymlink != 0:
			mode = filemode.Symlink
			var target string
			if target, err = os.Readlink(full); err == nil {
				h, err = r.storeBlob([]byte(target))
			}
		default:
			mode = filemode.Regular
			var info fs.FileInfo
			if info, err = e.Info(); err == nil && info.Mode()&0o111 != 0 {
				mode = filemode.Executable
			}
			var b []byte
			if b, err = os.ReadFile(full); err == nil {
				h, err = r.storeBlob(b)
			}
		}
		if err != nil {
			return plumbing.ZeroHash, err
		}
		tree.Entries = append(tree.Entries, object.TreeEntry{Name: e.Name(), Mode: mode, Hash: h})
	}
	// Git sorts a directory "a" as "a/".
	sort.Slice(tree.Entries, func(i, j int) bool { return sortKey(tree.Entries[i]) < sortKey(tree.Entries[j]) })
	return r.store(tree)
}

var emptyTree = plumbing.NewHash("4b825dc642cb6eb9a060e54bf8d69288fbee4904")

func sortKey(e object.TreeEntry) string {
	if e.Mode == filemode.Dir {
		return e.Name + "/"
	}
	return e.Name
}

func (r *Repo) storeBlob(b []byte) (plumbing.Hash, error) {
	obj := r.git.Storer.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(b); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return r.git.Storer.SetEncodedObject(obj)
}

func (r *Repo) store(o interface {
	Encode(plumbing.EncodedObject) error
}) (plumbing.Hash, error) {
	obj := r.git.Storer.NewEncodedObject()
	if err := o.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return r.git.Storer.SetEncodedObject(obj)
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

// Reset moves the branch HEAD names back to commit sha, its files too (git
// reset --hard): the commits after it stay in the repository, on no
// branch, as a pull request's head does.
func (r *Repo) Reset(sha string) {
	r.t.Helper()
	wt, err := r.git.Worktree()
	if err == nil {
		err = wt.Reset(&git.ResetOptions{Mode: git.HardReset, Commit: plumbing.NewHash(sha)})
	}
	if err != nil {
		r.t.Fatalf("gitrepotest: reset to %s: %v", sha, err)
	}
}
