package githubtest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	jwt "github.com/golang-jwt/jwt/v4"
	"github.com/google/go-github/v89/github"
	"github.com/palantir/go-githubapp/githubapp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/gitrepo/gitrepotest"
)

// fixture is a fake with installation "acme" holding repository acme/app,
// whose branch main has one commit.
type fixture struct {
	g    *GitHub
	inst int64
	git  *gitrepotest.Repo
	repo *Repo
	sha  string // main's head
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	g := New(t)
	f := &fixture{g: g, inst: g.AddInstallation("acme"), git: gitrepotest.New(t)}
	f.git.Write("app.pvn.yaml", "name: app\n")
	f.sha = f.git.Commit("first")
	f.repo = g.AddRepo(f.inst, "acme/app", "main", f.git.Dir)
	return f
}

func (f *fixture) creator() githubapp.ClientCreator {
	return githubapp.NewClientCreator(f.g.APIURL(), f.g.URL()+"/api/graphql", f.g.AppID(), []byte(f.g.PrivateKeyPEM()))
}

// client is an installation client made by go-githubapp.
func (f *fixture) client(t *testing.T, installationID int64) *github.Client {
	t.Helper()
	c, err := f.creator().NewInstallationClient(installationID)
	require.NoError(t, err)
	return c
}

// appClient is an App client made by go-githubapp.
func (f *fixture) appClient(t *testing.T) *github.Client {
	t.Helper()
	c, err := f.creator().NewAppClient()
	require.NoError(t, err)
	return c
}

// countRequests counts the logged REST requests with method and path.
func countRequests(g *GitHub, method, path string) int {
	n := 0
	for _, r := range g.Requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

func TestClientCreatorExchangesTokens(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.client(t, f.inst)

	repo, _, err := c.Repositories.Get(ctx, "acme", "app")
	require.NoError(t, err)
	assert.Equal(t, f.repo.ID, repo.GetID())
	assert.Equal(t, "acme/app", repo.GetFullName())
	assert.Equal(t, "main", repo.GetDefaultBranch())
	assert.Equal(t, f.repo.CloneURL, repo.GetCloneURL())
	assert.Equal(t, "acme", repo.GetOwner().GetLogin())

	_, _, err = c.Repositories.Get(ctx, "ACME", "App") // names are not case sensitive
	require.NoError(t, err)

	tokenPath := "/app/installations/" + strconv.FormatInt(f.inst, 10) + "/access_tokens"
	assert.Equal(t, 1, countRequests(f.g, http.MethodPost, tokenPath), "one token for both calls")
	reqs := f.g.Requests()
	assert.Equal(t, Request{Method: "POST", Path: tokenPath, Status: 201}, reqs[0])
	assert.Equal(t, Request{Method: "GET", Path: "/repos/acme/app", Status: 200, InstallationID: f.inst}, reqs[1])

	app := f.appClient(t)
	me, _, err := app.Apps.Get(ctx, "")
	require.NoError(t, err)
	assert.Equal(t, f.g.AppID(), me.GetID())
	assert.Equal(t, f.g.AppSlug(), me.GetSlug())
	in, _, err := app.Apps.GetInstallation(ctx, f.inst)
	require.NoError(t, err)
	assert.Equal(t, "acme", in.GetAccount().GetLogin())
	assert.Equal(t, f.g.AppID(), in.GetAppID())
	_, _, err = app.Apps.GetInstallation(ctx, 1)
	assertStatus(t, err, http.StatusNotFound)

	// The token ghinstallation got expires in an hour.
	tok, _, err := app.Apps.CreateInstallationToken(ctx, f.inst, nil)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(time.Hour), tok.GetExpiresAt().Time, time.Minute)
	assert.Equal(t, "write", tok.GetPermissions().GetChecks())
}

// assertStatus checks err is go-github's error for an answer with status.
func assertStatus(t *testing.T, err error, status int) *github.ErrorResponse {
	t.Helper()
	var er *github.ErrorResponse
	require.ErrorAs(t, err, &er)
	assert.Equal(t, status, er.Response.StatusCode)
	return er
}

