package config

import (
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// What of Prodvana's schema pvnbot does not take (SPEC §7): each is refused
// with one message that names it, or, for pure metadata, accepted and
// ignored with a warning. Never a cascade of "unknown key" and "missing
// required field" messages.

// foreignUse is what becomes of a foreign key.
type foreignUse int

const (
	// foreignKind is another kind of runtime or service than custom: the
	// whole mapping is refused, its other keys are not looked at.
	foreignKind foreignUse = iota + 1
	// foreignFeature is a feature pvnbot does not have (yet).
	foreignFeature
	// foreignMetadata is accepted and ignored, with a warning.
	foreignMetadata
)

type foreignKey struct {
	use foreignUse
	msg string // for kinds and features: why it is refused
}

const (
	runtimeKindMsg = "runtimes are not supported: pvnbot runs custom runtimes (custom)"
	serviceKindMsg = "services are not supported: pvnbot deploys through custom runtimes (customRuntime)"
	notYetMsg      = "not supported yet: pvnbot runs custom runtimes, gated by releaseChannelStable and manualApproval preconditions"
)

// foreignDocuments are Prodvana's other top-level documents.
var foreignDocuments = map[string]bool{"protection": true, "deliveryExtension": true, "releaseChannel": true, "recipe": true}

func kinds(msg string, names ...string) map[string]foreignKey {
	out := make(map[string]foreignKey, len(names))
	for _, n := range names {
		out[n] = foreignKey{foreignKind, msg}
	}
	return out
}

func with(m map[string]foreignKey, more map[string]foreignKey) map[string]foreignKey {
	for k, v := range more {
		m[k] = v
	}
	return m
}

var metadata = map[string]foreignKey{
	"labels":            {use: foreignMetadata},
	"annotations":       {use: foreignMetadata},
	"deployAnnotations": {use: foreignMetadata},
}

func feature(msg string) foreignKey { return foreignKey{foreignFeature, msg} }

var serviceKinds = []string{"kubernetesConfig", "helm", "awsEcs", "programs", "terraform", "pulumi", "googleCloudRun", "fly", "externalConfig"}

// foreignKeys are the foreign keys by the path of the mapping that holds
// them, list indexes dropped and aliases spelled as their canonical key
// (see foreignPath).
var foreignKeys = map[string]map[string]foreignKey{
	"runtime": with(kinds(runtimeKindMsg, "fake", "terraformRunner", "pulumiRunner", "awsEcs", "googleCloudRun", "fly"), metadata),
	"application": with(map[string]foreignKey{
		"releaseChannelGroups":  feature("release channel groups (releaseChannelGroups) are " + notYetMsg),
		"constants":             feature("constants are " + notYetMsg),
		"convergenceExtensions": feature("convergence extensions (convergenceExtensions) are " + notYetMsg),
	}, metadata),
	"application.releaseChannels": with(map[string]foreignKey{
		"protections":            feature("release channel protections are " + notYetMsg),
		"convergenceProtections": feature("release channel protections (convergenceProtections) are " + notYetMsg),
		"constants":              feature("constants are " + notYetMsg),
		"group":                  feature("release channel groups (group) are " + notYetMsg),
		"policy":                 feature("release channel policies (policy) are " + notYetMsg),
		"convergenceExtensions":  feature("convergence extensions (convergenceExtensions) are " + notYetMsg),
	}, metadata),
	"application.releaseChannels.preconditions": {
		"customTask":           feature("customTask preconditions are " + notYetMsg),
		"sharedManualApproval": feature("sharedManualApproval preconditions are " + notYetMsg),
	},
	"application.releaseChannels.preconditions.releaseChannelStable": {
		"selector":   feature("selector is not supported: name the release channel with releaseChannel (pvnbot runs custom runtimes, one service at a time)"),
		"allowEmpty": feature("allowEmpty is not supported: releaseChannelStable waits for the same service in the named release channel"),
	},
	"service": with(with(kinds(serviceKindMsg, serviceKinds...), map[string]foreignKey{
		"convergenceExtensions": feature("convergence extensions (convergenceExtensions) are " + notYetMsg),
		"constants":             feature("constants are " + notYetMsg),
	}), metadata),
	"service.perReleaseChannel": with(kinds(serviceKindMsg, serviceKinds...), map[string]foreignKey{
		"releaseChannelSelector": feature("releaseChannelSelector is not supported: name the release channel with releaseChannel"),
		"constants":              feature("constants are " + notYetMsg),
		"deployAnnotations":      {use: foreignMetadata},
	}),
}

// foreignPath is the key of foreignKeys for a mapping's path: its list
// indexes ([0]) dropped.
func foreignPath(path string) string {
	if !strings.Contains(path, "[") {
		return path
	}
	b := make([]byte, 0, len(path))
	in := false
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case c == '[':
			in = true
		case c == ']':
			in = false
		case !in:
			b = append(b, c)
		}
	}
	return string(b)
}

// refuseKind reports the first key of n that is another kind of runtime or
// service, and marks m: its unknown keys and missing fields are then not
// reported (they follow from the kind).
func (d *decoder) refuseKind(m *mapping, n *yaml.Node) bool {
	// Only documents and perReleaseChannel entries have kinds. This runs
	// for every mapping: it builds no path.
	var table map[string]foreignKey
	switch {
	case m.path == "runtime" || m.path == "service":
		table = foreignKeys[m.path]
	case strings.HasPrefix(m.path, "service.perReleaseChannel["):
		table = foreignKeys["service.perReleaseChannel"]
	default:
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode {
			continue
		}
		name := camelCase(k.Value)
		if f, ok := table[name]; ok && f.use == foreignKind {
			d.errorf(d.pos(k), "%s: %s %s", whoOf(m.path, n), name, f.msg)
			m.refused, m.kind = true, true
			return true
		}
	}
	return false
}

// foreign handles a key that m does not allow: it reports a foreign
// feature or warns about ignored metadata, and says whether it did. Keys of
// a mapping refused as another kind are dropped silently.
func (d *decoder) foreign(m *mapping, n, k *yaml.Node, name string) bool {
	if m.kind {
		return true
	}
	f, ok := foreignKeys[foreignPath(m.path)][name]
	switch {
	case !ok:
		return false
	case f.use == foreignMetadata:
		d.warnf(d.pos(k), "%s: %s %s accepted and ignored: pvnbot does not use them", whoOf(m.path, n), k.Value, isAre(name))
	default:
		d.errorf(d.pos(k), "%s: %s", whoOf(m.path, n), f.msg)
		m.refused = true
	}
	return true
}

func isAre(name string) string {
	if strings.HasSuffix(name, "s") {
		return "are"
	}
	return "is"
}

var channelPathRE = regexp.MustCompile(`^application\.releaseChannels\[\d+\]$`)

// whoOf names the config a mapping belongs to in messages: `service "x"`
// for a document, `release channel "y"` for a channel, else its path.
func whoOf(path string, n *yaml.Node) string {
	switch {
	case path == "runtime" || path == "application" || path == "service":
		return describe(path, nameOf(n))
	case channelPathRE.MatchString(path):
		if name := nameOf(n); name != "" {
			return fmt.Sprintf("release channel %q", name)
		}
	}
	return path
}

// nameOf is the value of n's name key when it is a plain string.
func nameOf(n *yaml.Node) string {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "name" && v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" {
			return v.Value
		}
	}
	return ""
}
