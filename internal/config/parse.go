package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

var (
	nameRE      = regexp.MustCompile(`^[a-z]([a-z0-9-]*[a-z0-9])?$`)
	paramNameRE = regexp.MustCompile(`^[A-Za-z_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$`)
	envNameRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

const maxNameLen = 63

// Parse reads the YAML documents of one config file. file is the path
// reported in errors (slash-separated, relative to the repository root).
// Files referenced by kubernetesConfig are not read: KubernetesConfig.File
// is resolved but Manifest stays nil (the Load functions fill it in).
// The returned Set holds everything that could be decoded, even when the
// error (an Errors) is not nil.
func Parse(file string, data []byte) (*Set, error) {
	s := &Set{}
	var errs Errors
	parseInto(s, file, data, &errs)
	s.Warnings = s.Warnings.sorted()
	return s, errs.orNil()
}

func parseInto(s *Set, file string, data []byte, errs *Errors) {
	s.Files = append(s.Files, file)
	if len(data) > MaxConfigFileBytes {
		*errs = append(*errs, &Error{Pos: filePos(file), Msg: (&sizeError{size: int64(len(data))}).Error()})
		return
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	reported, warnBase := 0, len(s.Warnings)
	for {
		var doc yaml.Node
		err := decodeDoc(dec, &doc)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			*errs = append(*errs, syntaxError(file, data, err))
			return
		}
		if reported >= maxFileErrors {
			return
		}
		d := &decoder{file: file, errs: errs, warns: &s.Warnings, warnBase: warnBase, budget: maxNodes, reported: &reported}
		d.document(s, &doc)
	}
}

// decodeDoc guards against a panic inside the YAML library, so that no
// input can bring the bot down.
func decodeDoc(dec *yaml.Decoder, doc *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: %v", r)
		}
	}()
	return dec.Decode(doc)
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): `)

func syntaxError(file string, data []byte, err error) *Error {
	msg := err.Error()
	p := Pos{File: file, Line: 1, Col: 1}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	} else if e := encodingError(file, data); e != nil {
		// The YAML library says "control characters are not allowed" or
		// "invalid leading UTF-8 octet", without a position.
		return e
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return &Error{Pos: p, Msg: "invalid YAML: " + msg}
}

func (d *decoder) document(s *Set, doc *yaml.Node) {
	if len(doc.Content) == 0 {
		return
	}
	root := d.resolve(doc.Content[0])
	if isNull(root) {
		return
	}
	if root.Kind != yaml.MappingNode {
		d.errorf(d.pos(root), "want a runtime, application or service document, got %s", kindName(root))
		return
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := d.resolve(root.Content[i])
		if k == nil {
			return
		}
		if i > 0 {
			d.errorf(d.pos(k), "a document holds exactly one of runtime, application or service; start another document with ---")
			return
		}
		key := camelCase(k.Value)
		if k.Kind != yaml.ScalarNode {
			key = ""
		}
		v := d.resolve(root.Content[i+1])
		switch key {
		case "runtime":
			s.Runtimes = append(s.Runtimes, d.runtime(k, v))
		case "application":
			s.Applications = append(s.Applications, d.application(k, v))
		case "service":
			s.Services = append(s.Services, d.service(k, v))
		default:
			if foreignDocuments[key] {
				d.errorf(d.pos(k), "%s configs are not supported: pvnbot runs custom runtimes (runtime, application and service documents)", key)
				return
			}
			d.errorf(d.pos(k), "%s configs are not supported (want runtime, application or service)", k.Value)
		}
	}
}

// name reads the required name field and checks its form.
func (m *mapping) name(param bool) (string, Pos) {
	m.require("name")
	n := m.str("name")
	p := m.keyPos("name")
	if n != "" {
		m.d.checkName(p, m.field("name"), n, param)
	}
	return n, p
}

func (d *decoder) checkName(p Pos, what, name string, param bool) {
	switch {
	case len(name) > maxNameLen:
		d.errorf(p, "%s: name %q is longer than %d characters", what, name, maxNameLen)
	case param && !paramNameRE.MatchString(name):
		d.errorf(p, "%s: invalid parameter name %q: want letters, digits, '_' and '-', starting with a letter or '_'", what, name)
	case !param && !nameRE.MatchString(name):
		d.errorf(p, "%s: invalid name %q: want lowercase letters, digits and '-', starting with a letter and not ending with '-'", what, name)
	}
}

func (d *decoder) application(key, val *yaml.Node) *Application {
	a := &Application{Pos: d.pos(key)}
	m := d.mapping(val, "application", a.Pos, "name", "releaseChannels")
	a.Name, a.NamePos = m.name(false)
	m.require("releaseChannels")
	for i, n := range m.seq("releaseChannels") {
		c := m.item("releaseChannels", i, n, "name", "runtimes", "preconditions")
		if c == nil {
			continue
		}
		ch := ReleaseChannel{Pos: c.pos}
		ch.Name, ch.NamePos = c.name(false)
		c.require("runtimes")
		for j, rn := range c.seq("runtimes") {
			l := c.item("runtimes", j, rn, "runtime", "name", "type")
			if l == nil {
				continue
			}
			l.require("runtime")
			link := RuntimeLink{Pos: l.pos, Runtime: l.str("runtime"), RuntimePos: l.keyPos("runtime"), Type: l.str("type")}
			if link.Type != "" && link.Type != "EXTENSION" {
				d.errorf(l.keyPos("type"), "%s: runtime links of type %q are not supported: pvnbot runs custom runtimes (type EXTENSION, or no type)", l.field("type"), link.Type)
			}
			link.Name, link.NamePos = l.str("name"), l.keyPos("name")
			if link.Name == "" {
				link.Name, link.NamePos = link.Runtime, link.RuntimePos
			} else {
				d.checkName(link.NamePos, l.field("name"), link.Name, false)
			}
			ch.Runtimes = append(ch.Runtimes, link)
		}
		for j, pn := range c.seq("preconditions") {
			if p, ok := d.precondition(c, j, pn); ok {
				ch.Preconditions = append(ch.Preconditions, p)
			}
		}
		a.ReleaseChannels = append(a.ReleaseChannels, ch)
	}
	return a
}

func (d *decoder) precondition(c *mapping, i int, n *yaml.Node) (Precondition, bool) {
	m := c.item("preconditions", i, n, "releaseChannelStable", "manualApproval")
	if m == nil {
		return Precondition{}, false
	}
	p := Precondition{Pos: m.pos}
	switch m.oneOf("releaseChannelStable", "manualApproval") {
	case "releaseChannelStable":
		s := m.sub("releaseChannelStable", "releaseChannel")
		if s != nil && s.refused {
			return p, false
		}
		s.require("releaseChannel")
		p.ReleaseChannelStable = &ReleaseChannelStable{ReleaseChannel: s.str("releaseChannel"), Pos: s.keyPos("releaseChannel")}
	case "manualApproval":
		a := m.sub("manualApproval", "name", "description", "everyAction", "minApprovers")
		p.ManualApproval = &ManualApproval{
			Name:         a.str("name"),
			Description:  a.str("description"),
			EveryAction:  a.bool("everyAction"),
			MinApprovers: 1,
		}
		if v, ok := a.int("minApprovers"); ok {
			switch {
			case v < 0:
				d.errorf(a.keyPos("minApprovers"), "%s: must not be negative, got %d", a.field("minApprovers"), v)
			case v > 0:
				p.ManualApproval.MinApprovers = v
			}
		}
	default:
		return p, false
	}
	return p, true
}

func (d *decoder) service(key, val *yaml.Node) *Service {
	s := &Service{Pos: d.pos(key)}
	m := d.mapping(val, "service", s.Pos, "name", "application", "runtimeConnection", "customRuntime", "runtimeExtension", "parameters", "perReleaseChannel")
	s.Name, s.NamePos = m.name(false)
	s.refused = m != nil && m.kind
	m.require("application")
	s.Application, s.ApplicationPos = m.str("application"), m.keyPos("application")
	s.RuntimeConnection, s.RuntimeConnectionPos = m.str("runtimeConnection"), m.keyPos("runtimeConnection")
	s.CustomRuntime = d.customRuntimeValues(m)
	s.Parameters = d.parameters(m)
	for i, n := range m.seq("perReleaseChannel") {
		o := m.item("perReleaseChannel", i, n, "releaseChannel", "runtimeConnection", "customRuntime", "runtimeExtension")
		if o == nil {
			continue
		}
		o.require("releaseChannel")
		s.PerReleaseChannel = append(s.PerReleaseChannel, ReleaseChannelOverride{
			Pos:                  o.pos,
			ReleaseChannel:       o.str("releaseChannel"),
			ReleaseChannelPos:    o.keyPos("releaseChannel"),
			RuntimeConnection:    o.str("runtimeConnection"),
			RuntimeConnectionPos: o.keyPos("runtimeConnection"),
			CustomRuntime:        d.customRuntimeValues(o),
		})
	}
	return s
}

// alias returns which of two spellings of one section parent holds,
// reporting when it holds both.
func (d *decoder) alias(parent *mapping, name, alias string) string {
	if !parent.has(alias) {
		return name
	}
	if parent.has(name) {
		d.errorf(parent.keyPos(alias), "%s: %s and %s are the same section; give only one", parent.path, name, alias)
		return name
	}
	return alias
}

// valueKeys are the keys of a parameter value that give it, one per type;
// parameterValueKeys are all the keys of a parameter value.
var (
	valueKeys          = []string{"string", "int", "secret", "dockerImageTag", "commit", "blob"}
	parameterValueKeys = append([]string{"name"}, valueKeys...)
)

// valueType is the type of parameter a value key gives a value to.
func valueType(key string) ParamType {
	if key == "dockerImageTag" {
		return ParamDockerImage
	}
	return ParamType(key)
}

func (d *decoder) customRuntimeValues(parent *mapping) CustomRuntimeValues {
	m := parent.sub(d.alias(parent, "customRuntime", "runtimeExtension"), "parameterValues")
	if m == nil {
		return CustomRuntimeValues{}
	}
	v := CustomRuntimeValues{Pos: m.pos}
	for i, n := range m.seq("parameterValues") {
		pm := m.item("parameterValues", i, n, parameterValueKeys...)
		if pm == nil {
			continue
		}
		pv := ParameterValue{Pos: pm.pos}
		pv.Name, pv.NamePos = pm.name(true)
		typ := pm.oneOf(valueKeys...)
		pv.TypePos = pm.keyPos(typ)
		switch typ {
		case "string", "commit", "dockerImageTag":
			pm.require(typ)
			pv.Type, pv.Value = valueType(typ), pm.text(typ)
		case "int":
			pm.require("int")
			pv.Type = ParamInt
			if n, ok := pm.int("int"); ok {
				pv.Value = Text{Value: strconv.Itoa(n), Pos: pm.keyPos("int")}
			}
		case "secret":
			pv.Type = ParamSecret
			pv.Value, pv.SecretVersion = d.secretValue(pm.sub("secret", "key", "version", "secretRef", "rawSecret"))
		case "blob":
			pv.Type = ParamBlob
			b := pm.sub("blob", "inlined")
			b.require("inlined")
			pv.Value = b.text("inlined")
		default:
			continue
		}
		v.ParameterValues = append(v.ParameterValues, pv)
	}
	return v
}

// secretValue reads `secret: {secretRef: {key, version}}` (Prodvana's form)
// or `secret: {key, version}`, and refuses `rawSecret`.
func (d *decoder) secretValue(sm *mapping) (Text, string) {
	switch {
	case sm == nil:
		return Text{}, ""
	case sm.has("rawSecret"):
		// Never quote the value: it is a secret, now in Git.
		d.errorf(sm.keyPos("rawSecret"), "%s: rawSecret is refused: a secret in Git is not a secret; store it where the bot reads secrets and give secretRef: {key: KEY}", sm.path)
		return Text{}, ""
	case sm.has("secretRef"):
		if sm.has("key") || sm.has("version") {
			d.errorf(sm.keyPos("secretRef"), "%s: give either secretRef: {key, version} or key and version, not both", sm.path)
		}
		sm = sm.sub("secretRef", "key", "version")
	}
	sm.require("key")
	return sm.text("key"), sm.str("version")
}

func (d *decoder) parameters(parent *mapping) []Parameter {
	var out []Parameter
	for i, n := range parent.seq("parameters") {
		m := parent.item("parameters", i, n, "name", "description", "required", "string", "int", "secret", "dockerImage", "commit", "blob")
		if m == nil {
			continue
		}
		p := Parameter{Pos: m.pos, Description: m.str("description"), Required: m.bool("required")}
		p.Name, p.NamePos = m.name(true)
		p.Type = ParamType(m.oneOf("string", "int", "secret", "dockerImage", "commit", "blob"))
		switch p.Type {
		case ParamString:
			t := m.sub("string", "defaultValue")
			if t.has("defaultValue") {
				v := t.str("defaultValue")
				p.Default = &v
			}
		case ParamInt:
			t := m.sub("int", "defaultValue")
			if v, ok := t.int("defaultValue"); ok {
				s := strconv.Itoa(v)
				p.Default = &s
			}
		case ParamSecret:
			m.sub("secret")
		case ParamDockerImage:
			t := m.sub("dockerImage", "defaultTag", "imageRegistryInfo")
			if t.has("defaultTag") {
				v := t.str("defaultTag")
				p.Default = &v
			}
			t.require("imageRegistryInfo")
			p.DockerImage = d.imageRegistryInfo(t)
		case ParamCommit:
			t := m.sub("commit", "repository", "branch")
			p.Commit = &CommitSource{Repository: t.str("repository"), Branch: t.str("branch")}
		case ParamBlob:
			m.sub("blob")
		default:
			continue
		}
		out = append(out, p)
	}
	return out
}

// resolvePath joins a path written in a config file to the file's folder,
// reporting one that leaves the repository.
func resolvePath(file, p string) (string, bool) {
	if p == "" || path.IsAbs(p) || strings.Contains(p, `\`) {
		return "", false
	}
	j := path.Join(path.Dir(file), p)
	if j == ".." || strings.HasPrefix(j, "../") {
		return "", false
	}
	return j, true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// encodingError finds the first byte of data that YAML refuses, invalid
// UTF-8 or a control character, and reports it at its line and column
// (in characters); nil when there is none, or when data is UTF-16 (which
// the YAML library reads too).
func encodingError(file string, data []byte) *Error {
	if bytes.HasPrefix(data, []byte{0xFF, 0xFE}) || bytes.HasPrefix(data, []byte{0xFE, 0xFF}) {
		return nil
	}
	line, lineStart := 1, 0
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		var msg string
		switch {
		case r == utf8.RuneError && size <= 1:
			msg = fmt.Sprintf("invalid UTF-8 (byte %#x)", data[i])
		case !yamlPrintable(r):
			msg = fmt.Sprintf("control character %U is not allowed", r)
		}
		if msg != "" {
			col := 1 + utf8.RuneCount(data[lineStart:i])
			return &Error{Pos: Pos{File: file, Line: line, Col: col}, Msg: "invalid YAML: " + msg}
		}
		if r == '\n' {
			line, lineStart = line+1, i+1
		}
		i += size
	}
	return nil
}

// yamlPrintable is YAML 1.1's set of characters allowed in a stream.
func yamlPrintable(r rune) bool {
	switch {
	case r == '\t', r == '\n', r == '\r', r == 0x85:
		return true
	case r >= 0x20 && r <= 0x7E, r >= 0xA0 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		return true
	}
	return false
}
