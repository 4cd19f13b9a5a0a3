package server_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/githubtest"
	"github.com/pvnbot/pvnbot/internal/metrics/metricstest"
	"github.com/pvnbot/pvnbot/internal/server"
	"github.com/pvnbot/pvnbot/internal/store"
	"github.com/pvnbot/pvnbot/internal/webhook"
)

func (rp *repo) applies(t *testing.T) []string {
	data, err := os.ReadFile(filepath.Join(rp.world, "applies"))
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	return strings.Fields(string(data))
}

// A push to the deploy branch deploys the commit: staging converges through
// the local runner, production waits for its approval with the Approve
// button; the check runs say so on the commit.
func TestPushDeploysAndReportsCheckRuns(t *testing.T) {
	r := newRig(t)
	rp := r.addRepo("acme/deploys")
	r.start(server.Options{})
	sha := r.push(rp, map[string]string{"services/web.pvn.yaml": service("web", "1.0"), "services/api.pvn.yaml": service("api", "2.0")})

	staging := r.untilRun(rp, "pvnbot: shop/staging", sha, "success")
	assert.Equal(t, "2 targets converged", staging.Title)
	assert.Contains(t, staging.Summary, "| web | ✅ CONVERGED |")
	prod := r.untilRun(rp, "pvnbot: shop/production", sha, "action_required")
	require.Len(t, prod.Actions, 1)
	assert.Equal(t, "approve", prod.Actions[0].Identifier)
	assert.ElementsMatch(t, []string{"api/staging", "web/staging"}, rp.applies(t), "production did not apply")

	var statuses []string
	for _, w := range r.gh.CheckRunWrites(rp.Repo) {
		if w.Name == "pvnbot: shop/staging" {
			statuses = append(statuses, w.Status+w.Conclusion)
		}
	}
	assert.Contains(t, statuses, "in_progress", "shown in progress while jobs ran")
	assert.Equal(t, "completedsuccess", statuses[len(statuses)-1])
}

// A forged webhook is refused and changes nothing; the same delivery twice
// is acknowledged twice and processed once.
func TestForgedAndRepeatedDeliveries(t *testing.T) {
	r := newRig(t)
	rp := r.addRepo("acme/deploys")
	r.start(server.Options{})
	before := rp.head
	sha := rp.commit(map[string]string{"services/web.pvn.yaml": service("web", "1.0")}, "web")
	payload := r.gh.PushPayload(rp.Repo, "main", before, sha)

	for name, sig := range map[string]string{"forged": "sha256=" + strings.Repeat("0", 64), "unsigned": ""} {
		req, err := http.NewRequest("POST", r.hookURL(), bytes.NewReader(payload))
		require.NoError(t, err)
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", "forged-"+name)
		req.Header.Set("Content-Type", "application/json")
		if sig != "" {
			req.Header.Set("X-Hub-Signature-256", sig)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, name)
	}
	known, err := r.srv.Store().KnownDeliveries(context.Background(), []string{"forged-forged", "forged-unsigned"})
	require.NoError(t, err)
	assert.Empty(t, known, "a forged delivery is not stored")

	guid, status, err := r.gh.Deliver("push", payload)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	status, err = r.gh.DeliverAgain("push", guid, payload)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status, "a repeated delivery is acknowledged")
	r.untilRun(rp, "pvnbot: shop/staging", sha, "success")
	require.NoError(t, waitQueue(r))
	assert.Equal(t, []string{"web/staging"}, rp.applies(t), "deployed once")
	m := metricstest.Scrape(t, strings.TrimSuffix(r.hookURL(), "/api/github/hook")+"/metrics")
	assert.Equal(t, 1.0, m.Value("pvnbot_webhook_deliveries_total", "event=push", "outcome=received"), "processed once")
	assert.Equal(t, 1.0, m.Value("pvnbot_webhook_deliveries_total", "event=push", "outcome=duplicate"), "the second is known as the first")
	assert.Equal(t, 2.0, m.Value("pvnbot_webhook_deliveries_total", "event=push", "outcome=refused"), "forged and unsigned")
}

