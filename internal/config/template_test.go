package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTemplateRefs(t *testing.T) {
	tests := map[string]struct {
		text     string
		params   []string
		builtins []string
		err      string
	}{
		"plain text":       {text: "apply-changes"},
		"param":            {text: "--id={{.Params.changeId}}", params: []string{"changeId"}},
		"each once":        {text: "{{.Params.a}}{{.Params.b}}{{.Params.a}}", params: []string{"a", "b"}},
		"builtins":         {text: "{{.Builtins.Service.Name}}@{{.Builtins.Commit}}", builtins: []string{"Service.Name", "Commit"}},
		"index":            {text: `{{index .Params "my-param"}}`, params: []string{"my-param"}},
		"pipeline":         {text: `{{.Params.a | printf "%s-%s" .Params.b}}`, params: []string{"a", "b"}},
		"if else":          {text: "{{if .Params.a}}{{.Params.b}}{{else}}{{.Params.c}}{{end}}", params: []string{"a", "b", "c"}},
		"range body":       {text: "{{range .Params.list}}{{.}}{{.Name}}{{end}}", params: []string{"list"}},
		"with uses $":      {text: "{{with .Params.a}}{{$.Params.b}}{{end}}", params: []string{"a", "b"}},
		"variables":        {text: "{{$x := .Params.a}}{{$x}}", params: []string{"a"}},
		"unknown root":     {text: "{{.Service.Name}}", err: "unknown field .Service.Name: templates see .Params.NAME and .Builtins.X"},
		"does not parse":   {text: "{{.Params.a", err: "invalid template: unclosed action"},
		"unknown function": {text: "{{quote .Params.a}}", err: `invalid template: function "quote" not defined`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			params, builtins, err := TemplateRefs(tt.text)
			if tt.err != "" {
				assert.EqualError(t, err, tt.err)
				return
			}
			assert.NoError(t, err)
			assert.Equal(t, tt.params, params)
			assert.Equal(t, tt.builtins, builtins)
		})
	}
}

func TestNewTemplateMissingKeyErrors(t *testing.T) {
	tmpl, err := NewTemplate("x", "{{.Params.a}}")
	assert.NoError(t, err)
	err = tmpl.Execute(&discard{}, map[string]any{"Params": map[string]string{}})
	assert.Error(t, err, "a missing parameter fails instead of printing <no value>")
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// What can never render is refused when the template is parsed, at its
// line: bot validate and bot run refuse it alike, whichever branch it is in.
func TestNewTemplateRefuses(t *testing.T) {
	tests := map[string]struct{ text, err string }{
		"call":               {"a\n{{if false}}{{call .Params.f}}{{end}}", "template: x:2: call is not supported: templates see no functions to call"},
		"undefined template": {"{{if false}}\n\n{{template \"nope\"}}{{end}}", `template: x:3: template "nope" is not defined`},
		"recursive define":   {"{{define \"a\"}}\n{{template \"a\"}}{{end}}{{template \"a\"}}", `template: x:2: template "a" calls itself: recursive templates are not supported`},
		"mutual recursion": {"{{define \"a\"}}{{template \"b\"}}{{end}}\n{{define \"b\"}}{{template \"a\"}}{{end}}x",
			`template: x:2: template "b" calls "a", which calls it again: recursive templates are not supported`},
		"main calls itself": {"{{template \"x\"}}", `template: x:1: template "x" calls itself: recursive templates are not supported`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := NewTemplate("x", tt.text)
			assert.EqualError(t, err, tt.err)
		})
	}
	_, err := NewTemplate("x", `{{define "a"}}A{{end}}{{define "b"}}{{template "a"}}{{template "a"}}{{end}}{{template "b"}}`)
	assert.NoError(t, err, "a template called twice is no recursion")

	_, _, err = TemplateRefs("{{if false}}{{template \"nope\"}}{{end}}")
	assert.EqualError(t, err, `invalid template: template "nope" is not defined`)
}

// ParamRefs tells a template that names its parameters from one that may
// see any of them.
func TestParamRefs(t *testing.T) {
	tests := map[string]struct {
		text  string
		names []string
		all   bool
	}{
		"by name":         {text: `{{.Params.a}}{{index .Params "b"}}`, names: []string{"a", "b"}},
		"in a condition":  {text: `{{if eq .Params.s "x"}}yes{{end}}`, names: []string{"s"}},
		"range over all":  {text: `{{range $k, $v := .Params}}{{$v}}{{end}}`, all: true},
		"computed index":  {text: `{{index .Params (print "s")}}`, all: true},
		"whole data":      {text: `{{printf "%v" .}}`, all: true},
		"whole data as $": {text: `{{with .Params.a}}{{printf "%v" $}}{{end}}`, names: []string{"a"}, all: true},
		"dot rebound":     {text: `{{range .Params.list}}{{.}}{{end}}`, names: []string{"list"}},
		"builtins only":   {text: `{{.Builtins.Commit}}`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			tmpl, err := NewTemplate("x", tt.text)
			assert.NoError(t, err)
			names, all := ParamRefs(tmpl)
			assert.Equal(t, tt.names, names)
			assert.Equal(t, tt.all, all)
		})
	}
}
