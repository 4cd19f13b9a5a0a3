package gitrepo_test

import (
	"os/exec"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/gitrepo"
	"github.com/pvnbot/pvnbot/internal/gitrepo/gitrepotest"
)

func TestHead(t *testing.T) {
	src := gitrepotest.New(t)
	src.Write("a.txt", "1")
	c1 := src.Commit("first")
	repo := src.Open()

	got, err := repo.Head("main")
	require.NoError(t, err)
	assert.Equal(t, c1, got)

	src.Write("a.txt", "2")
	c2 := src.Commit("second")
	got, err = repo.Head("main")
	require.NoError(t, err, "a commit made after Open is seen")
	assert.Equal(t, c2, got)

	_, err = repo.Head("master")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `branch "master" not found`)
	assert.Contains(t, err.Error(), "(branches: main)")

	branch, err := repo.DefaultBranch()
	require.NoError(t, err)
	assert.Equal(t, "main", branch)
}

func TestHeadEmptyRepository(t *testing.T) {
	repo := gitrepotest.New(t).Open()
	_, err := repo.Head("main")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no branches")
}

func TestOpenMissing(t *testing.T) {
	_, err := gitrepo.Open(t.TempDir())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "open git repository")
}

func TestLog(t *testing.T) {
	src := gitrepotest.New(t)
	var c [5]string
	for i := range c {
		src.Write("n.txt", string(rune('a'+i)))
		c[i] = src.Commit("commit")
	}
	repo := src.Open()

	tests := map[string]struct {
		since, to string
		want      []string
	}{
		"new commits oldest first": {since: c[1], to: c[4], want: []string{c[2], c[3], c[4]}},
		"one new commit":           {since: c[3], to: c[4], want: []string{c[4]}},
		"nothing new":              {since: c[4], to: c[4], want: nil},
		"first ingest":             {since: "", to: c[4], want: []string{c[4]}},
		"since is newer than to":   {since: c[4], to: c[2], want: []string{c[2]}},
		"since unknown":            {since: "0123456789012345678901234567890123456789", to: c[2], want: []string{c[2]}},
		"abbreviated to":           {since: c[2], to: c[3][:10], want: []string{c[3]}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := repo.Log(tc.since, tc.to)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestLogAfterForcePush(t *testing.T) {
	src := gitrepotest.New(t)
	src.Write("f", "1")
	base := src.Commit("base")
	src.Write("f", "2")
	old := src.Commit("old tip")

	g, err := git.PlainOpen(src.Dir)
	require.NoError(t, err)
	require.NoError(t, g.Storer.SetReference(plumbing.NewHashReference("refs/heads/main", plumbing.NewHash(base))))
	src.Write("f", "3")
	rewritten := src.Commit("rewritten")

	got, err := src.Open().Log(old, rewritten)
	require.NoError(t, err)
	assert.Equal(t, []string{rewritten}, got)
}

// A branch that merged main in and was then fast-forwarded onto main: the
// old tip of main is a second parent, not on the first-parent line.
func TestLogSinceMergedFromTheSide(t *testing.T) {
	src := gitrepotest.New(t)
	src.Write("f", "1")
	base := src.Commit("base")
	src.Write("f", "2")
	mainTip := src.Commit("on main")

	g, err := git.PlainOpen(src.Dir)
	require.NoError(t, err)
	commit := func(msg string, parents ...string) string {
		t.Helper()
		head, err := g.CommitObject(plumbing.NewHash(mainTip))
		require.NoError(t, err)
		sig := object.Signature{Name: "T", Email: "t@example.com", When: head.Committer.When}
		c := &object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: head.TreeHash}
		for _, p := range parents {
			c.ParentHashes = append(c.ParentHashes, plumbing.NewHash(p))
		}
		obj := g.Storer.NewEncodedObject()
		require.NoError(t, c.Encode(obj))
		h, err := g.Storer.SetEncodedObject(obj)
		require.NoError(t, err)
		return h.String()
	}
	feature1 := commit("feature 1", base)
	merge := commit("merge main into feature", feature1, mainTip)
	feature2 := commit("feature 2", merge)

	got, err := src.Open().Log(mainTip, feature2)
	require.NoError(t, err)
	assert.Equal(t, []string{feature1, merge, feature2}, got)
}

func TestResolveAndHasCommit(t *testing.T) {
	src := gitrepotest.New(t)
	src.Write("a", "1")
	c1 := src.Commit("first")
	repo := src.Open()

	got, err := repo.ResolveCommit("main")
	require.NoError(t, err)
	assert.Equal(t, c1, got)
	assert.True(t, repo.HasCommit(c1))
	assert.False(t, repo.HasCommit("0123456789012345678901234567890123456789"))
	assert.False(t, repo.HasCommit("main"))
	_, err = repo.ResolveCommit("nope")
	assert.ErrorContains(t, err, `resolve commit "nope"`)
}

// git gc (run by hand or by git itself) moves objects into new packs and
// deletes the loose ones while the bot holds the repository open.
func TestReadsAfterGitGC(t *testing.T) {
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git CLI not installed")
	}
	src := gitrepotest.New(t)
	src.Write("a.txt", "one")
	c1 := src.Commit("first")
	repo := src.Open()
	t.Cleanup(func() { assert.NoError(t, repo.Close()) })
	_, err = repo.FS(c1)
	require.NoError(t, err)

	src.Write("a.txt", "two")
	c2 := src.Commit("second")
	gc := func() {
		out, err := exec.Command(gitBin, "-C", src.Dir, "gc", "--prune=now", "--quiet").CombinedOutput()
		require.NoError(t, err, string(out))
	}
	gc()
	fsys, err := repo.FS(c2)
	require.NoError(t, err)
	assertFile(t, fsys, "a.txt", "two")

	src.Write("a.txt", "three")
	c3 := src.Commit("third")
	gc()
	log, err := repo.Log(c1, c3)
	require.NoError(t, err)
	assert.Equal(t, []string{c2, c3}, log)
	fsys, err = repo.FS(c3)
	require.NoError(t, err)
	assertFile(t, fsys, "a.txt", "three")
}

func TestIsAncestor(t *testing.T) {
	g := gitrepotest.New(t)
	g.Write("a", "1")
	c1 := g.Commit("one")
	g.Write("a", "2")
	c2 := g.Commit("two")
	r := g.Open()
	yes, err := r.IsAncestor(c1, c2)
	require.NoError(t, err)
	assert.True(t, yes)
	no, err := r.IsAncestor(c2, c1)
	require.NoError(t, err)
	assert.False(t, no)
	self, err := r.IsAncestor(c2, c2)
	require.NoError(t, err)
	assert.False(t, self, "a commit is not its own ancestor")
	_, err = r.IsAncestor("0123456789012345678901234567890123456789", c2)
	assert.Error(t, err)
}