// A commit with invalid configs changes nothing running and gets a failed
// pvnbot: configs check with an annotation at each problem's line.
func TestInvalidConfigsAreAnnotated(t *testing.T) {
	r := newRig(t)
	rp := r.addRepo("acme/deploys", "web")
	r.start(server.Options{})
	r.untilRun(rp, "pvnbot: shop/staging", rp.head, "success")
	good := rp.head
	applied := rp.applies(t)

	bad := r.push(rp, map[string]string{
		"services/web.pvn.yaml": service("web", "2") + "  colour: blue\n",
		"services/api.pvn.yaml": "service:\n  name: api\n  application: shoop\n",
	})
	cr := r.untilRun(rp, "pvnbot: configs", bad, "failure")
	assert.Equal(t, "2 config problems", cr.Title, cr.Summary)
	lines := map[string]int{}
	for _, a := range cr.Annotations {
		lines[a.GetPath()] = a.GetStartLine()
		assert.Equal(t, "failure", a.GetAnnotationLevel())
	}
	assert.Equal(t, map[string]int{"services/web.pvn.yaml": 7, "services/api.pvn.yaml": 3}, lines)
	assert.Equal(t, applied, rp.applies(t), "nothing new applied")
	states, err := r.repoStore(rp).LoadTargets(context.Background())
	require.NoError(t, err)
	for _, st := range states {
		assert.Equal(t, good, st.Target.Commit, "the previous desired state stays in force")
	}
}

// Two repositories of one installation converge apart, each with its own
// check runs.
func TestTwoRepositoriesOfOneInstallation(t *testing.T) {
	r := newRig(t)
	a := r.addRepo("acme/deploys", "web")
	b := r.addRepo("acme/other", "web", "api")
	r.start(server.Options{})
	r.untilRun(a, "pvnbot: shop/staging", a.head, "success")
	r.untilRun(b, "pvnbot: shop/staging", b.head, "success")
	assert.Equal(t, []string{"web/staging"}, a.applies(t))
	assert.ElementsMatch(t, []string{"api/staging", "web/staging"}, b.applies(t))

	sha := r.push(b, map[string]string{"services/web.pvn.yaml": service("web", "2")})
	r.untilRun(b, "pvnbot: shop/staging", sha, "success")
	assert.Equal(t, []string{"web/staging"}, a.applies(t), "a push to b touches nothing of a")
	assert.Len(t, r.gh.CheckRuns(a.Repo), 2, "a's check runs are its first commit's")
}

// A repository removed from the App stops being reconciled: its targets end
// as DELETED, with the reason.
func TestRemovedRepositoryIsNoLongerReconciled(t *testing.T) {
	r := newRig(t)
	rp := r.addRepo("acme/deploys", "web")
	r.start(server.Options{})
	r.untilRun(rp, "pvnbot: shop/staging", rp.head, "success")
	r.gh.RemoveRepo(rp.FullName)
	_, status, err := r.gh.Deliver("installation_repositories", r.gh.InstallationReposPayload("removed", r.inst, nil, []*githubtest.Repo{rp.Repo}))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	r.until("the targets are deleted", func() bool {
		states, err := r.repoStore(rp).LoadTargets(context.Background())
		if err != nil || len(states) == 0 {
			return false
		}
		for _, st := range states {
			if st.Status != store.StatusDeleted {
				return false
			}
		}
		return strings.Contains(states[0].Message, "removed from the pvnbot App")
	})
	served, err := r.srv.Store().ServedRepos(context.Background())
	require.NoError(t, err)
	assert.Empty(t, served)
}

// Pushes and the installation listing may name a new repository at once:
// it gets one engine, and a commit is applied once.
func TestConcurrentPushesOfANewRepository(t *testing.T) {
	r := newRig(t)
	r.start(server.Options{})
	rp := r.addRepo("acme/deploys", "web") // installed after the start
	wr := webhook.Repo{FullName: rp.FullName, InstallationID: r.inst, CloneURL: rp.CloneURL, DefaultBranch: "main"}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { assert.NoError(t, r.srv.Push(context.Background(), wr, "main", rp.head)) })
	}
	wg.Wait()
	r.untilRun(rp, "pvnbot: shop/staging", rp.head, "success")
	assert.Equal(t, []string{"web/staging"}, rp.applies(t))
}

