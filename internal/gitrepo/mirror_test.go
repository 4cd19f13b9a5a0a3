package gitrepo_test

import (
	"context"
	"io/fs"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/gitrepo"
	"github.com/pvnbot/pvnbot/internal/gitrepo/gitrepotest"
)

const secretToken = "ghs_s3cr3tT0kenThatMustNeverBeShown"

func TestMirrorSyncFromFileURL(t *testing.T) {
	src := gitrepotest.New(t)
	src.Write("pvn/app.pvn.yaml", "name: shop\n")
	c1 := src.Commit("first")
	cache := t.TempDir()
	m := gitrepo.NewMirror(cache)
	ctx := t.Context()

	repo, err := m.Sync(ctx, "file://"+src.Dir, c1, secretToken)
	require.NoError(t, err)
	head, err := repo.Head("main")
	require.NoError(t, err)
	assert.Equal(t, c1, head)
	fsys, err := repo.FS(c1)
	require.NoError(t, err)
	assertFile(t, fsys, "pvn/app.pvn.yaml", "name: shop\n")

	src.Write("pvn/app.pvn.yaml", "name: shop2\n")
	c2 := src.Commit("second")
	again, err := m.Sync(ctx, "file://"+src.Dir, c2, secretToken)
	require.NoError(t, err)
	assert.Same(t, repo, again, "one clone per remote")
	log, err := again.Log(c1, c2)
	require.NoError(t, err)
	assert.Equal(t, []string{c2}, log)

	// A new Mirror (a restart) reuses the clone on disk without fetching:
	// the source is gone, yet the known commit is served.
	require.NoError(t, os.RemoveAll(filepath.Join(src.Dir, ".git")))
	restarted, err := gitrepo.NewMirror(cache).Sync(ctx, "file://"+src.Dir, c1, secretToken)
	require.NoError(t, err)
	assert.True(t, restarted.HasCommit(c2))

	entries, err := os.ReadDir(cache)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no leftover temporary directories")
	bare, err := gitrepo.Open(filepath.Join(cache, entries[0].Name()))
	require.NoError(t, err, "the clone is a bare repository")
	assert.True(t, bare.HasCommit(c2))
}

func assertFile(t *testing.T, fsys fs.FS, name, content string) {
	t.Helper()
	b, err := fs.ReadFile(fsys, name)
	require.NoError(t, err)
	assert.Equal(t, content, string(b))
}

func TestMirrorSyncCommitOnNoBranch(t *testing.T) {
	src := gitrepotest.New(t)
	src.Write("f", "1")
	c1 := src.Commit("first")
	src.Write("f", "2")
	orphaned := src.Commit("pushed, then force-pushed away")
	g, err := git.PlainOpen(src.Dir)
	require.NoError(t, err)
	require.NoError(t, g.Storer.SetReference(plumbing.NewHashReference("refs/heads/main", plumbing.NewHash(c1))))
	cfg, err := g.Config()
	require.NoError(t, err)
	cfg.Raw.Section("uploadpack").SetOption("allowAnySHA1InWant", "true")
	require.NoError(t, g.SetConfig(cfg))

	repo, err := gitrepo.NewMirror(t.TempDir()).Sync(t.Context(), src.Dir, orphaned, "")
	require.NoError(t, err)
	fsys, err := repo.FS(orphaned)
	require.NoError(t, err)
	assertFile(t, fsys, "f", "2")
}

func TestMirrorSyncErrorsHideToken(t *testing.T) {
	src := gitrepotest.New(t)
	src.Write("f", "1")
	src.Commit("first")
	missing := "0123456789012345678901234567890123456789"

	tests := map[string]struct {
		url, sha string
		want     string
	}{
		"commit not in remote": {
			url: "file://" + src.Dir, sha: missing,
			want: "fetch commit " + missing,
		},
		"no repository there": {
			url: "file://" + filepath.Join(t.TempDir(), "nothing"), sha: missing,
			want: "fetch branches of file://",
		},
		"credentials in the URL": {
			url: "https://x-access-token:" + secretToken + "@127.0.0.1:1/owner/repo.git", sha: missing,
			want: "https://127.0.0.1:1/owner/repo.git",
		},
		"not a hash": {
			url: "https://x-access-token:" + secretToken + "@127.0.0.1:1/owner/repo.git", sha: "main",
			want: `"main" is not a full commit hash`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := gitrepo.NewMirror(t.TempDir()).Sync(t.Context(), tc.url, tc.sha, secretToken)
			require.Error(t, err)
			t.Log(err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), secretToken)
			assert.NotContains(t, err.Error(), "s3cr3t")
		})
	}
}

func TestMirrorSyncCanceled(t *testing.T) {
	src := gitrepotest.New(t)
	src.Write("f", "1")
	c1 := src.Commit("first")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := gitrepo.NewMirror(t.TempDir()).Sync(ctx, "file://"+src.Dir, c1, secretToken)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.Canceled)
}

// gitHTTPServer serves src over Git's smart HTTP protocol (git
// http-backend), accepting only basic auth x-access-token:<token>.
func gitHTTPServer(t *testing.T, src *gitrepotest.Repo, token string) (url string, requests func() int) {
	t.Helper()
	backend, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Skip("git CLI not installed")
	}
	root := filepath.Dir(src.Dir)
	cgiHandler := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(backend)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		user, pass, ok := r.BasicAuth()
		if !ok || user != gitrepo.TokenUser || pass != token {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "bad credentials", http.StatusUnauthorized)
			return
		}
		cgiHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/" + filepath.Base(src.Dir), func() int { mu.Lock(); defer mu.Unlock(); return n }
}

func TestMirrorSyncOverHTTPWithToken(t *testing.T) {
	src := gitrepotest.New(t)
	src.WriteExec("run.sh", "#!/bin/sh\n")
	c1 := src.Commit("first")
	url, requests := gitHTTPServer(t, src, secretToken)

	repo, err := gitrepo.NewMirror(t.TempDir()).Sync(t.Context(), url, c1, secretToken)
	require.NoError(t, err)
	assert.True(t, repo.HasCommit(c1))

	before := requests()
	_, err = gitrepo.NewMirror(t.TempDir()).Sync(t.Context(), url, c1, "ghs_wrongTokenWrongTokenWrongToken")
	require.Error(t, err)
	assert.Greater(t, requests(), before)
	t.Log(err)
	assert.ErrorIs(t, err, transport.ErrAuthenticationRequired)
	assert.NotContains(t, err.Error(), "wrongToken")

	withCreds := strings.Replace(url, "http://", "http://"+gitrepo.TokenUser+":"+secretToken+"@", 1)
	_, err = gitrepo.NewMirror(t.TempDir()).Sync(t.Context(), withCreds, c1, "ghs_wrongTokenWrongTokenWrongToken")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cr3t")
	assert.NotContains(t, err.Error(), "wrongToken")
}

func TestMirrorSyncConcurrent(t *testing.T) {
	src := gitrepotest.New(t)
	src.Write("f", "1")
	c1 := src.Commit("first")
	m := gitrepo.NewMirror(t.TempDir())

	repos := make([]*gitrepo.Repo, 6)
	var wg sync.WaitGroup
	for i := range repos {
		wg.Go(func() {
			repo, err := m.Sync(t.Context(), "file://"+src.Dir, c1, "")
			assert.NoError(t, err)
			repos[i] = repo
		})
	}
	wg.Wait()
	for _, r := range repos {
		assert.Same(t, repos[0], r)
	}
}
