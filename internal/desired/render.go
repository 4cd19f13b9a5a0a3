package desired

import (
	"bytes"
	"cmp"
	"errors"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"

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

// templates parses each distinct (name, text) once per Build, and renders
// them within the limits of one rendering and of the commit.
type templates struct {
	cache  map[tmplKey]*tmplEntry
	commit *budget
	buf    bytes.Buffer
	out    limitedBuffer // writes to buf what x allows
	x      execution     // of the rendering under way
	fm     template.FuncMap
}

type tmplKey struct{ name, text string }

type tmplEntry struct {
	t     *template.Template
	sites []parse.Node
	err   error
	// refs is the parameters the template names, and all whether it may
	// see any of them.
	refs []string
	all  bool
}

func newTemplates(commit *budget) *templates {
	ts := &templates{cache: make(map[tmplKey]*tmplEntry), commit: commit}
	ts.fm = ts.funcs()
	ts.out = limitedBuffer{x: &ts.x, buf: &ts.buf}
	return ts
}

// parse returns the template of text called name, parsed once.
func (ts *templates) parse(name, text string) *tmplEntry {
	k := tmplKey{name, text}
	if e, ok := ts.cache[k]; ok {
		return e
	}
	e := &tmplEntry{}
	ts.cache[k] = e
	t, err := config.NewTemplate(name, text)
	if err != nil {
		e.err = err
		return e
	}
	e.refs, e.all = config.ParamRefs(t)
	t.Funcs(ts.fm)
	if e.sites, e.err = instrument(t); e.err == nil {
		e.t = t
	}
	return e
}

// render executes text as a template called name, writing at most limit
// bytes (jobLimit says that limit is what is left of the job's). The name
// shows in error messages, which then read "template: apply.cmd[1]:1:9:
// ...".
func (ts *templates) render(name, text string, data *tmplData, limit int, jobLimit bool) (string, error) {
	if !hasTemplate(text) {
		return text, nil
	}
	e := ts.parse(name, text)
	if e.err != nil {
		return "", e.err
	}
	ts.buf.Reset()
	ts.x = execution{commit: ts.commit, outLeft: limit, outJob: jobLimit, sites: e.sites, tree: e.t.Tree}
	err := e.t.Execute(&ts.out, data)
	ts.x.sites, ts.x.tree = nil, nil
	if err != nil {
		if le, ok := worded(name, err); ok {
			return "", le
		}
		return "", err
	}
	return ts.buf.String(), nil
}

// limitedBuffer writes to buf what x allows.
type limitedBuffer struct {
	x   *execution
	buf *bytes.Buffer
}

func (w *limitedBuffer) Write(p []byte) (int, error) {
	if err := w.x.allow(len(p)); err != nil {
		return 0, err
	}
	return w.buf.Write(p)
}

// renderer renders the runtime's templates for one target.
type renderer struct {
	ts             *templates
	tb             *targetBuild
	ps             *params
	registries     map[string]string
	pub, alt, real tmplData
	// jobLeft is what the job being rendered may still hold.
	jobLeft int
	pos     config.Pos // the runtime's, for problems of a whole job
}

func newRenderer(ts *templates, tb *targetBuild, ps *params, bi builtins, registries map[string]string) *renderer {
	return &renderer{
		ts: ts, tb: tb, ps: ps, registries: registries,
		pub:     tmplData{Params: ps.pub, Builtins: bi},
		alt:     tmplData{Params: ps.alt, Builtins: bi},
		real:    tmplData{Params: ps.real, Builtins: bi},
		jobLeft: MaxJobBytes,
	}
}

// render renders one field within what is left of the job.
func (r *renderer) render(field, text string, data *tmplData) (string, error) {
	limit := min(MaxFieldBytes, max(r.jobLeft, 0))
	return r.ts.render(field, text, data, limit, limit < MaxFieldBytes)
}

// take counts a value that is part of the job.
func (r *renderer) take(s string) string {
	r.jobLeft -= len(s)
	return s
}

// public renders a template whose output is shown in plans and check runs:
// one that depends on a secret parameter is an error.
func (r *renderer) public(field string, t config.Text) string {
	if !hasTemplate(t.Value) {
		return r.take(t.Value)
	}
	out, err := r.render(field, t.Value, &r.pub)
	if err != nil {
		r.tb.errorf(t.Pos, "%v", err)
		return ""
	}
	if r.ps.hasSecrets {
		alt, err := r.render(field, t.Value, &r.alt)
		if isLimit(err) {
			r.tb.errorf(t.Pos, "%v", err)
			return ""
		}
		if err != nil || alt != out {
			r.tb.errorf(t.Pos, "%s refers to a secret parameter: secrets reach jobs only through their env (%sNAME, or an env value)",
				field, ParamEnvPrefix)
			return ""
		}
	}
	return r.take(out)
}

// envValue renders an env value. It is sensitive when it may depend on a
// secret parameter: when its template names one, or may see any parameter
// (ranges over .Params, say), or renders differently with the secrets'
// markers. Whether it is sensitive never depends on the secrets' values.
func (r *renderer) envValue(field string, t config.Text) (string, bool) {
	if !r.ps.hasSecrets || !hasTemplate(t.Value) {
		return r.public(field, t), false
	}
	e := r.ts.parse(field, t.Value)
	if e.err != nil {
		r.tb.errorf(t.Pos, "%v", e.err)
		return "", true
	}
	a, errA := r.render(field, t.Value, &r.pub)
	b, errB := r.render(field, t.Value, &r.alt)
	v, err := r.render(field, t.Value, &r.real)
	if err = cmp.Or(errA, errB, err); err != nil {
		r.tb.errorf(t.Pos, "%v", err)
		return "", true
	}
	return r.take(v), a != b || r.refersToSecret(e)
}

// refersToSecret reports whether a template names a secret parameter or
// may see any parameter.
func (r *renderer) refersToSecret(e *tmplEntry) bool {
	if e.all {
		return true
	}
	for _, name := range e.refs {
		if r.ps.isSecret(name) {
			return true
		}
	}
	return false
}

func isLimit(err error) bool {
	var le *limitError
	return errors.As(err, &le)
}

func (r *renderer) list(field string, ts []config.Text) []string {
	if len(ts) == 0 {
		return nil
	}
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = r.public(field+"["+strconv.Itoa(i)+"]", t)
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
		e := runner.EnvVar{Name: r.take(v.Name)}
		switch {
		case v.Value != nil:
			e.Value, e.Sensitive = r.envValue(field+"."+v.Name, *v.Value)
			if hasNUL(e.Value) {
				r.tb.errorf(v.Value.Pos, "%s.%s: the value holds a NUL byte, which no environment variable can", field, v.Name)
			}
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
	r.jobLeft = MaxJobBytes - envSize(base) - len("PVN_ACTION=") - len(prefix)
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
	if tc := j.TaskConfig; tc != nil {
		r.checkExec(prefix, tc, s)
	}
	if size := specSize(s); size > MaxJobBytes {
		r.tb.errorf(cmp.Or(j.Pos, r.pos), "%s: the job renders to %d bytes: more than %s, the limit of one rendered job (its fields, env and job file together)",
			prefix, size, mib(MaxJobBytes))
	}
	return s
}

// Limits of exec(2) on Linux: each argument or "NAME=value" string is at
// most maxArgStrlen bytes with its NUL (MAX_ARG_STRLEN), and all of them,
// with a pointer each, at most maxArgBytes (ARG_MAX with the default 8 MiB
// stack), less what the runner adds (PATH, HOME, passed variables).
const (
	maxArgStrlen  = 32 * 4096
	maxArgBytes   = 2<<20 - argsReserved
	argsReserved  = 64 << 10
	argPointerLen = 8
)

// checkExec refuses what no process can be started with: a NUL byte in an
// argument or the working directory, an argument or a variable over
// maxArgStrlen, arguments and environment over maxArgBytes.
func (r *renderer) checkExec(action string, tc *config.TaskConfig, s runner.Spec) {
	p := &tc.Program
	total := 0
	args := func(field string, texts []config.Text, vals []string) {
		for i, v := range vals {
			pos := p.Pos
			if i < len(texts) {
				pos = texts[i].Pos
			}
			switch {
			case hasNUL(v):
				r.tb.errorf(pos, "%s.%s[%d]: holds a NUL byte, which no program argument can", action, field, i)
			case len(v)+1 > maxArgStrlen:
				r.tb.errorf(pos, "%s.%s[%d]: an argument of %d bytes: the system's limit is %d (MAX_ARG_STRLEN)", action, field, i, len(v), maxArgStrlen-1)
			}
			total += len(v) + 1 + argPointerLen
		}
	}
	args("entrypoint", p.Entrypoint, s.Entrypoint)
	args("cmd", p.Cmd, s.Cmd)
	if hasNUL(s.WorkingDirectory) {
		r.tb.errorf(p.WorkingDirectory.Pos, "%s.workingDirectory: holds a NUL byte, which no path can", action)
	}
	for _, e := range s.Env {
		if e.SecretRef != nil {
			continue
		}
		n := len(e.Name) + 1 + len(e.Value) + 1
		if n > maxArgStrlen && !hasNUL(e.Value) {
			r.tb.errorf(cmp.Or(envPos(tc, e.Name), p.Pos), "%s: variable %s of %d bytes: the system's limit is %d (MAX_ARG_STRLEN)", action, e.Name, n-1, maxArgStrlen-1)
		}
		total += n + argPointerLen
	}
	if total > maxArgBytes {
		r.tb.errorf(p.Pos, "%s: the arguments and environment take %d bytes: more than the system's limit of %d for starting a program (ARG_MAX, less %d for the runner's variables)",
			action, total, maxArgBytes, argsReserved)
	}
}

// envPos is where the program's env sets name; zero when it does not (the
// variable is pvnbot's, or the job's env sets it).
func envPos(tc *config.TaskConfig, name string) config.Pos {
	for _, v := range tc.Program.Env {
		if v.Name == name {
			return v.Pos
		}
	}
	return config.Pos{}
}

func envSize(env []runner.EnvVar) int {
	n := 0
	for _, e := range env {
		n += len(e.Name) + 1 + len(e.Value)
	}
	return n
}

// specSize is what a job holds: its fields, env and job file.
func specSize(s runner.Spec) int {
	n := len(s.WorkingDirectory) + len(s.Image) + len(s.Manifest) + envSize(s.Env)
	for _, a := range s.Entrypoint {
		n += len(a)
	}
	for _, a := range s.Cmd {
		n += len(a)
	}
	return n
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
