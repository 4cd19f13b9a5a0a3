package gitrepo_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/gitrepo"
	"github.com/pvnbot/pvnbot/internal/gitrepo/gitrepotest"
)

// threeCommits makes commits whose version.txt says v1, v2, v3.
func threeCommits(t *testing.T) (*gitrepo.Repo, []string) {
	t.Helper()
	src := gitrepotest.New(t)
	src.WriteExec("bin/apply", "#!/bin/sh\ncat version.txt\n")
	src.Write("deep/a/b/c/leaf.txt", "leaf\n")
	src.Symlink("current", "deep/a/b/c/leaf.txt")
	var shas []string
	for i := 1; i <= 3; i++ {
		src.Write("version.txt", fmt.Sprintf("v%d\n", i))
		shas = append(shas, src.Commit(fmt.Sprintf("v%d", i)))
	}
	return src.Open(), shas
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

func TestWorktreesAcquireWritesTheTree(t *testing.T) {
	repo, shas := threeCommits(t)
	w := gitrepo.NewWorktrees(repo, filepath.Join(t.TempDir(), "worktrees"))

	dir, release, err := w.Acquire(t.Context(), shas[1])
	require.NoError(t, err)
	defer release()
	assert.Equal(t, shas[1], filepath.Base(dir))
	assert.Equal(t, "v2\n", readString(t, filepath.Join(dir, "version.txt")))
	assert.Equal(t, "leaf\n", readString(t, filepath.Join(dir, "deep/a/b/c/leaf.txt")))
	target, err := os.Readlink(filepath.Join(dir, "current"))
	require.NoError(t, err)
	assert.Equal(t, "deep/a/b/c/leaf.txt", target)

	info, err := os.Stat(filepath.Join(dir, "bin/apply"))
	require.NoError(t, err)
	assert.NotZero(t, info.Mode().Perm()&0o100, "owner may execute")
	info, err = os.Stat(filepath.Join(dir, "version.txt"))
	require.NoError(t, err)
	assert.Zero(t, info.Mode().Perm()&0o111, "not executable")

	cmd := exec.Command("./bin/apply")
	cmd.Dir = dir
	out, err := cmd.Output()
	require.NoError(t, err, "the executable bit survives the checkout")
	assert.Equal(t, "v2\n", string(out))
}

func TestWorktreesAcquireByRevision(t *testing.T) {
	repo, shas := threeCommits(t)
	w := gitrepo.NewWorktrees(repo, t.TempDir())
	dir, release, err := w.Acquire(t.Context(), "main")
	require.NoError(t, err)
	defer release()
	assert.Equal(t, shas[2], filepath.Base(dir))

	_, _, err = w.Acquire(t.Context(), "0123456789012345678901234567890123456789")
	assert.ErrorContains(t, err, "check out 0123456789012345678901234567890123456789")
}

func TestWorktreesKnownCommitIsNotResolvedAgain(t *testing.T) {
	src := gitrepotest.New(t)
	src.Write("version.txt", "v1\n")
	sha := src.Commit("v1")
	w := gitrepo.NewWorktrees(src.Open(), t.TempDir())
	dir, release, err := w.Acquire(t.Context(), sha)
	require.NoError(t, err)
	defer release()

	require.NoError(t, os.RemoveAll(filepath.Join(src.Dir, ".git", "objects")))
	again, releaseAgain, err := w.Acquire(t.Context(), sha)
	require.NoError(t, err, "the checkout of a full hash is handed out without reading the repository")
	defer releaseAgain()
	assert.Equal(t, dir, again)

	for _, rev := range []string{"main", sha[:12]} {
		_, _, err = w.Acquire(t.Context(), rev)
		assert.ErrorContains(t, err, "check out "+rev, "a revision that is not a full hash is resolved")
	}
}

func TestWorktreesRefcount(t *testing.T) {
	repo, shas := threeCommits(t)
	root := t.TempDir()
	w := gitrepo.NewWorktrees(repo, root, gitrepo.KeepIdle(0))

	dir1, release1, err := w.Acquire(t.Context(), shas[0])
	require.NoError(t, err)
	dir2, release2, err := w.Acquire(t.Context(), shas[0])
	require.NoError(t, err)
	assert.Equal(t, dir1, dir2)

	release1()
	release1() // twice: no effect
	assert.DirExists(t, dir1, "still in use by the second holder")
	release2()
	assert.NoDirExists(t, dir1)
	assert.Empty(t, listDir(t, root))

	dir3, release3, err := w.Acquire(t.Context(), shas[0])
	require.NoError(t, err, "a removed checkout is written again")
	assert.Equal(t, "v1\n", readString(t, filepath.Join(dir3, "version.txt")))
	release3()
}

func TestWorktreesKeepsRecentIdle(t *testing.T) {
	repo, shas := threeCommits(t)
	root := t.TempDir()
	w := gitrepo.NewWorktrees(repo, root) // keeps 2

	for _, sha := range shas {
		dir, release, err := w.Acquire(t.Context(), sha)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "marker"), nil, 0o644))
		release()
	}
	assert.Equal(t, sortedStrings([]string{shas[1], shas[2]}), sortedStrings(listDir(t, root)), "the oldest released is removed")

	dir, release, err := w.Acquire(t.Context(), shas[1])
	require.NoError(t, err)
	assert.FileExists(t, filepath.Join(dir, "marker"), "an idle checkout is reused, not rewritten")
	release()
}

