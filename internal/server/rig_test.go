package server_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/githubtest"
	"github.com/pvnbot/pvnbot/internal/gitrepo/gitrepotest"
	"github.com/pvnbot/pvnbot/internal/server"
	"github.com/pvnbot/pvnbot/internal/store"
	"github.com/pvnbot/pvnbot/internal/webhook"
)

// runtimeFiles deploys a version by writing it to
// $E2E_STATE/<place>/<channel>/<service>; fetch compares. Jobs get E2E_STATE
// through localRunner.passEnv. While the file $E2E_STATE/gate exists, apply
// waits for it to go.
func runtimeFiles(place string) string {
	return strings.ReplaceAll(runtimeTemplate, "PLACE", place)
}

const runtimeTemplate = `runtime:
  name: files
  custom:
    proxyRuntime: {runtime: local}
    apply:
      taskConfig:
        program:
          entrypoint: [sh, -c]
          cmd: ['d="$E2E_STATE/PLACE/$PVN_RELEASE_CHANNEL"; mkdir -p "$d"; while [ -f "$E2E_STATE/gate" ]; do sleep 0.05; done; echo "$PVN_PARAM_version" > "$d/$PVN_SERVICE"; echo "$PVN_SERVICE/$PVN_RELEASE_CHANNEL" >> "$E2E_STATE/PLACE/applies"; echo deployed $PVN_SERVICE']
    fetch:
      taskConfig:
        program:
          entrypoint: [sh, -c]
          cmd: ['test "$(cat "$E2E_STATE/PLACE/$PVN_RELEASE_CHANNEL/$PVN_SERVICE" 2>/dev/null)" = "$PVN_PARAM_version" || exit 2']
      pollInterval: 0.2s
      steadyStatePollInterval: 1h
    parameters:
    - {name: version, required: true, string: {}}
---
application:
  name: shop
  releaseChannels:
  - name: staging
    runtimes: [{runtime: files}]
  - name: production
    runtimes: [{runtime: files}]
    preconditions:
    - releaseChannelStable: {releaseChannel: staging}
    - manualApproval: {}
`

func service(name, version string) string {
	return fmt.Sprintf("service:\n  name: %s\n  application: shop\n  customRuntime:\n    parameterValues:\n    - {name: version, string: %q}\n", name, version)
}

// rig is a fake GitHub with an installation, and a bot serving it.
type rig struct {
	t        testing.TB
	gh       *githubtest.GitHub
	inst     int64
	dir      string // the bot's state folder
	world    string // what the runtimes deployed, by repository
	srv      *server.Server
	hookAddr string
	stop     func()
}

// repo is a served repository and its Git repository.
type repo struct {
	*githubtest.Repo
	git   *gitrepotest.Repo
	head  string
	world string
}

func newRig(t testing.TB) *rig {
	t.Helper()
	r := &rig{t: t, gh: githubtest.New(t), dir: t.TempDir(), world: t.TempDir()}
	r.inst = r.gh.AddInstallation("acme")
	t.Setenv("E2E_STATE", r.world) // the jobs' world, given them by localRunner.passEnv
	return r
}

func (r *rig) config() server.Config {
	bot := &config.Bot{}
	bot.GitHub.WebURL = r.gh.URL()
	bot.GitHub.V3APIURL = r.gh.APIURL()
	bot.GitHub.App.IntegrationID = r.gh.AppID()
	bot.GitHub.App.WebhookSecret = r.gh.WebhookSecret()
	bot.GitHub.App.PrivateKey = r.gh.PrivateKeyPEM()
	bot.LocalRunner.PassEnv = []string{"E2E_STATE"}
	cfg := server.Config{Bot: bot, GitHub: server.GitHubConfig(bot.GitHub), StorePath: filepath.Join(r.dir, "pvnbot.db")}
	return cfg
}

