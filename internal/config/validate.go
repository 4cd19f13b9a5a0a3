package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Linked is what the bot's configuration links: the Kubernetes runtimes
// jobs may run on and the container registries images come from.
type Linked struct {
	KubernetesRuntimes  []string
	ContainerRegistries []string
}

// Validate checks the set as a whole: names are unique, references between
// configs resolve, templates only use declared parameters, and every
// required parameter has a value. With a nil linked, proxy runtimes and
// container registries are not checked against the bot's configuration.
// It returns every problem found as an Errors, or nil.
//
// The set is expected to come from a Load function or Parse: problems they
// report (missing names, bad types) are not reported again. What does not
// make the set invalid is added to s.Warnings instead.
func (s *Set) Validate(linked *Linked) error {
	v := &validator{set: s, linked: linked, runtimes: map[string]*Runtime{}, apps: map[string]*Application{}}
	for _, r := range s.Runtimes {
		if first, dup := v.runtimes[r.Name]; dup && r.Name != "" {
			v.errorf(r.NamePos, "duplicate runtime %q (first defined at %s)", r.Name, first.NamePos)
			continue
		}
		v.runtimes[r.Name] = r
	}
	for _, a := range s.Applications {
		if first, dup := v.apps[a.Name]; dup && a.Name != "" {
			v.errorf(a.NamePos, "duplicate application %q (first defined at %s)", a.Name, first.NamePos)
			continue
		}
		v.apps[a.Name] = a
	}
	for _, r := range s.Runtimes {
		if !r.refused {
			v.runtime(r)
		}
	}
	for _, a := range s.Applications {
		v.application(a)
	}
	services := map[[2]string]*Service{}
	for _, svc := range s.Services {
		k := [2]string{svc.Application, svc.Name}
		if first, dup := services[k]; dup && svc.Name != "" {
			v.errorf(svc.NamePos, "duplicate service %q in application %q (first defined at %s)", svc.Name, svc.Application, first.NamePos)
			continue
		}
		services[k] = svc
		if !svc.refused {
			v.service(svc)
		}
	}
	if len(v.warns) > 0 {
		s.Warnings = append(s.Warnings, v.warns...).sorted()
	}
	return v.errs.orNil()
}

type validator struct {
	set      *Set
	linked   *Linked
	runtimes map[string]*Runtime
	apps     map[string]*Application
	errs     Errors
	warns    Errors
}

