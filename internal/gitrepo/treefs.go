package gitrepo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
)

// maxSymlinkHops bounds symlink resolution, as Linux does.
const maxSymlinkHops = 40

var (
	errSymlinkEscapes = errors.New("symlink points outside the repository tree")
	errSymlinkLoop    = errors.New("too many levels of symbolic links")
)

// FS returns the tree of commit sha as a read-only file system. The tree's
// directory structure is read once; file contents are read on Open. Symlinks
// are followed only while they stay inside the tree; submodules are left out.
// ModTime of every entry is the commit's committer time.
func (r *Repo) FS(sha string) (fs.FS, error) {
	t := &treeFS{repo: r, nodes: make(map[string]*node)}
	err := r.do(func(g *git.Repository) error {
		c, err := commitObject(g, sha)
		if err != nil {
			return err
		}
		t.modTime = c.Committer.When
		root := &node{name: ".", mode: filemode.Dir, hash: c.TreeHash}
		clear(t.nodes)
		t.nodes["."] = root
		return t.index(g, root, "")
	})
	if err != nil {
		return nil, fmt.Errorf("read tree of commit %s: %w", sha, err)
	}
	return t, nil
}

type treeFS struct {
	repo    *Repo
	modTime time.Time
	nodes   map[string]*node // by slash path; "." is the root
}

type node struct {
	name     string
	mode     filemode.FileMode
	hash     plumbing.Hash
	children []*node      // directories only, sorted by name
	target   string       // symlinks only
	size     atomic.Int64 // blob size + 1 once known; 0 while unknown
}

func (n *node) isDir() bool     { return n.mode == filemode.Dir }
func (n *node) isSymlink() bool { return n.mode == filemode.Symlink }

func (t *treeFS) index(g *git.Repository, dir *node, prefix string) error {
	tree, err := g.TreeObject(dir.hash)
	if err != nil {
		return fmt.Errorf("read tree %q: %w", dir.name, err)
	}
	for _, e := range tree.Entries {
		if e.Mode == filemode.Submodule {
			continue
		}
		n := &node{name: e.Name, mode: e.Mode, hash: e.Hash}
		p := prefix + e.Name
		t.nodes[p] = n
		dir.children = append(dir.children, n)
		switch {
		case n.isDir():
			if err := t.index(g, n, p+"/"); err != nil {
				return err
			}
		case n.isSymlink():
			b, err := readBlob(g, e.Hash)
			if err != nil {
				return fmt.Errorf("read symlink %s: %w", p, err)
			}
			n.target = string(b)
		}
	}
	// Git orders "a.b" before "a/" (as "a/" would sort); fs wants plain names.
	slices.SortFunc(dir.children, func(a, b *node) int { return strings.Compare(a.name, b.name) })
	return nil
}

func readBlob(g *git.Repository, h plumbing.Hash) ([]byte, error) {
	obj, err := g.Storer.EncodedObject(plumbing.BlobObject, h)
	if err != nil {
		return nil, err
	}
	return readObject(obj)
}

// readObject reads an object's content whole.
func readObject(obj plumbing.EncodedObject) ([]byte, error) {
	rd, err := obj.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	buf := make([]byte, 0, obj.Size())
	w := bytes.NewBuffer(buf)
	if _, err := io.Copy(w, rd); err != nil {
		return nil, err
	}
	return w.Bytes(), nil
}

// resolve finds the node for a valid path, following symlinks in every
// component except the last unless followLast.
func (t *treeFS) resolve(op, name string, followLast bool) (*node, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	p := name
	for hops := 0; ; hops++ {
		if hops > maxSymlinkHops {
			return nil, &fs.PathError{Op: op, Path: name, Err: errSymlinkLoop}
		}
		n, rest, at, err := t.walk(p, followLast)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		if n != nil {
			return n, nil
		}
		// at is a symlink to follow: replace it with its target.
		sym := t.nodes[at]
		if path.IsAbs(sym.target) {
			return nil, &fs.PathError{Op: op, Path: name, Err: errSymlinkEscapes}
		}
		p = path.Join(path.Dir(at), sym.target, rest)
		if !fs.ValidPath(p) {
			return nil, &fs.PathError{Op: op, Path: name, Err: errSymlinkEscapes}
		}
	}
}

// walk looks p up one component at a time. It returns the node, or, when a
// symlink must be followed, the symlink's path and what comes after it.
func (t *treeFS) walk(p string, followLast bool) (n *node, rest, symlinkAt string, err error) {
	if p == "." {
		return t.nodes["."], "", "", nil
	}
	for i := 0; ; {
		j := strings.IndexByte(p[i:], '/')
		last := j < 0
		end := len(p)
		if !last {
			end = i + j
		}
		cur, ok := t.nodes[p[:end]]
		if !ok {
			return nil, "", "", fs.ErrNotExist
		}
		if cur.isSymlink() && (!last || followLast) {
			if last {
				return nil, "", p, nil
			}
			return nil, p[end+1:], p[:end], nil
		}
		if last {
			return cur, "", "", nil
		}
		if !cur.isDir() {
			return nil, "", "", fs.ErrNotExist
		}
		i = end + 1
	}
}

