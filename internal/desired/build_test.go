package desired

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/runner"
)

func TestBuildParameterValues(t *testing.T) {
	tests := map[string]struct {
		service        func(s *config.Service)
		runtime        func(r *config.Runtime)
		wantStaging    map[string]string
		wantProduction map[string]string
	}{
		"runtime defaults": {
			wantStaging:    map[string]string{"changeId": "default-id", "replicas": "2"},
			wantProduction: map[string]string{"changeId": "default-id", "replicas": "2"},
		},
		"service value beats the runtime default": {
			service: func(s *config.Service) {
				s.CustomRuntime.ParameterValues = []config.ParameterValue{value("changeId", config.ParamString, "svc-id", 5)}
			},
			wantStaging:    map[string]string{"changeId": "svc-id", "replicas": "2"},
			wantProduction: map[string]string{"changeId": "svc-id", "replicas": "2"},
		},
		"perReleaseChannel beats the service value in its channel only": {
			service: func(s *config.Service) {
				s.CustomRuntime.ParameterValues = []config.ParameterValue{value("changeId", config.ParamString, "svc-id", 5)}
				s.PerReleaseChannel = []config.ReleaseChannelOverride{{ReleaseChannel: "production",
					CustomRuntime: config.CustomRuntimeValues{ParameterValues: []config.ParameterValue{
						value("changeId", config.ParamString, "prod-id", 9),
						value("replicas", config.ParamInt, "5", 10),
					}}}}
			},
			wantStaging:    map[string]string{"changeId": "svc-id", "replicas": "2"},
			wantProduction: map[string]string{"changeId": "prod-id", "replicas": "5"},
		},
		"service parameter passed through with .Params": {
			service: func(s *config.Service) {
				s.Parameters = []config.Parameter{stringParam("changeId", "my-default-change-id")}
				s.CustomRuntime.ParameterValues = []config.ParameterValue{value("changeId", config.ParamString, "{{.Params.changeId}}", 5)}
			},
			wantStaging:    map[string]string{"changeId": "my-default-change-id", "replicas": "2"},
			wantProduction: map[string]string{"changeId": "my-default-change-id", "replicas": "2"},
		},
		"service value sees the service's parameters, not the runtime's": {
			service: func(s *config.Service) {
				s.Parameters = []config.Parameter{stringParam("replicas", "from-service")}
				s.CustomRuntime.ParameterValues = []config.ParameterValue{value("changeId", config.ParamString, "{{.Params.replicas}}", 5)}
			},
			wantStaging:    map[string]string{"changeId": "from-service", "replicas": "2"},
			wantProduction: map[string]string{"changeId": "from-service", "replicas": "2"},
		},
		"builtins in a service value": {
			service: func(s *config.Service) {
				s.CustomRuntime.ParameterValues = []config.ParameterValue{value("changeId", config.ParamString,
					"{{.Builtins.Application.Name}}.{{.Builtins.Service.Name}}.{{.Builtins.ReleaseChannel.Name}}.{{.Builtins.Runtime.Name}}", 5)}
			},
			wantStaging:    map[string]string{"changeId": "app.svc.staging.rt", "replicas": "2"},
			wantProduction: map[string]string{"changeId": "app.svc.production.rt", "replicas": "2"},
		},
		"optional parameter without a value is empty": {
			runtime: func(r *config.Runtime) {
				r.Custom.Parameters = append(r.Custom.Parameters, stringParam("note", ""))
			},
			wantStaging:    map[string]string{"changeId": "default-id", "replicas": "2", "note": ""},
			wantProduction: map[string]string{"changeId": "default-id", "replicas": "2", "note": ""},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			set := seedSet()
			if tc.service != nil {
				tc.service(set.Services[0])
			}
			if tc.runtime != nil {
				tc.runtime(set.Runtimes[0])
			}
			targets := build(t, set, commitA, Options{})
			require.Len(t, targets, 2)

			staging, production := byKey(t, targets, "app/svc/staging"), byKey(t, targets, "app/svc/production")
			assert.Equal(t, tc.wantStaging, staging.Params)
			assert.Equal(t, tc.wantProduction, production.Params)
			// The runtime's templates see the final values, and so do jobs.
			assert.Equal(t, []string{"apply", "--id=" + tc.wantProduction["changeId"]}, production.Apply.Cmd)
			assert.Equal(t, []string{"fetch", tc.wantStaging["changeId"]}, staging.Fetch.Cmd)
			assert.Contains(t, production.Apply.Env, runner.EnvVar{Name: "PVN_PARAM_replicas", Value: tc.wantProduction["replicas"]})
		})
	}
}