func sortedStrings(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

func TestWorktreesCrashLeftovers(t *testing.T) {
	repo, shas := threeCommits(t)
	root := t.TempDir()

	// A previous run kept three complete checkouts, crashed while writing
	// one and while removing another.
	prev := gitrepo.NewWorktrees(repo, root, gitrepo.KeepIdle(3))
	for i, sha := range shas {
		dir, release, err := prev.Acquire(t.Context(), sha)
		require.NoError(t, err)
		release()
		when := time.Date(2025, 1, 1, 0, 0, i, 0, time.UTC)
		require.NoError(t, os.Chtimes(dir, when, when))
	}
	halfWritten := filepath.Join(root, ".tmp-"+shas[0][:12]+"-12345")
	require.NoError(t, os.MkdirAll(filepath.Join(halfWritten, "deep"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(halfWritten, "version.txt"), []byte("v"), 0o644))
	halfRemoved := filepath.Join(root, ".remove-"+shas[1])
	require.NoError(t, os.MkdirAll(halfRemoved, 0o755))

	w := gitrepo.NewWorktrees(repo, root) // keeps 2
	dir, release, err := w.Acquire(t.Context(), shas[2])
	require.NoError(t, err)
	defer release()
	assert.Equal(t, "v3\n", readString(t, filepath.Join(dir, "version.txt")))
	assert.Equal(t, sortedStrings([]string{shas[1], shas[2]}), listDirSorted(t, root),
		"leftovers removed, the oldest complete checkout dropped")
}

func TestWorktreesHalfWrittenIsRedone(t *testing.T) {
	repo, shas := threeCommits(t)
	root := t.TempDir()
	// The crash happened between writing and renaming: only the temporary
	// directory exists, so the checkout is written again in full.
	require.NoError(t, os.MkdirAll(filepath.Join(root, ".tmp-"+shas[0][:12]+"-999"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, ".tmp-"+shas[0][:12]+"-999", "version.txt"), []byte("v"), 0o644))

	w := gitrepo.NewWorktrees(repo, root)
	dir, release, err := w.Acquire(t.Context(), shas[0])
	require.NoError(t, err)
	defer release()
	assert.Equal(t, "v1\n", readString(t, filepath.Join(dir, "version.txt")))
	assert.Equal(t, "leaf\n", readString(t, filepath.Join(dir, "deep/a/b/c/leaf.txt")))
	assert.Equal(t, []string{shas[0]}, listDirSorted(t, root))
}

func listDirSorted(t *testing.T, dir string) []string { return sortedStrings(listDir(t, dir)) }

func TestWorktreesCanceled(t *testing.T) {
	repo, shas := threeCommits(t)
	root := t.TempDir()
	w := gitrepo.NewWorktrees(repo, root)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _, err := w.Acquire(ctx, shas[0])
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, listDir(t, root), "nothing half-written is left")

	dir, release, err := w.Acquire(t.Context(), shas[0])
	require.NoError(t, err, "a failed checkout is tried again")
	release()
	assert.Equal(t, "v1\n", readString(t, filepath.Join(dir, "version.txt")))
}

func TestWorktreesConcurrent(t *testing.T) {
	repo, shas := threeCommits(t)
	root := t.TempDir()
	w := gitrepo.NewWorktrees(repo, root, gitrepo.KeepIdle(1))

	var wg sync.WaitGroup
	for g := range 12 {
		wg.Go(func() {
			for i := range 10 {
				k := (g + i) % len(shas)
				dir, release, err := w.Acquire(t.Context(), shas[k])
				if !assert.NoError(t, err) {
					return
				}
				b, err := os.ReadFile(filepath.Join(dir, "version.txt"))
				assert.NoError(t, err)
				assert.Equal(t, fmt.Sprintf("v%d\n", k+1), string(b))
				_, err = os.Stat(filepath.Join(dir, "deep/a/b/c/leaf.txt"))
				assert.NoError(t, err, "a held checkout is complete")
				release()
			}
		})
	}
	wg.Wait()
	assert.Len(t, listDir(t, root), 1, "only the kept idle checkout remains")
}
