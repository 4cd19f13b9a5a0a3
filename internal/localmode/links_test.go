package localmode

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/gitrepo/gitrepotest"
	"github.com/pvnbot/pvnbot/internal/links"
)

func TestRenderGivesSecretParametersFromTheEnvironment(t *testing.T) {
	repo := gitrepotest.New(t)
	repo.Write("all.pvn.yaml", `runtime:
  name: db
  custom:
    proxyRuntime: {runtime: local}
    apply:
      taskConfig:
        program:
          cmd: [migrate]
    parameters:
    - name: password
      secret: {}
---
application:
  name: app
  releaseChannels:
  - name: staging
    runtimes: [{runtime: db}]
---
service:
  name: schema
  application: app
  customRuntime:
    parameterValues:
    - name: password
      secret: {key: db-password}
`)
	sha := repo.Commit("a secret parameter")
	withSecret := links.Links{Secrets: links.EnvSecrets(func(k string) (string, bool) { return "hunter2", k == "PVN_SECRET_DB_PASSWORD" })}
	targets, problems, err := Render(repo.Open(), sha, withSecret)
	require.NoError(t, err)
	require.Empty(t, problems)
	require.Len(t, targets, 1)
	var found bool
	for _, v := range targets[0].Apply.Env {
		if v.Name == "PVN_PARAM_password" {
			found = true
			assert.Equal(t, "hunter2", v.Value)
			assert.True(t, v.Sensitive, "never logged")
		}
	}
	assert.True(t, found, "the secret reaches the job as PVN_PARAM_password")

	_, problems, err = Render(repo.Open(), sha, links.Links{Secrets: links.EnvSecrets(func(string) (string, bool) { return "", false })})
	require.NoError(t, err)
	require.Error(t, problems, "a missing secret is a problem of the commit, reported like a config error")
	assert.Contains(t, problems.Error(), "PVN_SECRET_DB_PASSWORD")
}
