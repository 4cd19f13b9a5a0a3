package localmode_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/gitrepo/gitrepotest"
	"github.com/pvnbot/pvnbot/internal/localmode"
	"github.com/pvnbot/pvnbot/internal/store"
)

// A state file truncated to nothing is not silently taken as a new one
// (that would apply every target again) when bot run used it before; an
// empty file with no such history is taken, and bot run says so.
func TestEmptyStateFileIsNotTakenAsNew(t *testing.T) {
	repo := gitrepotest.New(t)
	repo.Write("all.pvn.yaml", oneShot)
	repo.Commit("web")
	statePath := filepath.Join(t.TempDir(), "state.db")
	_, out, err := runOnce(repo.Dir, statePath, nil)
	require.NoError(t, err, out)
	require.NoError(t, os.Truncate(statePath, 0))

	_, out, err = runOnce(repo.Dir, statePath, nil)
	require.Error(t, err, out)
	assert.Contains(t, err.Error(), "state file "+statePath+" is empty (0 bytes), but "+filepath.Join(filepath.Dir(statePath), "worktrees")+" holds the checkouts of earlier runs")
	assert.Contains(t, err.Error(), "Restore it from a backup")
	info, err := os.Stat(statePath)
	require.NoError(t, err)
	assert.Zero(t, info.Size(), "left as it was")
	_, err = localmode.Status(context.Background(), statePath, "")
	assert.ErrorContains(t, err, "is empty (0 bytes)")

	fresh := filepath.Join(t.TempDir(), "state.db")
	require.NoError(t, os.WriteFile(fresh, nil, 0o600))
	_, out, err = runOnce(repo.Dir, fresh, nil)
	require.NoError(t, err, out)
	assert.Contains(t, out, "state file "+fresh+" is empty: starting a new state in it")
}

// The default state folder holds rendered jobs: bot run makes git ignore
// it when it creates it.
func TestDefaultStateFolderIsIgnoredByGit(t *testing.T) {
	repo := gitrepotest.New(t)
	repo.Write("all.pvn.yaml", oneShot)
	repo.Commit("web")
	_, out, err := runOnce(repo.Dir, "", nil)
	require.NoError(t, err, out)
	data, err := os.ReadFile(filepath.Join(repo.Dir, localmode.StateDir, ".gitignore"))
	require.NoError(t, err)
	assert.Contains(t, string(data), "\n*\n")
	status, err := exec.Command("git", "-C", repo.Dir, "status", "--porcelain", "--untracked-files=all").CombinedOutput()
	require.NoError(t, err, string(status))
	assert.Empty(t, strings.TrimSpace(string(status)), "nothing of the state folder shows as untracked")

	// A folder that was there already is left as it is.
	other := gitrepotest.New(t)
	other.Write("all.pvn.yaml", oneShot)
	other.Commit("web")
	require.NoError(t, os.MkdirAll(filepath.Join(other.Dir, localmode.StateDir), 0o700))
	_, out, err = runOnce(other.Dir, "", nil)
	require.NoError(t, err, out)
	_, err = os.Stat(filepath.Join(other.Dir, localmode.StateDir, ".gitignore"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// bot status reads the state file read-only: it works on a read-only file
// system (here a read-only bind mount, where the test may mount).
func TestStatusOnAReadOnlyFileSystem(t *testing.T) {
	repo := gitrepotest.New(t)
	repo.Write("all.pvn.yaml", oneShot)
	repo.Commit("web")
	src := t.TempDir()
	_, out, err := runOnce(repo.Dir, filepath.Join(src, "state.db"), nil)
	require.NoError(t, err, out)

	ro := t.TempDir()
	if err := syscall.Mount(src, ro, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("cannot bind-mount here: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(ro, 0) })
	require.NoError(t, syscall.Mount(src, ro, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""))
	require.ErrorIs(t, os.WriteFile(filepath.Join(ro, "probe"), nil, 0o600), syscall.EROFS, "the mount is read-only")

	states, err := localmode.Status(context.Background(), filepath.Join(ro, "state.db"), "")
	require.NoError(t, err)
	require.Len(t, states, 1)
	assert.Equal(t, store.StatusConverged, states[0].Status)
}
