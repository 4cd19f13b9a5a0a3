package desired

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/config"
)

func TestDiffTargets(t *testing.T) {
	oldSet := seedSet()
	oldSet.Services = append(oldSet.Services, seedService("gone", "app"), seedService("same", "app"))
	newSet := seedSet()
	newSet.Services = append(newSet.Services, seedService("same", "app"), seedService("fresh", "app"))
	newSet.Services[0].PerReleaseChannel = []config.ReleaseChannelOverride{{ReleaseChannel: "production",
		CustomRuntime: config.CustomRuntimeValues{ParameterValues: []config.ParameterValue{value("changeId", config.ParamString, "b", 9)}}}}

	c := Diff(build(t, oldSet, commitA, Options{}), build(t, newSet, commitB, Options{}))

	assert.Equal(t, []Key{{"app", "fresh", "staging"}, {"app", "fresh", "production"}}, c.Added)
	assert.Equal(t, []Key{{"app", "gone", "staging"}, {"app", "gone", "production"}}, c.Removed)
	require.Len(t, c.Changed, 1)
	ch := c.Changed[0]
	assert.Equal(t, Key{"app", "svc", "production"}, ch.Key)
	assert.Equal(t, commitA, ch.Old.Commit)
	assert.Equal(t, commitB, ch.New.Commit)
	assert.Equal(t, `params.changeId: default-id → b
apply.cmd: ["apply","--id=default-id"] → ["apply","--id=b"]
fetch.cmd: ["fetch","default-id"] → ["fetch","b"]`, ch.Detail)
	assert.Equal(t, 3, c.Unchanged, "svc/staging and same/* render the same at the new commit")
	assert.False(t, c.Empty())
}

func TestDiffDetail(t *testing.T) {
	tests := map[string]struct {
		oldOpts, newOpts Options
		change           func(set *config.Set) // applied to both the old and the new config
		changeNew        func(set *config.Set)
		want             string
	}{
		"secret value": {
			change: func(set *config.Set) {
				*set = *secretSet()
			},
			oldOpts: Options{Secrets: secretSource("old-secret")},
			newOpts: Options{Secrets: secretSource("new-secret")},
			want:    "params.token: (secret changed)\napply.env.AUTH: (secret changed)",
		},
		"parameter added and env changed": {
			changeNew: func(set *config.Set) {
				set.Runtimes[0].Custom.Parameters = append(set.Runtimes[0].Custom.Parameters, stringParam("region", "eu"))
				set.Runtimes[0].Custom.Apply.Env = []config.EnvVar{
					{Name: "REGION", Value: ptr(text("{{.Params.region}}", config.Pos{}))},
					{Name: "DB", KubernetesSecret: &config.SecretKeyRef{SecretName: "db", Key: "url"}},
				}
			},
			want: "params.region: (unset) → eu\napply.env.DB: (unset) → secret db/url\napply.env.REGION: (unset) → eu",
		},
		"jobs and policy": {
			changeNew: func(set *config.Set) {
				c := &set.Runtimes[0].Custom
				c.Fetch = nil
				c.GetInfo = &config.GetInfo{Job: config.Job{TaskConfig: task("rt.pvn.yaml", 60, "info")}}
				c.Apply.TaskConfig.Program.Image = text("busybox:1", config.Pos{})
				c.Apply.MaxConcurrency = 5
				c.ConvergenceGracePeriod = time.Minute
				c.ApplyID = text("{{.Params.changeId}}", config.Pos{})
			},
			want: `applyId: (unset) → default-id
apply.image: (unset) → busybox:1
fetch: removed
getInfo: (none) → added
policy.fetchPollInterval: 2s → 30s
policy.convergenceGracePeriod: 10m0s → 1m0s
policy.maxConcurrency: 2 → 5
policy.retry.baseInterval: 2s → 30s`,
		},
		"manifest": {
			change: func(set *config.Set) {
				set.Runtimes[0].Custom.Apply.Job = config.Job{KubernetesConfig: &config.KubernetesConfig{File: "job.yaml",
					Manifest: []byte("kind: Job\nname: x\nargs: [\"{{.Params.changeId}}\"]\nrestartPolicy: Never\n")}}
			},
			changeNew: func(set *config.Set) {
				set.Services[0].CustomRuntime.ParameterValues = []config.ParameterValue{value("changeId", config.ParamString, "v2", 5)}
			},
			want: `params.changeId: default-id → v2
apply.manifest:
  - 3: args: ["default-id"]
  + 3: args: ["v2"]
fetch.cmd: ["fetch","default-id"] → ["fetch","v2"]`,
		},
		"preconditions": {
			changeNew: func(set *config.Set) {
				set.Applications[0].ReleaseChannels[0].Preconditions = []config.Precondition{{ManualApproval: &config.ManualApproval{Name: "gate", MinApprovers: 2, EveryAction: true}}}
			},
			want: "preconditions: [] → [manualApproval(gate, minApprovers=2, everyAction=true)]",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			oldSet, newSet := seedSet(), seedSet()
			if tc.change != nil {
				tc.change(oldSet)
				tc.change(newSet)
			}
			if tc.changeNew != nil {
				tc.changeNew(newSet)
			}
			c := Diff(build(t, oldSet, commitA, tc.oldOpts), build(t, newSet, commitA, tc.newOpts))
			require.NotEmpty(t, c.Changed)
			assert.Equal(t, Key{"app", "svc", "staging"}, c.Changed[0].Key)
			assert.Equal(t, tc.want, c.Changed[0].Detail)
			assert.NotContains(t, c.Changed[0].Detail, "old-secret")
			assert.NotContains(t, c.Changed[0].Detail, "new-secret")
		})
	}
}

func TestDiffNothing(t *testing.T) {
	targets := build(t, seedSet(), commitA, Options{})
	c := Diff(targets, build(t, seedSet(), commitB, Options{}))
	assert.True(t, c.Empty())
	assert.Equal(t, 2, c.Unchanged)

	c = Diff(nil, targets)
	assert.Len(t, c.Added, 2)
	c = Diff(targets, nil)
	assert.Len(t, c.Removed, 2)
}