func TestCredentialsRefused(t *testing.T) {
	f := newFixture(t)
	key, err := jwt.ParseRSAPrivateKeyFromPEM([]byte(f.g.PrivateKeyPEM()))
	require.NoError(t, err)
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	sign := func(k *rsa.PrivateKey, iss string, iat, exp time.Time) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
			Issuer: iss, IssuedAt: jwt.NewNumericDate(iat), ExpiresAt: jwt.NewNumericDate(exp),
		}).SignedString(k)
		require.NoError(t, err)
		return "Bearer " + s
	}
	now, appID := time.Now(), strconv.FormatInt(f.g.AppID(), 10)
	tok, _, err := f.appClient(t).Apps.CreateInstallationToken(context.Background(), f.inst, nil)
	require.NoError(t, err)

	for name, tc := range map[string]struct {
		path, auth string
		status     int
		message    string
	}{
		"valid JWT":                  {"/app/installations", sign(key, appID, now, now.Add(time.Minute)), 200, ""},
		"valid token":                {"/repos/acme/app", "token " + tok.GetToken(), 200, ""},
		"valid token as Bearer":      {"/repos/acme/app", "Bearer " + tok.GetToken(), 200, ""},
		"no credentials":             {"/repos/acme/app", "", 401, "Requires authentication"},
		"unknown token":              {"/repos/acme/app", "token ghs_nope", 401, "Bad credentials"},
		"JWT for an installation":    {"/repos/acme/app", sign(key, appID, now, now.Add(time.Minute)), 401, "Bad credentials"},
		"token for the App":          {"/app/installations", "token " + tok.GetToken(), 401, "A JSON web token could not be decoded"},
		"JWT of another key":         {"/app/installations", sign(otherKey, appID, now, now.Add(time.Minute)), 401, "A JSON web token could not be decoded"},
		"JWT of another App":         {"/app/installations", sign(key, "4242", now, now.Add(time.Minute)), 401, "'Issuer' claim ('iss') must be an Integer"},
		"expired JWT":                {"/app/installations", sign(key, appID, now.Add(-20*time.Minute), now.Add(-10*time.Minute)), 401, "A JSON web token could not be decoded"},
		"JWT valid for over 10 min":  {"/app/installations", sign(key, appID, now, now.Add(time.Hour)), 401, "'Expiration time' claim ('exp') is too far in the future"},
		"token for an unknown repo":  {"/repos/acme/other", "token " + tok.GetToken(), 404, "Not Found"},
		"unknown endpoint":           {"/repos/acme/app/hooks/1/pings", "token " + tok.GetToken(), 404, "Not Found"},
		"no credentials for the App": {"/app/hook/deliveries", "", 401, "A JSON web token could not be decoded"},
	} {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, f.g.APIURL()+tc.path[1:], nil)
			require.NoError(t, err)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, tc.status, resp.StatusCode)
			assert.NotEmpty(t, resp.Header.Get("X-RateLimit-Limit"), "rate-limit headers on every answer")
			if tc.message != "" {
				var body github.ErrorResponse
				require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
				assert.Equal(t, tc.message, body.Message)
				assert.NotEmpty(t, body.DocumentationURL)
			}
		})
	}
}

func TestInstallations(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ids := []int64{f.inst}
	for _, account := range []string{"b", "c", "d", "e"} {
		ids = append(ids, f.g.AddInstallation(account))
	}
	app := f.appClient(t)

	var got []int64
	opts := &github.ListOptions{PerPage: 2}
	for pages := 1; ; pages++ {
		page, resp, err := app.Apps.ListInstallations(ctx, opts)
		require.NoError(t, err)
		assert.LessOrEqual(t, len(page), 2)
		for _, in := range page {
			got = append(got, in.GetID())
		}
		if resp.NextPage == 0 {
			assert.Equal(t, 3, pages)
			break
		}
		assert.Equal(t, 3, resp.LastPage)
		opts.Page = resp.NextPage
	}
	assert.Equal(t, ids, got)

	svc := githubapp.NewInstallationsService(app)
	all, err := svc.ListAll(ctx)
	require.NoError(t, err)
	assert.Len(t, all, 5)
	byRepo, err := svc.GetByRepository(ctx, "acme", "app")
	require.NoError(t, err)
	assert.Equal(t, githubapp.Installation{ID: f.inst, Owner: "acme", OwnerID: byRepo.OwnerID}, byRepo)
	byOwner, err := svc.GetByOwner(ctx, "c")
	require.NoError(t, err)
	assert.Equal(t, ids[2], byOwner.ID)
	_, err = svc.GetByOwner(ctx, "nobody")
	assert.ErrorAs(t, err, new(githubapp.InstallationNotFound))
}