// addRepo makes a Git repository with the shop's configs (services at
// version 1) in the installation.
func (r *rig) addRepo(fullName string, services ...string) *repo {
	r.t.Helper()
	g := gitrepotest.New(r.t)
	place := strings.ReplaceAll(fullName, "/", "_")
	g.Write("shop.pvn.yaml", runtimeFiles(place))
	for _, s := range services {
		g.Write("services/"+s+".pvn.yaml", service(s, "1"))
	}
	head := g.Commit("shop")
	world := filepath.Join(r.world, place)
	require.NoError(r.t, os.MkdirAll(world, 0o755))
	return &repo{Repo: r.gh.AddRepo(r.inst, fullName, "main", g.Dir), git: g, head: head, world: world}
}

// start runs the bot, as bot serve does, until the test ends or stop.
func (r *rig) start(opts server.Options) {
	r.t.Helper()
	if opts.ResyncInterval == 0 {
		opts.ResyncInterval = time.Hour
	}
	if _, bench := r.t.(*testing.B); !bench && opts.ProgressInterval == 0 {
		opts.ProgressInterval = 100 * time.Millisecond // tests wait for the last state, not the throttle
	}
	if opts.Queue.BaseRetry == 0 {
		opts.Queue = webhook.QueueOptions{BaseRetry: 50 * time.Millisecond, MaxRetry: time.Second}
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, r.config(), opts)
	require.NoError(r.t, err)
	ts := httptest.NewServer(srv.Handler())
	r.hookAddr = ts.URL + "/api/github/hook"
	r.gh.SetWebhookURL(r.hookAddr)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	r.srv = srv
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			ts.Close()
			cancel()
			require.NoError(r.t, <-done)
		})
	}
	r.t.Cleanup(r.stop)
	r.until("the server is ready", srv.Ready)
}

// until waits for cond, looking every few milliseconds, for at most 60s.
func (r *rig) until(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for: %s", what)
		}
		<-tick.C
	}
}

// commit changes the repository and returns the new head.
func (rp *repo) commit(files map[string]string, msg string) string {
	for path, content := range files {
		rp.git.Write(path, content)
	}
	before := rp.head
	rp.head = rp.git.Commit(msg)
	_ = before
	return rp.head
}

// push commits and delivers the push webhook.
func (r *rig) push(rp *repo, files map[string]string) string {
	r.t.Helper()
	before := rp.head
	sha := rp.commit(files, "change")
	_, status, err := r.gh.Deliver("push", r.gh.PushPayload(rp.Repo, "main", before, sha))
	require.NoError(r.t, err)
	require.Equal(r.t, 200, status)
	return sha
}

// run is the latest check run of a name on a commit.
func (r *rig) run(rp *repo, name, sha string) (githubtest.CheckRun, bool) {
	var found githubtest.CheckRun
	ok := false
	for _, cr := range r.gh.CheckRuns(rp.Repo) {
		if cr.Name == name && cr.HeadSHA == sha {
			found, ok = cr, true
		}
	}
	return found, ok
}

// untilRun waits for the latest check run of a name on a commit to be
// completed with conclusion.
func (r *rig) untilRun(rp *repo, name, sha, conclusion string) githubtest.CheckRun {
	r.t.Helper()
	r.until(fmt.Sprintf("%s on %s is %s", name, sha[:7], conclusion), func() bool {
		cr, ok := r.run(rp, name, sha)
		return ok && cr.Status == "completed" && cr.Conclusion == conclusion
	})
	cr, _ := r.run(rp, name, sha)
	return cr
}

func (r *rig) repoStore(rp *repo) store.Store {
	return r.srv.Store().Repo(strings.TrimPrefix(strings.TrimPrefix(r.gh.URL(), "http://"), "https://") + "/" + rp.FullName)
}

func (r *rig) hookURL() string { return r.hookAddr }

// settled waits for the repository's head to be deployed as far as it goes
// without approval, and shown so: staging converged, production waiting for
// approval on every target.
func (r *rig) settled(rp *repo) {
	r.t.Helper()
	r.untilRun(rp, "pvnbot: shop/staging", rp.head, "success")
	r.until("production shows every target waiting for approval", func() bool {
		cr, ok := r.run(rp, "pvnbot: shop/production", rp.head)
		return ok && cr.Conclusion == "action_required" && !strings.Contains(cr.Summary, "WAITING_PRECONDITIONS")
	})
}

// waitQueue waits for the deliveries received so far to be processed.
func waitQueue(r *rig) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return r.srv.Wait(ctx)
}
