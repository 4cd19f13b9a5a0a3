package desired

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/config"
)

// benchSet is n services over 10 applications of two channels each, on 5
// runtimes with apply, fetch and getInfo, a pass-through service parameter
// and a production override: 2n targets.
func benchSet(n int) *config.Set {
	set := &config.Set{}
	for r := range 5 {
		rt := seedRuntime(fmt.Sprintf("rt-%d", r))
		c := &rt.Custom
		c.GetInfo = &config.GetInfo{Job: config.Job{TaskConfig: task("rt.pvn.yaml", 60, "info", "{{.Builtins.Service.Name}}")}}
		c.Apply.TaskConfig.Program.Env = []config.EnvVar{{Name: "REPLICAS", Value: ptr(text("{{.Params.replicas}}", config.Pos{}))}}
		c.ApplyID = text("{{.Params.changeId}}-{{.Params.replicas}}", config.Pos{})
		set.Runtimes = append(set.Runtimes, rt)
	}
	for a := range 10 {
		set.Applications = append(set.Applications, seedApp(fmt.Sprintf("app-%d", a), fmt.Sprintf("rt-%d", a%5)))
	}
	for s := range n {
		svc := seedService(fmt.Sprintf("svc-%04d", s), fmt.Sprintf("app-%d", s%10))
		svc.Parameters = []config.Parameter{stringParam("release", fmt.Sprintf("1.%d.0", s))}
		svc.CustomRuntime.ParameterValues = []config.ParameterValue{value("changeId", config.ParamString, "{{.Params.release}}", 5)}
		svc.PerReleaseChannel = []config.ReleaseChannelOverride{{ReleaseChannel: "production",
			CustomRuntime: config.CustomRuntimeValues{ParameterValues: []config.ParameterValue{value("replicas", config.ParamInt, "5", 9)}}}}
		set.Services = append(set.Services, svc)
	}
	return set
}

func BenchmarkBuild1000(b *testing.B) {
	set := benchSet(1000)
	targets, err := Build(set, commitA, Options{})
	require.NoError(b, err)
	require.Len(b, targets, 2000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(set, commitA, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
