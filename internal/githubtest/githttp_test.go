package githubtest

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/gitrepo"
)

// gitToken gets an installation token the way the bot does for go-git:
// from a ghinstallation transport pointed at the fake.
func (f *fixture) gitToken(t *testing.T, installationID int64) string {
	t.Helper()
	tr, err := ghinstallation.New(http.DefaultTransport, f.g.AppID(), installationID, []byte(f.g.PrivateKeyPEM()))
	require.NoError(t, err)
	tr.BaseURL = strings.TrimSuffix(f.g.APIURL(), "/")
	tok, err := tr.Token(context.Background())
	require.NoError(t, err)
	return tok
}

func TestGitCloneAndFetchWithToken(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	auth := &githttp.BasicAuth{Username: "x-access-token", Password: f.gitToken(t, f.inst)}

	dir := t.TempDir()
	clone, err := git.PlainCloneContext(ctx, dir, false, &git.CloneOptions{URL: f.repo.CloneURL, Auth: auth})
	require.NoError(t, err)
	head, err := clone.Head()
	require.NoError(t, err)
	assert.Equal(t, f.sha, head.Hash().String())
	b, err := os.ReadFile(filepath.Join(dir, "app.pvn.yaml"))
	require.NoError(t, err)
	assert.Equal(t, "name: app\n", string(b))

	f.git.Write("app.pvn.yaml", "name: app2\n")
	second := f.git.Commit("second")
	require.NoError(t, clone.FetchContext(ctx, &git.FetchOptions{Auth: auth}))
	ref, err := clone.Reference(plumbing.NewRemoteReferenceName("origin", "main"), true)
	require.NoError(t, err)
	assert.Equal(t, second, ref.Hash().String())

	// A commit on no branch any more (main was reset past it) is still
	// served by its SHA, as GitHub does; gitrepo.Mirror relies on it.
	f.git.Write("app.pvn.yaml", "name: app3\n")
	third := f.git.Commit("third")
	src, err := git.PlainOpen(f.git.Dir)
	require.NoError(t, err)
	require.NoError(t, src.Storer.SetReference(plumbing.NewHashReference(plumbing.NewBranchReferenceName("main"), plumbing.NewHash(second))))
	mirror, err := gitrepo.NewMirror(t.TempDir()).Sync(ctx, f.repo.CloneURL, third, auth.Password)
	require.NoError(t, err)
	assert.True(t, mirror.HasCommit(third))

	err = clone.PushContext(ctx, &git.PushOptions{Auth: auth})
	assert.ErrorIs(t, err, transport.ErrAuthorizationFailed, "the App reads contents, it does not push")
}

func TestGitRefused(t *testing.T) {
	f := newFixture(t)
	other := f.g.AddInstallation("other")
	lib := f.g.AddRepo(f.inst, "acme/lib", "main", f.git.Dir)
	token := f.gitToken(t, f.inst)
	f.g.RemoveRepo(lib.FullName)

	for name, tc := range map[string]struct {
		url  string
		auth transport.AuthMethod
		want error
	}{
		"no credentials":               {f.repo.CloneURL, nil, transport.ErrAuthenticationRequired},
		"unknown token":                {f.repo.CloneURL, &githttp.BasicAuth{Username: "x-access-token", Password: "ghs_nope"}, transport.ErrAuthenticationRequired},
		"token as another user":        {f.repo.CloneURL, &githttp.BasicAuth{Username: "alice", Password: token}, transport.ErrAuthenticationRequired},
		"another installation's token": {f.repo.CloneURL, &githttp.BasicAuth{Username: "x-access-token", Password: f.gitToken(t, other)}, transport.ErrRepositoryNotFound},
		"removed repository":           {lib.CloneURL, &githttp.BasicAuth{Username: "x-access-token", Password: token}, transport.ErrRepositoryNotFound},
		"repository of no one":         {f.g.URL() + "/git/acme/nothing.git", &githttp.BasicAuth{Username: "x-access-token", Password: token}, transport.ErrRepositoryNotFound},
		"the token (sanity)":           {f.repo.CloneURL, &githttp.BasicAuth{Username: "x-access-token", Password: token}, nil},
		"names in another case":        {f.g.URL() + "/git/ACME/App.git", &githttp.BasicAuth{Username: "x-access-token", Password: token}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := git.PlainCloneContext(context.Background(), t.TempDir(), true, &git.CloneOptions{URL: tc.url, Auth: tc.auth})
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, tc.want)
		})
	}

	f.g.FailNext("/git/acme/app.git/*", 1, http.StatusServiceUnavailable)
	_, err := git.PlainCloneContext(context.Background(), t.TempDir(), true, &git.CloneOptions{URL: f.repo.CloneURL, Auth: &githttp.BasicAuth{Username: "x-access-token", Password: token}})
	assert.ErrorContains(t, err, "503")
}
