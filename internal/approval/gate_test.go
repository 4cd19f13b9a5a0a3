package approval_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-github/v89/github"
	"github.com/palantir/go-githubapp/githubapp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/approval"
	"github.com/pvnbot/pvnbot/internal/clock"
	"github.com/pvnbot/pvnbot/internal/githubtest"
	"github.com/pvnbot/pvnbot/internal/gitrepo/gitrepotest"
)

// roles asks GitHub with go-github, as the bot does.
type roles struct{ c *github.Client }

func (r roles) RoleName(ctx context.Context, owner, repo, login string) (string, error) {
	p, resp, err := r.c.Repositories.GetPermissionLevel(ctx, owner, repo, login)
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		return "none", nil
	}
	if err != nil {
		return "", err
	}
	return p.GetRoleName(), nil
}

func TestGate(t *testing.T) {
	gh := githubtest.New(t)
	inst := gh.AddInstallation("acme")
	git := gitrepotest.New(t)
	git.Write("a", "1")
	git.Commit("one")
	repo := gh.AddRepo(inst, "acme/deploys", "main", git.Dir)
	for user, role := range map[string]string{"alice": "admin", "mia": "maintain", "wes": "write", "tia": "triage", "rob": "read"} {
		gh.SetPermission(repo, user, role)
	}
	client, err := githubapp.NewClientCreator(gh.APIURL(), gh.URL()+"/api/graphql", gh.AppID(), []byte(gh.PrivateKeyPEM())).NewInstallationClient(inst)
	require.NoError(t, err)
	c := clock.NewFake(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	gate := approval.NewGate(roles{client}, c)

	tests := map[string]struct {
		who  approval.Person
		want string
	}{
		"admin":            {approval.Person{Login: "alice", Type: "User"}, ""},
		"maintain":         {approval.Person{Login: "mia", Type: "User"}, ""},
		"write":            {approval.Person{Login: "wes", Type: "User"}, ""},
		"triage":           {approval.Person{Login: "tia", Type: "User"}, "@tia has triage access to acme/deploys: approving needs write, maintain or admin."},
		"read":             {approval.Person{Login: "rob", Type: "User"}, "@rob has read access to acme/deploys: approving needs write, maintain or admin."},
		"no access":        {approval.Person{Login: "eve", Type: "User"}, "@eve has no access to acme/deploys: approving needs write, maintain or admin."},
		"a bot":            {approval.Person{Login: "renovate", Type: "Bot"}, "@renovate is a bot: approvals are given by people."},
		"a [bot] login":    {approval.Person{Login: "dependabot[bot]", Type: "User"}, "@dependabot[bot] is a bot: approvals are given by people."},
		"a bot with admin": {approval.Person{Login: "ci[bot]", Type: "Bot"}, "@ci[bot] is a bot: approvals are given by people."},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			reason, err := gate.Check(context.Background(), "acme", "deploys", tt.who)
			require.NoError(t, err)
			assert.Equal(t, tt.want, reason)
		})
	}

	// A role is read again after a minute, not before.
	gh.SetPermission(repo, "wes", "read")
	reason, err := gate.Check(context.Background(), "acme", "deploys", approval.Person{Login: "wes", Type: "User"})
	require.NoError(t, err)
	assert.Empty(t, reason, "within the minute, the answer read before")
	c.Advance(time.Minute)
	reason, err = gate.Check(context.Background(), "acme", "deploys", approval.Person{Login: "wes", Type: "User"})
	require.NoError(t, err)
	assert.Contains(t, reason, "@wes has read access", "a minute later, asked again")

	gh.FailNext("/repos/acme/deploys/collaborators/*/permission", 1, http.StatusBadGateway)
	_, err = gate.Check(context.Background(), "acme", "deploys", approval.Person{Login: "zed", Type: "User"})
	assert.Error(t, err, "GitHub failing is an error, not a refusal")
}
