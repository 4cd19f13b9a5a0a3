package config

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
)

// builtins are the names allowed after .Builtins in templates.
var builtins = []string{"Application.Name", "Commit", "ReleaseChannel.Name", "Runtime.Name", "Service.Name"}

// BuiltinNames lists what templates may use after .Builtins, such as
// "Service.Name" for {{.Builtins.Service.Name}}.
func BuiltinNames() []string { return slices.Clone(builtins) }

// NewTemplate parses text the way configs are rendered: text/template with
// missingkey=error, so that a missing parameter fails instead of printing
// "<no value>". It refuses, at their line, what can never render: `call`
// (templates see no function values), {{template "x"}} of a template not
// defined, and a template that calls itself, directly or not (it would
// only end at text/template's depth limit, after using hundreds of MB).
func NewTemplate(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	if err := checkCalls(t); err != nil {
		return nil, err
	}
	return t, nil
}

// checkCalls refuses `call`, templates not defined and recursion.
func checkCalls(t *template.Template) error {
	trees := t.Templates()
	slices.SortFunc(trees, func(a, b *template.Template) int { return strings.Compare(a.Name(), b.Name()) })
	calls := map[string][]*parse.TemplateNode{}
	var problem error
	for _, tt := range trees {
		if tt.Tree == nil || tt.Root == nil {
			continue
		}
		walkNodes(tt.Root, func(n parse.Node) {
			if problem != nil {
				return
			}
			switch n := n.(type) {
			case *parse.IdentifierNode:
				if n.Ident == "call" {
					problem = nodeError(tt.Tree, n, "call is not supported: templates see no functions to call")
				}
			case *parse.TemplateNode:
				if t.Lookup(n.Name) == nil || t.Lookup(n.Name).Tree == nil {
					problem = nodeError(tt.Tree, n, fmt.Sprintf("template %q is not defined", n.Name))
					return
				}
				calls[tt.Name()] = append(calls[tt.Name()], n)
			}
		})
	}
	if problem != nil {
		return problem
	}
	// A depth-first search from each template finds the calls that close a
	// cycle.
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var visit func(name string) error
	visit = func(name string) error {
		state[name] = visiting
		for _, c := range calls[name] {
			switch state[c.Name] {
			case visiting:
				msg := fmt.Sprintf("template %q calls itself", c.Name)
				if c.Name != name {
					msg = fmt.Sprintf("template %q calls %q, which calls it again", name, c.Name)
				}
				return nodeError(t.Lookup(name).Tree, c, msg+": recursive templates are not supported")
			case 0:
				if err := visit(c.Name); err != nil {
					return err
				}
			}
		}
		state[name] = done
		return nil
	}
	for _, tt := range trees {
		if state[tt.Name()] == 0 {
			if err := visit(tt.Name()); err != nil {
				return err
			}
		}
	}
	return nil
}

// nodeError is a problem at node n of tree, worded like text/template's
// parse errors ("template: NAME:LINE: message").
func nodeError(tree *parse.Tree, n parse.Node, msg string) error {
	location, _ := tree.ErrorContext(n)
	name, line := location, ""
	if i := strings.Index(location, ":"); i >= 0 {
		name, line = location[:i], location[i+1:]
		if j := strings.Index(line, ":"); j >= 0 {
			line = line[:j]
		}
	}
	return fmt.Errorf("template: %s:%s: %s", name, line, msg)
}

// walkNodes calls fn on n and every node under it.
func walkNodes(n parse.Node, fn func(parse.Node)) {
	if n == nil {
		return
	}
	fn(n)
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			walkNodes(c, fn)
		}
	case *parse.ActionNode:
		walkNodes(n.Pipe, fn)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			walkNodes(c, fn)
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			walkNodes(a, fn)
		}
	case *parse.ChainNode:
		walkNodes(n.Node, fn)
	case *parse.IfNode:
		walkBranch(&n.BranchNode, fn)
	case *parse.RangeNode:
		walkBranch(&n.BranchNode, fn)
	case *parse.WithNode:
		walkBranch(&n.BranchNode, fn)
	case *parse.TemplateNode:
		walkNodes(n.Pipe, fn)
	}
}

func walkBranch(b *parse.BranchNode, fn func(parse.Node)) {
	walkNodes(b.Pipe, fn)
	walkNodes(b.List, fn)
	if b.ElseList != nil {
		walkNodes(b.ElseList, fn)
	}
}

// ParamRefs lists the parameters a parsed template references by name
// ({{.Params.NAME}}, {{index .Params "NAME"}}), and reports whether it
// uses .Params otherwise (ranges over it, indexes it with a computed name,
// passes it on), so that it may see any parameter.
func ParamRefs(t *template.Template) (names []string, all bool) {
	w := &refWalker{}
	for _, tt := range t.Templates() {
		if tt.Tree != nil && tt.Root != nil {
			w.walk(tt.Root, true)
		}
	}
	for _, r := range w.refs {
		if !r.builtin {
			names = appendNew(names, r.name)
		}
	}
	return names, w.allParams
}

