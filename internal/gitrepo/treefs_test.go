package gitrepo_test

import (
	"errors"
	"io"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/gitrepo/gitrepotest"
)

func TestFSAtTwoCommits(t *testing.T) {
	src := gitrepotest.New(t)
	src.Write("pvn/app.pvn.yaml", "name: shop\n")
	src.Write("pvn/services/web/service.pvn.yaml", "name: web\n")
	src.WriteExec("scripts/apply.sh", "#!/bin/sh\necho apply\n")
	src.Write("README.md", "hello\n")
	c1 := src.Commit("first")

	src.Write("pvn/services/web/service.pvn.yaml", "name: web\nreplicas: 2\n")
	src.Write("pvn/services/api/service.pvn.yaml", "name: api\n")
	src.Write("scripts/apply.sh", "#!/bin/sh\necho no longer executable\n")
	src.Remove("README.md")
	c2 := src.Commit("second")

	repo := src.Open()
	fs1, err := repo.FS(c1)
	require.NoError(t, err)
	fs2, err := repo.FS(c2)
	require.NoError(t, err)

	require.NoError(t, fstest.TestFS(fs1, "pvn/app.pvn.yaml", "pvn/services/web/service.pvn.yaml", "scripts/apply.sh", "README.md"))
	require.NoError(t, fstest.TestFS(fs2, "pvn/services/api/service.pvn.yaml", "scripts/apply.sh"))

	tests := map[string]struct {
		fsys    fs.FS
		path    string
		content string
		mode    fs.FileMode
	}{
		"nested file at c1":       {fsys: fs1, path: "pvn/services/web/service.pvn.yaml", content: "name: web\n", mode: 0o644},
		"nested file at c2":       {fsys: fs2, path: "pvn/services/web/service.pvn.yaml", content: "name: web\nreplicas: 2\n", mode: 0o644},
		"executable at c1":        {fsys: fs1, path: "scripts/apply.sh", content: "#!/bin/sh\necho apply\n", mode: 0o755},
		"no longer exec at c2":    {fsys: fs2, path: "scripts/apply.sh", content: "#!/bin/sh\necho no longer executable\n", mode: 0o644},
		"file added in c2":        {fsys: fs2, path: "pvn/services/api/service.pvn.yaml", content: "name: api\n", mode: 0o644},
		"file removed in c2 (c1)": {fsys: fs1, path: "README.md", content: "hello\n", mode: 0o644},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := fs.ReadFile(tc.fsys, tc.path)
			require.NoError(t, err)
			assert.Equal(t, tc.content, string(b))
			info, err := fs.Stat(tc.fsys, tc.path)
			require.NoError(t, err)
			assert.Equal(t, tc.mode, info.Mode())
			assert.Equal(t, int64(len(tc.content)), info.Size())
		})
	}

	_, err = fs.ReadFile(fs2, "README.md")
	assert.ErrorIs(t, err, fs.ErrNotExist)

	var walked []string
	require.NoError(t, fs.WalkDir(fs2, ".", func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		if !d.IsDir() {
			walked = append(walked, p)
		}
		return nil
	}))
	assert.Equal(t, []string{
		"pvn/app.pvn.yaml",
		"pvn/services/api/service.pvn.yaml",
		"pvn/services/web/service.pvn.yaml",
		"scripts/apply.sh",
	}, walked)

	matches, err := fs.Glob(fs1, "pvn/*.pvn.yaml")
	require.NoError(t, err)
	assert.Equal(t, []string{"pvn/app.pvn.yaml"}, matches)
}

func TestFSDirectoryOrder(t *testing.T) {
	// Git sorts "a.b" before the directory "a" (compared as "a/"); fs.ReadDir
	// must sort by name.
	src := gitrepotest.New(t)
	src.Write("a.b", "x")
	src.Write("a/c", "y")
	src.Write("a-", "z")
	c := src.Commit("order")
	fsys, err := src.Open().FS(c)
	require.NoError(t, err)

	entries, err := fs.ReadDir(fsys, ".")
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{"a", "a-", "a.b"}, names)
	require.NoError(t, fstest.TestFS(fsys, "a.b", "a/c", "a-"))
}