func TestBuildJobSpec(t *testing.T) {
	set := seedSet()
	rt := set.Runtimes[0]
	rt.Custom.ProxyRuntime = config.ProxyRuntime{Runtime: "cluster-a", Namespace: "deploys"}
	rt.Custom.Parameters = append(rt.Custom.Parameters, stringParam("my-tag", "v1"))
	rt.Custom.ApplyID = text("{{.Params.changeId}}-{{.Params.replicas}}", at("rt.pvn.yaml", 40))
	p := &rt.Custom.Apply.TaskConfig.Program
	p.WorkingDirectory = text("deploy/{{.Builtins.ReleaseChannel.Name}}", at("rt.pvn.yaml", 12))
	p.ImageTag = text(`{{index .Params "my-tag"}}`, at("rt.pvn.yaml", 13))
	p.ImageRegistryInfo = &config.ImageRegistryInfo{ContainerRegistry: "main", ImageRepository: "tools/deployer"}
	p.ServiceAccount = "deployer"
	p.Env = []config.EnvVar{{Name: "REPLICAS", Value: ptr(text("{{.Params.replicas}}", at("rt.pvn.yaml", 15)))}}
	rt.Custom.Apply.TaskConfig.TTL = 10 * time.Minute
	rt.Custom.Apply.Env = []config.EnvVar{{Name: "DB", KubernetesSecret: &config.SecretKeyRef{SecretName: "db", Key: "url"}}}

	targets := build(t, set, commitA, Options{Registries: map[string]string{"main": "https://registry.example.com/"}})
	got := byKey(t, targets, "app/svc/production")

	assert.Equal(t, "rt", got.Runtime)
	assert.Equal(t, "rt", got.Connection)
	assert.Equal(t, commitA, got.Commit)
	assert.Equal(t, "default-id-2", got.ApplyID)
	assert.Equal(t, "default-id-2", got.DesiredVersion)
	assert.Equal(t, runner.Spec{
		Action:           runner.ActionApply,
		Service:          "svc",
		Application:      "app",
		ReleaseChannel:   "production",
		Runtime:          "rt",
		Commit:           commitA,
		DesiredVersion:   "default-id-2",
		ProxyRuntime:     "cluster-a",
		Namespace:        "deploys",
		Image:            "registry.example.com/tools/deployer:v1",
		Entrypoint:       []string{"sh"},
		Cmd:              []string{"apply", "--id=default-id"},
		WorkingDirectory: "deploy/production",
		ServiceAccount:   "deployer",
		TTL:              10 * time.Minute,
		Env: []runner.EnvVar{
			{Name: "DB", SecretRef: &runner.SecretRef{Name: "db", Key: "url"}},
			{Name: "PVN_ACTION", Value: "apply"},
			{Name: "PVN_APPLICATION", Value: "app"},
			{Name: "PVN_COMMIT", Value: commitA},
			{Name: "PVN_DESIRED_VERSION", Value: "default-id-2"},
			{Name: "PVN_PARAM_changeId", Value: "default-id"},
			{Name: "PVN_PARAM_my_tag", Value: "v1"},
			{Name: "PVN_PARAM_replicas", Value: "2"},
			{Name: "PVN_RELEASE_CHANNEL", Value: "production"},
			{Name: "PVN_RUNTIME", Value: "rt"},
			{Name: "PVN_SERVICE", Value: "svc"},
			{Name: "REPLICAS", Value: "2"},
		},
	}, got.Apply)

	require.NotNil(t, got.Fetch)
	assert.Equal(t, runner.ActionFetch, got.Fetch.Action)
	assert.Equal(t, config.DefaultTaskTTL, got.Fetch.TTL, "ttl defaults to 1h")
	assert.Contains(t, got.Fetch.Env, runner.EnvVar{Name: "PVN_ACTION", Value: "fetch"})
	assert.Nil(t, got.GetInfo, "the runtime has no getInfo")

	assert.Equal(t, Policy{
		FetchMode:               config.FetchModeExitCode,
		FetchPollInterval:       2 * time.Second,
		SteadyStatePollInterval: config.DefaultSteadyStatePollInterval,
		GetInfoPollInterval:     config.DefaultGetInfoPollInterval,
		ConvergenceGracePeriod:  config.DefaultConvergenceGracePeriod,
		MaxConcurrency:          2,
		Retry:                   config.RetryPolicy{BaseInterval: 2 * time.Second, MaxInterval: config.DefaultRetryMaxInterval},
	}, got.Policy)
	assert.Equal(t, []Precondition{
		{ReleaseChannelStable: "staging"},
		{ManualApproval: &config.ManualApproval{Name: "prod-gate", MinApprovers: 1}},
	}, got.Preconditions)
	assert.NotSame(t, set.Applications[0].ReleaseChannels[1].Preconditions[1].ManualApproval, got.Preconditions[1].ManualApproval,
		"a target does not share the config's approval")
	assert.Empty(t, byKey(t, targets, "app/svc/staging").Preconditions)
}

