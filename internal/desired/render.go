package desired

import (
	"bytes"
	"cmp"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/runner"
)

// tmplData is what templates see: {{.Params.NAME}} and {{.Builtins.X}}.
type tmplData struct {
	// Params holds a string per parameter, or an imageParam for a
	// dockerImage parameter.
	Params   map[string]any
	Builtins builtins
}

type builtins struct {
	Service        named
	Application    named
	ReleaseChannel named
	Runtime        named
	Commit         string
}

type named struct{ Name string }

func hasTemplate(s string) bool { return strings.Contains(s, "{{") }

// templates parses each distinct (name, text) once per Build.
type templates struct {
	cache map[tmplKey]tmplEntry
	buf   bytes.Buffer
}

type tmplKey struct{ name, text string }

type tmplEntry struct {
	t   *template.Template
	err error
}

func newTemplates() *templates {
	return &templates{cache: make(map[tmplKey]tmplEntry)}
}

// render executes text as a template called name. The name shows in error
// messages, which then read "template: apply.cmd[1]:1:9: ...".
func (ts *templates) render(name, text string, data *tmplData) (string, error) {
	if !hasTemplate(text) {
		return text, nil
	}
	k := tmplKey{name, text}
	e, ok := ts.cache[k]
	if !ok {
		t, err := config.NewTemplate(name, text)
		e = tmplEntry{t: t, err: err}
		ts.cache[k] = e
	}
	if e.err != nil {
		return "", e.err
	}
	ts.buf.Reset()
	if err := e.t.Execute(&ts.buf, data); err != nil {
		return "", err
	}
	return ts.buf.String(), nil
}

// renderer renders the runtime's templates for one target.
type renderer struct {
	ts             *templates
	tb             *targetBuild
	ps             *params
	registries     map[string]string
	pub, alt, real tmplData
}

func newRenderer(ts *templates, tb *targetBuild, ps *params, bi builtins, registries map[string]string) *renderer {
	return &renderer{
		ts: ts, tb: tb, ps: ps, registries: registries,
		pub:  tmplData{Params: ps.pub, Builtins: bi},
		alt:  tmplData{Params: ps.alt, Builtins: bi},
		real: tmplData{Params: ps.real, Builtins: bi},
	}
}

// public renders a template whose output is shown in plans and check runs:
// one that depends on a secret parameter is an error.
func (r *renderer) public(field string, t config.Text) string {
	if !hasTemplate(t.Value) {
		return t.Value
	}
	out, err := r.ts.render(field, t.Value, &r.pub)
	if err != nil {
		r.tb.errorf(t.Pos, "%v", err)
		return ""
	}
	if r.ps.hasSecrets {
		alt, err := r.ts.render(field, t.Value, &r.alt)
		if err != nil || alt != out {
			r.tb.errorf(t.Pos, "%s refers to a secret parameter: secrets reach jobs only through their env (%sNAME, or an env value)",
				field, ParamEnvPrefix)
			return ""
		}
	}
	return out
}

// envValue renders an env value; it is sensitive when it depends on a
// secret parameter.
func (r *renderer) envValue(field string, t config.Text) (string, bool) {
	if !r.ps.hasSecrets || !hasTemplate(t.Value) {
		return r.public(field, t), false
	}
	a, errA := r.ts.render(field, t.Value, &r.pub)
	b, errB := r.ts.render(field, t.Value, &r.alt)
	v, err := r.ts.render(field, t.Value, &r.real)
	if err = cmp.Or(errA, errB, err); err != nil {
		r.tb.errorf(t.Pos, "%v", err)
		return "", true
	}
	return v, a != b
}

func (r *renderer) list(field string, ts []config.Text) []string {
	if len(ts) == 0 {
		return nil
	}
	out := make([]string, len(ts))
	for i, t := range ts {
		if hasTemplate(t.Value) {
			out[i] = r.public(field+"["+strconv.Itoa(i)+"]", t)
		} else {
			out[i] = t.Value
		}
	}
	return out
}

