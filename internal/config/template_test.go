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
