package desired

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/runner"
)

const secretValue = "hunter2-very-secret"

// secretSet gives rt a secret parameter token, which svc sets from key
// db/token at version 3, and an env value that uses it.
func secretSet() *config.Set {
	set := seedSet()
	c := &set.Runtimes[0].Custom
	c.Parameters = append(c.Parameters, config.Parameter{Pos: at("runtimes/rt.pvn.yaml", 38), Name: "token", Type: config.ParamSecret})
	c.Apply.TaskConfig.Program.Env = []config.EnvVar{
		{Name: "AUTH", Value: ptr(text("Bearer {{.Params.token}}", at("runtimes/rt.pvn.yaml", 15)))},
		{Name: "PLAIN", Value: ptr(text("id={{.Params.changeId}}", at("runtimes/rt.pvn.yaml", 16)))},
	}
	pv := value("token", config.ParamSecret, "db/token", 8)
	pv.SecretVersion = "3"
	set.Services[0].CustomRuntime.ParameterValues = []config.ParameterValue{pv}
	return set
}

func secretSource(v string) *secrets {
	return &secrets{values: map[string]string{"db/token@3": v}}
}

func TestBuildSecretParameter(t *testing.T) {
	src := secretSource(secretValue)
	targets := build(t, secretSet(), commitA, Options{Secrets: src})
	got := byKey(t, targets, "app/svc/staging")

	assert.Equal(t, []string{"db/token@3", "db/token@3"}, src.lookups, "one lookup per target")
	assert.NotContains(t, got.Params, "token")
	assert.Equal(t, []string{"token"}, got.SecretParams)
	assert.Contains(t, got.Apply.Env, runner.EnvVar{Name: "PVN_PARAM_token", Value: secretValue, Sensitive: true})
	assert.Contains(t, got.Fetch.Env, runner.EnvVar{Name: "PVN_PARAM_token", Value: secretValue, Sensitive: true})
	assert.Contains(t, got.Apply.Env, runner.EnvVar{Name: "AUTH", Value: "Bearer " + secretValue, Sensitive: true})
	assert.Contains(t, got.Apply.Env, runner.EnvVar{Name: "PLAIN", Value: "id=default-id"}, "an env value without a secret is not sensitive")

	ps := &params{list: []param{{name: "changeId", value: "default-id"}, {name: "replicas", value: "2"}, {name: "token", value: secretValue, secret: true}}}
	input := appendDigestInput(nil, got, ps)
	assert.False(t, bytes.Contains(input, []byte(secretValue)), "the digest input holds no secret in clear")
	assert.NotContains(t, got.Digest, secretValue)
}

func TestBuildSecretRotationChangesTheDigest(t *testing.T) {
	before := byKey(t, build(t, secretSet(), commitA, Options{Secrets: secretSource("first")}), "app/svc/staging")
	after := byKey(t, build(t, secretSet(), commitA, Options{Secrets: secretSource("second")}), "app/svc/staging")
	again := byKey(t, build(t, secretSet(), commitB, Options{Secrets: secretSource("first")}), "app/svc/staging")
	assert.NotEqual(t, before.Digest, after.Digest)
	assert.Equal(t, before.Digest, again.Digest)
}

