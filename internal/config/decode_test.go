package config

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func strp(s string) *string { return &s }

func TestDecodeFull(t *testing.T) {
	s, err := LoadFiles("testdata", "valid-full.pvn.yaml")
	require.NoError(t, err)
	require.Len(t, s.Runtimes, 1)
	c := s.Runtimes[0].Custom

	assert.Equal(t, "GENERIC", c.Type)
	assert.Equal(t, ProxyRuntime{Pos: Pos{"valid-full.pvn.yaml", 6, 5}, Runtime: "cluster-a", RuntimePos: Pos{"valid-full.pvn.yaml", 7, 7}, Namespace: "deploys"}, c.ProxyRuntime)
	assert.Equal(t, "{{.Params.tag}}", c.ApplyID.Value)
	assert.Equal(t, 24*time.Hour, c.ConvergenceGracePeriod)
	assert.True(t, c.RequireApprovalBeforeApply)

	prog := c.Apply.TaskConfig.Program
	assert.Equal(t, []Text{{"sh", Pos{"valid-full.pvn.yaml", 14, 24}}, {"-c", Pos{"valid-full.pvn.yaml", 14, 28}}}, prog.Entrypoint)
	assert.Equal(t, "deploy/{{.Builtins.Application.Name}}", prog.WorkingDirectory.Value)
	assert.Equal(t, &ImageRegistryInfo{Pos: Pos{"valid-full.pvn.yaml", 21, 11}, ContainerRegistry: "main", ContainerRegistryPos: Pos{"valid-full.pvn.yaml", 22, 13}, ImageRepository: "deployer"}, prog.ImageRegistryInfo)
	assert.Equal(t, "deployer", prog.ServiceAccount)
	require.Len(t, prog.Env, 2)
	assert.Equal(t, "TAG", prog.Env[0].Name)
	assert.Equal(t, "{{.Params.tag}}", prog.Env[0].Value.Value)
	assert.Equal(t, &SecretKeyRef{SecretName: "deploy", Key: "token"}, prog.Env[1].KubernetesSecret)
	assert.Equal(t, 30*time.Minute, c.Apply.TaskConfig.TTL)
	assert.Equal(t, "REGION", c.Apply.Env[0].Name)
	assert.Equal(t, 3, c.Apply.MaxConcurrency)
	assert.Equal(t, RetryPolicy{BaseInterval: 10 * time.Second, MaxInterval: 2 * time.Minute, MaxAttempts: 5}, c.Apply.RetryPolicy)
	assert.Equal(t, []int{75, 76}, c.Apply.RetryableExitCodes)

	require.NotNil(t, c.Fetch)
	assert.Equal(t, 1500*time.Millisecond, c.Fetch.PollInterval)
	assert.Equal(t, 90*time.Minute, c.Fetch.SteadyStatePollInterval)
	assert.Equal(t, FetchModeStructuredOutput, c.Fetch.FetchMode)
	k := c.Fetch.KubernetesConfig
	assert.Equal(t, "jobs/apply.yaml", k.File)
	assert.Equal(t, "KUBERNETES", k.Type)
	assert.Contains(t, string(k.Manifest), "kind: Job")
	require.NotNil(t, c.GetInfo)
	assert.Equal(t, 5*time.Minute, c.GetInfo.PollInterval)
	assert.Equal(t, time.Hour, c.GetInfo.TaskConfig.TTL)

	require.Len(t, c.Parameters, 3)
	assert.Equal(t, Parameter{Pos: Pos{"valid-full.pvn.yaml", 49, 7}, NamePos: Pos{"valid-full.pvn.yaml", 49, 7}, Name: "tag", Description: "image tag", Required: true, Type: ParamString}, c.Parameters[0])
	assert.Equal(t, ParamInt, c.Parameters[1].Type)
	assert.Equal(t, strp("3"), c.Parameters[1].Default)
	assert.Equal(t, ParamSecret, c.Parameters[2].Type)

	a := s.Applications[0]
	require.Len(t, a.ReleaseChannels, 2)
	assert.Equal(t, "full", a.ReleaseChannels[0].Runtimes[0].Name, "connection name defaults to the runtime's")
	pre := a.ReleaseChannels[1].Preconditions
	require.Len(t, pre, 2)
	assert.Equal(t, "staging", pre[0].ReleaseChannelStable.ReleaseChannel)
	assert.Equal(t, &ManualApproval{Name: "gate", Description: "look first", EveryAction: true, MinApprovers: 2}, pre[1].ManualApproval)

	svc := s.Services[0]
	assert.Equal(t, strp("2.0"), svc.Parameters[0].Default)
	prod := svc.ParameterValuesFor("production")
	require.Len(t, prod, 3)
	assert.Equal(t, ParameterValue{Pos: Pos{"valid-full.pvn.yaml", 83, 7}, NamePos: Pos{"valid-full.pvn.yaml", 83, 8}, TypePos: Pos{"valid-full.pvn.yaml", 83, 22},
		Name: "apiKey", Type: ParamSecret, Value: Text{"API_KEY", Pos{"valid-full.pvn.yaml", 83, 36}}, SecretVersion: "3"}, prod[1])
	assert.Equal(t, "5", prod[2].Value.Value)
	assert.Len(t, svc.ParameterValuesFor("staging"), 2)
}

