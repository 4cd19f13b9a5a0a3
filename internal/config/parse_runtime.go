package config

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

var customKeys = []string{
	"type", "proxyRuntime", "apply", "fetch", "getInfo", "debug", "parameters", "applyId",
	"convergenceGracePeriod", "requireApprovalBeforeApply",
}

func (d *decoder) runtime(key, val *yaml.Node) *Runtime {
	r := &Runtime{Pos: d.pos(key)}
	m := d.mapping(val, "runtime", r.Pos, "name", "custom", "extension")
	r.Name, r.NamePos = m.name(false)
	r.refused = m != nil && m.kind
	section := d.alias(m, "custom", "extension")
	m.require(section)
	if c := m.sub(section, customKeys...); c != nil {
		r.Custom = d.custom(c)
	}
	return r
}

func (d *decoder) custom(m *mapping) CustomRuntime {
	c := CustomRuntime{
		Pos:                        m.pos,
		Type:                       "GENERIC",
		ApplyID:                    m.text("applyId"),
		ConvergenceGracePeriod:     m.duration("convergenceGracePeriod", DefaultConvergenceGracePeriod),
		RequireApprovalBeforeApply: m.bool("requireApprovalBeforeApply"),
	}
	if t := m.str("type"); t != "" && t != "GENERIC" {
		d.errorf(m.keyPos("type"), "%s: unsupported type %q (only GENERIC)", m.field("type"), t)
	}
	m.require("proxyRuntime", "apply")
	if p := m.sub("proxyRuntime", "runtime", "containerOrchestration"); p != nil {
		p.require("runtime")
		c.ProxyRuntime = ProxyRuntime{Pos: p.pos, Runtime: p.str("runtime"), RuntimePos: p.keyPos("runtime")}
		k8s := p.sub("containerOrchestration", "k8s").sub("k8s", "namespace")
		if ns := k8s.str("namespace"); ns != "" {
			c.ProxyRuntime.Namespace = ns
			d.checkName(k8s.keyPos("namespace"), k8s.field("namespace"), ns, false)
		}
	}
	if a := m.sub("apply", "taskConfig", "kubernetesConfig", "env", "timeout", "maxConcurrency", "retryPolicy", "retryableExitCodes"); a != nil {
		c.Apply = Apply{Job: d.job(a), MaxConcurrency: a.nonNegInt("maxConcurrency")}
		if rp := d.retryPolicy(a); rp != nil {
			c.Apply.RetryPolicy = *rp
		} else {
			c.Apply.RetryPolicy.MaxInterval = DefaultRetryMaxInterval
		}
		c.Apply.RetryableExitCodes = d.exitCodes(a)
	}
	if f := m.sub("fetch", "taskConfig", "kubernetesConfig", "env", "timeout", "retryPolicy", "pollInterval", "steadyStatePollInterval", "fetchMode"); f != nil {
		c.Fetch = &Fetch{
			Job:                     d.job(f),
			PollInterval:            f.duration("pollInterval", DefaultFetchPollInterval),
			SteadyStatePollInterval: f.duration("steadyStatePollInterval", DefaultSteadyStatePollInterval),
			FetchMode:               FetchModeExitCode,
			RetryPolicy:             d.retryPolicy(f),
		}
		if fm := FetchMode(f.str("fetchMode")); fm != "" {
			if fm != FetchModeExitCode && fm != FetchModeStructuredOutput {
				d.errorf(f.keyPos("fetchMode"), "%s: unknown fetch mode %q (want %s or %s)", f.field("fetchMode"), fm, FetchModeExitCode, FetchModeStructuredOutput)
			} else {
				c.Fetch.FetchMode = fm
			}
		}
	}
	if g := m.sub(d.alias(m, "getInfo", "debug"), "taskConfig", "kubernetesConfig", "env", "timeout", "retryPolicy", "pollInterval"); g != nil {
		c.GetInfo = &GetInfo{Job: d.job(g), PollInterval: g.duration("pollInterval", DefaultGetInfoPollInterval), RetryPolicy: d.retryPolicy(g)}
	}
	c.Parameters = d.parameters(m)
	return c
}

// retryPolicy decodes the retryPolicy of a job; nil when there is none.
// maxAttempts of 0 or less is unlimited.
func (d *decoder) retryPolicy(job *mapping) *RetryPolicy {
	m := job.sub("retryPolicy", "baseInterval", "maxInterval", "maxAttempts")
	if m == nil {
		return nil
	}
	rp := &RetryPolicy{
		BaseInterval: m.duration("baseInterval", 0),
		MaxInterval:  m.duration("maxInterval", DefaultRetryMaxInterval),
	}
	if n, ok := m.int("maxAttempts"); ok && n > 0 {
		rp.MaxAttempts = n
	}
	if rp.BaseInterval > rp.MaxInterval {
		d.errorf(m.keyPos("maxInterval"), "%s: maxInterval %s is shorter than baseInterval %s", m.path, rp.MaxInterval, rp.BaseInterval)
	}
	return rp
}