func TestInstallationRepositories(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	lib := f.g.AddRepo(f.inst, "acme/lib", "main", f.git.Dir)
	other := f.g.AddInstallation("other")
	f.g.AddRepo(other, "other/app", "main", f.git.Dir)
	c := f.client(t, f.inst)

	names := func() []string {
		list, _, err := c.Apps.ListRepos(ctx, nil)
		require.NoError(t, err)
		assert.Equal(t, len(list.Repositories), list.GetTotalCount())
		var out []string
		for _, r := range list.Repositories {
			out = append(out, r.GetFullName())
		}
		return out
	}
	assert.Equal(t, []string{"acme/app", "acme/lib"}, names())
	_, _, err := c.Repositories.Get(ctx, "other", "app")
	assertStatus(t, err, http.StatusNotFound)

	f.g.RemoveRepo("acme/lib")
	assert.Equal(t, []string{"acme/app"}, names())
	_, _, err = c.Repositories.Get(ctx, "acme", "lib")
	assertStatus(t, err, http.StatusNotFound)

	again := f.g.AddRepo(f.inst, "acme/lib", "main", f.git.Dir)
	assert.Equal(t, lib.ID, again.ID, "added back with its ID")
	assert.Equal(t, []string{"acme/app", "acme/lib"}, names())
}

func TestRemoveInstallation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.client(t, f.inst)
	_, _, err := c.Repositories.Get(ctx, "acme", "app")
	require.NoError(t, err)

	f.g.RemoveInstallation(f.inst)
	_, _, err = c.Repositories.Get(ctx, "acme", "app")
	assertStatus(t, err, http.StatusUnauthorized)
	_, _, err = f.client(t, f.inst).Repositories.Get(ctx, "acme", "app")
	assert.ErrorContains(t, err, "404", "no token for a removed installation")
	_, _, err = f.appClient(t).Apps.GetInstallation(ctx, f.inst)
	assertStatus(t, err, http.StatusNotFound)
}

