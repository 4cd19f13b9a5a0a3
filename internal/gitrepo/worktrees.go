package gitrepo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
)

// DefaultKeepIdle is how many released checkouts Worktrees keeps by default,
// so that the next job at the same commit starts at once.
const DefaultKeepIdle = 2

const (
	tmpPrefix    = ".tmp-"
	removePrefix = ".remove-"
)

// Worktrees gives jobs a directory holding the files of a commit. A checkout
// is shared by every job at the same commit and removed once the last one is
// released and newer ones have been released after it. Checkouts are written
// aside and renamed into place: a directory named after a commit is always
// complete, and leftovers of a crash are removed on first use.
//
// Files keep their executable bit; symlinks are written as Git writes them,
// wherever they point. Submodules are left out. Jobs may write into their
// checkout; other jobs at the same commit see it.
type Worktrees struct {
	repo *Repo
	dir  string
	keep int

	cleanup sync.Once

	mu        sync.Mutex
	checkouts map[string]*checkout
	idle      []string // released checkouts kept, least recently released first
}

type checkout struct {
	refs  int
	ready chan struct{} // closed once written (or failed)
	err   error
}

// WorktreesOption tunes Worktrees.
type WorktreesOption func(*Worktrees)

// KeepIdle sets how many released checkouts are kept (default
// DefaultKeepIdle; 0 removes each checkout as soon as it is released).
func KeepIdle(n int) WorktreesOption {
	return func(w *Worktrees) { w.keep = max(n, 0) }
}

// NewWorktrees returns Worktrees writing checkouts of repo's commits into
// dir, one subdirectory per commit (e.g. <stateDir>/worktrees/<sha>).
func NewWorktrees(repo *Repo, dir string, opts ...WorktreesOption) *Worktrees {
	w := &Worktrees{repo: repo, dir: dir, keep: DefaultKeepIdle, checkouts: make(map[string]*checkout)}
	for _, o := range opts {
		o(w)
	}
	return w
}

// Acquire returns the directory holding the files of commit (a hash or any
// revision), writing it first if needed. The caller must call release when
// done with the directory; release may be called more than once. A full hash
// whose checkout is at hand is not looked up in the repository again.
func (w *Worktrees) Acquire(ctx context.Context, commit string) (dir string, release func(), err error) {
	w.cleanup.Do(w.adoptLeftovers)
	sha := commit
	if !w.known(commit) {
		if sha, err = w.repo.ResolveCommit(commit); err != nil {
			return "", nil, fmt.Errorf("check out %s: %w", commit, err)
		}
	}
	dir = filepath.Join(w.dir, sha)

	for {
		w.mu.Lock()
		c, ok := w.checkouts[sha]
		if !ok {
			c = &checkout{refs: 1, ready: make(chan struct{})}
			w.checkouts[sha] = c
			w.mu.Unlock()
			err := w.write(ctx, sha, dir)
			w.mu.Lock()
			c.err = err
			if err != nil {
				delete(w.checkouts, sha)
			}
			close(c.ready)
			w.mu.Unlock()
			if err != nil {
				return "", nil, fmt.Errorf("check out %s: %w", sha, err)
			}
			return dir, w.releaser(sha, c), nil
		}
		c.refs++
		w.idle = slices.DeleteFunc(w.idle, func(s string) bool { return s == sha })
		w.mu.Unlock()

		select {
		case <-c.ready:
		case <-ctx.Done():
			w.releaser(sha, c)()
			return "", nil, fmt.Errorf("check out %s: %w", sha, ctx.Err())
		}
		if c.err == nil {
			return dir, w.releaser(sha, c), nil
		}
		if isContextErr(c.err) && ctx.Err() == nil {
			continue // the caller that was writing it gave up; take over
		}
		return "", nil, fmt.Errorf("check out %s: %w", sha, c.err)
	}
}

// Prepare writes the checkout of commit in the background, unless it is
// there already, and keeps it as a released one: the first job at that
// commit then finds it ready, or waits for less. Errors are left to that
// job's Acquire.
func (w *Worktrees) Prepare(ctx context.Context, commit string) {
	go func() {
		if _, release, err := w.Acquire(ctx, commit); err == nil {
			release()
		}
	}()
}

