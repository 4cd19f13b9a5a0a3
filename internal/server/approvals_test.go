package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/githubtest"
	"github.com/pvnbot/pvnbot/internal/server"
)

// approvalRig is a repository deployed to staging, its production waiting
// for approval, whose commit is the merge of pull request #7.
type approvalRig struct {
	*rig
	rp      *repo
	comment int64
}

func newApprovalRig(t *testing.T, runtime func(string) string, services ...string) *approvalRig {
	r := newRig(t)
	rp := r.addRepo("acme/deploys", services...)
	if runtime != nil {
		rp.commit(map[string]string{"shop.pvn.yaml": runtime(strings.ReplaceAll(rp.FullName, "/", "_"))}, "the runtime")
	}
	r.gh.AddPull(rp.Repo, 7, rp.head, rp.head)
	for user, role := range map[string]string{"alice": "write", "bob": "admin", "rob": "read"} {
		r.gh.SetPermission(rp.Repo, user, role)
	}
	r.start(server.Options{})
	r.settled(rp)
	return &approvalRig{rig: r, rp: rp, comment: 9000}
}

// say delivers a comment by user on a pull request, and waits for it to be
// processed; it returns the comment's ID and the delivery's.
func (a *approvalRig) say(action string, number int, isPR bool, user, userType, body string) (int64, string) {
	a.t.Helper()
	a.comment++
	return a.comment, a.sayAs(a.comment, action, number, isPR, user, userType, body)
}

func (a *approvalRig) sayAs(id int64, action string, number int, isPR bool, user, userType, body string) string {
	a.t.Helper()
	payload := a.gh.IssueCommentPayload(a.rp.Repo, action, number, isPR, id, user, userType, body)
	guid, status, err := a.gh.Deliver("issue_comment", payload)
	require.NoError(a.t, err)
	require.Equal(a.t, http.StatusOK, status)
	require.NoError(a.t, waitQueue(a.rig))
	return guid
}

func (a *approvalRig) replies(number int) []string {
	var out []string
	for _, c := range a.gh.Comments(a.rp.Repo, number) {
		out = append(out, c.Body)
	}
	return out
}

func TestCommentApprovalReleasesProduction(t *testing.T) {
	a := newApprovalRig(t, nil, "web", "api")
	id, _ := a.say("created", 7, true, "alice", "User", "Staging looks good.\n/approve production")
	prod := a.untilRun(a.rp, "pvnbot: shop/production", a.rp.head, "success")
	assert.Equal(t, []string{"+1"}, a.gh.Reactions(a.rp.Repo, id))
	assert.Empty(t, a.replies(7), "an accepted approval is not answered in words")
	assert.ElementsMatch(t, []string{"api/staging", "web/staging", "api/production", "web/production"}, a.rp.applies(t))
	assert.Contains(t, prod.Summary, "approved by @alice ([comment](")

	runs, err := a.repoStore(a.rp).Runs(context.Background(), keyOf("web", "production"), 0)
	require.NoError(t, err)
	var approvedBy []string
	for _, r := range runs {
		if r.Action == "apply" {
			approvedBy = r.ApprovedBy
		}
	}
	assert.Equal(t, []string{"alice"}, approvedBy, "the audit log keeps who approved")
}

// Each refusal is answered once with its reason, also when the same
// delivery comes twice, and approves nothing.
func TestRefusedApprovalsAreAnsweredOnce(t *testing.T) {
	a := newApprovalRig(t, nil, "web")
	tests := []struct {
		name        string
		action      string
		isPR        bool
		user, kind  string
		body        string
		want        string
		noReply     bool
		editedAfter bool
	}{
		{name: "read permission", action: "created", isPR: true, user: "rob", kind: "User", body: "/approve production",
			want: "@rob has read access to acme/deploys: approving needs write, maintain or admin."},
		{name: "a bot", action: "created", isPR: true, user: "ci[bot]", kind: "Bot", body: "/approve production",
			want: "@ci[bot] is a bot: approvals are given by people."},
		{name: "an edited comment", action: "edited", isPR: true, user: "alice", kind: "User", body: "/approve production",
			want: "@alice edited comments never approve: write the approval in a new comment."},
		{name: "an unknown channel", action: "created", isPR: true, user: "alice", kind: "User", body: "/approve prod",
			want: `@alice there is no release channel "prod" (release channels: production, staging).`},
		{name: "a channel that does not wait", action: "created", isPR: true, user: "alice", kind: "User", body: "/approve staging",
			want: "@alice nothing in shop/staging is waiting for approval"},
		{name: "an issue, not a pull request", action: "created", isPR: false, user: "alice", kind: "User", body: "/approve production",
			want: "@alice approvals are given on the pull request whose merge produced the commit waiting for approval, not on an issue."},
		{name: "help", action: "created", isPR: true, user: "rob", kind: "User", body: "/pvnbot help",
			want: "@rob pvnbot takes these commands"},
		{name: "not a command", action: "created", isPR: true, user: "rob", kind: "User", body: "nice work /approve production", noReply: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			number := 7
			if !tt.isPR {
				number = 8
			}
			before := len(a.replies(number))
			id, guid := a.say(tt.action, number, tt.isPR, tt.user, tt.kind, tt.body)
			a.sayAs(id, tt.action, number, tt.isPR, tt.user, tt.kind, tt.body) // edited again, or GitHub's own repeat
			payload := a.gh.IssueCommentPayload(a.rp.Repo, tt.action, number, tt.isPR, id, tt.user, tt.kind, tt.body)
			_, err := a.gh.DeliverAgain("issue_comment", guid, payload) // the same delivery again
			require.NoError(t, err)
			require.NoError(t, waitQueue(a.rig))
			got := a.replies(number)[before:]
			if tt.noReply {
				assert.Empty(t, got)
			} else {
				require.Len(t, got, 1, "one reply: %v", got)
				assert.True(t, strings.HasPrefix(got[0], tt.want), "%q", got[0])
			}
			assert.Empty(t, a.gh.Reactions(a.rp.Repo, id))
		})
	}
	assert.Equal(t, []string{"web/staging"}, a.rp.applies(t), "production waits still")
	prod, _ := a.run(a.rp, "pvnbot: shop/production", a.rp.head)
	assert.Equal(t, "action_required", prod.Conclusion)
}

