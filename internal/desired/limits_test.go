package desired

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/runner"
)

// allocated runs fn and returns the bytes it allocated.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// SPEC §8: a template that would render gigabytes, or loop for hours, is
// stopped as soon as it passes a limit, and reported at its line; the
// rendering never allocates much more than the limits.
func TestBuildStopsTemplatesAtTheirLimits(t *testing.T) {
	const rt = "runtimes/rt.pvn.yaml"
	cmd := func(tmpl string) func(set *config.Set) {
		return func(set *config.Set) {
			set.Runtimes[0].Custom.Apply.TaskConfig.Program.Cmd = texts(rt, 11, "apply", tmpl)
		}
	}
	manifest := func(set *config.Set, tmpl string, envs ...string) {
		set.Runtimes[0].Custom.ProxyRuntime = config.ProxyRuntime{Runtime: "k"}
		set.Runtimes[0].Custom.Apply.Job = config.Job{Pos: at(rt, 9), KubernetesConfig: &config.KubernetesConfig{
			Pos: at(rt, 14), File: "runtimes/job.yaml", Manifest: []byte("kind: Job\nspec:\n  " + tmpl + "\n"),
		}}
		for i, e := range envs {
			set.Runtimes[0].Custom.Apply.Env = append(set.Runtimes[0].Custom.Apply.Env,
				config.EnvVar{Pos: at(rt, 20+i), Name: "V" + string(rune('A'+i)), Value: ptr(text(e, at(rt, 20+i)))})
		}
	}
	tests := map[string]struct {
		change func(set *config.Set)
		want   string
	}{
		"gigabytes of output": {
			change: cmd(`{{range 100000}}{{range 100000}}{{printf "%01000d" 0}}{{end}}{{end}}`),
			want:   "runtimes/rt.pvn.yaml:12:3: app/svc/staging: template: apply.cmd[1]: renders to more than 1 MiB: the limit of one rendered field",
		},
		"endless loops with no output": {
			change: cmd("{{range 100000}}\n{{range 100000}}{{end}}{{end}}"),
			want:   "runtimes/rt.pvn.yaml:12:3: app/svc/staging: template: apply.cmd[1]:2:8: more than 100000 range iterations and template calls: the limit of one rendering",
		},
		"calls that double": {
			change: cmd(`{{define "a"}}.{{end}}{{define "b"}}{{template "a"}}{{template "a"}}{{end}}{{define "c"}}{{template "b"}}{{template "b"}}{{end}}` +
				`{{define "d"}}{{range 1000}}{{template "c"}}{{template "c"}}{{end}}{{end}}{{range 1000}}{{template "d"}}{{end}}`),
			want: "more than 100000 range iterations and template calls: the limit of one rendering",
		},
		"one huge printf": {
			change: cmd(`{{printf "%0900000d%0900000d" 1 2}}`),
			want:   "runtimes/rt.pvn.yaml:12:3: app/svc/staging: template: apply.cmd[1]:1:2: printf could produce 1801522 bytes: more than 1 MiB, the limit of one rendered field",
		},
		"an escaper that multiplies": {
			change: cmd(`{{js (printf "%0500000d" 1)}}`),
			want:   "template: apply.cmd[1]:1:2: js could produce 3000006 bytes: more than 1 MiB",
		},
		"results never written": {
			change: cmd(`{{range 100}}{{if eq (printf "%0900000d" 1) ""}}{{end}}{{end}}`),
			want:   "its functions produce more than 4 MiB: the limit of one rendering",
		},
		"a job over 4 MiB stops at the field that passes it": {
			change: func(set *config.Set) {
				big := `{{range 1000}}{{printf "%01000d" 0}}{{end}}` // 1,000,000 bytes
				manifest(set, "a: "+big, big, big, big, big)
			},
			want: "runtimes/rt.pvn.yaml:23:3: app/svc/staging: template: apply.env.VD: the job renders to more than 4 MiB: the limit of one rendered job (its fields, env and job file together)",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			set := seedSet()
			tt.change(set)
			var err error
			start := time.Now()
			n := allocated(func() { _, err = Build(set, commitA, Options{}) })
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.Less(t, n, uint64(64<<20), "bytes allocated")
			assert.Less(t, time.Since(start), 10*time.Second)
		})
	}
}

