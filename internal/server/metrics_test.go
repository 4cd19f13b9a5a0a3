package server_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/metrics/metricstest"
	"github.com/pvnbot/pvnbot/internal/server"
)

// deploySecret is the value of the secret parameter the operators' run
// deploys with; its job prints it, as a careless script would.
const deploySecret = "s3cr3t-deploy-token-0451"

// redactedMark replaces a secret value where a job printed it.
const redactedMark = "[redacted]"

// secretRuntime is the files runtime with a secret parameter, token, that
// apply prints on stdout and stderr and getInfo in its JSON.
func secretRuntime(place string) string {
	rt := runtimeFiles(place)
	rt = strings.Replace(rt, `echo deployed $PVN_SERVICE']`, `echo deployed $PVN_SERVICE with "$PVN_PARAM_token"; echo "token=$PVN_PARAM_token" >&2']`, 1)
	rt = strings.Replace(rt, "    parameters:\n", `    getInfo:
      taskConfig:
        program:
          entrypoint: [sh, -c]
          cmd: ['printf ''{"outputs": [{"name": "version", "text": "%s"}, {"name": "token", "text": "%s"}]}'' "$PVN_PARAM_version" "$PVN_PARAM_token"']
    parameters:
`, 1)
	rt = strings.Replace(rt, "    - {name: version, required: true, string: {}}\n",
		"    - {name: version, required: true, string: {}}\n    - {name: token, required: true, secret: {}}\n", 1)
	return rt
}

func secretService(name, version string) string {
	return service(name, version) + "    - {name: token, secret: {secretRef: {key: deploy-token}}}\n"
}