func (d *decoder) exitCodes(a *mapping) []int {
	var out []int
	for i, n := range a.seq("retryableExitCodes") {
		what := fmt.Sprintf("%s[%d]", a.field("retryableExitCodes"), i)
		v, ok := a.intNode(n, what)
		if !ok {
			continue
		}
		if v < 1 || v > 255 {
			d.errorf(d.pos(n), "%s: exit code %d out of range 1-255", what, v)
			continue
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// job decodes what apply, fetch and getInfo share.
func (d *decoder) job(m *mapping) Job {
	j := Job{Pos: m.pos, Env: d.env(m), Timeout: m.duration("timeout", 0)}
	switch m.oneOf("taskConfig", "kubernetesConfig") {
	case "taskConfig":
		j.TaskConfig = d.taskConfig(m.sub("taskConfig", "program", "ttl", "k8s"))
	case "kubernetesConfig":
		j.KubernetesConfig = d.kubernetesConfig(m.sub("kubernetesConfig", "type", "local"))
	}
	return j
}

func (d *decoder) taskConfig(m *mapping) *TaskConfig {
	if m == nil {
		return nil
	}
	t := &TaskConfig{Pos: m.pos, TTL: m.duration("ttl", DefaultTaskTTL)}
	k8s := m.sub("k8s", "serviceAccount")
	m.require("program")
	p := m.sub("program", "cmd", "entrypoint", "env", "workingDirectory", "image", "imageTag", "imageRegistryInfo", "serviceAccount")
	if p == nil {
		return t
	}
	t.Program = Program{
		Pos:              p.pos,
		Cmd:              p.texts("cmd"),
		Entrypoint:       p.texts("entrypoint"),
		Env:              d.env(p),
		WorkingDirectory: p.text("workingDirectory"),
		Image:            p.text("image"),
		ImageTag:         p.text("imageTag"),
		ServiceAccount:   p.str("serviceAccount"),
	}
	t.Program.ImageRegistryInfo = d.imageRegistryInfo(p)
	if sa := k8s.str("serviceAccount"); sa != "" {
		if t.Program.ServiceAccount != "" {
			d.errorf(k8s.keyPos("serviceAccount"), "%s: serviceAccount is also given in %s; give only one", k8s.field("serviceAccount"), p.field("serviceAccount"))
		}
		t.Program.ServiceAccount = sa
	}
	switch prog := t.Program; {
	case prog.Image.Value != "" && (prog.ImageTag.Value != "" || prog.ImageRegistryInfo != nil):
		d.errorf(p.keyPos("image"), "%s: give either image or imageTag with imageRegistryInfo, not both", p.path)
	case prog.ImageTag.Value != "" && prog.ImageRegistryInfo == nil:
		d.errorf(p.keyPos("imageTag"), "%s: imageTag needs imageRegistryInfo", p.path)
	case prog.ImageTag.Value == "" && prog.ImageRegistryInfo != nil:
		d.errorf(p.keyPos("imageRegistryInfo"), "%s: imageRegistryInfo needs imageTag", p.path)
	}
	return t
}

// imageRegistryInfo decodes parent's imageRegistryInfo; nil when absent.
func (d *decoder) imageRegistryInfo(parent *mapping) *ImageRegistryInfo {
	r := parent.sub("imageRegistryInfo", "containerRegistry", "imageRepository")
	if r == nil {
		return nil
	}
	r.require("containerRegistry", "imageRepository")
	return &ImageRegistryInfo{
		Pos:                  r.pos,
		ContainerRegistry:    r.str("containerRegistry"),
		ContainerRegistryPos: r.keyPos("containerRegistry"),
		ImageRepository:      r.str("imageRepository"),
	}
}

func (d *decoder) kubernetesConfig(m *mapping) *KubernetesConfig {
	if m == nil {
		return nil
	}
	k := &KubernetesConfig{Pos: m.pos, Type: "KUBERNETES"}
	if t := m.str("type"); t != "" && t != "KUBERNETES" {
		d.errorf(m.keyPos("type"), "%s: unsupported type %q (only KUBERNETES)", m.field("type"), t)
	}
	m.require("local")
	l := m.sub("local", "path")
	l.require("path")
	k.Path, k.PathPos = l.str("path"), l.keyPos("path")
	if k.Path != "" {
		f, ok := resolvePath(d.file, k.Path)
		if !ok {
			d.errorf(k.PathPos, "%s: path %q must be relative to the config file and stay inside the repository", l.field("path"), k.Path)
		}
		k.File = f
	}
	return k
}

// env decodes `env: {NAME: {value: x} | {kubernetesSecret: {secretName, key}}}`,
// sorted by name.
func (d *decoder) env(parent *mapping) []EnvVar {
	n := parent.get("env")
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(parent.keyPos("env"), "%s: want a mapping of NAME: {value: ...}, got %s", parent.field("env"), kindName(n))
		return nil
	}
	var out []EnvVar
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := d.resolve(n.Content[i]), d.resolve(n.Content[i+1])
		if k == nil {
			break
		}
		what := parent.field("env")
		if k.Kind != yaml.ScalarNode || !envNameRE.MatchString(k.Value) {
			d.errorf(d.pos(k), "%s: invalid variable name %q: want letters, digits and '_', not starting with a digit", what, k.Value)
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.errorf(d.pos(k), "%s: duplicate variable %q (also at line %d)", what, k.Value, line)
			continue
		}
		seen[k.Value] = k.Line
		if strings.HasPrefix(k.Value, "PVN_") {
			d.errorf(d.pos(k), "%s: variable %q: the PVN_ prefix is reserved for the bot", what, k.Value)
			continue
		}
		e := EnvVar{Pos: d.pos(k), Name: k.Value}
		m := d.mapping(v, what+"."+k.Value, e.Pos, "value", "kubernetesSecret")
		switch m.oneOf("value", "kubernetesSecret") {
		case "value":
			t := m.text("value")
			e.Value = &t
		case "kubernetesSecret":
			s := m.sub("kubernetesSecret", "secretName", "key")
			s.require("secretName", "key")
			e.KubernetesSecret = &SecretKeyRef{SecretName: s.str("secretName"), Key: s.str("key")}
		default:
			continue
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b EnvVar) int { return strings.Compare(a.Name, b.Name) })
	return out
}