// What no process can be started with is refused when rendering, so that
// bot validate refuses it too: a NUL byte, an argument over the system's
// limit, arguments and environment over ARG_MAX.
func TestBuildRefusesWhatCannotBeExecuted(t *testing.T) {
	const rt = "runtimes/rt.pvn.yaml"
	arg := func(n int) string { return `{{range ` + strconv.Itoa(n) + `}}{{printf "%01000d" 0}}{{end}}` }
	tests := map[string]struct {
		change func(p *config.Program)
		want   string
	}{
		"NUL in an env value": {
			change: func(p *config.Program) {
				p.Env = []config.EnvVar{{Pos: at(rt, 15), Name: "X", Value: ptr(text("a\x00b", at(rt, 15)))}}
			},
			want: "runtimes/rt.pvn.yaml:15:3: app/svc/staging: apply.program.env.X: the value holds a NUL byte, which no environment variable can",
		},
		"NUL rendered into an argument": {
			change: func(p *config.Program) { p.Cmd = texts(rt, 11, "apply", `{{printf "%c" 0}}`) },
			want:   "runtimes/rt.pvn.yaml:12:3: app/svc/staging: apply.cmd[1]: holds a NUL byte, which no program argument can",
		},
		"an argument over MAX_ARG_STRLEN": {
			change: func(p *config.Program) { p.Cmd = texts(rt, 11, "apply", arg(200)) },
			want:   "runtimes/rt.pvn.yaml:12:3: app/svc/staging: apply.cmd[1]: an argument of 200000 bytes: the system's limit is 131071 (MAX_ARG_STRLEN)",
		},
		"arguments over ARG_MAX": {
			change: func(p *config.Program) {
				p.Pos = at(rt, 10)
				args := make([]string, 20)
				for i := range args {
					args[i] = arg(120)
				}
				p.Cmd = texts(rt, 11, args...)
			},
			want: "runtimes/rt.pvn.yaml:10:3: app/svc/staging: apply: the arguments and environment take 2400",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			set := seedSet()
			tt.change(&set.Runtimes[0].Custom.Apply.TaskConfig.Program)
			_, err := Build(set, commitA, Options{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// A commit whose targets render to more than the commit's limit is
// refused, however small each of them is.
func TestBuildStopsACommitAtItsLimit(t *testing.T) {
	set := benchSet(50)
	for _, rt := range set.Runtimes {
		rt.Custom.Apply.TaskConfig.Program.Cmd = texts("runtimes/rt.pvn.yaml", 11, "apply", `{{range 100}}{{printf "%01000d" 0}}{{end}}`)
	}
	limit := &budget{bytes: 5 << 20, steps: maxCommitSteps, maxBytes: 5 << 20, maxSteps: maxCommitSteps}
	_, err := Build(set, commitA, Options{commitLimit: limit})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the targets of this commit render to more than 5 MiB: the limit of one commit")
	assert.Equal(t, 1, strings.Count(err.Error(), "the limit of one commit"), "reported once: %v", err)
}

// Values derived from a secret in a template are as sensitive as the
// secret, whatever it is.
func TestBuildDerivedValuesAreSensitive(t *testing.T) {
	tests := map[string]struct {
		tmpl      string
		sensitive bool
	}{
		"a slice of it":       {tmpl: `{{slice .Params.token 0 4}}`, sensitive: true},
		"a test of it":        {tmpl: `{{if eq .Params.token "guess"}}yes{{else}}no{{end}}`, sensitive: true},
		"its length":          {tmpl: `{{len .Params.token}}`, sensitive: true},
		"every parameter":     {tmpl: `{{range $k, $v := .Params}}{{$k}}{{end}}`, sensitive: true},
		"a computed name":     {tmpl: `{{index .Params (print "tok" "en")}}`, sensitive: true},
		"another parameter":   {tmpl: `{{.Params.changeId}}`},
		"no parameter at all": {tmpl: `{{.Builtins.Service.Name}}`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			set := secretSet()
			set.Runtimes[0].Custom.Apply.TaskConfig.Program.Env[1].Value = ptr(text(tt.tmpl, at("runtimes/rt.pvn.yaml", 16)))
			got := byKey(t, build(t, set, commitA, Options{Secrets: secretSource(secretValue)}), "app/svc/staging")
			var plain runner.EnvVar
			for _, e := range got.Apply.Env {
				if e.Name == "PLAIN" {
					plain = e
				}
			}
			assert.Equal(t, tt.sensitive, plain.Sensitive, "PLAIN=%q", plain.Value)
		})
	}
}

// SPEC §8: a secret value of fewer than 4 characters is refused; it could
// not be redacted from job output without destroying it.
func TestBuildRefusesShortSecrets(t *testing.T) {
	_, err := Build(secretSet(), commitA, Options{Secrets: secretSource("abé")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `services/svc.pvn.yaml:8:3: app/svc/staging: secret parameter token: the value of key "db/token" has 3 characters: a secret needs at least 4`)
	assert.NotContains(t, err.Error(), "abé")
	build(t, secretSet(), commitA, Options{Secrets: secretSource("abéd")})
}