func TestBranchesAndCommits(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.client(t, f.inst)

	b, _, err := c.Repositories.GetBranch(ctx, "acme", "app", "main", 0)
	require.NoError(t, err)
	assert.Equal(t, "main", b.GetName())
	assert.Equal(t, f.sha, b.GetCommit().GetSHA())

	f.git.Write("app.pvn.yaml", "name: app2\n")
	second := f.git.Commit("second")
	b, _, err = c.Repositories.GetBranch(ctx, "acme", "app", "main", 0)
	require.NoError(t, err)
	assert.Equal(t, second, b.GetCommit().GetSHA(), "read from the repository on disk, now")

	for _, ref := range []string{second, "main", "refs/heads/main"} {
		commit, _, err := c.Repositories.GetCommit(ctx, "acme", "app", ref, nil)
		require.NoError(t, err, ref)
		assert.Equal(t, second, commit.GetSHA())
		assert.Equal(t, "second", commit.GetCommit().GetMessage())
		require.Len(t, commit.Parents, 1)
		assert.Equal(t, f.sha, commit.Parents[0].GetSHA())
	}
	_, _, err = c.Repositories.GetCommit(ctx, "acme", "app", "nope", nil)
	assertStatus(t, err, http.StatusUnprocessableEntity)
	_, _, err = c.Repositories.GetBranch(ctx, "acme", "app", "feature/x", 0)
	assert.ErrorContains(t, err, "404", "go-github's GetBranch answers a plain error for 404")

	// A branch feature/x at the second commit, as the git CLI lays it out.
	require.NoError(t, os.MkdirAll(filepath.Join(f.git.Dir, ".git/refs/heads/feature"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(f.git.Dir, ".git/refs/heads/feature/x"), []byte(second+"\n"), 0o644))
	b, _, err = c.Repositories.GetBranch(ctx, "acme", "app", "feature/x", 0)
	require.NoError(t, err, "a branch name with a slash")
	assert.Equal(t, second, b.GetCommit().GetSHA())
}

func TestRateLimits(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.client(t, f.inst)
	create := func(c *github.Client) error {
		_, _, err := c.Checks.CreateCheckRun(ctx, "acme", "app", github.CreateCheckRunOptions{Name: "x", HeadSHA: f.sha})
		return err
	}

	_, resp, err := c.Repositories.Get(ctx, "acme", "app")
	require.NoError(t, err)
	assert.Equal(t, 5000, resp.Rate.Limit)
	assert.Equal(t, 4999, resp.Rate.Remaining)
	assert.Equal(t, 1, resp.Rate.Used)
	assert.True(t, resp.Rate.Reset.After(time.Now()))
	_, resp, err = c.Repositories.Get(ctx, "acme", "app")
	require.NoError(t, err)
	assert.Equal(t, 4998, resp.Rate.Remaining, "counted per installation")

	reset := time.Now().Add(time.Hour).Truncate(time.Second)
	f.g.RateLimitNext(1, reset)
	_, _, err = c.Repositories.Get(ctx, "acme", "app")
	require.NoError(t, err, "reads are not limited")
	var rle *github.RateLimitError
	require.ErrorAs(t, create(c), &rle)
	assert.Equal(t, 0, rle.Rate.Remaining)
	assert.Equal(t, reset, rle.Rate.Reset.Time)
	// go-github now refuses on its own until reset; a new client is let through.
	require.ErrorAs(t, create(c), &rle)
	require.NoError(t, create(f.client(t, f.inst)))

	f.g.SecondaryLimitNext(2, 30*time.Second)
	c = f.client(t, f.inst)
	var abuse *github.AbuseRateLimitError
	require.ErrorAs(t, create(c), &abuse)
	assert.Equal(t, 30*time.Second, abuse.GetRetryAfter())
	require.ErrorAs(t, create(f.client(t, f.inst)), &abuse)
	require.NoError(t, create(f.client(t, f.inst)))

	limited := 0
	for _, r := range f.g.Requests() {
		if r.Status == http.StatusForbidden {
			limited++
		}
	}
	assert.Equal(t, 3, limited, "one primary limit (go-github refused the next on its own) and two secondary")
}

func TestFailNext(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.client(t, f.inst)
	f.g.FailNext("/repos/acme/*/check-runs", 2, http.StatusBadGateway)
	for range 2 {
		_, _, err := c.Checks.CreateCheckRun(ctx, "acme", "app", github.CreateCheckRunOptions{Name: "x", HeadSHA: f.sha})
		assertStatus(t, err, http.StatusBadGateway)
	}
	_, _, err := c.Repositories.Get(ctx, "acme", "app")
	require.NoError(t, err, "other paths answer")
	_, _, err = c.Checks.CreateCheckRun(ctx, "acme", "app", github.CreateCheckRunOptions{Name: "x", HeadSHA: f.sha})
	require.NoError(t, err)
}

func TestConcurrentUse(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(hook.Close)
	f.g.SetWebhookURL(hook.URL)
	c := f.client(t, f.inst)
	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for i := range 20 {
		wg.Go(func() {
			run, _, err := c.Checks.CreateCheckRun(ctx, "acme", "app", github.CreateCheckRunOptions{Name: "run " + strconv.Itoa(i), HeadSHA: f.sha})
			if err == nil {
				_, _, err = c.Checks.UpdateCheckRun(ctx, "acme", "app", run.GetID(), github.UpdateCheckRunOptions{Name: run.GetName(), Conclusion: github.Ptr("success")})
			}
			errs <- err
			cm, _, err := c.Issues.CreateComment(ctx, "acme", "app", 1, &github.IssueComment{Body: github.Ptr("hi")})
			if err == nil {
				_, _, err = c.Reactions.CreateIssueCommentReaction(ctx, "acme", "app", cm.GetID(), "+1")
			}
			errs <- err
			_, _, err = f.g.Deliver("push", f.g.PushPayload(f.repo, "main", f.sha, f.sha))
			errs <- err
			_ = f.g.CheckRuns(f.repo)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Len(t, f.g.CheckRuns(f.repo), 20)
	assert.Len(t, f.g.CheckRunWrites(f.repo), 40)
	assert.Len(t, f.g.Comments(f.repo, 1), 20)
	assert.Len(t, f.g.Deliveries(), 20)
}