// Pushes to another branch, tags and branch deletions are not deploys.
func TestPushesThatAreNotDeploys(t *testing.T) {
	r := newRig(t)
	rp := r.addRepo("acme/deploys", "web")
	r.start(server.Options{})
	r.untilRun(rp, "pvnbot: shop/staging", rp.head, "success")
	deployed := rp.head
	before := rp.head
	sha := rp.commit(map[string]string{"services/web.pvn.yaml": service("web", "2")}, "on a branch")
	for name, payload := range map[string][]byte{
		"another branch":   r.gh.PushPayload(rp.Repo, "feature", before, sha),
		"a tag":            r.gh.TagPushPayload(rp.Repo, "v2", sha),
		"a deleted branch": r.gh.PushPayload(rp.Repo, "main", before, "0000000000000000000000000000000000000000"),
	} {
		guid, status, err := r.gh.Deliver("push", payload)
		require.NoError(t, err, name)
		require.Equal(t, http.StatusOK, status, name)
		r.until(name+" processed", func() bool {
			known, err := r.srv.Store().KnownDeliveries(context.Background(), []string{guid})
			return err == nil && known[guid]
		})
	}
	require.NoError(t, waitQueue(r))
	last, _, err := r.repoStore(rp).LastIngested(context.Background(), "main")
	require.NoError(t, err)
	assert.Equal(t, deployed, last, "nothing new ingested")
	assert.Equal(t, []string{"web/staging"}, rp.applies(t))
	m := metricstest.Scrape(t, strings.TrimSuffix(r.hookURL(), "/api/github/hook")+"/metrics")
	assert.Equal(t, 3.0, m.Value("pvnbot_webhook_deliveries_total", "event=push", "outcome=received"))
	assert.Zero(t, m.Value("pvnbot_webhook_deliveries_total", "event=push", "outcome=failed"), "ignored, not failed")
}

// Signed deliveries that name no owner/name repository or no installation
// are given up at once, not retried, and serve nothing.
func TestMalformedDeliveriesAreGivenUpAtOnce(t *testing.T) {
	r := newRig(t)
	r.addRepo("acme/deploys")
	r.start(server.Options{})
	payloads := map[string]string{
		"pull_request":  `{"action":"opened","number":1,"pull_request":{"head":{"sha":"abc"},"base":{"ref":"main"}},"installation":{"id":1}}`,
		"push":          `{"ref":"refs/heads/main","after":"abc","repository":{"full_name":"acme"},"installation":{"id":1}}`,
		"issue_comment": `{"action":"created","comment":{"id":5,"body":"/approve"},"repository":{"full_name":"acme/deploys"}}`,
		"check_run":     `{"action":"rerequested","check_run":{"name":"pvnbot: shop/staging"},"repository":{"full_name":"/deploys"},"installation":{"id":1}}`,
	}
	for event, payload := range payloads {
		_, status, err := r.gh.Deliver(event, []byte(payload))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status, event)
	}
	require.NoError(t, waitQueue(r))
	m := metricstest.Scrape(t, strings.TrimSuffix(r.hookURL(), "/api/github/hook")+"/metrics")
	for event := range payloads {
		assert.Equal(t, 1.0, m.Value("pvnbot_webhook_deliveries_total", "event="+event, "outcome=failed"), "%s: tried once", event)
		assert.Equal(t, 1.0, m.Value("pvnbot_webhook_deliveries_total", "event="+event, "outcome=given_up"), event)
	}
	served, err := r.srv.Store().ServedRepos(context.Background())
	require.NoError(t, err)
	for _, sr := range served {
		assert.Equal(t, "acme/deploys", sr.FullName, "no repository served from a malformed payload")
	}
}