// twoApprovers needs two people for production.
func twoApprovers(place string) string {
	return strings.Replace(runtimeFiles(place), "- manualApproval: {}", "- manualApproval: {minApprovers: 2}", 1)
}

func TestTwoApproversAreTwoPeople(t *testing.T) {
	a := newApprovalRig(t, twoApprovers, "web")
	first, _ := a.say("created", 7, true, "alice", "User", "/approve production")
	assert.Equal(t, []string{"+1"}, a.gh.Reactions(a.rp.Repo, first))
	again, _ := a.say("created", 7, true, "alice", "User", "/approve production")
	replies := a.replies(7)
	require.Len(t, replies, 1)
	assert.Equal(t, "@alice alice already approved shop/production: web", replies[0], "the same person twice counts once")
	assert.Empty(t, a.gh.Reactions(a.rp.Repo, again))
	prod, _ := a.run(a.rp, "pvnbot: shop/production", a.rp.head)
	assert.Equal(t, "action_required", prod.Conclusion)
	assert.Contains(t, prod.Summary, "1 of 2 approvers (alice)")

	a.say("created", 7, true, "bob", "User", "/approve")
	a.untilRun(a.rp, "pvnbot: shop/production", a.rp.head, "success")
}

func TestApproveButton(t *testing.T) {
	a := newApprovalRig(t, nil, "web")
	prod, _ := a.run(a.rp, "pvnbot: shop/production", a.rp.head)
	press := func(user string) {
		t.Helper()
		_, status, err := a.gh.Deliver("check_run", a.gh.CheckRunPayload(a.rp.Repo, "requested_action", prod, user, "approve"))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)
		require.NoError(t, waitQueue(a.rig))
	}
	press("rob")
	replies := a.replies(7)
	require.Len(t, replies, 1)
	assert.Equal(t, "@rob the Approve button of pvnbot: shop/production: @rob has read access to acme/deploys: approving needs write, maintain or admin.", replies[0])
	press("bob")
	done := a.untilRun(a.rp, "pvnbot: shop/production", a.rp.head, "success")
	assert.Contains(t, done.Summary, "approved by @bob (button)")
}

// Re-run on a channel's check run makes its targets step now, in a new run.
func TestRerunMakesANewCheckRun(t *testing.T) {
	a := newApprovalRig(t, nil, "web")
	staging, _ := a.run(a.rp, "pvnbot: shop/staging", a.rp.head)
	_, status, err := a.gh.Deliver("check_run", a.gh.CheckRunPayload(a.rp.Repo, "rerequested", staging, "alice", ""))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	a.until("a new staging run", func() bool {
		n := 0
		for _, cr := range a.gh.CheckRuns(a.rp.Repo) {
			if cr.Name == "pvnbot: shop/staging" && cr.Status == "completed" {
				n++
			}
		}
		return n == 2
	})
}

