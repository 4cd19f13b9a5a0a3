package githubtest

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/go-github/v89/github"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPullsForCommit(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.client(t, f.inst)
	const head, merge, open = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222", "3333333333333333333333333333333333333333"
	f.g.AddPull(f.repo, 7, head, merge)
	f.g.AddPull(f.repo, 8, open, "")

	for _, sha := range []string{head, merge} {
		pulls, _, err := c.PullRequests.ListPullRequestsWithCommit(ctx, "acme", "app", sha, nil)
		require.NoError(t, err)
		require.Len(t, pulls, 1, sha)
		assert.Equal(t, 7, pulls[0].GetNumber())
		assert.Equal(t, merge, pulls[0].GetMergeCommitSHA())
		assert.Equal(t, head, pulls[0].GetHead().GetSHA())
		assert.True(t, pulls[0].GetMerged())
	}
	pulls, _, err := c.PullRequests.ListPullRequestsWithCommit(ctx, "acme", "app", open, nil)
	require.NoError(t, err)
	require.Len(t, pulls, 1)
	assert.Equal(t, "open", pulls[0].GetState())
	assert.Empty(t, pulls[0].GetMergeCommitSHA())
	pulls, _, err = c.PullRequests.ListPullRequestsWithCommit(ctx, "acme", "app", f.sha, nil)
	require.NoError(t, err)
	assert.Empty(t, pulls)

	pr, _, err := c.PullRequests.Get(ctx, "acme", "app", 8)
	require.NoError(t, err)
	assert.Equal(t, open, pr.GetHead().GetSHA())
	_, _, err = c.PullRequests.Get(ctx, "acme", "app", 9)
	assertStatus(t, err, http.StatusNotFound)
}

func TestCommentsAndReactions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.client(t, f.inst)

	cm, resp, err := c.Issues.CreateComment(ctx, "acme", "app", 3, &github.IssueComment{Body: github.Ptr("Approved.")})
	require.NoError(t, err)
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, f.g.BotLogin(), cm.GetUser().GetLogin())
	assert.Equal(t, "Bot", cm.GetUser().GetType())
	assert.Equal(t, []Comment{{ID: cm.GetID(), Number: 3, Body: "Approved.", User: f.g.BotLogin()}}, f.g.Comments(f.repo, 3))
	assert.Empty(t, f.g.Comments(f.repo, 4))
	list, _, err := c.Issues.ListComments(ctx, "acme", "app", 3, nil)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, cm.GetID(), list[0].GetID())
	_, _, err = c.Issues.CreateComment(ctx, "acme", "app", 3, &github.IssueComment{})
	er := assertStatus(t, err, http.StatusUnprocessableEntity)
	assert.Equal(t, "missing_field", er.Errors[0].Code)

	const userComment = 12345 // a comment of a user, as a payload gave it
	first, resp, err := c.Reactions.CreateIssueCommentReaction(ctx, "acme", "app", userComment, "+1")
	require.NoError(t, err)
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	again, resp, err := c.Reactions.CreateIssueCommentReaction(ctx, "acme", "app", userComment, "+1")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the same reaction again comes back with 200")
	assert.Equal(t, first.GetID(), again.GetID())
	_, resp, err = c.Reactions.CreateIssueCommentReaction(ctx, "acme", "app", userComment, "heart")
	require.NoError(t, err)
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, []string{"+1", "heart"}, f.g.Reactions(f.repo, userComment))
	_, _, err = c.Reactions.CreateIssueCommentReaction(ctx, "acme", "app", userComment, "thumbsup")
	assertStatus(t, err, http.StatusUnprocessableEntity)
}

func TestPermissionLevel(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.client(t, f.inst)
	for role, permission := range map[string]string{
		"admin": "admin", "maintain": "write", "write": "write", "triage": "read", "read": "read", "none": "none",
	} {
		user := "user-" + role
		f.g.SetPermission(f.repo, user, role)
		got, _, err := c.Repositories.GetPermissionLevel(ctx, "acme", "app", user)
		require.NoError(t, err)
		assert.Equal(t, role, got.GetRoleName())
		assert.Equal(t, permission, got.GetPermission(), role)
		assert.Equal(t, user, got.GetUser().GetLogin())
	}
	got, _, err := c.Repositories.GetPermissionLevel(ctx, "acme", "app", "stranger")
	require.NoError(t, err, "an account without access: 200 with none")
	assert.Equal(t, "none", got.GetPermission())
	assert.Equal(t, "none", got.GetRoleName())

	f.g.FailNext("/repos/acme/app/collaborators/ghost/permission", 1, http.StatusNotFound)
	_, _, err = c.Repositories.GetPermissionLevel(ctx, "acme", "app", "ghost")
	assertStatus(t, err, http.StatusNotFound)
}
