package desired

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/runner"
)

// param is the final value of one runtime parameter for a target.
type param struct {
	name   string
	value  string // a dockerImage's is the full image reference
	secret bool
	image  bool   // a dockerImage parameter
	tag    string // a dockerImage's tag
}

// imageParam is what templates see of a dockerImage parameter:
// {{.Params.x}} is the full image reference, {{.Params.x.Tag}} the tag.
type imageParam struct {
	Ref string
	Tag string
}

func (p imageParam) String() string { return p.Ref }

// imageRef is <registry url>/<imageRepository>:<tag>. An unknown registry
// is left as its name: config validation reports it.
func imageRef(info *config.ImageRegistryInfo, tag string, registries map[string]string) string {
	if info == nil {
		return tag
	}
	ref := info.ImageRepository
	reg := info.ContainerRegistry
	if url, ok := registries[reg]; ok {
		reg = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(url, "https://"), "http://"), "/")
	}
	if reg != "" {
		ref = reg + "/" + ref
	}
	if tag != "" {
		ref += ":" + tag
	}
	return ref
}

// params are a target's runtime parameters and the data their templates
// see. Secret parameters with a value appear in pub and alt as two different
// markers, so that a template whose output depends on a secret is told
// apart (an empty secret is empty in all three: it has nothing to hide);
// real holds the secret values and is only used for env values.
type params struct {
	list           []param // in the runtime's declaration order
	pub, alt, real map[string]any
	hasSecrets     bool
}

// Markers that stand for a secret's value while rendering. They differ in
// length and content so that no template maps both to the same output
// unless it ignores the value.
const (
	secretMarkerA = "\x00pvn-secret\x00"
	secretMarkerB = "\x01PVN-SECRET-VALUE\x01"
)

// given is a value a service gave to a runtime parameter.
type given struct {
	pv    *config.ParameterValue
	value string // rendered, for strings
}

func (b *builder) resolveParams(tb *targetBuild, svc *config.Service, ch *config.ReleaseChannel, rt *config.Runtime, bi builtins) *params {
	svcData := tmplData{Params: make(map[string]any, len(svc.Parameters)), Builtins: bi}
	for _, p := range svc.Parameters {
		switch {
		case p.Type == config.ParamSecret:
			// A service parameter has no way to receive a secret value: leave
			// it out, so a reference to it fails loudly.
		case p.Type == config.ParamDockerImage:
			tag := ""
			if p.Default != nil {
				tag = *p.Default
			} else if p.Required {
				tb.errorf(p.Pos, "service parameter %s is required and has no value", p.Name)
			}
			svcData.Params[p.Name] = imageParam{Ref: imageRef(p.DockerImage, tag, b.opts.Registries), Tag: tag}
		case p.Default != nil:
			svcData.Params[p.Name] = *p.Default
		case p.Required:
			tb.errorf(p.Pos, "service parameter %s is required and has no value", p.Name)
		default:
			svcData.Params[p.Name] = ""
		}
	}

	decls := rt.Custom.Parameters
	declOf := func(name string) *config.Parameter {
		for i := range decls {
			if decls[i].Name == name {
				return &decls[i]
			}
		}
		return nil
	}
	set := make(map[string]given, len(decls))
	apply := func(pvs []config.ParameterValue) {
		for i := range pvs {
			pv := &pvs[i]
			d := declOf(pv.Name)
			if d == nil {
				tb.errorf(pv.Pos, "parameter %s: runtime %s has no such parameter", pv.Name, rt.Name)
				continue
			}
			if pv.Type != "" && pv.Type != d.Type {
				tb.errorf(pv.Pos, "parameter %s: runtime %s declares it %s, the value given is %s", pv.Name, rt.Name, d.Type, pv.Type)
				continue
			}
			g := given{pv: pv, value: pv.Value.Value}
			if d.Type != config.ParamInt && d.Type != config.ParamSecret {
				v, err := b.tmpl.render("parameterValues."+pv.Name, pv.Value.Value, &svcData, MaxFieldBytes, false)
				if err != nil {
					tb.errorf(pv.Value.Pos, "%v", err)
					continue
				}
				g.value = v
			}
			set[pv.Name] = g
		}
	}
	apply(svc.CustomRuntime.ParameterValues)
	for _, o := range svc.PerReleaseChannel {
		if o.ReleaseChannel == ch.Name {
			apply(o.CustomRuntime.ParameterValues)
		}
	}

	ps := &params{list: make([]param, 0, len(decls))}
	for i := range decls {
		d := &decls[i]
		p := param{name: d.Name, secret: d.Type == config.ParamSecret, image: d.Type == config.ParamDockerImage}
		g, ok := set[d.Name]
		switch {
		case ok && p.secret:
			p.value = b.lookupSecret(tb, d.Name, g.pv)
		case ok:
			p.value = g.value
		case d.Default != nil && !p.secret:
			p.value = *d.Default
		case d.Required:
			tb.errorf(svc.Pos, "parameter %s of runtime %s is required and has no value (declared at %s)", d.Name, rt.Name, d.Pos)
		}
		if p.image {
			p.tag = p.value
			p.value = imageRef(d.DockerImage, p.tag, b.opts.Registries)
		}
		if d.Type == config.ParamInt && p.value != "" {
			if _, err := strconv.ParseInt(p.value, 10, 64); err != nil {
				pos := d.Pos
				if ok {
					pos = g.pv.Pos
				}
				tb.errorf(pos, "parameter %s: %q is not an integer", d.Name, p.value)
			}
		}
		ps.hasSecrets = ps.hasSecrets || p.secret
		ps.list = append(ps.list, p)
	}
	envNames := make(map[string]string, len(ps.list))
	for _, p := range ps.list {
		n := ParamEnvName(p.name)
		if other, dup := envNames[n]; dup {
			tb.errorf(rt.Pos, "parameters %s and %s would both be given to jobs as %s", other, p.name, n)
		}
		envNames[n] = p.name
	}
	ps.fillData()
	return ps
}

