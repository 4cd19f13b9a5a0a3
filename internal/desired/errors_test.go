package desired

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/config"
)

func TestBuildErrors(t *testing.T) {
	tests := map[string]struct {
		change func(set *config.Set)
		opts   Options
		want   []string // each must be in the error
	}{
		"required parameter without a value": {
			change: func(set *config.Set) {
				set.Runtimes[0].Custom.Parameters = append(set.Runtimes[0].Custom.Parameters,
					config.Parameter{Pos: at("runtimes/rt.pvn.yaml", 36), Name: "commit", Required: true, Type: config.ParamString})
			},
			want: []string{"services/svc.pvn.yaml:1:3: app/svc/staging: parameter commit of runtime rt is required and has no value (declared at runtimes/rt.pvn.yaml:36:3)",
				"app/svc/production: "},
		},
		"unknown parameter in a runtime template": {
			change: func(set *config.Set) {
				set.Runtimes[0].Custom.Apply.TaskConfig.Program.Cmd = texts("runtimes/rt.pvn.yaml", 11, "apply", "{{.Params.chngeId}}")
			},
			want: []string{"runtimes/rt.pvn.yaml:12:3: app/svc/staging: template: apply.cmd[1]:1:9: executing \"apply.cmd[1]\" at <.Params.chngeId>: map has no entry for key \"chngeId\""},
		},
		"unknown builtin": {
			change: func(set *config.Set) {
				set.Runtimes[0].Custom.ApplyID = text("{{.Builtins.Sha}}", at("runtimes/rt.pvn.yaml", 40))
			},
			want: []string{"runtimes/rt.pvn.yaml:40:3: app/svc/staging: template: applyId:1:11: executing \"applyId\" at <.Builtins.Sha>: can't evaluate field Sha"},
		},
		"template that does not parse": {
			change: func(set *config.Set) {
				set.Runtimes[0].Custom.Fetch.TaskConfig.Program.Cmd = texts("runtimes/rt.pvn.yaml", 21, "{{.Params.changeId")
			},
			want: []string{"runtimes/rt.pvn.yaml:21:3: app/svc/production: template: fetch.cmd[0]:1: unclosed action"},
		},
		"unknown parameter in a service value": {
			change: func(set *config.Set) {
				set.Services[0].CustomRuntime.ParameterValues = []config.ParameterValue{value("changeId", config.ParamString, "{{.Params.release}}", 7)}
			},
			want: []string{"services/svc.pvn.yaml:7:3: app/svc/staging: template: parameterValues.changeId:1:9: executing \"parameterValues.changeId\" at <.Params.release>: map has no entry for key \"release\""},
		},
		"value for a parameter the runtime does not declare": {
			change: func(set *config.Set) {
				set.Services[0].CustomRuntime.ParameterValues = []config.ParameterValue{value("chngeId", config.ParamString, "x", 7)}
			},
			want: []string{"services/svc.pvn.yaml:7:3: app/svc/staging: parameter chngeId: runtime rt has no such parameter"},
		},
		"value of the wrong type": {
			change: func(set *config.Set) {
				set.Services[0].CustomRuntime.ParameterValues = []config.ParameterValue{value("replicas", config.ParamString, "5", 7)}
			},
			want: []string{"services/svc.pvn.yaml:7:3: app/svc/staging: parameter replicas: runtime rt declares it int, the value given is string"},
		},
		"int parameter that is not an integer": {
			change: func(set *config.Set) {
				set.Services[0].CustomRuntime.ParameterValues = []config.ParameterValue{value("replicas", config.ParamInt, "five", 7)}
			},
			want: []string{"services/svc.pvn.yaml:7:3: app/svc/staging: parameter replicas: \"five\" is not an integer"},
		},
		"required service parameter without a default": {
			change: func(set *config.Set) {
				set.Services[0].Parameters = []config.Parameter{{Pos: at("services/svc.pvn.yaml", 12), Name: "release", Required: true, Type: config.ParamString}}
			},
			want: []string{"services/svc.pvn.yaml:12:3: app/svc/staging: service parameter release is required and has no value"},
		},
		"several runtimes and no runtimeConnection": {
			change: func(set *config.Set) {
				set.Runtimes = append(set.Runtimes, seedRuntime("vm"))
				set.Applications[0] = seedApp("app", "rt", "vm")
			},
			want: []string{"services/svc.pvn.yaml:1:3: app/svc/staging: runtimeConnection is required: release channel staging has several runtimes (rt, vm)"},
		},
		"unknown runtimeConnection": {
			change: func(set *config.Set) {
				set.Runtimes = append(set.Runtimes, seedRuntime("vm"))
				set.Applications[0] = seedApp("app", "rt", "vm")
				set.Services[0].RuntimeConnection = "gpu"
			},
			want: []string{"services/svc.pvn.yaml:1:3: app/svc/staging: runtimeConnection \"gpu\": release channel staging has no such runtime connection (it has rt, vm)"},
		},
		"unknown runtime": {
			change: func(set *config.Set) { set.Runtimes = nil },
			want:   []string{"apps/app.pvn.yaml:4:3: app/svc/staging: unknown runtime \"rt\""},
		},
		"unknown application": {
			change: func(set *config.Set) { set.Services[0].Application = "nope" },
			want:   []string{"services/svc.pvn.yaml:1:3: service svc: unknown application \"nope\""},
		},
		"perReleaseChannel for a channel the application lacks": {
			change: func(set *config.Set) {
				set.Services[0].PerReleaseChannel = []config.ReleaseChannelOverride{{Pos: at("services/svc.pvn.yaml", 20), ReleaseChannel: "prod"}}
			},
			want: []string{"services/svc.pvn.yaml:20:3: service svc: perReleaseChannel: application app has no release channel \"prod\""},
		},
		"env name in the reserved prefix": {
			change: func(set *config.Set) {
				set.Runtimes[0].Custom.Apply.Env = []config.EnvVar{{Pos: at("runtimes/rt.pvn.yaml", 16), Name: "PVN_COMMIT", Value: ptr(text("x", config.Pos{}))}}
			},
			want: []string{"runtimes/rt.pvn.yaml:16:3: app/svc/staging: apply.env.PVN_COMMIT: the PVN_ prefix is reserved"},
		},
		"env name given by program and job": {
			change: func(set *config.Set) {
				set.Runtimes[0].Custom.Apply.TaskConfig.Program.Env = []config.EnvVar{{Name: "A", Value: ptr(text("1", config.Pos{}))}}
				set.Runtimes[0].Custom.Apply.Env = []config.EnvVar{{Pos: at("runtimes/rt.pvn.yaml", 16), Name: "A", Value: ptr(text("2", config.Pos{}))}}
			},
			want: []string{"runtimes/rt.pvn.yaml:16:3: app/svc/staging: apply.env.A: the variable is also set by the program's env"},
		},
		"two parameters for one variable": {
			change: func(set *config.Set) {
				set.Runtimes[0].Custom.Parameters = append(set.Runtimes[0].Custom.Parameters, stringParam("a-b", "1"), stringParam("a_b", "2"))
			},
			want: []string{"runtimes/rt.pvn.yaml:1:3: app/svc/staging: parameters a-b and a_b would both be given to jobs as PVN_PARAM_a_b"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			set := seedSet()
			tc.change(set)
			targets, err := Build(set, commitA, tc.opts)
			require.Error(t, err)
			assert.Nil(t, targets, "no partial list: missing targets would read as removed")
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestBuildReportsEveryProblem(t *testing.T) {
	set := seedSet()
	set.Runtimes[0].Custom.Apply.TaskConfig.Program.Cmd = texts("runtimes/rt.pvn.yaml", 11, "{{.Params.x}}")
	set.Runtimes[0].Custom.Fetch.TaskConfig.Program.Cmd = texts("runtimes/rt.pvn.yaml", 21, "{{.Params.y}}")
	set.Services = append(set.Services, seedService("other", "missing"))

	_, err := Build(set, commitA, Options{})
	require.Error(t, err)
	for _, w := range []string{
		"runtimes/rt.pvn.yaml:11:3: app/svc/staging:",
		"runtimes/rt.pvn.yaml:21:3: app/svc/staging:",
		"runtimes/rt.pvn.yaml:11:3: app/svc/production:",
		"runtimes/rt.pvn.yaml:21:3: app/svc/production:",
		"service other: unknown application \"missing\"",
	} {
		assert.Contains(t, err.Error(), w)
	}
}

func TestBuildManifestErrorPointsIntoTheFile(t *testing.T) {
	set := seedSet()
	set.Runtimes[0].Custom.Apply.Job = config.Job{KubernetesConfig: &config.KubernetesConfig{
		Pos: at("runtimes/rt.pvn.yaml", 14), File: "runtimes/job.yaml",
		Manifest: []byte("kind: Job\nspec:\n  args: [\"{{.Params.nope}}\"]\n"),
	}}
	_, err := Build(set, commitA, Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "runtimes/rt.pvn.yaml:14:3: app/svc/staging: template: runtimes/job.yaml:3:19: executing \"runtimes/job.yaml\" at <.Params.nope>: map has no entry for key \"nope\"")
}
