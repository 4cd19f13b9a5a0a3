package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
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

// bot validate renders every target of every channel, as bot run does, so
// that it refuses at their line whatever bot run would refuse.
func TestValidateRendersWhatRunRenders(t *testing.T) {
	runtime := func(cmd, env string) string {
		return "runtime:\n  name: vm\n  custom:\n    proxyRuntime: {runtime: local}\n    apply:\n" +
			"      taskConfig: {program: {cmd: " + cmd + env + "}}\n" +
			"    parameters:\n    - {name: version, string: {defaultValue: \"1\"}}\n    - {name: token, secret: {}}\n"
	}
	const rest = "---\napplication:\n  name: shop\n  releaseChannels: [{name: staging, runtimes: [{runtime: vm}]}]\n" +
		"---\nservice:\n  name: web\n  application: shop\n  customRuntime:\n    parameterValues:\n    - {name: token, secret: {key: db}}\n"
	manyArgs := "[" + strings.TrimSuffix(strings.Repeat(`'{{range 120}}{{printf "%01000d" 0}}{{end}}', `, 20), ", ") + "]"
	tests := map[string]struct{ cmd, env, want string }{
		"undefined template": {cmd: `[deploy, '{{template "x"}}']`, want: `a.pvn.yaml:6:44: runtime "vm": invalid template: template "x" is not defined`},
		"call":               {cmd: `[deploy, '{{call .Params.version}}']`, want: `a.pvn.yaml:6:44: runtime "vm": invalid template: call is not supported`},
		"recursive define":   {cmd: `[deploy, '{{define "a"}}{{template "a"}}{{end}}']`, want: `a.pvn.yaml:6:44: runtime "vm": invalid template: template "a" calls itself`},
		"field of a string":  {cmd: `[deploy, '{{$x := .Params.version}}{{$x.nope}}']`, want: `a.pvn.yaml:6:44: shop/web/staging: template: apply.cmd[1]:1:29: executing "apply.cmd[1]" at <$x.nope>: can't evaluate field nope in type string`},
		"NUL in an env value": {cmd: `[deploy]`, env: `, env: {X: {value: "a\0b"}}`,
			want: `a.pvn.yaml:6:62: shop/web/staging: apply.program.env.X: the value holds a NUL byte, which no environment variable can`},
		"argument list over the system's limit": {cmd: manyArgs, want: "a.pvn.yaml:6:20: shop/web/staging: apply: the arguments and environment take"},
		"gigabytes":                             {cmd: `[deploy, '{{range 100000}}{{range 100000}}{{$.Params.version}}{{end}}{{end}}']`, want: "shop/web/staging: template: apply.cmd[1]:1:24: more than 100000 range iterations"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "a.pvn.yaml"), []byte(runtime(tt.cmd, tt.env)+rest), 0o644))
			t.Chdir(dir)
			code, stdout, stderr := runBot(t, "validate")
			assert.Equal(t, 1, code, "stdout: %s\nstderr: %s", stdout, stderr)
			assert.Contains(t, stdout, tt.want)
		})
	}

	// The same config with nothing wrong renders, its secret a placeholder.
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.pvn.yaml"), []byte(runtime(`[deploy, "{{.Params.version}}"]`, `, env: {T: {value: "{{.Params.token}}"}}`)+rest), 0o644))
	t.Chdir(dir)
	code, stdout, stderr := runBot(t, "validate")
	assert.Equal(t, 0, code, "stdout: %s\nstderr: %s", stdout, stderr)
	assert.Equal(t, "1 runtime, 1 application, 1 service, 1 target\n", stdout)
}