func (b *builder) lookupSecret(tb *targetBuild, name string, pv *config.ParameterValue) string {
	if b.opts.Secrets == nil {
		tb.errorf(pv.Pos, "secret parameter %s: no secret source is configured", name)
		return ""
	}
	v, err := b.opts.Secrets.Lookup(pv.Value.Value, pv.SecretVersion)
	if err != nil {
		tb.errorf(pv.Pos, "secret parameter %s: look up key %q: %v", name, pv.Value.Value, err)
		return ""
	}
	if n := utf8.RuneCountInString(v); n < runner.MinSecretLength {
		tb.errorf(pv.Pos, "secret parameter %s: the value of key %q has %d characters: a secret needs at least %d, since a shorter one cannot be redacted from job output without destroying it",
			name, pv.Value.Value, n, runner.MinSecretLength)
		return ""
	}
	return v
}

// isSecret reports whether name is a secret parameter.
func (ps *params) isSecret(name string) bool {
	for _, p := range ps.list {
		if p.name == name {
			return p.secret
		}
	}
	return false
}

func (ps *params) fillData() {
	ps.pub = make(map[string]any, len(ps.list))
	for _, p := range ps.list {
		switch {
		case p.secret && p.value != "":
			ps.pub[p.name] = secretMarkerA
		case p.image:
			ps.pub[p.name] = imageParam{Ref: p.value, Tag: p.tag}
		default:
			ps.pub[p.name] = p.value
		}
	}
	if !ps.hasSecrets {
		return
	}
	ps.alt, ps.real = maps.Clone(ps.pub), maps.Clone(ps.pub)
	for _, p := range ps.list {
		if p.secret && p.value != "" {
			ps.alt[p.name] = secretMarkerB
			ps.real[p.name] = p.value
		}
	}
}

// public is the parameter values without the secrets.
func (ps *params) public() map[string]string {
	out := make(map[string]string, len(ps.list))
	for _, p := range ps.list {
		if !p.secret {
			out[p.name] = p.value
		}
	}
	return out
}

// secretNames lists the secret parameters, sorted; nil when there are none.
func (ps *params) secretNames() []string {
	var names []string
	for _, p := range ps.list {
		if p.secret {
			names = append(names, p.name)
		}
	}
	slices.Sort(names)
	return names
}

// scrub replaces any secret value found in the problems' messages. They
// are built from markers, not values, so this is a last guard.
func (ps *params) scrub(errs config.Errors) config.Errors {
	for _, e := range errs {
		for _, p := range ps.list {
			if p.secret && p.value != "" {
				e.Msg = strings.ReplaceAll(e.Msg, p.value, "(secret)")
			}
		}
	}
	return errs
}