// operatorsRun is an end-to-end run doing each thing an operator watches
// once: the repository's head deployed at start, a push of new versions, a
// forged delivery, the push delivered again, a refused and an accepted
// approval releasing production. It returns the rig and everything logged.
func operatorsRun(t *testing.T) (*approvalRig, *lockedBuffer) {
	t.Setenv("PVN_SECRET_DEPLOY_TOKEN", deploySecret)
	r := newRig(t)
	rp := r.addRepo("acme/deploys")
	rp.commit(map[string]string{
		"shop.pvn.yaml":         secretRuntime("acme_deploys"),
		"services/web.pvn.yaml": secretService("web", "1"),
		"services/api.pvn.yaml": secretService("api", "1"),
	}, "secret runtime")
	r.gh.SetPermission(rp.Repo, "alice", "write")
	r.gh.SetPermission(rp.Repo, "rob", "read")
	logs := &lockedBuffer{}
	r.start(server.Options{Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	r.settled(rp)

	before := rp.head
	sha := rp.commit(map[string]string{"services/web.pvn.yaml": secretService("web", "2"), "services/api.pvn.yaml": secretService("api", "2")}, "version 2")
	payload := r.gh.PushPayload(rp.Repo, "main", before, sha)
	guid, status, err := r.gh.Deliver("push", payload)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	forged, err := http.NewRequest("POST", r.hookURL(), strings.NewReader(`{"ref":"refs/heads/main"}`))
	require.NoError(t, err)
	forged.Header.Set("X-GitHub-Event", "push")
	forged.Header.Set("X-GitHub-Delivery", "forged")
	forged.Header.Set("X-Hub-Signature-256", "sha256="+strings.Repeat("0", 64))
	resp, err := http.DefaultClient.Do(forged)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	status, err = r.gh.DeliverAgain("push", guid, payload)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	r.settled(rp)

	r.gh.AddPull(rp.Repo, 7, sha, sha)
	a := &approvalRig{rig: r, rp: rp, comment: 9000}
	a.say("created", 7, true, "rob", "User", "/approve production")
	a.say("created", 7, true, "alice", "User", "/approve production")
	r.untilRun(rp, "pvnbot: shop/production", sha, "success")
	r.until("production shows getInfo's outputs", func() bool {
		cr, _ := r.run(rp, "pvnbot: shop/production", sha)
		return strings.Count(cr.Summary, "**version**: 2") == 2
	})
	require.NoError(t, waitQueue(r))
	return a, logs
}

// /metrics, scraped after the operators' run, has each family with the
// counts of what the run did.
func TestMetricsCountWhatHappened(t *testing.T) {
	a, _ := operatorsRun(t)
	m := metricstest.Scrape(t, strings.TrimSuffix(a.hookURL(), "/api/github/hook")+"/metrics")

	assert.Equal(t, 1.0, m.Value("pvnbot_webhook_deliveries_total", "event=push", "outcome=received"))
	assert.Equal(t, 1.0, m.Value("pvnbot_webhook_deliveries_total", "event=push", "outcome=duplicate"))
	assert.Equal(t, 1.0, m.Value("pvnbot_webhook_deliveries_total", "event=push", "outcome=refused"))
	assert.Equal(t, 2.0, m.Value("pvnbot_webhook_deliveries_total", "event=issue_comment", "outcome=received"))
	assert.Zero(t, m.Value("pvnbot_webhook_deliveries_total", "outcome=failed"))
	assert.Equal(t, 0.0, m.Value("pvnbot_webhook_queue_depth"))
	assert.Equal(t, 0.0, m.Value("pvnbot_webhook_queue_oldest_seconds"))

	// Version 1 and 2 to staging, 2 to production, for two services.
	applies := len(a.rp.applies(t))
	require.Equal(t, 6, applies)
	assert.Equal(t, float64(applies), m.Value("pvnbot_job_runs_total", "runtime=files", "action=apply", "result=success"))
	assert.Zero(t, m.Value("pvnbot_job_runs_total", "result=failure")+m.Value("pvnbot_job_runs_total", "result=error"))
	drift := m.Value("pvnbot_job_runs_total", "action=fetch", "result=drift")
	assert.GreaterOrEqual(t, drift, float64(applies), "a fetch found each change to make")
	assert.GreaterOrEqual(t, m.Value("pvnbot_job_runs_total", "action=fetch", "result=success"), float64(applies), "a fetch confirmed each apply")
	assert.Equal(t, m.Value("pvnbot_job_runs_total", "action=apply"), m.Count("pvnbot_job_duration_seconds", "action=apply"))
	assert.Equal(t, m.Value("pvnbot_job_runs_total", "action=fetch"), m.Count("pvnbot_job_duration_seconds", "action=fetch"))

	assert.Equal(t, 4.0, m.Value("pvnbot_targets", "repo="+a.rp.FullName, "application=shop", "status=CONVERGED"))
	assert.Zero(t, m.Value("pvnbot_targets", "status=WAITING_MANUAL_APPROVAL"))
	// Staging at start, staging after the push, production after the approval.
	assert.Equal(t, 3.0, m.Count("pvnbot_commit_to_converged_seconds", "repo="+a.rp.FullName))

	assert.Equal(t, 1.0, m.Value("pvnbot_approvals_total", "outcome=accepted"))
	assert.Equal(t, 1.0, m.Value("pvnbot_approvals_total", "outcome=refused", "reason=not_allowed"))

	posts := 0
	for _, req := range a.gh.Requests() {
		if req.Method == "POST" && req.Path == "/repos/"+a.rp.FullName+"/check-runs" {
			posts++
		}
	}
	require.NotZero(t, posts)
	assert.Equal(t, float64(posts), m.Value("pvnbot_github_api_requests_total", "method=POST", "endpoint=/repos/{owner}/{repo}/check-runs", "status=201"))
	assert.NotZero(t, m.Value("pvnbot_github_api_requests_total", "method=PATCH", "endpoint=/repos/{owner}/{repo}/check-runs/{id}", "status=200"))
	assert.NotZero(t, m.Value("pvnbot_github_requests_total", "class=2xx"))
	inst := "installation=" + strconv.FormatInt(a.inst, 10)
	assert.Equal(t, 5000.0, m.Value("pvnbot_github_rate_limit", inst, "kind=limit"))
	assert.Positive(t, m.Value("pvnbot_github_rate_limit", inst, "kind=remaining"))
	assert.Equal(t, 1.0, m.Value("pvnbot_build_info"))
}

// The log of the operators' run says what each line concerns, and nothing
// logged, nor posted to GitHub, holds a secret: the webhook secret, the
// App's private key, an installation token, or a secret parameter a job
// printed.
func TestLogsSayWhatAndHoldNoSecret(t *testing.T) {
	a, logs := operatorsRun(t)
	var posted strings.Builder
	for _, w := range a.gh.CheckRunWrites(a.rp.Repo) {
		posted.WriteString(w.Title + w.Summary + "\n")
	}
	for _, cr := range a.gh.CheckRuns(a.rp.Repo) {
		posted.WriteString(cr.Text + "\n")
	}
	for _, c := range a.gh.Comments(a.rp.Repo, 7) {
		posted.WriteString(c.Body + "\n")
	}
	secrets := map[string]string{
		"webhook secret":  a.gh.WebhookSecret(),
		"secret param":    deploySecret,
		"private key":     pemBody(a.gh.PrivateKeyPEM()),
		"key's first row": strings.Split(a.gh.PrivateKeyPEM(), "\n")[1],
	}
	tokens := a.gh.Tokens()
	require.NotEmpty(t, tokens)
	for i, tok := range tokens {
		secrets["installation token "+strconv.Itoa(i)] = tok
	}
	log := logs.String()
	needs := map[string][]string{
		"target changed":    {"repo", "target", "commit", "status"},
		"job finished":      {"repo", "target", "commit", "run_id", "exit_code"},
		"approval accepted": {"repo", "delivery_id", "commit", "user"},
		"approval refused":  {"repo", "delivery_id", "user", "reason"},
		"delivery stored":   {"delivery_id", "event"},
	}
	seen := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		var entry map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &entry), line)
		msg, _ := entry["msg"].(string)
		for _, attr := range needs[msg] {
			v, ok := entry[attr]
			assert.True(t, ok && v != "", "%q without %s: %s", msg, attr, line)
		}
		seen[msg]++
	}
	for msg := range needs {
		assert.NotZero(t, seen[msg], "nothing logged %q", msg)
	}
	require.Contains(t, posted.String(), "**version**: 2", "getInfo's output reached the check run")
	require.Contains(t, posted.String(), redactedMark, "the secret was in it")
	for name, secret := range secrets {
		require.GreaterOrEqual(t, len(secret), 8, name)
		assert.NotContains(t, log, secret, "the log holds the %s", name)
		assert.NotContains(t, posted.String(), secret, "GitHub was sent the %s", name)
	}
}

func pemBody(pem string) string {
	var b strings.Builder
	for _, line := range strings.Split(pem, "\n") {
		if !strings.HasPrefix(line, "-----") {
			b.WriteString(line)
		}
	}
	return b.String()[:64]
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