func TestFSSymlinks(t *testing.T) {
	src := gitrepotest.New(t)
	src.Write("real/config.yaml", "x: 1\n")
	src.Symlink("link-file", "real/config.yaml")
	src.Symlink("link-dir", "real")
	src.Symlink("nested/up", "../real/config.yaml")
	src.Symlink("escape-rel", "../../etc/passwd")
	src.Symlink("escape-abs", "/etc/passwd")
	src.Symlink("loop-a", "loop-b")
	src.Symlink("loop-b", "loop-a")
	src.Symlink("dangling", "missing")
	c := src.Commit("links")
	fsys, err := src.Open().FS(c)
	require.NoError(t, err)

	for _, p := range []string{"link-file", "link-dir/config.yaml", "nested/up"} {
		b, err := fs.ReadFile(fsys, p)
		require.NoError(t, err, p)
		assert.Equal(t, "x: 1\n", string(b), p)
	}

	tests := map[string]error{
		"escape-rel": errSymlinkEscapes,
		"escape-abs": errSymlinkEscapes,
		"loop-a":     errSymlinkLoop,
		"dangling":   fs.ErrNotExist,
	}
	for p, want := range tests {
		t.Run(p, func(t *testing.T) {
			_, err := fs.ReadFile(fsys, p)
			require.Error(t, err)
			if want == fs.ErrNotExist {
				assert.ErrorIs(t, err, fs.ErrNotExist)
			} else {
				assert.Contains(t, err.Error(), want.Error())
			}
			info, err := fs.Lstat(fsys, p)
			require.NoError(t, err)
			assert.Equal(t, fs.ModeSymlink, info.Mode().Type())
		})
	}

	target, err := fs.ReadLink(fsys, "escape-abs")
	require.NoError(t, err)
	assert.Equal(t, "/etc/passwd", target)

	info, err := fs.Stat(fsys, "link-dir")
	require.NoError(t, err)
	assert.True(t, info.IsDir())

	var walked []string
	require.NoError(t, fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		walked = append(walked, p)
		return nil
	}))
	assert.NotContains(t, walked, "link-dir/config.yaml", "WalkDir does not descend into symlinks")
}

var (
	errSymlinkEscapes = errors.New("symlink points outside the repository tree")
	errSymlinkLoop    = errors.New("too many levels of symbolic links")
)

func TestFSSkipsSubmodules(t *testing.T) {
	src := gitrepotest.New(t)
	src.Write("a.txt", "a")
	c1 := src.Commit("first")

	g, err := git.PlainOpen(src.Dir)
	require.NoError(t, err)
	parent, err := g.CommitObject(plumbing.NewHash(c1))
	require.NoError(t, err)
	tree, err := parent.Tree()
	require.NoError(t, err)
	entries := append([]object.TreeEntry{}, tree.Entries...)
	entries = append(entries, object.TreeEntry{Name: "vendor-sub", Mode: filemode.Submodule, Hash: plumbing.NewHash(c1)})
	treeObj := g.Storer.NewEncodedObject()
	require.NoError(t, (&object.Tree{Entries: entries}).Encode(treeObj))
	treeHash, err := g.Storer.SetEncodedObject(treeObj)
	require.NoError(t, err)
	commit := &object.Commit{Author: parent.Author, Committer: parent.Committer, Message: "sub", TreeHash: treeHash, ParentHashes: []plumbing.Hash{parent.Hash}}
	commitObj := g.Storer.NewEncodedObject()
	require.NoError(t, commit.Encode(commitObj))
	c2, err := g.Storer.SetEncodedObject(commitObj)
	require.NoError(t, err)

	fsys, err := src.Open().FS(c2.String())
	require.NoError(t, err)
	entriesRead, err := fs.ReadDir(fsys, ".")
	require.NoError(t, err)
	require.Len(t, entriesRead, 1)
	assert.Equal(t, "a.txt", entriesRead[0].Name())
	_, err = fsys.Open("vendor-sub")
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestFSErrors(t *testing.T) {
	src := gitrepotest.New(t)
	src.Write("dir/file", "x")
	c := src.Commit("c")
	repo := src.Open()

	_, err := repo.FS("0123456789012345678901234567890123456789")
	assert.ErrorContains(t, err, "read tree of commit 0123456789012345678901234567890123456789")

	fsys, err := repo.FS(c)
	require.NoError(t, err)
	tests := map[string]struct {
		run  func() error
		want string
	}{
		"invalid path":       {run: func() error { _, err := fsys.Open("/dir"); return err }, want: "invalid argument"},
		"dot-dot":            {run: func() error { _, err := fsys.Open("../x"); return err }, want: "invalid argument"},
		"file as directory":  {run: func() error { _, err := fsys.Open("dir/file/x"); return err }, want: "file does not exist"},
		"read a directory":   {run: func() error { _, err := fs.ReadFile(fsys, "dir"); return err }, want: "is a directory"},
		"readdir of a file":  {run: func() error { _, err := fs.ReadDir(fsys, "dir/file"); return err }, want: "not a directory"},
		"readlink of a file": {run: func() error { _, err := fs.ReadLink(fsys, "dir/file"); return err }, want: "invalid argument"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			assert.ErrorContains(t, tc.run(), tc.want)
		})
	}
}

func TestFSConcurrentReads(t *testing.T) {
	src := gitrepotest.New(t)
	for i := range 50 {
		src.Write("d/"+strings.Repeat("x", i%7+1)+string(rune('a'+i%26))+".txt", strings.Repeat("y", i))
	}
	c := src.Commit("many")
	repo := src.Open()
	fsys, err := repo.FS(c)
	require.NoError(t, err)

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				f, err := fsys.Open(p)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = io.ReadAll(f)
				return err
			})
			assert.NoError(t, err)
			_, err = repo.FS(c)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
}
