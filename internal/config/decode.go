package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxNodes bounds the nodes visited in one document, so that aliases that
// expand exponentially cannot stall the loader.
const maxNodes = 200_000

// maxFileErrors bounds the problems reported for one file.
const maxFileErrors = 100

// decoder turns yaml.v3 nodes of one file into typed values, recording every
// problem with its position instead of stopping at the first.
type decoder struct {
	file     string
	errs     *Errors
	warns    *Errors
	budget   int
	exceeded bool
	// reported counts the problems of the file, shared by its documents.
	reported *int
	// warnBase is where the file's warnings start in warns.
	warnBase int
}

func (d *decoder) pos(n *yaml.Node) Pos {
	return Pos{File: d.file, Line: n.Line, Col: n.Column}
}

// errorf records a problem. After maxFileErrors of them in a file, it
// records that it stopped and makes the rest of the decoding a no-op.
func (d *decoder) errorf(p Pos, format string, args ...any) {
	if *d.reported >= maxFileErrors {
		return
	}
	*d.reported++
	*d.errs = append(*d.errs, &Error{Pos: p, Msg: fmt.Sprintf(format, args...)})
	if *d.reported == maxFileErrors {
		*d.errs = append(*d.errs, &Error{Pos: Pos{File: d.file, Line: 1, Col: 1}, Msg: fmt.Sprintf("too many problems; stopped after %d", maxFileErrors)})
		d.budget, d.exceeded = 0, true
	}
}

// warnf records a warning; after maxFileErrors of them in a file, the
// rest are dropped.
func (d *decoder) warnf(p Pos, format string, args ...any) {
	if len(*d.warns)-d.warnBase >= maxFileErrors {
		return
	}
	*d.warns = append(*d.warns, &Error{Pos: p, Msg: fmt.Sprintf(format, args...), Severity: SeverityWarning})
}

// resolve follows aliases and charges the node to the document's budget. It
// returns nil once the budget is spent.
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil {
		return nil
	}
	d.budget--
	if d.budget < 0 {
		d.budget = 0
		if !d.exceeded {
			d.exceeded = true
			d.errorf(d.pos(n), "document too large: its aliases expand to more than %d nodes", maxNodes)
		}
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// kindName describes a node for "want X, got Y" messages. It never includes
// the value: it may be a secret.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		}
		return "a string"
	}
	return "a document"
}

// camelCase turns a snake_case key into its camelCase spelling.
func camelCase(key string) string {
	if !strings.Contains(key, "_") {
		return key
	}
	var b strings.Builder
	upper := false
	for _, r := range key {
		switch {
		case r == '_':
			upper = true
		case upper:
			b.WriteString(strings.ToUpper(string(r)))
			upper = false
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

type entry struct {
	key *yaml.Node
	val *yaml.Node // resolved; nil when null
}

// mapping is a YAML mapping whose keys were checked against the allowed
// ones. A nil *mapping (the value was missing or of the wrong type) answers
// every getter with the zero value and reports nothing more.
type mapping struct {
	d    *decoder
	path string
	pos  Pos
	keys map[string]entry
	// refused is set when the mapping holds a key of Prodvana's schema that
	// pvnbot refuses (see foreignKeys): that was reported, and what the
	// refused key stands in for (a required field) must not be.
	refused bool
	// kind is set when the mapping was refused as another kind of runtime
	// or service: its other keys are not looked at.
	kind bool
}

// mapping checks that n is a mapping with only allowed keys (camelCase;
// their snake_case spellings are accepted). A null n is an empty mapping.
// Keys of Prodvana's schema that pvnbot does not take are refused or
// ignored as foreignKeys says.
func (d *decoder) mapping(n *yaml.Node, path string, at Pos, allowed ...string) *mapping {
	m := &mapping{d: d, path: path, pos: at, keys: map[string]entry{}}
	if isNull(n) {
		return m
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(at, "%s: want a mapping, got %s", path, kindName(n))
		return nil
	}
	if d.refuseKind(m, n) {
		return m
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := d.resolve(n.Content[i])
		if k == nil {
			return m
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(d.pos(k), "%s: keys must be strings, got %s", path, kindName(k))
			continue
		}
		name := camelCase(k.Value)
		switch {
		case k.Value == "<<":
			d.errorf(d.pos(k), "%s: merge keys (<<) are not supported", path)
			continue
		case !slices.Contains(allowed, name):
			if !d.foreign(m, n, k, name) {
				d.errorf(d.pos(k), "%s: unknown key %q%s", path, k.Value, suggest(name, allowed))
			}
			continue
		}
		if prev, dup := m.keys[name]; dup {
			d.errorf(d.pos(k), "%s: duplicate key %q (also at line %d)", path, k.Value, prev.key.Line)
			continue
		}
		v := d.resolve(n.Content[i+1])
		if isNull(v) {
			v = nil
		}
		m.keys[name] = entry{key: k, val: v}
	}
	return m
}

func suggest(name string, allowed []string) string {
	for _, a := range allowed {
		if strings.EqualFold(a, name) {
			return fmt.Sprintf(`, did you mean %q?`, a)
		}
	}
	return " (want one of: " + strings.Join(allowed, ", ") + ")"
}

func (m *mapping) has(name string) bool {
	if m == nil {
		return false
	}
	_, ok := m.keys[name]
	return ok
}

// get returns the value of name, nil when absent or null.
func (m *mapping) get(name string) *yaml.Node {
	if m == nil {
		return nil
	}
	return m.keys[name].val
}

// keyPos is the position of the key name, or of the mapping when absent.
func (m *mapping) keyPos(name string) Pos {
	if m == nil {
		return Pos{}
	}
	if e, ok := m.keys[name]; ok {
		return m.d.pos(e.key)
	}
	return m.pos
}

func (m *mapping) field(name string) string { return m.path + "." + name }

// require reports each name that is absent or null.
func (m *mapping) require(names ...string) {
	if m == nil || m.refused {
		return
	}
	for _, n := range names {
		if m.get(n) == nil {
			m.d.errorf(m.pos, "%s: missing required field %q", m.path, n)
		}
	}
}

// scalar returns the text of a string-like scalar (numbers are taken as
// written), reporting anything else.
func (m *mapping) scalar(n *yaml.Node, what string) (string, bool) {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!str", "!!int", "!!float", "!!timestamp":
			return n.Value, true
		}
	}
	m.d.errorf(m.d.pos(n), "%s: want a string, got %s", what, kindName(n))
	return "", false
}

func (m *mapping) str(name string) string {
	n := m.get(name)
	if n == nil {
		return ""
	}
	s, _ := m.scalar(n, m.field(name))
	return s
}

// text is a string that may hold a template, positioned at its value.
func (m *mapping) text(name string) Text {
	n := m.get(name)
	if n == nil {
		return Text{}
	}
	s, _ := m.scalar(n, m.field(name))
	return Text{Value: s, Pos: m.d.pos(n)}
}

func (m *mapping) texts(name string) []Text {
	var out []Text
	for i, n := range m.seq(name) {
		if s, ok := m.scalar(n, fmt.Sprintf("%s[%d]", m.field(name), i)); ok {
			out = append(out, Text{Value: s, Pos: m.d.pos(n)})
		}
	}
	return out
}

func (m *mapping) strs(name string) []string {
	var out []string
	for _, t := range m.texts(name) {
		out = append(out, t.Value)
	}
	return out
}

// intNode reads an integer, written as one or as a quoted string of
// decimal digits ("3": Prodvana's JSON form of 64-bit integers).
func (m *mapping) intNode(n *yaml.Node, what string) (int, bool) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		var v int
		if err := n.Decode(&v); err == nil {
			return v, true
		}
		m.d.errorf(m.d.pos(n), "%s: integer out of range", what)
		return 0, false
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && isDecimal(n.Value) {
		v, err := strconv.Atoi(n.Value)
		if err == nil {
			return v, true
		}
		m.d.errorf(m.d.pos(n), "%s: integer out of range", what)
		return 0, false
	}
	m.d.errorf(m.d.pos(n), "%s: want an integer, got %s", what, kindName(n))
	return 0, false
}