func TestBuildSecretErrors(t *testing.T) {
	tests := map[string]struct {
		change func(set *config.Set)
		opts   Options
		want   string
	}{
		"no secret source": {
			want: "services/svc.pvn.yaml:8:3: app/svc/staging: secret parameter token: no secret source is configured",
		},
		"lookup fails": {
			opts: Options{Secrets: &secrets{}},
			want: "services/svc.pvn.yaml:8:3: app/svc/staging: secret parameter token: look up key \"db/token\": no secret db/token@3",
		},
		"secret in a command": {
			change: func(set *config.Set) {
				set.Runtimes[0].Custom.Apply.TaskConfig.Program.Cmd = texts("runtimes/rt.pvn.yaml", 11, "login", "{{.Params.token}}")
			},
			opts: Options{Secrets: secretSource(secretValue)},
			want: "runtimes/rt.pvn.yaml:12:3: app/svc/staging: apply.cmd[1] refers to a secret parameter: secrets reach jobs only through their env",
		},
		"part of a secret in applyId": {
			change: func(set *config.Set) {
				set.Runtimes[0].Custom.ApplyID = text(`{{printf "%.3s" .Params.token}}`, at("runtimes/rt.pvn.yaml", 40))
			},
			opts: Options{Secrets: secretSource(secretValue)},
			want: "runtimes/rt.pvn.yaml:40:3: app/svc/staging: applyId refers to a secret parameter",
		},
		"secret in a manifest": {
			change: func(set *config.Set) {
				set.Runtimes[0].Custom.Apply.Job = config.Job{KubernetesConfig: &config.KubernetesConfig{
					Pos: at("runtimes/rt.pvn.yaml", 14), File: "runtimes/job.yaml",
					Manifest: []byte("kind: Job\ntoken: {{.Params.token}}\n"),
				}}
			},
			opts: Options{Secrets: secretSource(secretValue)},
			want: "runtimes/rt.pvn.yaml:14:3: app/svc/staging: runtimes/job.yaml refers to a secret parameter",
		},
		"template error in an env value that uses the secret": {
			change: func(set *config.Set) {
				set.Runtimes[0].Custom.Apply.TaskConfig.Program.Env[0].Value = ptr(text(`{{.Params.token}}{{.Params.missing}}`, at("runtimes/rt.pvn.yaml", 15)))
			},
			opts: Options{Secrets: secretSource(secretValue)},
			want: "runtimes/rt.pvn.yaml:15:3: app/svc/staging: template: apply.program.env.AUTH:1:26: executing \"apply.program.env.AUTH\" at <.Params.missing>: map has no entry for key \"missing\"",
		},
		"required secret without a value": {
			change: func(set *config.Set) {
				set.Services[0].CustomRuntime.ParameterValues = nil
				set.Runtimes[0].Custom.Parameters[2].Required = true
			},
			want: "parameter token of runtime rt is required and has no value",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			set := secretSet()
			if tc.change != nil {
				tc.change(set)
			}
			_, err := Build(set, commitA, tc.opts)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), secretValue)
			assert.NotContains(t, err.Error(), secretValue[:3], "not even a part of it")
		})
	}
}

func TestScrubHidesSecretValues(t *testing.T) {
	ps := &params{list: []param{{name: "token", value: secretValue, secret: true}, {name: "id", value: "visible"}}}
	pos := config.Pos{File: "svc.pvn.yaml", Line: 3, Col: 5}
	errs := ps.scrub(config.Errors{{Pos: pos, Msg: "x " + secretValue + " visible"}, {Pos: pos, Msg: "nothing to hide"}})
	assert.EqualError(t, errs, "svc.pvn.yaml:3:5: x (secret) visible\nsvc.pvn.yaml:3:5: nothing to hide")
}

// A command may test whether a secret is set, without seeing its value.
func TestBuildCommandTestsWhetherASecretIsSet(t *testing.T) {
	withFlag := func(set *config.Set) *config.Set {
		set.Runtimes[0].Custom.Apply.TaskConfig.Program.Cmd = texts("runtimes/rt.pvn.yaml", 11, "apply", "{{if .Params.token}}--auth{{end}}")
		return set
	}
	got := byKey(t, build(t, withFlag(secretSet()), commitA, Options{Secrets: secretSource(secretValue)}), "app/svc/staging")
	assert.Equal(t, []string{"apply", "--auth"}, got.Apply.Cmd)

	unset := withFlag(secretSet())
	unset.Services[0].CustomRuntime.ParameterValues = nil
	got = byKey(t, build(t, unset, commitA, Options{}), "app/svc/staging")
	assert.Equal(t, []string{"apply", ""}, got.Apply.Cmd)
	assert.Contains(t, got.Apply.Env, runner.EnvVar{Name: "PVN_PARAM_token", Sensitive: true})
	assert.Contains(t, got.Apply.Env, runner.EnvVar{Name: "AUTH", Value: "Bearer ", Sensitive: true}, "it refers to the secret, set or not")
}