func TestDecodeDefaultsAndSnakeCase(t *testing.T) {
	s, err := LoadFiles("testdata", "valid-snake-case.pvn.yaml")
	require.NoError(t, err)
	c := s.Runtimes[0].Custom
	assert.True(t, c.ProxyRuntime.IsLocal())
	assert.Equal(t, "GENERIC", c.Type)
	assert.Equal(t, "scripts", c.Apply.TaskConfig.Program.WorkingDirectory.Value)
	assert.Equal(t, 1, c.Apply.MaxConcurrency)
	assert.Equal(t, RetryPolicy{MaxInterval: DefaultRetryMaxInterval}, c.Apply.RetryPolicy)
	assert.Equal(t, 5*time.Minute, c.Fetch.PollInterval)
	assert.Equal(t, DefaultSteadyStatePollInterval, c.Fetch.SteadyStatePollInterval)
	assert.Equal(t, FetchModeExitCode, c.Fetch.FetchMode)
	assert.Equal(t, DefaultTaskTTL, c.Fetch.TaskConfig.TTL)
	assert.Nil(t, c.GetInfo)
	assert.Equal(t, 90*time.Minute, c.ConvergenceGracePeriod)
	assert.Equal(t, strp("abc"), c.Parameters[0].Default)
	assert.Equal(t, "main", s.Services[0].RuntimeConnection)
	assert.Equal(t, "only", s.Services[0].PerReleaseChannel[0].ReleaseChannel)

	s, err = Parse("x.pvn.yaml", []byte("runtime: {name: r, custom: {proxyRuntime: {runtime: local}, apply: {taskConfig: {program: {cmd: [x]}}}, fetch: {taskConfig: {program: {cmd: [y]}}}}}\n---\napplication: {name: a, releaseChannels: [{name: c, runtimes: [{runtime: r}], preconditions: [{manualApproval: {}}]}]}"))
	require.NoError(t, err)
	c = s.Runtimes[0].Custom
	assert.Equal(t, DefaultFetchPollInterval, c.Fetch.PollInterval)
	assert.Equal(t, DefaultConvergenceGracePeriod, c.ConvergenceGracePeriod)
	assert.Equal(t, 1, s.Applications[0].ReleaseChannels[0].Preconditions[0].ManualApproval.MinApprovers)
}

func TestLoadFS(t *testing.T) {
	job := &fstest.MapFile{Data: []byte("apiVersion: batch/v1\nkind: Job\nspec:\n  template: {{.Params.x}}\n")}
	fsys := fstest.MapFS{
		"deploy/rt.pvn.yaml":             {Data: []byte("runtime: {name: r, custom: {proxyRuntime: {runtime: k}, apply: {kubernetesConfig: {local: {path: jobs/a.yaml}}}, parameters: [{name: x, string: {}}]}}")},
		"deploy/jobs/a.yaml":             job,
		"app.pvn.yml":                    {Data: []byte("application: {name: a, releaseChannels: [{name: c, runtimes: [{runtime: r}]}]}")},
		"notes.yaml":                     {Data: []byte("not: a config")},
		"vendor/x.pvn.yaml":              {Data: []byte("broken: [")},
		"node_modules/y.pvn.yaml":        {Data: []byte("broken: [")},
		".pvnbot/z.pvn.yaml":             {Data: []byte("broken: [")},
		".git/w.pvn.yaml":                {Data: []byte("broken: [")},
		"svc/deep/nested/web.pvn.yaml":   {Data: []byte("service: {name: web, application: a}")},
		"svc/deep/nested/other.pvn.yaml": {Data: []byte("")},
	}
	s, err := LoadFS(fsys)
	require.NoError(t, err)
	assert.Equal(t, []string{"app.pvn.yml", "deploy/rt.pvn.yaml", "svc/deep/nested/other.pvn.yaml", "svc/deep/nested/web.pvn.yaml"}, s.Files)
	k := s.Runtimes[0].Custom.Apply.KubernetesConfig
	assert.Equal(t, "jobs/a.yaml", k.Path)
	assert.Equal(t, "deploy/jobs/a.yaml", k.File)
	assert.Equal(t, job.Data, k.Manifest)
	assert.NoError(t, s.Validate(&Linked{KubernetesRuntimes: []string{"k"}}))
	assert.Equal(t, 1, s.Targets())
}

func TestLoadErrors(t *testing.T) {
	_, err := LoadDir(t.TempDir() + "/missing")
	assert.ErrorContains(t, err, "load configs")
	_, err = LoadFiles("testdata", "../config_test.go")
	assert.ErrorContains(t, err, "is not inside")

	s, err := LoadFiles("testdata", "valid-full.pvn.yaml", "invalid-syntax.pvn.yaml")
	require.NotNil(t, s, "configs that parsed are kept")
	assert.Len(t, s.Runtimes, 1)
	assert.EqualError(t, err, "invalid-syntax.pvn.yaml:6:1: invalid YAML: could not find expected ':'")
}

func TestAliasBomb(t *testing.T) {
	// 1,000 channels that are the same alias, each with 1,000 runtimes that
	// are the same alias: a small file that expands to a million links.
	links := strings.Repeat(", *l", 999)
	channels := strings.Repeat(", *c", 999)
	doc := "application:\n  name: a\n  releaseChannels: [&c {name: y, runtimes: [&l {runtime: r}" + links + "]}" + channels + "]\n"
	start := time.Now()
	_, err := Parse("bomb.pvn.yaml", []byte(doc))
	assert.ErrorContains(t, err, "aliases expand")
	var es Errors
	require.ErrorAs(t, err, &es)
	assert.LessOrEqual(t, len(es), maxFileErrors+1)
	assert.Less(t, time.Since(start), 5*time.Second)
}

func TestTooManyErrors(t *testing.T) {
	doc := "service:\n  name: s\n  application: a\n  parameters:\n" + strings.Repeat("  - {name: x, bad: 1}\n", 500)
	_, err := Parse("many.pvn.yaml", []byte(doc))
	var es Errors
	require.ErrorAs(t, err, &es)
	assert.Len(t, es, maxFileErrors+1)
	assert.Contains(t, err.Error(), "many.pvn.yaml:1:1: too many problems; stopped after 100")
}