// isDecimal reports whether s is an optional sign and decimal digits.
func isDecimal(s string) bool {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (m *mapping) int(name string) (int, bool) {
	n := m.get(name)
	if n == nil {
		return 0, false
	}
	return m.intNode(n, m.field(name))
}

// nonNegInt reads an optional integer that must not be negative.
func (m *mapping) nonNegInt(name string) int {
	v, ok := m.int(name)
	if ok && v < 0 {
		m.d.errorf(m.keyPos(name), "%s: must not be negative, got %d", m.field(name), v)
		return 0
	}
	return v
}

func (m *mapping) bool(name string) bool {
	n := m.get(name)
	if n == nil {
		return false
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		var v bool
		if err := n.Decode(&v); err == nil {
			return v
		}
	}
	m.d.errorf(m.d.pos(n), "%s: want true or false, got %s", m.field(name), kindName(n))
	return false
}

// duration reads `300s`, `1.5s`, `5m` or `1h30m`; def when absent. It must
// be positive.
func (m *mapping) duration(name string, def time.Duration) time.Duration {
	n := m.get(name)
	if n == nil {
		return def
	}
	s, ok := m.scalar(n, m.field(name))
	if !ok {
		return def
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		m.d.errorf(m.d.pos(n), "%s: want a positive duration such as 30s, 1.5s or 1h30m, got %q", m.field(name), s)
		return def
	}
	return v
}

// seq returns the resolved items of a list; nil when absent.
func (m *mapping) seq(name string) []*yaml.Node {
	n := m.get(name)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		m.d.errorf(m.keyPos(name), "%s: want a list, got %s", m.field(name), kindName(n))
		return nil
	}
	out := make([]*yaml.Node, 0, len(n.Content))
	for _, c := range n.Content {
		if c = m.d.resolve(c); c != nil {
			out = append(out, c)
		}
	}
	return out
}

// sub returns the mapping under name; nil when absent. A present but null
// value is an empty mapping (`manualApproval:` means `manualApproval: {}`).
func (m *mapping) sub(name string, allowed ...string) *mapping {
	if !m.has(name) {
		return nil
	}
	return m.d.mapping(m.get(name), m.field(name), m.keyPos(name), allowed...)
}

// item decodes the i-th item of a list as a mapping.
func (m *mapping) item(list string, i int, n *yaml.Node, allowed ...string) *mapping {
	path := fmt.Sprintf("%s[%d]", m.field(list), i)
	if isNull(n) {
		m.d.errorf(m.d.pos(n), "%s: want a mapping, got null", path)
		return nil
	}
	return m.d.mapping(n, path, m.d.pos(n), allowed...)
}

// oneOf reports unless exactly one of names is present, and returns the one
// present (the first when several are).
func (m *mapping) oneOf(names ...string) string {
	if m == nil {
		return ""
	}
	var present []string
	for _, n := range names {
		if m.has(n) {
			present = append(present, n)
		}
	}
	switch len(present) {
	case 0:
		if m.refused {
			return ""
		}
		m.d.errorf(m.pos, "%s: want one of %s", m.path, strings.Join(names, ", "))
		return ""
	case 1:
		return present[0]
	}
	m.d.errorf(m.keyPos(present[1]), "%s: %s and %s are exclusive; give only one", m.path, present[0], present[1])
	return present[0]
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}