// TemplateRefs parses text as a template and lists the parameters
// ({{.Params.NAME}}, {{index .Params "NAME"}}) and builtins
// ({{.Builtins.Service.Name}} gives "Service.Name") it references, each
// once, in order of appearance. A field of the data other than .Params and
// .Builtins is an error, and so is a template that does not parse.
func TemplateRefs(text string) (params, builtinRefs []string, err error) {
	_, refs, err := templateRefs(text)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range refs {
		if r.builtin {
			builtinRefs = appendNew(builtinRefs, r.name)
		} else {
			params = appendNew(params, r.name)
		}
	}
	return params, builtinRefs, nil
}

// ref is one reference found in a template, with its byte offset.
type ref struct {
	name    string
	builtin bool
	offset  int
	// field is what follows a parameter's name ("Tag" in .Params.img.Tag);
	// empty when nothing does.
	field string
}

func templateRefs(text string) (*template.Template, []ref, error) {
	if !strings.Contains(text, "{{") {
		return nil, nil, nil
	}
	t, err := NewTemplate("t", text)
	if err != nil {
		return nil, nil, newTemplateError(err)
	}
	w := &refWalker{}
	for _, tt := range t.Templates() {
		if tt.Tree != nil && tt.Root != nil {
			w.walk(tt.Root, true)
		}
	}
	return t, w.refs, w.err
}

var templateErrRE = regexp.MustCompile(`^template: t:(\d+): `)

// templateError is a template that does not parse, with the line of the
// problem within the text.
type templateError struct {
	line int
	msg  string
}

func (e *templateError) Error() string { return e.msg }

func newTemplateError(err error) error {
	msg := err.Error()
	te := &templateError{}
	if m := templateErrRE.FindStringSubmatch(msg); m != nil {
		te.line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	te.msg = "invalid template: " + msg
	return te
}

type refWalker struct {
	refs []ref
	err  error
	// allParams is set when .Params is used other than by name.
	allParams bool
}

// walk visits n; root says whether dot is the template's data (it is not
// inside range and with).
func (w *refWalker) walk(n parse.Node, root bool) {
	if n == nil || w.err != nil {
		return
	}
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			w.walk(c, root)
		}
	case *parse.ActionNode:
		w.walk(n.Pipe, root)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			w.command(c, root)
		}
	case *parse.IfNode:
		w.branch(&n.BranchNode, root, root)
	case *parse.RangeNode:
		w.branch(&n.BranchNode, false, root)
	case *parse.WithNode:
		w.branch(&n.BranchNode, false, root)
	case *parse.TemplateNode:
		w.walk(n.Pipe, root)
	case *parse.FieldNode:
		if root {
			w.fields(n.Ident, int(n.Pos))
		}
	case *parse.VariableNode:
		switch {
		case len(n.Ident) > 1 && n.Ident[0] == "$":
			w.fields(n.Ident[1:], int(n.Pos))
		case len(n.Ident) == 1 && n.Ident[0] == "$":
			w.allParams = true // the whole data, passed on
		}
	case *parse.DotNode:
		if root {
			w.allParams = true
		}
	case *parse.ChainNode:
		w.walk(n.Node, root)
	}
}

func (w *refWalker) branch(b *parse.BranchNode, bodyRoot, root bool) {
	w.walk(b.Pipe, root)
	w.walk(b.List, bodyRoot)
	w.walk(b.ElseList, root)
}

func (w *refWalker) command(c *parse.CommandNode, root bool) {
	// {{index .Params "NAME"}}
	if len(c.Args) >= 3 {
		if id, ok := c.Args[0].(*parse.IdentifierNode); ok && id.Ident == "index" {
			if f, ok := c.Args[1].(*parse.FieldNode); ok && root && len(f.Ident) == 1 && f.Ident[0] == "Params" {
				if s, ok := c.Args[2].(*parse.StringNode); ok {
					w.refs = append(w.refs, ref{name: s.Text, offset: int(s.Pos)})
					for _, a := range c.Args[3:] {
						w.walk(a, root)
					}
					return
				}
			}
		}
	}
	for _, a := range c.Args {
		w.walk(a, root)
	}
}

func (w *refWalker) fields(ident []string, offset int) {
	switch {
	case ident[0] == "Params":
		if len(ident) >= 2 {
			w.refs = append(w.refs, ref{name: ident[1], offset: offset, field: strings.Join(ident[2:], ".")})
		} else {
			w.allParams = true
		}
	case ident[0] == "Builtins":
		if len(ident) >= 2 {
			w.refs = append(w.refs, ref{name: strings.Join(ident[1:], "."), builtin: true, offset: offset})
		}
	default:
		w.err = fmt.Errorf("unknown field .%s: templates see .Params.NAME and .Builtins.X", strings.Join(ident, "."))
	}
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
