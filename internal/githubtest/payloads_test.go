package githubtest

import (
	"strings"
	"testing"

	"github.com/google/go-github/v89/github"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPayloadsParse(t *testing.T) {
	f := newFixture(t)
	g, r := f.g, f.repo
	f.git.Write("new.txt", "x")
	f.git.Remove("app.pvn.yaml")
	second := f.git.Commit("second commit")
	lib := g.AddRepo(f.inst, "acme/lib", "main", f.git.Dir)
	g.SetPermission(r, "alice", "write")
	g.AddPull(r, 5, second, "")
	run := CheckRun{ID: 77, Name: "pvnbot: app/prod", HeadSHA: second, ExternalID: "app/prod", Status: "completed", Conclusion: "action_required"}

	for name, tc := range map[string]struct {
		event   string
		payload []byte
		check   func(t *testing.T, ev any)
	}{
		"push to a branch": {"push", g.PushPayload(r, "main", f.sha, second), func(t *testing.T, ev any) {
			e := ev.(*github.PushEvent)
			assert.Equal(t, "refs/heads/main", e.GetRef())
			assert.Equal(t, f.sha, e.GetBefore())
			assert.Equal(t, second, e.GetAfter())
			assert.False(t, e.GetCreated())
			assert.False(t, e.GetDeleted())
			assert.Equal(t, second, e.GetHeadCommit().GetID())
			assert.Equal(t, "second commit", e.GetHeadCommit().GetMessage())
			assert.Equal(t, []string{"new.txt"}, e.GetHeadCommit().Added)
			assert.Equal(t, []string{"app.pvn.yaml"}, e.GetHeadCommit().Removed)
			require.Len(t, e.Commits, 1)
			assert.Equal(t, r.ID, e.GetRepo().GetID())
			assert.Equal(t, "acme/app", e.GetRepo().GetFullName())
			assert.Equal(t, "app", e.GetRepo().GetName())
			assert.Equal(t, "acme", e.GetRepo().GetOwner().GetLogin())
			assert.Equal(t, r.CloneURL, e.GetRepo().GetCloneURL())
			assert.Equal(t, r.HTMLURL, e.GetRepo().GetHTMLURL())
			assert.Equal(t, "main", e.GetRepo().GetDefaultBranch())
			assert.Equal(t, f.inst, e.GetInstallation().GetID())
		}},
		"new branch": {"push", g.PushPayload(r, "feature", zeroSHA, second), func(t *testing.T, ev any) {
			e := ev.(*github.PushEvent)
			assert.True(t, e.GetCreated())
			assert.Equal(t, "refs/heads/feature", e.GetRef())
		}},
		"branch deleted": {"push", g.PushPayload(r, "feature", second, zeroSHA), func(t *testing.T, ev any) {
			e := ev.(*github.PushEvent)
			assert.True(t, e.GetDeleted())
			assert.Nil(t, e.HeadCommit)
			assert.Empty(t, e.Commits)
		}},
		"tag": {"push", g.TagPushPayload(r, "v1.0.0", second), func(t *testing.T, ev any) {
			e := ev.(*github.PushEvent)
			assert.Equal(t, "refs/tags/v1.0.0", e.GetRef())
			assert.Equal(t, second, e.GetHeadCommit().GetID())
			assert.True(t, e.GetCreated())
		}},
		"installation created": {"installation", g.InstallationPayload("created", f.inst, r, lib), func(t *testing.T, ev any) {
			e := ev.(*github.InstallationEvent)
			assert.Equal(t, "created", e.GetAction())
			assert.Equal(t, f.inst, e.GetInstallation().GetID())
			assert.Equal(t, "acme", e.GetInstallation().GetAccount().GetLogin())
			assert.Equal(t, g.AppID(), e.GetInstallation().GetAppID())
			require.Len(t, e.Repositories, 2)
			assert.Equal(t, "acme/lib", e.Repositories[1].GetFullName())
			assert.Equal(t, lib.ID, e.Repositories[1].GetID())
		}},
		"installation deleted": {"installation", g.InstallationPayload("deleted", f.inst), func(t *testing.T, ev any) {
			e := ev.(*github.InstallationEvent)
			assert.Equal(t, "deleted", e.GetAction())
			assert.Equal(t, f.inst, e.GetInstallation().GetID())
			assert.Empty(t, e.Repositories)
		}},
		"repositories added and removed": {"installation_repositories", g.InstallationReposPayload("removed", f.inst, []*Repo{lib}, []*Repo{r}), func(t *testing.T, ev any) {
			e := ev.(*github.InstallationRepositoriesEvent)
			assert.Equal(t, "removed", e.GetAction())
			assert.Equal(t, f.inst, e.GetInstallation().GetID())
			require.Len(t, e.RepositoriesAdded, 1)
			assert.Equal(t, "acme/lib", e.RepositoriesAdded[0].GetFullName())
			require.Len(t, e.RepositoriesRemoved, 1)
			assert.Equal(t, r.ID, e.RepositoriesRemoved[0].GetID())
		}},
		"comment on a pull request": {"issue_comment", g.IssueCommentPayload(r, "created", 5, true, 901, "alice", "User", "/approve prod"), func(t *testing.T, ev any) {
			e := ev.(*github.IssueCommentEvent)
			assert.Equal(t, "created", e.GetAction())
			assert.True(t, e.GetIssue().IsPullRequest())
			assert.Equal(t, 5, e.GetIssue().GetNumber())
			assert.Equal(t, int64(901), e.GetComment().GetID())
			assert.Equal(t, "/approve prod", e.GetComment().GetBody())
			assert.Equal(t, "alice", e.GetComment().GetUser().GetLogin())
			assert.Equal(t, "User", e.GetComment().GetUser().GetType())
			assert.Equal(t, "alice", e.GetSender().GetLogin())
			assert.Equal(t, "acme/app", e.GetRepo().GetFullName())
			assert.Equal(t, f.inst, e.GetInstallation().GetID())
		}},
		"edited comment of a bot on an issue": {"issue_comment", g.IssueCommentPayload(r, "edited", 6, false, 902, "other[bot]", "Bot", "/approve"), func(t *testing.T, ev any) {
			e := ev.(*github.IssueCommentEvent)
			assert.Equal(t, "edited", e.GetAction())
			assert.False(t, e.GetIssue().IsPullRequest())
			assert.NotNil(t, e.GetChanges().GetBody().From)
			assert.Equal(t, "Bot", e.GetSender().GetType())
		}},
		"approve button": {"check_run", g.CheckRunPayload(r, "requested_action", run, "alice", "approve"), func(t *testing.T, ev any) {
			e := ev.(*github.CheckRunEvent)
			assert.Equal(t, "requested_action", e.GetAction())
			assert.Equal(t, "approve", e.GetRequestedAction().Identifier)
			assert.Equal(t, int64(77), e.GetCheckRun().GetID())
			assert.Equal(t, "pvnbot: app/prod", e.GetCheckRun().GetName())
			assert.Equal(t, second, e.GetCheckRun().GetHeadSHA())
			assert.Equal(t, "app/prod", e.GetCheckRun().GetExternalID())
			assert.Equal(t, "action_required", e.GetCheckRun().GetConclusion())
			assert.Equal(t, g.AppID(), e.GetCheckRun().GetApp().GetID())
			assert.Equal(t, "main", e.GetCheckRun().GetCheckSuite().GetHeadBranch(), "the commit is main's head")
			require.Len(t, e.GetCheckRun().PullRequests, 1)
			assert.Equal(t, 5, e.GetCheckRun().PullRequests[0].GetNumber())
			assert.Equal(t, "alice", e.GetSender().GetLogin())
			assert.Equal(t, "acme", e.GetOrg().GetLogin())
			assert.Equal(t, f.inst, e.GetInstallation().GetID())
			assert.Equal(t, "acme/app", e.GetRepo().GetFullName())
		}},
		"re-run": {"check_run", g.CheckRunPayload(r, "rerequested", CheckRun{ID: 78, Name: "x", HeadSHA: f.sha, Status: "in_progress"}, "bob", ""), func(t *testing.T, ev any) {
			e := ev.(*github.CheckRunEvent)
			assert.Equal(t, "rerequested", e.GetAction())
			assert.Nil(t, e.RequestedAction)
			assert.Nil(t, e.GetCheckRun().Conclusion)
			assert.Equal(t, "in_progress", e.GetCheckRun().GetStatus())
			assert.Equal(t, f.sha, e.GetCheckRun().GetCheckSuite().GetHeadSHA())
			assert.Nil(t, e.GetCheckRun().GetCheckSuite().HeadBranch, "the commit is no branch's head any more")
		}},
		"pull request from a fork": {"pull_request", g.PullRequestPayload(r, "opened", 9, second, "patch-1", "main", true), func(t *testing.T, ev any) {
			e := ev.(*github.PullRequestEvent)
			assert.Equal(t, "opened", e.GetAction())
			assert.Equal(t, 9, e.GetNumber())
			pr := e.GetPullRequest()
			assert.Equal(t, 9, pr.GetNumber())
			assert.Equal(t, second, pr.GetHead().GetSHA())
			assert.Equal(t, "patch-1", pr.GetHead().GetRef())
			assert.True(t, pr.GetHead().GetRepo().GetFork())
			assert.Equal(t, forkOwner+"/app", pr.GetHead().GetRepo().GetFullName())
			assert.NotEqual(t, r.ID, pr.GetHead().GetRepo().GetID())
			assert.Equal(t, "main", pr.GetBase().GetRef())
			assert.Equal(t, second, pr.GetBase().GetSHA())
			assert.Equal(t, "acme/app", pr.GetBase().GetRepo().GetFullName())
			assert.Equal(t, "acme/app", e.GetRepo().GetFullName())
			assert.Equal(t, f.inst, e.GetInstallation().GetID())
		}},
		"pull request synchronized": {"pull_request", g.PullRequestPayload(r, "synchronize", 5, second, "feature", "main", false), func(t *testing.T, ev any) {
			e := ev.(*github.PullRequestEvent)
			assert.Equal(t, "synchronize", e.GetAction())
			assert.Equal(t, second, e.GetAfter())
			assert.False(t, e.GetPullRequest().GetHead().GetRepo().GetFork())
			assert.Equal(t, r.ID, e.GetPullRequest().GetHead().GetRepo().GetID())
			assert.Equal(t, "open", e.GetPullRequest().GetState())
		}},
		"pull request closed": {"pull_request", g.PullRequestPayload(r, "closed", 5, second, "feature", "main", false), func(t *testing.T, ev any) {
			assert.Equal(t, "closed", ev.(*github.PullRequestEvent).GetPullRequest().GetState())
		}},
	} {
		t.Run(name, func(t *testing.T) {
			for _, host := range []string{"://github.com", "api.github.com"} {
				assert.NotContains(t, string(tc.payload), host, "every URL points at the fake")
			}
			for _, old := range []string{"Codertocat", "Hello-World", "electron", "hello-world"} {
				assert.False(t, strings.Contains(string(tc.payload), "/"+old+"/") || strings.Contains(string(tc.payload), `"`+old+`"`),
					"nothing of the template's repository %q is left", old)
			}
			ev, err := github.ParseWebHook(tc.event, tc.payload)
			require.NoError(t, err)
			tc.check(t, ev)
		})
	}
}