func TestBuildWithoutApplyIDDesiresTheCommit(t *testing.T) {
	got := byKey(t, build(t, seedSet(), commitA, Options{}), "app/svc/staging")
	assert.Empty(t, got.ApplyID)
	assert.Equal(t, commitA, got.DesiredVersion)
	assert.Contains(t, got.Apply.Env, runner.EnvVar{Name: "PVN_DESIRED_VERSION", Value: commitA})
}

func TestBuildBuiltinsInRuntimeTemplates(t *testing.T) {
	set := seedSet()
	set.Runtimes[0].Custom.Apply.TaskConfig.Program.Cmd = texts("rt.pvn.yaml", 11,
		"{{.Builtins.Service.Name}}", "{{.Builtins.Application.Name}}", "{{.Builtins.ReleaseChannel.Name}}",
		"{{.Builtins.Runtime.Name}}", "{{.Builtins.Commit}}")
	got := byKey(t, build(t, set, commitB, Options{}), "app/svc/staging")
	assert.Equal(t, []string{"svc", "app", "staging", "rt", commitB}, got.Apply.Cmd)
}

func TestBuildImage(t *testing.T) {
	registries := map[string]string{"main": "http://reg.example.com", "plain": "ghcr.io/acme"}
	tests := map[string]struct {
		program config.Program
		want    string
	}{
		"image as written": {
			program: config.Program{Image: text("busybox:{{.Params.changeId}}", at("rt.pvn.yaml", 3))},
			want:    "busybox:default-id",
		},
		"registry URL without scheme": {
			program: config.Program{ImageTag: text("t1", at("rt.pvn.yaml", 3)),
				ImageRegistryInfo: &config.ImageRegistryInfo{ContainerRegistry: "plain", ImageRepository: "tool"}},
			want: "ghcr.io/acme/tool:t1",
		},
		"scheme dropped": {
			program: config.Program{ImageTag: text("t1", at("rt.pvn.yaml", 3)),
				ImageRegistryInfo: &config.ImageRegistryInfo{ContainerRegistry: "main", ImageRepository: "tool"}},
			want: "reg.example.com/tool:t1",
		},
		"unknown registry left as its name": {
			program: config.Program{ImageTag: text("t1", at("rt.pvn.yaml", 3)),
				ImageRegistryInfo: &config.ImageRegistryInfo{ContainerRegistry: "elsewhere", ImageRepository: "tool"}},
			want: "elsewhere/tool:t1",
		},
		"no tag": {
			program: config.Program{ImageRegistryInfo: &config.ImageRegistryInfo{ContainerRegistry: "main", ImageRepository: "tool"}},
			want:    "reg.example.com/tool",
		},
		"no image": {},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			set := seedSet()
			set.Runtimes[0].Custom.Apply.TaskConfig.Program = tc.program
			got := byKey(t, build(t, set, commitA, Options{Registries: registries}), "app/svc/staging")
			assert.Equal(t, tc.want, got.Apply.Image)
		})
	}
}

