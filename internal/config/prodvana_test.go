package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRefusedFiles: each of Prodvana's features that pvnbot does not have,
// in a file of its own next to a valid runtime and application, gives one
// message that names it, and nothing else.
func TestRefusedFiles(t *testing.T) {
	tests := map[string]string{
		"runtime-fake":                        `3:3: runtime "fake-staging": fake runtimes are not supported: pvnbot runs custom runtimes (custom)`,
		"runtime-terraform-runner":            `3:3: runtime "terraform": terraformRunner runtimes are not supported: pvnbot runs custom runtimes (custom)`,
		"runtime-pulumi-runner":               `3:3: runtime "pulumi": pulumiRunner runtimes are not supported: pvnbot runs custom runtimes (custom)`,
		"runtime-aws-ecs":                     `3:3: runtime "ecs-prod": awsEcs runtimes are not supported: pvnbot runs custom runtimes (custom)`,
		"runtime-google-cloud-run":            `3:3: runtime "cloud-run": googleCloudRun runtimes are not supported: pvnbot runs custom runtimes (custom)`,
		"runtime-fly":                         `3:3: runtime "fly": fly runtimes are not supported: pvnbot runs custom runtimes (custom)`,
		"service-kubernetes-config":           `4:3: service "api": kubernetesConfig services are not supported: pvnbot deploys through custom runtimes (customRuntime)`,
		"service-helm":                        `4:3: service "nginx": helm services are not supported: pvnbot deploys through custom runtimes (customRuntime)`,
		"service-aws-ecs":                     `4:3: service "nginx": awsEcs services are not supported: pvnbot deploys through custom runtimes (customRuntime)`,
		"service-programs":                    `4:3: service "hello": programs services are not supported: pvnbot deploys through custom runtimes (customRuntime)`,
		"service-terraform":                   `4:3: service "network": terraform services are not supported: pvnbot deploys through custom runtimes (customRuntime)`,
		"service-pulumi":                      `4:3: service "network": pulumi services are not supported: pvnbot deploys through custom runtimes (customRuntime)`,
		"service-convergence-extensions":      `7:3: service "api": convergence extensions (convergenceExtensions) are not supported yet: pvnbot runs custom runtimes, gated by releaseChannelStable and manualApproval preconditions`,
		"service-release-channel-selector":    `8:5: service.perReleaseChannel[0]: releaseChannelSelector is not supported: name the release channel with releaseChannel`,
		"document-protection":                 `1:1: protection configs are not supported: pvnbot runs custom runtimes (runtime, application and service documents)`,
		"document-delivery-extension":         `1:1: deliveryExtension configs are not supported: pvnbot runs custom runtimes (runtime, application and service documents)`,
		"document-release-channel":            `1:1: releaseChannel configs are not supported: pvnbot runs custom runtimes (runtime, application and service documents)`,
		"document-recipe":                     `1:1: recipe configs are not supported: pvnbot runs custom runtimes (runtime, application and service documents)`,
		"application-release-channel-groups":  `3:3: application "regional": release channel groups (releaseChannelGroups) are not supported yet: pvnbot runs custom runtimes, gated by releaseChannelStable and manualApproval preconditions`,
		"application-constants":               `3:3: application "regional": constants are not supported yet: pvnbot runs custom runtimes, gated by releaseChannelStable and manualApproval preconditions`,
		"channel-protections":                 `6:5: release channel "production": release channel protections are not supported yet: pvnbot runs custom runtimes, gated by releaseChannelStable and manualApproval preconditions`,
		"channel-group":                       `5:5: release channel "us": release channel groups (group) are not supported yet: pvnbot runs custom runtimes, gated by releaseChannelStable and manualApproval preconditions`,
		"channel-policy":                      `6:5: release channel "production": release channel policies (policy) are not supported yet: pvnbot runs custom runtimes, gated by releaseChannelStable and manualApproval preconditions`,
		"channel-convergence-extensions":      `6:5: release channel "production": convergence extensions (convergenceExtensions) are not supported yet: pvnbot runs custom runtimes, gated by releaseChannelStable and manualApproval preconditions`,
		"precondition-custom-task":            `7:7: application.releaseChannels[0].preconditions[0]: customTask preconditions are not supported yet: pvnbot runs custom runtimes, gated by releaseChannelStable and manualApproval preconditions`,
		"precondition-shared-manual-approval": `7:7: application.releaseChannels[0].preconditions[0]: sharedManualApproval preconditions are not supported yet: pvnbot runs custom runtimes, gated by releaseChannelStable and manualApproval preconditions`,
		"stable-selector":                     `10:9: application.releaseChannels[1].preconditions[0].releaseChannelStable: selector is not supported: name the release channel with releaseChannel (pvnbot runs custom runtimes, one service at a time)`,
		"stable-allow-empty":                  `11:9: application.releaseChannels[1].preconditions[0].releaseChannelStable: allowEmpty is not supported: releaseChannelStable waits for the same service in the named release channel`,
	}
	files, err := filepath.Glob("testdata/refused/*.pvn.yaml")
	require.NoError(t, err)
	require.Len(t, files, len(tests)+1, "every refused file (and base.pvn.yaml) has its expectation")
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			file := name + ".pvn.yaml"
			s, err := LoadFiles("testdata/refused", "base.pvn.yaml", file)
			require.NotNil(t, s, err)
			err = Combine(err, s.Validate(testLinked))
			var es Errors
			require.True(t, errors.As(err, &es), "want Errors, got %v", err)
			var got []string
			for _, e := range es {
				got = append(got, strings.TrimPrefix(e.Error(), file+":"))
			}
			assert.Equal(t, []string{want}, got)
		})
	}
}

