package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const seedDir = "../../fixtures/seed"

func seedLinked(t *testing.T) *Linked {
	t.Helper()
	bot, err := LoadBot(filepath.Join(seedDir, "bot.yaml"))
	require.NoError(t, err)
	return bot.Linked()
}

// TestSeedRepo: the seed's examples combined into one repository validate.
func TestSeedRepo(t *testing.T) {
	s, err := LoadDir(filepath.Join(seedDir, "repo"))
	require.NoError(t, err)
	require.NoError(t, s.Validate(seedLinked(t)))
	assert.Len(t, s.Runtimes, 6)
	assert.Len(t, s.Applications, 2)
	assert.Len(t, s.Services, 2)
	assert.Equal(t, 4, s.Targets())
	assert.Contains(t, string(s.Runtime("my-custom-runtime").Custom.GetInfo.KubernetesConfig.Manifest), "pvn-wrapper")
}

// TestSeedExamples: each example of the seed, as written, on its own.
// Those that are fragments ("... # rest of config here") fail where the
// fragment is; the services fail on `application: my-application`.
func TestSeedExamples(t *testing.T) {
	tests := map[string][]string{
		"01-runtime": nil,
		"02-application": {
			`6:7: release channel "staging": unknown runtime "my-custom-runtime" (no runtimes defined)`,
			`9:7: release channel "production": unknown runtime "my-other-custom-runtime" (no runtimes defined)`,
		},
		"03-service":                    {`3:3: service "my-service": unknown application "my-application" (no applications defined)`},
		"04-service-parameters":         {`3:3: service "my-service": unknown application "my-application" (no applications defined)`},
		"05-runtime-existing-namespace": {`9:1: invalid YAML: could not find expected ':'`},
		"06-application-multiple-runtimes": {
			`6:7: release channel "staging": unknown runtime "my-vm-runtime" (no runtimes defined)`,
			`8:7: release channel "staging": unknown runtime "my-static-assets-runtime" (no runtimes defined)`,
			`12:7: release channel "production": unknown runtime "my-prod-vm-runtime" (no runtimes defined)`,
			`14:7: release channel "production": unknown runtime "my-prod-static-assets-runtime" (no runtimes defined)`,
		},
		"07-service-runtime-connection": {
			`3:3: service "my-service": unknown application "my-application" (no applications defined)`,
			`4:3: service.customRuntime: want a mapping, got a string`,
		},
		"08-runtime-kubernetes-config": {`10:11: kubernetesConfig file path/to/kubernetes/job.yaml: not found`},
		"09-runtime-fetch-kubernetes":  {`9:1: invalid YAML: could not find expected ':'`},
		"10-runtime-fetch-task": {
			`3:3: runtime.extension: missing required field "apply"`,
			`3:3: runtime.extension: missing required field "proxyRuntime"`,
			`9:13: runtime "my-custom-runtime": template references undeclared parameter "changeId" (declared: none)`,
		},
		"11-runtime-fetch-interval":     {`3:1: invalid YAML: did not find expected key`},
		"13-runtime-getinfo-kubernetes": {`9:1: invalid YAML: could not find expected ':'`},
		"14-runtime-getinfo-task": {
			`3:3: runtime.custom: missing required field "apply"`,
			`3:3: runtime.custom: missing required field "proxyRuntime"`,
		},
		"15-application-every-action": {
			`6:7: release channel "staging": unknown runtime "my-custom-runtime" (no runtimes defined)`,
			`9:7: release channel "production": unknown runtime "my-other-custom-runtime" (no runtimes defined)`,
		},
		"16-runtime-grace-period": {
			`3:3: runtime.custom: missing required field "proxyRuntime"`,
			`4:5: runtime.custom.fetch: want a mapping, got a string`,
			`5:5: runtime.custom.apply: want a mapping, got a string`,
		},
		"17-runtime-max-concurrency": {`6:1: invalid YAML: could not find expected ':'`},
		"18-runtime-apply-id":        {`11:1: invalid YAML: could not find expected ':'`},
	}
	dir := filepath.Join(seedDir, "examples")
	files, err := filepath.Glob(filepath.Join(dir, "*.pvn.yaml"))
	require.NoError(t, err)
	require.Len(t, files, len(tests))
	linked := seedLinked(t)
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			file := name + ".pvn.yaml"
			s, err := LoadFiles(dir, file)
			require.NotNil(t, s, err)
			err = Combine(err, s.Validate(linked))
			var got []string
			if err != nil {
				for _, line := range strings.Split(err.Error(), "\n") {
					got = append(got, strings.TrimPrefix(line, file+":"))
				}
			}
			assert.Equal(t, want, got)
		})
	}
}

// TestSeedServiceNamesUnknownApplication: the seed's service next to the
// seed's application names both in its message.
func TestSeedServiceNamesUnknownApplication(t *testing.T) {
	dir := filepath.Join(seedDir, "examples")
	s, err := LoadFiles(dir, "01-runtime.pvn.yaml", "02-application.pvn.yaml", "03-service.pvn.yaml")
	require.NoError(t, err)
	err = s.Validate(seedLinked(t))
	assert.Contains(t, strings.Split(err.Error(), "\n"),
		`03-service.pvn.yaml:3:3: service "my-service": unknown application "my-application" (known: my-app)`)
}

func TestSeedJobManifest(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(seedDir, "examples", "12-getinfo-job.yaml"))
	require.NoError(t, err)
	assert.Empty(t, checkJobManifest(data))
}
