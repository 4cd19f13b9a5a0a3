package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runBot(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUnknownCommand(t *testing.T) {
	code, _, stderr := runBot(t, "deploy")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, `bot: unknown command "deploy"`)
	assert.Contains(t, stderr, "usage: bot <command>")
	assert.Contains(t, stderr, "validate")

	code, _, stderr = runBot(t)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "usage:")

	code, stdout, _ := runBot(t, "help")
	assert.Equal(t, 0, code)
	assert.Contains(t, stdout, "validate")
}

func TestValidate(t *testing.T) {
	seed := filepath.Join("..", "..", "fixtures", "seed")
	tests := map[string]struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		"seed repo with linked runtimes": {
			args:   []string{"validate", "--bot-config", filepath.Join(seed, "bot.yaml"), filepath.Join(seed, "repo")},
			stdout: "6 runtimes, 2 applications, 2 services, 4 targets\n",
		},
		"without bot config, a note": {
			args:   []string{"validate", filepath.Join(seed, "repo")},
			stdout: "6 runtimes, 2 applications, 2 services, 4 targets\n",
			stderr: "note: linked Kubernetes runtimes and container registries were not checked (no --bot-config)\n",
		},
		"singular": {
			args:   []string{"validate", "--bot-config", filepath.Join(seed, "bot.yaml"), filepath.Join(seed, "examples", "01-runtime.pvn.yaml")},
			stdout: "1 runtime, 0 applications, 0 services, 0 targets\n",
		},
		"files named one by one are checked together": {
			args: []string{"validate", filepath.Join(seed, "examples", "02-application.pvn.yaml"), filepath.Join(seed, "examples", "03-service.pvn.yaml")},
			code: 1,
			stdout: filepath.Join(seed, "examples", "02-application.pvn.yaml") + `:6:7: release channel "staging": unknown runtime "my-custom-runtime" (no runtimes defined)` + "\n" +
				filepath.Join(seed, "examples", "02-application.pvn.yaml") + `:9:7: release channel "production": unknown runtime "my-other-custom-runtime" (no runtimes defined)` + "\n" +
				filepath.Join(seed, "examples", "03-service.pvn.yaml") + `:3:3: service "my-service": unknown application "my-application" (known: my-app)` + "\n",
		},
		"linked runtime missing from bot config": {
			args:   []string{"validate", "--bot-config", filepath.Join("testdata", "empty-bot.yaml"), filepath.Join(seed, "examples", "01-runtime.pvn.yaml")},
			code:   1,
			stdout: filepath.Join(seed, "examples", "01-runtime.pvn.yaml") + `:5:7: runtime "my-custom-runtime": proxy runtime "my-kubernetes-runtime" is not a linked Kubernetes runtime (want "local" or one of the bot's kubernetesRuntimes: none)` + "\n" + filepath.Join(seed, "examples", "01-runtime.pvn.yaml") + `:14:13: runtime "my-custom-runtime": container registry "my-registry-name" is not linked (the bot's containerRegistries: none)` + "\n",
		},
		"bad bot config": {
			args:   []string{"validate", "--bot-config", filepath.Join("testdata", "bad-bot.yaml"), filepath.Join(seed, "repo")},
			code:   1,
			stderr: filepath.Join("testdata", "bad-bot.yaml") + `:1:1: bot: unknown key "kubernetes" (want one of: github, server, store, kubernetesRuntimes, containerRegistries, branches, localRunner)` + "\n",
		},
		"missing path": {
			args:   []string{"validate", filepath.Join("testdata", "nowhere")},
			code:   1,
			stderr: "bot validate: load configs: open " + filepath.Join("testdata", "nowhere") + ": no such file or directory\n",
		},
		"only warnings: printed, exit 0, counted in the summary": {
			args: []string{"validate", filepath.Join("testdata", "warnings")},
			stdout: filepath.Join("testdata", "warnings", "app.pvn.yaml") + `:3:3: warning: runtime "files": labels are accepted and ignored: pvnbot does not use them` + "\n" +
				filepath.Join("testdata", "warnings", "app.pvn.yaml") + `:19:3: warning: service "web": runtimeConnection "default" names no runtime connection of release channel "staging" of application "shop": its only runtime, "files", is used` + "\n" +
				"1 runtime, 1 application, 1 service, 1 target, 2 warnings\n",
			stderr: "note: linked Kubernetes runtimes and container registries were not checked (no --bot-config)\n",
		},
		"errors and warnings: both, in file order, exit 1": {
			args: []string{"validate", filepath.Join("testdata", "warnings-and-errors")},
			code: 1,
			stdout: filepath.Join("testdata", "warnings-and-errors", "app.pvn.yaml") + `:3:3: warning: application "shop": annotations are accepted and ignored: pvnbot does not use them` + "\n" +
				filepath.Join("testdata", "warnings-and-errors", "app.pvn.yaml") + `:6:17: release channel "staging": unknown runtime "files" (no runtimes defined)` + "\n",
		},
		"bad flag": {
			args:   []string{"validate", "--nope"},
			code:   2,
			stderr: "flag provided but not defined: -nope\n",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := runBot(t, tt.args...)
			assert.Equal(t, tt.code, code, "stdout: %s\nstderr: %s", stdout, stderr)
			assert.Equal(t, tt.stdout, stdout)
			if tt.code == 2 {
				assert.Contains(t, stderr, tt.stderr)
			} else {
				assert.Equal(t, tt.stderr, stderr)
			}
		})
	}
}

func TestValidateDefaultsToCurrentFolder(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sub", "a.pvn.yaml"), []byte("service:\n  name: s\n  application: nope\n"), 0o644))
	t.Chdir(dir)
	code, stdout, _ := runBot(t, "validate")
	assert.Equal(t, 1, code)
	assert.Equal(t, "sub/a.pvn.yaml:3:3: service \"s\": unknown application \"nope\" (no applications defined)\n", stdout)
}
