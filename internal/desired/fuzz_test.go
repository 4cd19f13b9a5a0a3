package desired

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/runner"
)

// fuzzAllocCap bounds what one Build of the fuzz may allocate in all,
// garbage included (so its peak is lower still): its commit may render
// fuzzCommitBytes and take fuzzCommitSteps (each range iteration makes a
// little garbage), the commit limits scaled down from MaxCommitBytes and
// maxCommitSteps; the limits of a field and a job are the real ones.
const (
	fuzzCommitBytes = 8 << 20
	fuzzCommitSteps = 200_000
	fuzzAllocCap    = 64 << 20
)

// FuzzRender: no template, and no config around it, makes rendering panic,
// pass a limit (a field over 1 MiB, a job over 4 MiB) or allocate more
// than fuzzAllocCap. The template goes into a runtime's cmd, env, working
// directory, applyId and a service's parameter value; doc is one more
// config file (more services, runtimes, applications).
func FuzzRender(f *testing.F) {
	for _, tmpl := range []string{
		"{{.Params.version}}", `{{printf "%s-%d" .Params.version 3}}`, "{{.Builtins.Service.Name}}@{{.Builtins.Commit}}",
		`{{range 100000}}{{range 100000}}{{printf "%01000d" 0}}{{end}}{{end}}`, "{{range 100000}}\n{{range 100000}}{{end}}{{end}}",
		`{{printf "%0900000d%0900000d" 1 2}}`, `{{js (printf "%0500000d" 1)}}`, `{{range 100}}{{if eq (printf "%0900000d" 1) ""}}{{end}}{{end}}`,
		`{{define "a"}}.{{end}}{{define "b"}}{{template "a"}}{{template "a"}}{{end}}{{range 1000}}{{template "b"}}{{end}}`,
		`{{define "a"}}{{template "a"}}{{end}}{{template "a"}}`, `{{call .Params.version}}`, `{{template "nope"}}`,
		`{{$x := .Params.version}}{{$x.nope}}`, `{{printf "%c" 0}}`, `{{range $k, $v := .Params}}{{$k}}={{$v}} {{end}}`,
		`{{if eq .Params.token "x"}}yes{{end}}`, `{{slice .Params.token 0 4}}`, `{{html .Params}}{{urlquery .}}{{println .Builtins}}`,
		`{{printf "%*d" 1000000 1}}`, `{{printf "%[1]s%[1]s%[1]s%[1]s" (printf "%0300000d" 1)}}`, `{{with .Params.version}}{{.}}{{end}}`,
	} {
		f.Add(tmpl, []byte(""))
		f.Add(tmpl, []byte("service: {name: api, application: shop}\n---\nservice: {name: db, application: shop}\n"))
	}
	f.Fuzz(func(t *testing.T, tmpl string, doc []byte) {
		q, _ := json.Marshal(tmpl) // a YAML double-quoted string
		rt := "runtime:\n  name: vm\n  custom:\n    proxyRuntime: {runtime: local}\n    apply:\n" +
			"      taskConfig: {program: {cmd: [deploy, " + string(q) + "], workingDirectory: " + string(q) + ", env: {A: {value: " + string(q) + "}}}}\n" +
			"    applyId: " + string(q) + "\n" +
			"    parameters:\n    - {name: version, string: {defaultValue: \"1\"}}\n    - {name: token, secret: {}}\n"
		app := "application:\n  name: shop\n  releaseChannels: [{name: staging, runtimes: [{runtime: vm}]}, {name: production, runtimes: [{runtime: vm}]}]\n" +
			"---\nservice:\n  name: web\n  application: shop\n  parameters: [{name: v, string: {defaultValue: \"2\"}}]\n" +
			"  customRuntime:\n    parameterValues:\n    - {name: version, string: " + string(q) + "}\n    - {name: token, secret: {key: db}}\n"
		set := &config.Set{}
		for name, data := range map[string][]byte{"rt.pvn.yaml": []byte(rt), "app.pvn.yaml": []byte(app), "fuzz.pvn.yaml": doc} {
			s, _ := config.Parse(name, data)
			set.Runtimes = append(set.Runtimes, s.Runtimes...)
			set.Applications = append(set.Applications, s.Applications...)
			set.Services = append(set.Services, s.Services...)
		}
		_ = set.Validate(nil)
		opts := Options{
			Secrets:     SecretFunc(func(key, _ string) (string, error) { return "s3cret-" + key, nil }),
			commitLimit: &budget{bytes: fuzzCommitBytes, steps: fuzzCommitSteps, maxBytes: fuzzCommitBytes, maxSteps: fuzzCommitSteps},
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		targets, err := Build(set, "0123456789012345678901234567890123456789", opts)
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > fuzzAllocCap {
			t.Fatalf("Build allocated %d bytes, more than %d", n, fuzzAllocCap)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret-") {
			t.Fatalf("a secret value in an error: %v", err)
		}
		for _, tg := range targets {
			for _, s := range []*runner.Spec{&tg.Apply, tg.Fetch, tg.GetInfo} {
				if s == nil {
					continue
				}
				if n := specSize(*s); n > MaxJobBytes {
					t.Fatalf("%s: a job of %d bytes", tg.Key, n)
				}
				for _, v := range append(append([]string{s.WorkingDirectory, s.Image, string(s.Manifest)}, s.Cmd...), s.Entrypoint...) {
					if len(v) > MaxFieldBytes {
						t.Fatalf("%s: a field of %d bytes", tg.Key, len(v))
					}
				}
				for _, e := range s.Env {
					if len(e.Value) > MaxFieldBytes {
						t.Fatalf("%s: %s of %d bytes", tg.Key, e.Name, len(e.Value))
					}
				}
			}
		}
	})
}