func (v *validator) errorf(p Pos, format string, args ...any) {
	v.errs = append(v.errs, &Error{Pos: p, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) warnf(p Pos, format string, args ...any) {
	v.warns = append(v.warns, &Error{Pos: p, Msg: fmt.Sprintf(format, args...), Severity: SeverityWarning})
}

func known(kind string, names []string) string {
	if len(names) == 0 {
		return "no " + kind + " defined"
	}
	return "known: " + strings.Join(names, ", ")
}

func (v *validator) runtime(r *Runtime) {
	c := &r.Custom
	who := describe("runtime", r.Name)
	local := c.ProxyRuntime.IsLocal()
	if pr := c.ProxyRuntime.Runtime; v.linked != nil && pr != "" && !local && !slices.Contains(v.linked.KubernetesRuntimes, pr) {
		v.errorf(c.ProxyRuntime.RuntimePos, "%s: proxy runtime %q is not a linked Kubernetes runtime (want %q or one of the bot's kubernetesRuntimes: %s)",
			who, pr, LocalRuntime, listOrNone(v.linked.KubernetesRuntimes))
	}
	params := v.parameters(who, c.Parameters, false)
	v.template(who, c.ApplyID, params)
	for _, j := range r.jobs() {
		v.job(who, j, local, params)
	}
}

// describe names a config in messages: `runtime "x"`, or `runtime` when
// its name is missing (already reported).
func describe(kind, name string) string {
	if name == "" {
		return kind
	}
	return fmt.Sprintf("%s %q", kind, name)
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func (v *validator) job(who string, j *Job, local bool, params map[string]*Parameter) {
	v.env(who, j.Env, local, params)
	if k := j.KubernetesConfig; k != nil {
		if local {
			v.errorf(k.Pos, "%s: kubernetesConfig cannot run on the %q proxy runtime; use taskConfig", who, LocalRuntime)
		}
		v.manifest(who, k, params)
	}
	t := j.TaskConfig
	if t == nil || t.Program.Pos.Line == 0 {
		return
	}
	p := &t.Program
	switch {
	case local && len(p.Cmd) == 0 && len(p.Entrypoint) == 0:
		v.errorf(p.Pos, "%s: program needs cmd or entrypoint to run as a local process", who)
	case !local && p.Image.Value == "" && p.ImageTag.Value == "":
		v.errorf(p.Pos, "%s: program needs image, or imageTag with imageRegistryInfo, to run on Kubernetes", who)
	}
	v.registry(who, p.ImageRegistryInfo)
	for _, t := range slices.Concat(p.Entrypoint, p.Cmd, []Text{p.WorkingDirectory, p.Image, p.ImageTag}) {
		v.template(who, t, params)
	}
	v.env(who, p.Env, local, params)
}

// registry checks that an imageRegistryInfo names a linked registry.
func (v *validator) registry(who string, r *ImageRegistryInfo) {
	if r != nil && v.linked != nil && r.ContainerRegistry != "" && !slices.Contains(v.linked.ContainerRegistries, r.ContainerRegistry) {
		v.errorf(r.ContainerRegistryPos, "%s: container registry %q is not linked (the bot's containerRegistries: %s)",
			who, r.ContainerRegistry, listOrNone(v.linked.ContainerRegistries))
	}
}

func (v *validator) env(who string, env []EnvVar, local bool, params map[string]*Parameter) {
	for _, e := range env {
		if e.Value != nil {
			v.template(who, *e.Value, params)
		}
		if e.KubernetesSecret != nil && local {
			v.errorf(e.Pos, "%s: env %s: kubernetesSecret needs a Kubernetes proxy runtime", who, e.Name)
		}
	}
}

// manifest checks the templates of a kubernetesConfig file, at their
// position in that file.
func (v *validator) manifest(who string, k *KubernetesConfig, params map[string]*Parameter) {
	if k.Manifest == nil {
		return
	}
	text := string(k.Manifest)
	_, refs, err := templateRefs(text)
	var te *templateError
	if errors.As(err, &te) && te.line > 0 {
		v.errorf(Pos{File: k.File, Line: te.line, Col: 1}, "%s: %s", who, te.msg)
		return
	}
	if err != nil {
		v.errorf(k.PathPos, "%s: kubernetesConfig file %s: %v", who, k.File, err)
		return
	}
	for _, r := range refs {
		line := 1 + strings.Count(text[:r.offset], "\n")
		col := 1 + r.offset - (strings.LastIndex(text[:r.offset], "\n") + 1)
		v.ref(who, Pos{File: k.File, Line: line, Col: col}, r, params)
	}
}

// template checks one templated value against the parameters in scope.
func (v *validator) template(who string, t Text, params map[string]*Parameter) {
	_, refs, err := templateRefs(t.Value)
	if err != nil {
		v.errorf(t.Pos, "%s: %v", who, err)
		return
	}
	for _, r := range refs {
		v.ref(who, t.Pos, r, params)
	}
}

func (v *validator) ref(who string, p Pos, r ref, params map[string]*Parameter) {
	switch {
	case r.builtin && !slices.Contains(builtins, r.name):
		v.errorf(p, "%s: unknown builtin .Builtins.%s (want one of: %s)", who, r.name, strings.Join(builtins, ", "))
	case !r.builtin && params[r.name] == nil:
		v.errorf(p, "%s: template references undeclared parameter %q (declared: %s)", who, r.name, listOrNone(sortedKeys(params)))
	case r.builtin || r.field == "":
	case params[r.name].Type != ParamDockerImage:
		v.errorf(p, "%s: template references .Params.%s.%s, but parameter %q is of type %s: only dockerImage parameters have a field (.Tag)",
			who, r.name, r.field, r.name, params[r.name].Type)
	case r.field != "Tag":
		v.errorf(p, "%s: template references .Params.%s.%s: a dockerImage parameter is the full image reference, and has one field, .Tag", who, r.name, r.field)
	}
}

// parameters checks declared parameters for duplicates and returns them by
// name. Service parameters have no other source of values than their
// default, so a required one must have a default.
func (v *validator) parameters(who string, params []Parameter, service bool) map[string]*Parameter {
	out := map[string]*Parameter{}
	for i := range params {
		p := &params[i]
		if first, dup := out[p.Name]; dup && p.Name != "" {
			v.errorf(p.NamePos, "%s: duplicate parameter %q (first declared at line %d)", who, p.Name, first.NamePos.Line)
			continue
		}
		out[p.Name] = p
		v.registry(who, p.DockerImage)
		if service && p.Required && p.Default == nil {
			v.errorf(p.NamePos, "%s: required parameter %q needs a %s: nothing else can set a service parameter", who, p.Name, defaultKey(p.Type))
		}
	}
	return out
}

// defaultKey is the key of a parameter's default value.
func defaultKey(t ParamType) string {
	if t == ParamDockerImage {
		return "defaultTag"
	}
	return "defaultValue"
}