// TestWarnings: what is accepted and ignored is reported as a warning, in
// Set.Warnings; the set stays valid.
func TestWarnings(t *testing.T) {
	tests := map[string][]string{
		"valid-metadata": {
			`4:3: warning: runtime "vm": labels are accepted and ignored: pvnbot does not use them`,
			`6:3: warning: runtime "vm": annotations are accepted and ignored: pvnbot does not use them`,
			`16:3: warning: application "shop": labels are accepted and ignored: pvnbot does not use them`,
			`19:5: warning: release channel "staging": labels are accepted and ignored: pvnbot does not use them`,
			`25:3: warning: service "web": annotations are accepted and ignored: pvnbot does not use them`,
			`26:3: warning: service "web": deployAnnotations are accepted and ignored: pvnbot does not use them`,
			`30:5: warning: service.perReleaseChannel[0]: deployAnnotations are accepted and ignored: pvnbot does not use them`,
		},
		"valid-prodvana-repository": {
			`122:3: warning: service "hello": runtimeConnection "default" names no runtime connection of release channel "dev" of application "onboarding": its only runtime, "static-assets", is used`,
		},
		"valid-full": nil,
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			file := name + ".pvn.yaml"
			s, err := LoadFiles("testdata", file)
			require.NoError(t, err)
			require.NoError(t, s.Validate(testLinked))
			require.NoError(t, s.Validate(testLinked), "validating twice")
			var got []string
			for _, w := range s.Warnings {
				assert.True(t, w.Severity.IsWarning())
				got = append(got, strings.TrimPrefix(w.Error(), file+":"))
			}
			assert.Equal(t, want, got)
		})
	}
}