// known reports whether commit is the full hash of a checkout being
// written, in use or kept: it was resolved when that checkout was made.
func (w *Worktrees) known(commit string) bool {
	if !isFullHash(commit) {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.checkouts[commit]
	return ok
}

// isFullHash reports whether s is a commit hash as Git writes it in full:
// 40 lower-case hexadecimal digits.
func isFullHash(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func (w *Worktrees) releaser(sha string, c *checkout) func() {
	var once sync.Once
	return func() { once.Do(func() { w.release(sha, c) }) }
}

func (w *Worktrees) release(sha string, c *checkout) {
	w.mu.Lock()
	if w.checkouts[sha] != c {
		w.mu.Unlock()
		return
	}
	c.refs--
	if c.refs > 0 {
		w.mu.Unlock()
		return
	}
	w.idle = append(w.idle, sha)
	trash := w.evictLocked()
	w.mu.Unlock()
	for _, p := range trash {
		_ = os.RemoveAll(p) // a leftover is removed on the next start
	}
}

// evictLocked forgets idle checkouts beyond the number kept and renames their
// directories out of the way, returning the paths to remove. Renaming under
// the lock means a new Acquire of the same commit never sees a directory
// being removed.
func (w *Worktrees) evictLocked() []string {
	var trash []string
	for len(w.idle) > w.keep {
		sha := w.idle[0]
		w.idle = w.idle[1:]
		delete(w.checkouts, sha)
		aside := filepath.Join(w.dir, removePrefix+sha)
		_ = os.RemoveAll(aside)
		if err := os.Rename(filepath.Join(w.dir, sha), aside); err == nil {
			trash = append(trash, aside)
		}
	}
	return trash
}

// adoptLeftovers runs before the first checkout: it removes what a crash
// left half-written or half-removed, and treats complete checkouts from a
// previous run as idle ones, most recently modified kept.
func (w *Worktrees) adoptLeftovers() {
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return
	}
	type found struct {
		sha  string
		when int64
	}
	var complete []found
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, tmpPrefix), strings.HasPrefix(name, removePrefix):
			_ = os.RemoveAll(filepath.Join(w.dir, name))
		case e.IsDir() && plumbing.IsHash(name):
			if info, err := e.Info(); err == nil {
				complete = append(complete, found{sha: name, when: info.ModTime().UnixNano()})
			}
		}
	}
	slices.SortFunc(complete, func(a, b found) int { return cmp.Compare(a.when, b.when) })
	w.mu.Lock()
	for _, f := range complete {
		c := &checkout{ready: make(chan struct{})}
		close(c.ready)
		w.checkouts[f.sha] = c
		w.idle = append(w.idle, f.sha)
	}
	trash := w.evictLocked()
	w.mu.Unlock()
	for _, p := range trash {
		_ = os.RemoveAll(p)
	}
}

// write materialises the tree of sha into a temporary directory and renames
// it to dir.
func (w *Worktrees) write(ctx context.Context, sha, dir string) error {
	fsys, err := w.repo.FS(sha)
	if err != nil {
		return err
	}
	tree := fsys.(*treeFS)
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return fmt.Errorf("create worktrees directory: %w", err)
	}
	tmp, err := os.MkdirTemp(w.dir, tmpPrefix+sha[:12]+"-")
	if err != nil {
		return fmt.Errorf("create checkout directory: %w", err)
	}
	if err := w.writeDir(ctx, tree.nodes["."], tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("create checkout directory: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		_ = os.RemoveAll(tmp)
		if info, statErr := os.Stat(dir); statErr == nil && info.IsDir() {
			return nil // complete, as only renames create it
		}
		return fmt.Errorf("move checkout into place: %w", err)
	}
	return nil
}

func (w *Worktrees) writeDir(ctx context.Context, dir *node, path string) error {
	for _, n := range dir.children {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := filepath.Join(path, n.name)
		switch {
		case n.isDir():
			if err := os.Mkdir(p, 0o755); err != nil {
				return err
			}
			if err := w.writeDir(ctx, n, p); err != nil {
				return err
			}
		case n.isSymlink():
			if err := os.Symlink(n.target, p); err != nil {
				return err
			}
		default:
			perm := os.FileMode(0o644)
			if n.mode == filemode.Executable {
				perm = 0o755
			}
			if err := w.writeFile(n, p, perm); err != nil {
				return fmt.Errorf("write %s: %w", p, err)
			}
		}
	}
	return nil
}

// smallBlob is the size up to which a file's content is read whole under
// the repository's lock and written after it is released, so that other
// reads of the repository (a commit's configs being loaded) need not wait
// for the file system; larger files are streamed under the lock.
const smallBlob = 1 << 20

func (w *Worktrees) writeFile(n *node, path string, perm os.FileMode) error {
	var data []byte
	streamed := false
	err := w.repo.do(func(g *git.Repository) error {
		obj, err := g.Storer.EncodedObject(plumbing.BlobObject, n.hash)
		if err != nil {
			return err
		}
		if obj.Size() > smallBlob {
			streamed = true
			return writeBlob(obj, path, perm)
		}
		data, err = readObject(obj)
		return err
	})
	if err != nil || streamed {
		return err
	}
	return os.WriteFile(path, data, perm)
}

func writeBlob(obj plumbing.EncodedObject, path string, perm os.FileMode) error {
	rd, err := obj.Reader()
	if err != nil {
		return err
	}
	defer rd.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rd); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