// env renders vars and adds them to env. Names are the user's: the PVN_
// prefix is pvnbot's, and a name given twice is an error.
func (r *renderer) env(env []runner.EnvVar, field string, vars []config.EnvVar) []runner.EnvVar {
	for _, v := range vars {
		if strings.HasPrefix(v.Name, reservedEnvPrefix) {
			r.tb.errorf(v.Pos, "%s.%s: the %s prefix is reserved for the variables pvnbot sets", field, v.Name, reservedEnvPrefix)
			continue
		}
		if dupOf(env, v.Name) {
			r.tb.errorf(v.Pos, "%s.%s: the variable is also set by the program's env", field, v.Name)
			continue
		}
		e := runner.EnvVar{Name: v.Name}
		switch {
		case v.Value != nil:
			e.Value, e.Sensitive = r.envValue(field+"."+v.Name, *v.Value)
		case v.KubernetesSecret != nil:
			e.SecretRef = &runner.SecretRef{Name: v.KubernetesSecret.SecretName, Key: v.KubernetesSecret.Key}
		}
		env = append(env, e)
	}
	return env
}

func dupOf(env []runner.EnvVar, name string) bool {
	for _, e := range env {
		if e.Name == name {
			return true
		}
	}
	return false
}

// image is program.image, else <registry url>/<imageRepository>:<imageTag>.
func (r *renderer) image(action string, p *config.Program) string {
	if p.Image.Value != "" {
		return r.public(action+".image", p.Image)
	}
	if p.ImageRegistryInfo == nil {
		return ""
	}
	return imageRef(p.ImageRegistryInfo, r.public(action+".imageTag", p.ImageTag), r.registries)
}

// job renders one of the runtime's jobs; the caller fills in the names.
func (r *renderer) job(action runner.Action, j config.Job, base []runner.EnvVar) runner.Spec {
	prefix := string(action)
	var s runner.Spec
	var env []runner.EnvVar
	if tc := j.TaskConfig; tc != nil {
		p := &tc.Program
		s.Entrypoint = r.list(prefix+".entrypoint", p.Entrypoint)
		s.Cmd = r.list(prefix+".cmd", p.Cmd)
		s.WorkingDirectory = r.public(prefix+".workingDirectory", p.WorkingDirectory)
		s.Image = r.image(prefix, p)
		s.ServiceAccount = p.ServiceAccount
		s.TTL = cmp.Or(tc.TTL, config.DefaultTaskTTL)
		env = r.env(env, prefix+".program.env", p.Env)
	}
	if kc := j.KubernetesConfig; kc != nil {
		name := cmp.Or(kc.File, kc.Path, prefix+".manifest")
		if m := r.public(name, config.Text{Value: string(kc.Manifest), Pos: kc.Pos}); m != "" {
			s.Manifest = []byte(m)
		}
	}
	env = r.env(env, prefix+".env", j.Env)
	s.Timeout = j.Timeout
	s.Env = mergeEnv(env, runner.EnvVar{Name: "PVN_ACTION", Value: prefix}, base)
	return s
}

// mergeEnv sorts the user's variables and merges them with PVN_ACTION and
// base, the rest of the PVN_* ones, already sorted. PVN_ACTION sorts first
// among them and the user's never start with PVN_.
func mergeEnv(user []runner.EnvVar, action runner.EnvVar, base []runner.EnvVar) []runner.EnvVar {
	slices.SortFunc(user, func(a, b runner.EnvVar) int { return strings.Compare(a.Name, b.Name) })
	i, _ := slices.BinarySearchFunc(user, reservedEnvPrefix, func(e runner.EnvVar, prefix string) int {
		return strings.Compare(e.Name, prefix)
	})
	out := make([]runner.EnvVar, 0, len(user)+1+len(base))
	out = append(out, user[:i]...)
	out = append(out, action)
	out = append(out, base...)
	return append(out, user[i:]...)
}
