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
// "<no value>".
func NewTemplate(name, text string) (*template.Template, error) {
	return template.New(name).Option("missingkey=error").Parse(text)
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
		if len(n.Ident) > 1 && n.Ident[0] == "$" {
			w.fields(n.Ident[1:], int(n.Pos))
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
