package desired

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/runner"
)

// loadConfigFixture builds the targets of one of config's valid fixtures,
// written in Prodvana's spelling (SPEC §7).
func loadConfigFixture(t *testing.T, file string, opts Options) []Target {
	t.Helper()
	set, err := config.LoadFiles("../config/testdata", file)
	require.NoError(t, err)
	require.NoError(t, set.Validate(&config.Linked{KubernetesRuntimes: []string{"cluster-a"}, ContainerRegistries: []string{"main"}}))
	return build(t, set, commitA, opts)
}

func TestBuildDockerImageParameter(t *testing.T) {
	src := &secrets{values: map[string]string{"api-db-password@3": secretValue}}
	targets := loadConfigFixture(t, "valid-parameter-types.pvn.yaml", Options{
		Registries: map[string]string{"main": "https://ghcr.io/"},
		Secrets:    src,
	})

	staging := byKey(t, targets, "api/api/staging")
	assert.Equal(t, "ghcr.io/acme/api:v1.8.2", staging.Apply.Image, "{{.Params.image}} is the full reference, from the service's defaultTag passed as {{.Params.image.Tag}}")
	assert.Equal(t, []string{"deploy", "--tag=v1.8.2", "--config-commit=3f2a9c1d0b7e4a6f8c5d2e1b0a9f8e7d6c5b4a39", "--replicas=2"}, staging.Apply.Cmd)
	assert.Equal(t, "ghcr.io/acme/api:v1.8.2", staging.Params["image"])
	assert.Contains(t, staging.Apply.Env, runner.EnvVar{Name: "PVN_PARAM_image", Value: "ghcr.io/acme/api:v1.8.2"})
	assert.Contains(t, staging.Apply.Env, runner.EnvVar{Name: "VALUES", Value: "ingress:\n  host: api.staging.example.com\n"}, "a blob is rendered with the service's builtins")
	assert.Contains(t, staging.Apply.Env, runner.EnvVar{Name: "DB_PASSWORD", Value: secretValue, Sensitive: true}, "secretRef {key, version}")

	production := byKey(t, targets, "api/api/production")
	assert.Equal(t, "ghcr.io/acme/api:v1.8.1", production.Apply.Image, "dockerImageTag in perReleaseChannel")
	assert.Equal(t, []string{"deploy", "--tag=v1.8.1", "--config-commit=3f2a9c1d0b7e4a6f8c5d2e1b0a9f8e7d6c5b4a39", "--replicas=6"}, production.Apply.Cmd, `int: "6"`)
	assert.NotEqual(t, staging.Digest, production.Digest)
}

func TestBuildDockerImageDefaultTag(t *testing.T) {
	set, err := config.Parse("repo.pvn.yaml", []byte(`runtime:
  name: rt
  custom:
    proxyRuntime: {runtime: local}
    apply:
      taskConfig: {program: {cmd: [deploy, "{{.Params.image}}", "{{.Params.image.Tag}}", "{{index .Params \"image\"}}"]}}
    parameters:
    - name: image
      dockerImage: {defaultTag: "1.0", imageRegistryInfo: {containerRegistry: unlinked, imageRepository: web}}
---
application: {name: app, releaseChannels: [{name: dev, runtimes: [{runtime: rt}]}]}
---
service: {name: web, application: app}
`))
	require.NoError(t, err)
	require.NoError(t, set.Validate(nil))
	tg := byKey(t, build(t, set, commitA, Options{}), "app/web/dev")
	assert.Equal(t, []string{"deploy", "unlinked/web:1.0", "1.0", "unlinked/web:1.0"}, tg.Apply.Cmd, "the runtime's defaultTag; an unknown registry stays its name")
}

func TestBuildProdvanaRuntime(t *testing.T) {
	tg := byKey(t, loadConfigFixture(t, "valid-prodvana-runtime.pvn.yaml", Options{}), "infra/network/production")
	assert.Equal(t, 30*time.Minute, tg.Apply.Timeout, "apply.timeout is the job's deadline")
	require.NotNil(t, tg.Fetch)
	assert.Equal(t, 5*time.Minute, tg.Fetch.Timeout)
	require.NotNil(t, tg.GetInfo, "debug: is getInfo")
	assert.Equal(t, time.Minute, tg.GetInfo.Timeout)
	assert.Equal(t, "terraform", tg.Apply.ServiceAccount)
	assert.Equal(t, []string{"tf-apply", "--module=network", "--parallelism=4"}, tg.Apply.Cmd)
	assert.Equal(t, config.RetryPolicy{BaseInterval: 10 * time.Second, MaxInterval: 2 * time.Minute}, tg.Policy.FetchRetry)
	assert.Equal(t, config.RetryPolicy{BaseInterval: 15 * time.Second, MaxInterval: config.DefaultRetryMaxInterval, MaxAttempts: 3}, tg.Policy.GetInfoRetry)
	assert.Equal(t, config.RetryPolicy{BaseInterval: 30 * time.Second, MaxInterval: 10 * time.Minute}, tg.Policy.Retry)
	assert.Equal(t, 2, tg.Policy.MaxConcurrency)
	assert.Equal(t, 2, tg.Preconditions[0].ManualApproval.MinApprovers)
}

func TestBuildProdvanaRepository(t *testing.T) {
	targets := loadConfigFixture(t, "valid-prodvana-repository.pvn.yaml", Options{})
	for _, tc := range []struct {
		key, runtime, connection string
		cmd                      []string
	}{
		{"storefront/web/staging", "vm-staging", "vm", []string{"deploy", "--image=registry.example.com/web:2024-05-01", "--env=staging"}},
		{"storefront/web/production", "vm-production", "vm", []string{"deploy", "--image=registry.example.com/web:2024-04-20", "--env=production", "--canary"}},
		{"storefront/landing/staging", "static-assets", "static", []string{"sync", "landing-next.tgz", "s3://assets-staging"}},
		{"storefront/landing/production", "static-assets", "static", []string{"sync", "landing-2024-04.tgz", "s3://assets-production"}},
		{"onboarding/hello/dev", "static-assets", "static-assets", []string{"sync", "hello.tgz", "s3://assets-dev"}},
	} {
		tg := byKey(t, targets, tc.key)
		assert.Equal(t, tc.runtime, tg.Runtime, tc.key)
		assert.Equal(t, tc.connection, tg.Connection, tc.key)
		assert.Equal(t, tc.cmd, tg.Apply.Cmd, tc.key)
	}
}

// TestDigestOfTargetsWithoutProdvanaFields: a runtime that uses none of
// the fields added for Prodvana's spelling keeps the digest it had before
// them, so that upgrading the bot does not redeploy every target.
func TestDigestOfTargetsWithoutProdvanaFields(t *testing.T) {
	tg := byKey(t, build(t, seedSet(), commitA, Options{}), "app/svc/staging")
	assert.Equal(t, "a445f6247ef6f63d1d2e42058aa1c8f9a3d6cd0eff7a1433e87d208bb7b97b99", tg.Digest)

	set := seedSet()
	set.Runtimes[0].Custom.Fetch.RetryPolicy = &config.RetryPolicy{BaseInterval: time.Second}
	assert.NotEqual(t, tg.Digest, byKey(t, build(t, set, commitA, Options{}), "app/svc/staging").Digest, "fetch's retryPolicy is in the digest")
	set = seedSet()
	set.Runtimes[0].Custom.Apply.Timeout = time.Minute
	assert.NotEqual(t, tg.Digest, byKey(t, build(t, set, commitA, Options{}), "app/svc/staging").Digest, "a timeout is in the digest")
}
