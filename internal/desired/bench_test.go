package desired

import (
	"fmt"
	"os"
	"path/filepath"
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

// writeBenchTree writes 1,000 config files under dir: 5 runtimes, 10
// applications of two channels, 985 services (1,970 targets).
func writeBenchTree(b *testing.B, dir string) {
	write := func(name, body string) {
		path := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(b, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(b, os.WriteFile(path, []byte(body), 0o644))
	}
	for r := range 5 {
		write(fmt.Sprintf("runtimes/rt-%d.pvn.yaml", r), fmt.Sprintf(benchRuntime, r))
	}
	for a := range 10 {
		write(fmt.Sprintf("apps/app-%d.pvn.yaml", a), fmt.Sprintf(benchApp, a, a%5, a%5))
	}
	for s := range 985 {
		write(fmt.Sprintf("services/app-%d/svc-%04d.pvn.yaml", s%10, s), fmt.Sprintf(benchService, s, s%10, s))
	}
}

const benchRuntime = `runtime:
  name: rt-%d
  custom:
    proxyRuntime:
      runtime: local
    apply:
      taskConfig:
        program:
          entrypoint: [sh]
          cmd: [apply.sh, "--id={{.Params.changeId}}", "--replicas={{.Params.replicas}}"]
          env:
            REPLICAS:
              value: "{{.Params.replicas}}"
      maxConcurrency: 4
    fetch:
      taskConfig:
        program:
          entrypoint: [sh]
          cmd: [fetch.sh, "{{.Params.changeId}}"]
      pollInterval: 10s
    getInfo:
      taskConfig:
        program:
          cmd: [info.sh, "{{.Builtins.Service.Name}}"]
    parameters:
    - name: changeId
      string:
        defaultValue: default-id
    - name: replicas
      int:
        defaultValue: 2
    applyId: "{{.Params.changeId}}-{{.Params.replicas}}"
`

const benchApp = `application:
  name: app-%d
  releaseChannels:
  - name: staging
    runtimes:
    - runtime: rt-%d
  - name: production
    runtimes:
    - runtime: rt-%d
    preconditions:
    - releaseChannelStable:
        releaseChannel: staging
    - manualApproval:
        name: gate
`

const benchService = `service:
  name: svc-%04d
  application: app-%d
  parameters:
  - name: release
    string:
      defaultValue: "1.%d.0"
  customRuntime:
    parameterValues:
    - name: changeId
      string: "{{.Params.release}}"
  perReleaseChannel:
  - releaseChannel: production
    customRuntime:
      parameterValues:
      - name: replicas
        int: 5
`

func BenchmarkLoadValidateRender1000(b *testing.B) {
	dir := b.TempDir()
	writeBenchTree(b, dir)
	run := func() []Target {
		set, err := config.LoadDir(dir)
		if err != nil {
			b.Fatal(err)
		}
		if err := set.Validate(nil); err != nil {
			b.Fatal(err)
		}
		targets, err := Build(set, commitA, Options{})
		if err != nil {
			b.Fatal(err)
		}
		return targets
	}
	require.Len(b, run(), 1970)
	b.ReportAllocs()
	for b.Loop() {
		run()
	}
}