// TestDecodeProdvanaSpellings: Prodvana's spellings mean what pvnbot's do.
func TestDecodeProdvanaSpellings(t *testing.T) {
	t.Run("runtime", func(t *testing.T) {
		s, err := LoadFiles("testdata", "valid-prodvana-runtime.pvn.yaml")
		require.NoError(t, err)
		c := s.Runtime("terraform-modules").Custom
		assert.Equal(t, "terraform", c.Apply.TaskConfig.Program.ServiceAccount, "taskConfig.k8s.serviceAccount")
		assert.Equal(t, 30*time.Minute, c.Apply.Timeout)
		assert.Equal(t, 2, c.Apply.MaxConcurrency, `"2"`)
		assert.Equal(t, RetryPolicy{BaseInterval: 30 * time.Second, MaxInterval: 10 * time.Minute}, c.Apply.RetryPolicy, `maxAttempts "0": unlimited`)
		assert.Equal(t, []int{75}, c.Apply.RetryableExitCodes)
		require.NotNil(t, c.Fetch)
		assert.Equal(t, 5*time.Minute, c.Fetch.Timeout)
		assert.Equal(t, &RetryPolicy{BaseInterval: 10 * time.Second, MaxInterval: 2 * time.Minute}, c.Fetch.RetryPolicy, "maxAttempts -1: unlimited")
		require.NotNil(t, c.GetInfo, "debug is getInfo")
		assert.Equal(t, time.Minute, c.GetInfo.Timeout)
		assert.Equal(t, &RetryPolicy{BaseInterval: 15 * time.Second, MaxInterval: DefaultRetryMaxInterval, MaxAttempts: 3}, c.GetInfo.RetryPolicy)
		assert.Equal(t, []Text{{"pvn-wrapper", Pos{"valid-prodvana-runtime.pvn.yaml", 54, 24}}, {"exec", Pos{"valid-prodvana-runtime.pvn.yaml", 54, 37}}, {"--", Pos{"valid-prodvana-runtime.pvn.yaml", 54, 43}}},
			c.GetInfo.TaskConfig.Program.Entrypoint)
		assert.Equal(t, strp("10"), c.Parameter("parallelism").Default)
		ma := s.Application("infra").ReleaseChannels[0].Preconditions[0].ManualApproval
		assert.Equal(t, 2, ma.MinApprovers, `"2"`)
		assert.Equal(t, "4", s.Services[0].CustomRuntime.ParameterValues[0].Value.Value, `int: "4"`)
	})
	t.Run("repository", func(t *testing.T) {
		s, err := LoadFiles("testdata", "valid-prodvana-repository.pvn.yaml")
		require.NoError(t, err)
		app := s.Application("storefront")
		assert.Equal(t, "EXTENSION", app.ReleaseChannels[0].Runtimes[0].Type)
		assert.Equal(t, 1, app.ReleaseChannels[1].Preconditions[1].ManualApproval.MinApprovers, "minApprovers: 0 is one")
		var web, landing *Service
		for _, svc := range s.Services {
			switch svc.Name {
			case "web":
				web = svc
			case "landing":
				landing = svc
			}
		}
		assert.Equal(t, []ParameterValue{{Name: "image", Type: ParamString, Value: Text{Value: "registry.example.com/web:2024-04-20"}}},
			stripPos(web.ParameterValuesFor("production")), "runtimeExtension in perReleaseChannel")
		for _, ch := range app.ReleaseChannels {
			link, ok := landing.Connection(&ch)
			require.True(t, ok)
			assert.Equal(t, "static-assets", link.Runtime, "runtimeConnection of channel %s", ch.Name)
		}
		hello := s.Services[len(s.Services)-1]
		link, ok := hello.Connection(&s.Application("onboarding").ReleaseChannels[0])
		require.True(t, ok, "a connection naming nothing of a one-runtime channel")
		assert.Equal(t, "static-assets", link.Runtime)
	})
	t.Run("parameter types", func(t *testing.T) {
		s, err := LoadFiles("testdata", "valid-parameter-types.pvn.yaml")
		require.NoError(t, err)
		c := s.Runtime("k8s-deployer").Custom
		img := c.Parameter("image")
		assert.Equal(t, ParamDockerImage, img.Type)
		assert.Equal(t, strp("latest"), img.Default)
		assert.Equal(t, "acme/api", img.DockerImage.ImageRepository)
		assert.Equal(t, &CommitSource{Repository: "acme/deploy-config", Branch: "main"}, c.Parameter("configCommit").Commit)
		assert.Equal(t, ParamBlob, c.Parameter("values").Type)
		got := map[string]ParameterValue{}
		for _, pv := range stripPos(s.Services[0].ParameterValuesFor("staging")) {
			got[pv.Name] = pv
		}
		assert.Equal(t, ParameterValue{Name: "image", Type: ParamDockerImage, Value: Text{Value: "{{.Params.image.Tag}}"}}, got["image"])
		assert.Equal(t, ParameterValue{Name: "configCommit", Type: ParamCommit, Value: Text{Value: "3f2a9c1d0b7e4a6f8c5d2e1b0a9f8e7d6c5b4a39"}}, got["configCommit"])
		assert.Equal(t, ParamBlob, got["values"].Type)
		assert.Contains(t, got["values"].Value.Value, "host: api.{{.Builtins.ReleaseChannel.Name}}.example.com")
		assert.Equal(t, ParameterValue{Name: "dbPassword", Type: ParamSecret, Value: Text{Value: "api-db-password"}, SecretVersion: "3"}, got["dbPassword"], "secretRef")
	})
}

func stripPos(pvs []ParameterValue) []ParameterValue {
	out := make([]ParameterValue, len(pvs))
	for i, pv := range pvs {
		out[i] = ParameterValue{Name: pv.Name, Type: pv.Type, Value: Text{Value: pv.Value.Value}, SecretVersion: pv.SecretVersion}
	}
	return out
}

// TestWarningsOfSeveralFilesAreSorted: Load gathers the warnings of every
// file in file, line and column order, whatever order the files are read in.
func TestWarningsOfSeveralFilesAreSorted(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"a.pvn.yaml": "service: {name: a, application: app, labels: {x: y}}\n",
		"b.pvn.yaml": "application:\n  name: app\n  annotations: {x: y}\n  releaseChannels: [{name: dev, runtimes: [{runtime: r}]}]\n",
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	s, err := LoadFiles(dir, "b.pvn.yaml", "a.pvn.yaml")
	require.NoError(t, err)
	var got []string
	for _, w := range s.Warnings {
		got = append(got, w.Error())
	}
	assert.Equal(t, []string{
		`a.pvn.yaml:1:38: warning: service "a": labels are accepted and ignored: pvnbot does not use them`,
		`b.pvn.yaml:3:3: warning: application "app": annotations are accepted and ignored: pvnbot does not use them`,
	}, got)
}