func TestBuildRuntimeConnections(t *testing.T) {
	set := seedSet()
	set.Runtimes = append(set.Runtimes, seedRuntime("vm-runtime"))
	set.Runtimes[1].Custom.Apply.TaskConfig.Program.Cmd = texts("vm.pvn.yaml", 11, "vm-apply")
	app := seedApp("app", "rt", "vm-runtime")
	app.ReleaseChannels[0].Runtimes[1].Name = "vm" // connection name differs from the runtime's
	app.ReleaseChannels[1].Runtimes[1].Name = "vm"
	set.Applications = []*config.Application{app}
	set.Services = []*config.Service{seedService("on-vm", "app"), seedService("on-rt", "app")}
	set.Services[0].RuntimeConnection = "vm"
	set.Services[1].RuntimeConnection = "rt"

	targets := build(t, set, commitA, Options{})
	require.Len(t, targets, 4)
	vm := byKey(t, targets, "app/on-vm/production")
	assert.Equal(t, "vm-runtime", vm.Runtime)
	assert.Equal(t, "vm", vm.Connection)
	assert.Equal(t, []string{"vm-apply"}, vm.Apply.Cmd)
	assert.Equal(t, "vm-runtime", vm.Apply.Runtime)
	rt := byKey(t, targets, "app/on-rt/staging")
	assert.Equal(t, "rt", rt.Runtime)
	assert.Equal(t, []string{"apply", "--id=default-id"}, rt.Apply.Cmd)
}

func TestBuildOrder(t *testing.T) {
	set := seedSet()
	set.Runtimes = append(set.Runtimes, seedRuntime("other"))
	set.Applications = append(set.Applications, seedApp("aaa", "other"))
	set.Services = []*config.Service{seedService("b", "app"), seedService("z", "aaa"), seedService("a", "app")}

	var keys []string
	for _, tg := range build(t, set, commitA, Options{}) {
		keys = append(keys, tg.Key.String())
	}
	assert.Equal(t, []string{
		"aaa/z/staging", "aaa/z/production",
		"app/a/staging", "app/a/production",
		"app/b/staging", "app/b/production",
	}, keys, "application, service, then the channels in the application's order")
}

func TestBuildKubernetesManifest(t *testing.T) {
	set := seedSet()
	set.Runtimes[0].Custom.Apply.Job = config.Job{KubernetesConfig: &config.KubernetesConfig{
		Pos: at("runtimes/rt.pvn.yaml", 14), Type: "KUBERNETES", Path: "job.yaml", File: "runtimes/job.yaml",
		Manifest: []byte("kind: Job\nargs: [apply, \"{{.Params.changeId}}\", \"{{.Builtins.ReleaseChannel.Name}}\"]\n"),
	}}
	got := byKey(t, build(t, set, commitA, Options{}), "app/svc/production")
	assert.Equal(t, "kind: Job\nargs: [apply, \"default-id\", \"production\"]\n", string(got.Apply.Manifest))
	assert.Empty(t, got.Apply.Cmd)
	assert.Contains(t, got.Apply.Env, runner.EnvVar{Name: "PVN_PARAM_changeId", Value: "default-id"})
}

func TestBuildNilSet(t *testing.T) {
	targets, err := Build(nil, commitA, Options{})
	assert.NoError(t, err)
	assert.Empty(t, targets)
}
