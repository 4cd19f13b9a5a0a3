package gitrepotest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/gitrepo/gitrepotest"
)

// The repositories made are ones the git CLI reads as it would its own.
func TestGitAgrees(t *testing.T) {
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git CLI not installed")
	}
	r := gitrepotest.New(t)
	r.Write("a.txt", "a\n")
	r.Write("dir/b.txt", "b\n")
	r.WriteExec("dir/run.sh", "#!/bin/sh\n")
	r.Symlink("link", "dir/b.txt")
	require.NoError(t, os.MkdirAll(filepath.Join(r.Dir, "empty"), 0o755))
	r.Commit("first")
	r.Remove("a.txt")
	second := r.Commit("second")

	git := func(args ...string) string {
		out, err := exec.Command(gitBin, append([]string{"-C", r.Dir}, args...)...).CombinedOutput()
		require.NoError(t, err, "git %v: %s", args, out)
		return string(out)
	}
	git("fsck", "--strict")
	assert.Empty(t, git("status", "--porcelain"))
	assert.Equal(t, second+"\n", git("rev-parse", "main"))
	assert.Equal(t, "second\nfirst\n", git("log", "--format=%s"))
	assert.Equal(t, "100644 dir/b.txt\n100755 dir/run.sh\n120000 link\n",
		git("ls-tree", "-r", "--format=%(objectmode) %(path)", "main", "link", "dir"))
}

func TestCommitAfterGitCLI(t *testing.T) {
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git CLI not installed")
	}
	r := gitrepotest.New(t)
	r.Write("a.txt", "a\n")
	first := r.Commit("first")
	out, err := exec.Command(gitBin, "-C", r.Dir, "-c", "user.name=T", "-c", "user.email=t@example.com",
		"commit", "--allow-empty", "-q", "-m", "by the CLI").CombinedOutput()
	require.NoError(t, err, string(out))
	r.Write("b.txt", "b\n")
	third := r.Commit("third")

	out, err = exec.Command(gitBin, "-C", r.Dir, "log", "--format=%s", first+".."+third).Output()
	require.NoError(t, err)
	assert.Equal(t, "third\nby the CLI\n", string(out))
}
