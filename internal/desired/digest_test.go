package desired

import (
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/pvnbot/pvnbot/internal/config"
)

func TestDigest(t *testing.T) {
	tests := map[string]struct {
		// change is applied to the config of the second build, at commitB.
		change   func(set *config.Set)
		wantSame bool
	}{
		"new commit, same rendering": {
			wantSame: true,
		},
		"new commit, a template uses the commit": {
			change: func(set *config.Set) {
				set.Runtimes[0].Custom.Apply.TaskConfig.Program.Cmd = texts("rt.pvn.yaml", 11, "apply", "--sha={{.Builtins.Commit}}")
			},
		},
		"new commit, a service value uses the commit": {
			change: func(set *config.Set) {
				set.Services[0].CustomRuntime.ParameterValues = []config.ParameterValue{value("changeId", config.ParamString, "{{.Builtins.Commit}}", 5)}
			},
		},
		"new commit, applyId uses the commit through a parameter": {
			change: func(set *config.Set) {
				set.Runtimes[0].Custom.Parameters = append(set.Runtimes[0].Custom.Parameters, stringParam("commit", ""))
				set.Runtimes[0].Custom.ApplyID = text("{{.Params.commit}}", at("rt.pvn.yaml", 40))
				set.Services[0].CustomRuntime.ParameterValues = []config.ParameterValue{value("commit", config.ParamString, "{{.Builtins.Commit}}", 5)}
			},
		},
		"a template reads the commit but renders the same": {
			change: func(set *config.Set) {
				set.Runtimes[0].Custom.Apply.TaskConfig.Program.Cmd = texts("rt.pvn.yaml", 11, "apply", "{{if .Builtins.Commit}}--id=default-id{{end}}")
			},
			wantSame: true,
		},
		"config rewritten, same rendering": {
			change: func(set *config.Set) {
				set.Services[0].CustomRuntime.ParameterValues = []config.ParameterValue{value("changeId", config.ParamString, "default-id", 5)}
				set.Runtimes[0].Custom.Apply.TaskConfig.Program.Cmd = texts("other.pvn.yaml", 50, "apply", "--id={{.Params.changeId}}")
			},
			wantSame: true,
		},
		"parameter value": {
			change: func(set *config.Set) {
				set.Services[0].CustomRuntime.ParameterValues = []config.ParameterValue{value("replicas", config.ParamInt, "3", 5)}
			},
		},
		"a parameter no template uses": {
			change: func(set *config.Set) {
				set.Runtimes[0].Custom.Parameters = append(set.Runtimes[0].Custom.Parameters, stringParam("unused", "x"))
			},
		},
		"env value": {
			change: func(set *config.Set) {
				set.Runtimes[0].Custom.Fetch.Env = []config.EnvVar{{Name: "LOG", Value: ptr(text("debug", config.Pos{}))}}
			},
		},
		"policy": {
			change: func(set *config.Set) { set.Runtimes[0].Custom.Fetch.PollInterval = time.Minute },
		},
		"getInfo added": {
			change: func(set *config.Set) {
				set.Runtimes[0].Custom.GetInfo = &config.GetInfo{Job: config.Job{TaskConfig: task("rt.pvn.yaml", 60, "info")}}
			},
		},
		"preconditions": {
			change: func(set *config.Set) {
				set.Applications[0].ReleaseChannels[0].Preconditions = []config.Precondition{{ManualApproval: &config.ManualApproval{Name: "gate", MinApprovers: 2}}}
				set.Applications[0].ReleaseChannels[1].Preconditions[1].ManualApproval.MinApprovers = 2
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := build(t, seedSet(), commitA, Options{})
			set := seedSet()
			if tc.change != nil {
				tc.change(set)
			}
			after := build(t, set, commitB, Options{})
			for i := range before {
				assert.Regexp(t, regexp.MustCompile("^[0-9a-f]{64}$"), before[i].Digest)
				if tc.wantSame {
					assert.Equal(t, before[i].Digest, after[i].Digest, before[i].Key.String())
				} else {
					assert.NotEqual(t, before[i].Digest, after[i].Digest, before[i].Key.String())
				}
			}
		})
	}
}

func TestDigestDiffersBetweenChannelsOnlyWhenTheRenderingDoes(t *testing.T) {
	set := seedSet()
	set.Applications[0].ReleaseChannels[1].Preconditions = nil
	targets := build(t, set, commitA, Options{})
	assert.Equal(t, targets[0].Digest, targets[1].Digest, "the same jobs, policy and preconditions")

	set.Runtimes[0].Custom.Apply.TaskConfig.Program.Cmd = texts("rt.pvn.yaml", 11, "{{.Builtins.ReleaseChannel.Name}}")
	targets = build(t, set, commitA, Options{})
	assert.NotEqual(t, targets[0].Digest, targets[1].Digest)
}

func TestDigestEncodingIsUnambiguous(t *testing.T) {
	a := seedSet()
	a.Runtimes[0].Custom.Apply.TaskConfig.Program.Cmd = texts("rt.pvn.yaml", 11, "ab", "c")
	b := seedSet()
	b.Runtimes[0].Custom.Apply.TaskConfig.Program.Cmd = texts("rt.pvn.yaml", 11, "a", "bc")
	assert.NotEqual(t, build(t, a, commitA, Options{})[0].Digest, build(t, b, commitA, Options{})[0].Digest)
}