// pullRequest opens a pull request from a branch with files changed, and
// waits for its validate check.
func (a *approvalRig) pullRequest(number int, fork bool, files map[string]string) githubtest.CheckRun {
	a.t.Helper()
	base := a.rp.head
	for path, content := range files {
		a.rp.git.Write(path, content)
	}
	head := a.rp.git.Commit("a change")
	// The deploy branch stays at base: the change is the pull request's.
	a.rp.git.Reset(base)
	_, status, err := a.gh.Deliver("pull_request", a.gh.PullRequestPayload(a.rp.Repo, "opened", number, head, "change", "main", fork))
	require.NoError(a.t, err)
	require.Equal(a.t, http.StatusOK, status)
	require.NoError(a.t, waitQueue(a.rig))
	a.until("the validate check of #"+fmt.Sprint(number), func() bool {
		_, ok := a.run(a.rp, "pvnbot: validate", head)
		return ok
	})
	cr, _ := a.run(a.rp, "pvnbot: validate", head)
	return cr
}

func TestPullRequestPlan(t *testing.T) {
	a := newApprovalRig(t, nil, "web", "api")
	jobsBefore := len(a.rp.applies(t))
	cr := a.pullRequest(11, false, map[string]string{"services/web.pvn.yaml": service("web", "2.0")})
	assert.Equal(t, "success", cr.Conclusion)
	assert.Equal(t, "2 changed", cr.Title)
	assert.Contains(t, cr.Summary, "**shop/web/staging**")
	assert.Contains(t, cr.Summary, "**shop/web/production**")
	assert.NotContains(t, cr.Summary, "shop/api/", "only the service the pull request changes")
	assert.Contains(t, cr.Summary, "params.version: 1 → 2.0", "the rendered change")
	assert.Contains(t, cr.Summary, "shop/production (web)", "which channels will wait for approval")

	fork := a.pullRequest(12, true, map[string]string{"services/api.pvn.yaml": service("api", "3")})
	assert.Equal(t, "success", fork.Conclusion)
	assert.Equal(t, "2 changed", fork.Title, "a fork's pull request is planned too")

	none := a.pullRequest(13, false, map[string]string{"README.md": "docs only\n"})
	assert.Equal(t, "no target changes", none.Title)
	assert.Len(t, a.rp.applies(t), jobsBefore, "nothing of a pull request runs")
}

func TestPullRequestThatBreaksAConfig(t *testing.T) {
	a := newApprovalRig(t, nil, "web")
	cr := a.pullRequest(11, false, map[string]string{"services/web.pvn.yaml": service("web", "2") + "  colour: blue\n"})
	assert.Equal(t, "failure", cr.Conclusion)
	require.Len(t, cr.Annotations, 1)
	assert.Equal(t, "services/web.pvn.yaml", cr.Annotations[0].GetPath())
	assert.Equal(t, 7, cr.Annotations[0].GetStartLine())
	assert.Contains(t, cr.Annotations[0].GetMessage(), `unknown key "colour"`)
}

// An approval on a pull request that is not merged, or whose merge commit
// a later one replaced, approves nothing and says why.
func TestApprovalOfAnotherCommit(t *testing.T) {
	a := newApprovalRig(t, nil, "web")
	a.gh.AddPull(a.rp.Repo, 9, a.rp.head, "")
	a.say("created", 9, true, "alice", "User", "/approve production")
	replies := a.replies(9)
	require.Len(t, replies, 1)
	assert.Equal(t, "@alice #9 is not merged: an approval is for the commit its merge deploys.", replies[0])

	sha := a.push(a.rp, map[string]string{"services/web.pvn.yaml": service("web", "2")})
	a.gh.AddPull(a.rp.Repo, 10, sha, sha)
	a.untilRun(a.rp, "pvnbot: shop/production", sha, "action_required")
	a.say("created", 7, true, "alice", "User", "/approve production")
	replies = a.replies(7)
	require.Len(t, replies, 1)
	assert.Contains(t, replies[0], "@alice nothing of #7's merge commit")
	assert.Contains(t, replies[0], "is the desired state: a later commit replaced it")
	assert.Equal(t, []string{"web/staging", "web/staging"}, a.rp.applies(t), "production waits for #10's approval")
}

// A pull request's configs are rendered without the bot's secrets: a fork
// naming any key cannot learn whether the bot has it.
func TestPullRequestPlanNeverReadsASecret(t *testing.T) {
	a := newApprovalRig(t, nil, "web")
	rt := secretRuntime("acme_deploys")
	unset := a.pullRequest(21, true, map[string]string{"shop.pvn.yaml": rt,
		"services/web.pvn.yaml": strings.Replace(secretService("web", "2"), "deploy-token", "github-app-private-key", 1)})
	assert.Equal(t, "success", unset.Conclusion, "an unset key is not told apart: %s", unset.Summary)
	assert.NotContains(t, unset.Summary, "PVN_SECRET_")

	t.Setenv("PVN_SECRET_DEPLOY_TOKEN", "abc") // too short to be one
	short := a.pullRequest(22, true, map[string]string{"shop.pvn.yaml": rt, "services/web.pvn.yaml": secretService("web", "2")})
	assert.Equal(t, "success", short.Conclusion, "a value is never read, so not its length either: %s", short.Summary)
}