func (t *treeFS) sizeOf(n *node) (int64, error) {
	if n.isDir() {
		return 0, nil
	}
	if n.isSymlink() {
		return int64(len(n.target)), nil
	}
	if s := n.size.Load(); s > 0 {
		return s - 1, nil
	}
	var size int64
	err := t.repo.do(func(g *git.Repository) error {
		var err error
		if sized, ok := g.Storer.(interface {
			EncodedObjectSize(plumbing.Hash) (int64, error)
		}); ok {
			size, err = sized.EncodedObjectSize(n.hash)
			return err
		}
		obj, err := g.Storer.EncodedObject(plumbing.BlobObject, n.hash)
		if err != nil {
			return err
		}
		size = obj.Size()
		return nil
	})
	if err != nil {
		return 0, err
	}
	n.size.Store(size + 1)
	return size, nil
}

func (t *treeFS) contents(n *node) ([]byte, error) {
	var b []byte
	err := t.repo.do(func(g *git.Repository) error {
		var err error
		b, err = readBlob(g, n.hash)
		return err
	})
	if err == nil {
		n.size.Store(int64(len(b)) + 1)
	}
	return b, err
}

// Open implements fs.FS.
func (t *treeFS) Open(name string) (fs.File, error) {
	n, err := t.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	info := &fileInfo{t: t, n: n, name: path.Base(name)}
	if n.isDir() {
		return &dirFile{info: info}, nil
	}
	b, err := t.contents(n)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &blobFile{info: info, Reader: bytes.NewReader(b)}, nil
}

// ReadFile implements fs.ReadFileFS.
func (t *treeFS) ReadFile(name string) ([]byte, error) {
	n, err := t.resolve("read", name, true)
	if err != nil {
		return nil, err
	}
	if n.isDir() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	b, err := t.contents(n)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return b, nil
}

// ReadDir implements fs.ReadDirFS.
func (t *treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := t.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !n.isDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	return t.entries(n.children), nil
}

func (t *treeFS) entries(nodes []*node) []fs.DirEntry {
	out := make([]fs.DirEntry, len(nodes))
	for i, c := range nodes {
		out[i] = &fileInfo{t: t, n: c, name: c.name}
	}
	return out
}

// Stat implements fs.StatFS.
func (t *treeFS) Stat(name string) (fs.FileInfo, error) {
	return t.stat("stat", name, true)
}

// Lstat implements fs.ReadLinkFS.
func (t *treeFS) Lstat(name string) (fs.FileInfo, error) {
	return t.stat("lstat", name, false)
}

func (t *treeFS) stat(op, name string, follow bool) (fs.FileInfo, error) {
	n, err := t.resolve(op, name, follow)
	if err != nil {
		return nil, err
	}
	info := &fileInfo{t: t, n: n, name: path.Base(name)}
	if _, err := t.sizeOf(n); err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return info, nil
}

// ReadLink implements fs.ReadLinkFS.
func (t *treeFS) ReadLink(name string) (string, error) {
	n, err := t.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	if !n.isSymlink() {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return n.target, nil
}

// fileInfo is both the fs.FileInfo and the fs.DirEntry of a node.
type fileInfo struct {
	t    *treeFS
	n    *node
	name string
}

func (fi *fileInfo) Name() string { return fi.name }

// Size is 0 when the blob's size cannot be read; Stat reports that error.
func (fi *fileInfo) Size() int64 {
	s, _ := fi.t.sizeOf(fi.n)
	return s
}

func (fi *fileInfo) Mode() fs.FileMode {
	switch fi.n.mode {
	case filemode.Dir:
		return fs.ModeDir | 0o755
	case filemode.Symlink:
		return fs.ModeSymlink | 0o777
	case filemode.Executable:
		return 0o755
	default:
		return 0o644
	}
}

func (fi *fileInfo) ModTime() time.Time         { return fi.t.modTime }
func (fi *fileInfo) IsDir() bool                { return fi.n.isDir() }
func (fi *fileInfo) Sys() any                   { return nil }
func (fi *fileInfo) Type() fs.FileMode          { return fi.Mode().Type() }
func (fi *fileInfo) Info() (fs.FileInfo, error) { return fi, nil }
func (fi *fileInfo) String() string             { return fs.FormatDirEntry(fi) }

type blobFile struct {
	info *fileInfo
	*bytes.Reader
}

func (f *blobFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *blobFile) Close() error               { return nil }

type dirFile struct {
	info   *fileInfo
	offset int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Close() error               { return nil }

func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}

// ReadDir implements fs.ReadDirFile.
func (d *dirFile) ReadDir(count int) ([]fs.DirEntry, error) {
	children := d.info.n.children[d.offset:]
	if count > 0 && len(children) == 0 {
		return nil, io.EOF
	}
	if count > 0 && len(children) > count {
		children = children[:count]
	}
	d.offset += len(children)
	return d.info.t.entries(children), nil
}
