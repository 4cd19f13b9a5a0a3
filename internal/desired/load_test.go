package desired

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/runner"
)

// loadAndBuild reads a tree of *.pvn.yaml files as the bot does: load,
// validate against what the bot links, build.
func loadAndBuild(t testing.TB, dir, commit string, opts Options) []Target {
	t.Helper()
	set, err := config.LoadDir(dir)
	require.NoError(t, err)
	linked := &config.Linked{KubernetesRuntimes: []string{"my-kubernetes-runtime"}, ContainerRegistries: []string{"my-registry-name"}}
	require.NoError(t, set.Validate(linked))
	return build(t, set, commit, opts)
}

func TestBuildFromYAML(t *testing.T) {
	opts := Options{
		Registries: map[string]string{"my-registry-name": "registry.example.com"},
		Secrets:    secretSource(secretValue),
	}
	targets := loadAndBuild(t, "testdata/seed", commitA, opts)

	var keys []string
	for _, tg := range targets {
		keys = append(keys, tg.Key.String())
	}
	assert.Equal(t, []string{
		"my-app/my-service/staging", "my-app/my-service/production",
		"my-app/web/staging", "my-app/web/production",
	}, keys)

	prod := byKey(t, targets, "my-app/my-service/production")
	assert.Equal(t, "my-custom-runtime", prod.Runtime)
	assert.Equal(t, "vm", prod.Connection)
	assert.Equal(t, map[string]string{"changeId": "my-default-change-id", "replicas": "10"}, prod.Params)
	assert.Equal(t, []string{"token"}, prod.SecretParams)
	assert.Equal(t, "my-default-change-id", prod.ApplyID)
	assert.Equal(t, []string{"apply-changes", "--my-change-id=my-default-change-id", "--replicas=10"}, prod.Apply.Cmd)
	assert.Equal(t, "registry.example.com/my-repository:my-tag", prod.Apply.Image)
	assert.Equal(t, "my-kubernetes-runtime", prod.Apply.ProxyRuntime)
	assert.Equal(t, "my-existing-namespace", prod.Apply.Namespace)
	assert.Contains(t, prod.Apply.Env, runner.EnvVar{Name: "API_TOKEN", Value: "Bearer " + secretValue, Sensitive: true})
	assert.Contains(t, prod.Apply.Env, runner.EnvVar{Name: "PVN_PARAM_token", Value: secretValue, Sensitive: true})
	assert.Contains(t, prod.Apply.Env, runner.EnvVar{Name: "PVN_DESIRED_VERSION", Value: "my-default-change-id"})
	require.NotNil(t, prod.Fetch)
	assert.Equal(t, []string{"fetch-state", "--my-change-id=my-default-change-id"}, prod.Fetch.Cmd)
	assert.Equal(t, 10*time.Second, prod.Policy.FetchPollInterval)
	assert.Equal(t, 10*time.Minute, prod.Policy.SteadyStatePollInterval)
	assert.Equal(t, 3, prod.Policy.MaxConcurrency)
	assert.Equal(t, []int{75}, prod.Policy.RetryableExitCodes)
	assert.Equal(t, []Precondition{
		{ReleaseChannelStable: "staging"},
		{ManualApproval: &config.ManualApproval{Name: "prod-gate", EveryAction: true, MinApprovers: 2}},
	}, prod.Preconditions)
	assert.Equal(t, "3", byKey(t, targets, "my-app/my-service/staging").Params["replicas"])

	web := byKey(t, targets, "my-app/web/staging")
	assert.Equal(t, "k8s-runtime", web.Runtime)
	assert.Equal(t, "k8s", web.Connection)
	assert.Contains(t, string(web.Apply.Manifest), `args: ["deploy", "web-`+commitA+`", "staging"]`)
	assert.Nil(t, web.Fetch)
}

func TestBuildFromYAMLDigestsAcrossCommits(t *testing.T) {
	opts := Options{Secrets: secretSource(secretValue)}
	c := Diff(loadAndBuild(t, "testdata/seed", commitA, opts), loadAndBuild(t, "testdata/seed", commitB, opts))
	assert.Equal(t, 2, c.Unchanged, "my-service does not use the commit")
	require.Len(t, c.Changed, 2, "web's changeId holds the commit")
	assert.Equal(t, Key{"my-app", "web", "staging"}, c.Changed[0].Key)
	assert.Equal(t, `params.changeId: web-`+commitA+` → web-`+commitB+`
apply.manifest:
  - 12:         args: ["deploy", "web-`+commitA+`", "staging"]
  + 12:         args: ["deploy", "web-`+commitB+`", "staging"]`, c.Changed[0].Detail)
}

// The demo repository shipped with the project builds as it is.
func TestBuildDemoRepository(t *testing.T) {
	set, err := config.LoadDir("../../fixtures/demo/repo")
	require.NoError(t, err)
	require.NoError(t, set.Validate(nil))
	targets := build(t, set, commitA, Options{})
	require.Len(t, targets, 6)

	api := byKey(t, targets, "shop/api/staging")
	assert.Equal(t, []string{"scripts/apply.sh", "2.0.1"}, api.Apply.Cmd)
	worker := byKey(t, targets, "shop/worker/production")
	assert.Equal(t, "5", worker.Params["replicas"])
	assert.Equal(t, "2", byKey(t, targets, "shop/worker/staging").Params["replicas"])
	assert.Equal(t, time.Minute, worker.Policy.ConvergenceGracePeriod)
	assert.Equal(t, 2, worker.Policy.MaxConcurrency)
}

// The seed's examples, combined into a repository, build with the bot
// configuration that links what they name.
func TestBuildSeedRepository(t *testing.T) {
	bot, err := config.LoadBot("../../fixtures/seed/bot.yaml")
	require.NoError(t, err)
	set, err := config.LoadDir("../../fixtures/seed/repo")
	require.NoError(t, err)
	require.NoError(t, set.Validate(bot.Linked()))
	registries := map[string]string{}
	for _, r := range bot.ContainerRegistries {
		registries[r.Name] = r.URL
	}
	targets := build(t, set, commitA, Options{Registries: registries})

	prod := byKey(t, targets, "my-app/my-service/production")
	assert.Equal(t, "my-other-custom-runtime", prod.Runtime)
	assert.Equal(t, commitA, prod.ApplyID, "applyId is {{.Params.commit}}, given {{.Builtins.Commit}}")
	assert.Equal(t, "my-default-change-id", prod.Params["changeId"])
	assert.NotEmpty(t, prod.Apply.Manifest)
	require.NotNil(t, prod.GetInfo)
	assert.Equal(t, "registry.example.com/my-org/my-repository:my-tag", prod.GetInfo.Image)
	assert.Equal(t, []string{"pvn-wrapper", "exec", "--"}, prod.GetInfo.Entrypoint)

	staging := byKey(t, targets, "my-app/my-service/staging")
	assert.Equal(t, "my-custom-runtime", staging.Runtime)
	assert.Equal(t, commitA, staging.DesiredVersion, "no applyId: the commit")

	vm := byKey(t, targets, "my-multi-app/my-service/production")
	assert.Equal(t, "my-prod-vm-runtime", vm.Runtime)
	assert.Equal(t, "vm", vm.Connection)
	assert.Equal(t, "my-change-id-for-this-service", vm.Params["changeId"])
}
