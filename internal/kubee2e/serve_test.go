package kubee2e

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/githubtest"
	"github.com/pvnbot/pvnbot/internal/gitrepo/gitrepotest"
	"github.com/pvnbot/pvnbot/internal/links"
	"github.com/pvnbot/pvnbot/internal/runner/kube"
	"github.com/pvnbot/pvnbot/internal/server"
)

// bot serve with the test plane linked: a push to a served repository whose
// runtime runs on the plane deploys through a Job, and the channel's check
// run reaches success.
func TestServePushRunsAJobOnThePlane(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	rt := runtimeName("served")
	gh := githubtest.New(t)
	inst := gh.AddInstallation("acme")
	git := gitrepotest.New(t)
	git.Write("README.md", "configs come later\n")
	first := git.Commit("empty")
	repo := gh.AddRepo(inst, "acme/deploys", "main", git.Dir)

	bot := &config.Bot{}
	bot.GitHub.WebURL, bot.GitHub.V3APIURL = gh.URL(), gh.APIURL()
	bot.GitHub.App.IntegrationID, bot.GitHub.App.WebhookSecret, bot.GitHub.App.PrivateKey = gh.AppID(), gh.WebhookSecret(), gh.PrivateKeyPEM()
	cfg := server.Config{Bot: bot, GitHub: server.GitHubConfig(bot.GitHub), StorePath: filepath.Join(t.TempDir(), "pvnbot.db")}
	linked := links.Links{Clusters: []kube.Cluster{{Name: cluster, Kubeconfig: plane.Kubeconfig, Context: "kubetest"}}}
	srvCtx, stop := context.WithCancel(ctx)
	srv, err := server.New(srvCtx, cfg, server.Options{Links: &linked, ResyncInterval: time.Hour, Logger: testLogger(t)})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	gh.SetWebhookURL(ts.URL + "/api/github/hook")
	done := make(chan error, 1)
	go func() { done <- srv.Run(srvCtx) }()
	defer func() { stop(); require.NoError(t, <-done) }()

	git.Write("deploy.pvn.yaml", fmt.Sprintf(`runtime:
  name: %s
  custom:
    proxyRuntime: {runtime: %s}
    apply:
      taskConfig:
        program:
          image: example.org/tools:1
          entrypoint: [sh, -c]
          cmd: ['echo deployed "$PVN_SERVICE" at "$PVN_COMMIT"']
---
application:
  name: shop
  releaseChannels:
  - name: staging
    runtimes: [{runtime: %s}]
---
service:
  name: web
  application: shop
`, rt, cluster, rt))
	sha := git.Commit("deploy web on the cluster")
	_, status, err := gh.Deliver("push", gh.PushPayload(repo, "main", first, sha))
	require.NoError(t, err)
	require.Equal(t, 200, status)

	deadline := time.Now().Add(waitTimeout)
	var run githubtest.CheckRun
	for time.Now().Before(deadline) && run.Conclusion != "success" {
		for _, cr := range gh.CheckRuns(repo) {
			if cr.Name == "pvnbot: shop/staging" && cr.HeadSHA == sha {
				run = cr
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	require.Equal(t, "success", run.Conclusion, "the check run of %s", sha)
	jobs := jobsOf(t, ctx, rt, kube.LabelAction+"=apply")
	for _, j := range jobs {
		t.Logf("job %s commit %s created %s", j.Name, j.Labels[kube.LabelCommit], j.CreationTimestamp)
	}
	require.Len(t, jobs, 1, "the apply ran as a Job on the plane")
	assert.Equal(t, sha, jobs[0].Labels[kube.LabelCommit])
}
