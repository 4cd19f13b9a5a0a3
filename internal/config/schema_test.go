package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(JSONSchema()))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	require.NoError(t, c.AddResource(SchemaID, doc))
	sch, err := c.Compile(SchemaID)
	require.NoError(t, err, "the schema is valid JSON Schema 2020-12")
	return sch
}

// yamlDoc is one document of a file, as JSON values, with the lines it
// spans. ok is false for a document that has no JSON form (a key given
// twice).
type yamlDoc struct {
	first, last int
	value       any
	ok          bool
}

func splitDocs(t *testing.T, data []byte) []yamlDoc {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []yamlDoc
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if len(n.Content) == 0 {
			continue
		}
		if len(docs) > 0 {
			docs[len(docs)-1].last = n.Content[0].Line - 1
		}
		doc := yamlDoc{first: n.Content[0].Line, last: 1 << 30}
		var v any
		if n.Decode(&v) == nil {
			j, err := json.Marshal(v)
			require.NoError(t, err)
			doc.value, err = jsonschema.UnmarshalJSON(bytes.NewReader(j))
			require.NoError(t, err)
			doc.ok = true
		}
		docs = append(docs, doc)
	}
	return docs
}

// configFiles lists the *.pvn.yaml files of fixtures/ and testdata/.
func configFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, root := range []string{"../../fixtures", "testdata"} {
		require.NoError(t, filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() && IsConfigFile(e.Name()) {
				files = append(files, p)
			}
			return err
		}))
	}
	return files
}

// structural are the decoder's messages about keys and types, which the
// schema must reject too; other problems (a name too long, references)
// are bot validate's.
var structural = []string{
	"unknown key", ": want a ", ": want an ", "want true or false", "want one of", "missing required field",
	"are exclusive", "are the same section", "not supported", "is refused", "unsupported type", "unknown fetch mode",
	"want a positive duration", "must not be negative", "out of range 1-255", "a document holds exactly one",
}

func isStructural(msg string) bool {
	for _, s := range structural {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// TestSchemaAgreesWithTheDecoder: for every document of every config file
// of the repository, valid and invalid: a document the decoder takes
// without a problem passes the schema; one where it finds an unknown key, a
// wrong type or a missing field fails it.
func TestSchemaAgreesWithTheDecoder(t *testing.T) {
	sch := compileSchema(t)
	accepted, rejected := 0, 0
	for _, file := range configFiles(t) {
		data, err := os.ReadFile(file)
		require.NoError(t, err)
		_, perr := Parse(file, data)
		var es Errors
		if perr != nil {
			require.True(t, errors.As(perr, &es))
		}
		if len(es) > 0 && strings.HasPrefix(es[0].Msg, "invalid YAML") {
			continue // not YAML: nothing for a schema to say
		}
		for _, doc := range splitDocs(t, data) {
			var problems []string
			structuralProblem := false
			for _, e := range es {
				if e.Pos.Line >= doc.first && e.Pos.Line <= doc.last {
					problems = append(problems, e.Error())
					structuralProblem = structuralProblem || isStructural(e.Msg)
				}
			}
			if !doc.ok {
				continue
			}
			err := sch.Validate(doc.value)
			switch {
			case len(problems) == 0:
				accepted++
				assert.NoError(t, err, "%s:%d: the decoder takes this document, the schema must too", file, doc.first)
			case structuralProblem:
				rejected++
				assert.Error(t, err, "%s:%d: the decoder reports %q, the schema must fail", file, doc.first, problems)
			}
		}
	}
	assert.Greater(t, accepted, 60, "documents checked to pass")
	assert.Greater(t, rejected, 40, "documents checked to fail")
}

// TestSchemaValidFixtures: every document of every valid fixture passes.
func TestSchemaValidFixtures(t *testing.T) {
	sch := compileSchema(t)
	var files []string
	for _, pattern := range []string{"testdata/valid-*.pvn.yaml", seedDir + "/repo/*/*.pvn.yaml", "../../fixtures/demo/repo/*.pvn.yaml", "../../fixtures/demo/repo/*/*.pvn.yaml"} {
		found, err := filepath.Glob(pattern)
		require.NoError(t, err)
		require.NotEmpty(t, found, pattern)
		files = append(files, found...)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		require.NoError(t, err)
		for _, doc := range splitDocs(t, data) {
			require.True(t, doc.ok, "%s:%d", file, doc.first)
			assert.NoError(t, sch.Validate(doc.value), "%s:%d", file, doc.first)
		}
	}
}

// TestSchemaRejects: unknown keys, wrong types and missing fields fail,
// in both spellings of a key.
func TestSchemaRejects(t *testing.T) {
	sch := compileSchema(t)
	tests := map[string]string{
		"unknown key":                      "service: {name: s, application: a, applicationx: b}",
		"unknown key, deep":                "runtime: {name: r, custom: {proxyRuntime: {runtime: local, namespace: x}, apply: {taskConfig: {program: {cmd: [x]}}}}}",
		"list where a string goes":         "runtime: {name: r, custom: {proxyRuntime: {runtime: local}, apply: {taskConfig: {program: {cmd: [[x]]}}}}}",
		"string where a list goes":         "runtime: {name: r, custom: {proxyRuntime: {runtime: local}, apply: {taskConfig: {program: {cmd: deploy}}}}}",
		"not a duration":                   "runtime: {name: r, custom: {proxyRuntime: {runtime: local}, apply: {taskConfig: {program: {cmd: [x]}}}, fetch: {taskConfig: {program: {cmd: [x]}}, pollInterval: 10}}}",
		"not an integer":                   "runtime: {name: r, custom: {proxyRuntime: {runtime: local}, apply: {taskConfig: {program: {cmd: [x]}}, maxConcurrency: ten}}}",
		"missing required field":           "runtime: {name: r, custom: {proxyRuntime: {runtime: local}}}",
		"missing required, snake_case":     "application: {name: a}",
		"two job kinds":                    "runtime: {name: r, custom: {proxyRuntime: {runtime: local}, apply: {taskConfig: {program: {cmd: [x]}}, kubernetes_config: {local: {path: j.yaml}}}}}",
		"two documents in one":             "runtime: {name: r}\nservice: {name: s, application: a}",
		"refused runtime kind":             "runtime: {name: r, fake: {}}",
		"refused service kind":             "service: {name: s, application: a, helm: {}}",
		"refused document":                 "releaseChannel: {name: staging}",
		"rawSecret":                        "service: {name: s, application: a, customRuntime: {parameterValues: [{name: p, secret: {rawSecret: x}}]}}",
		"two parameter types":              "service: {name: s, application: a, parameters: [{name: p, string: {}, int: {}}]}",
		"link type other than EXTENSION":   "application: {name: a, releaseChannels: [{name: c, runtimes: [{runtime: r, type: KUBERNETES}]}]}",
		"reserved env prefix":              "runtime: {name: r, custom: {proxyRuntime: {runtime: local}, apply: {taskConfig: {program: {cmd: [x], env: {PVN_X: {value: y}}}}}}}",
		"dockerImage without its registry": "runtime: {name: r, custom: {proxyRuntime: {runtime: local}, apply: {taskConfig: {program: {cmd: [x]}}}, parameters: [{name: img, dockerImage: {defaultTag: v1}}]}}",
	}
	for name, doc := range tests {
		t.Run(name, func(t *testing.T) {
			docs := splitDocs(t, []byte(doc))
			require.Len(t, docs, 1)
			require.True(t, docs[0].ok)
			assert.Error(t, sch.Validate(docs[0].value))
			_, err := Parse("doc.pvn.yaml", []byte(doc))
			assert.Error(t, err, "the decoder refuses it too")
		})
	}
}

// The schema says which draft it is, and its $id is where the repository
// keeps it (the README's yaml-language-server line points there).
func TestSchemaNamesItsDraftAndWhereItIsPublished(t *testing.T) {
	var doc map[string]any
	require.NoError(t, json.Unmarshal(JSONSchema(), &doc))
	assert.Equal(t, "https://json-schema.org/draft/2020-12/schema", doc["$schema"])
	assert.Equal(t, SchemaID, doc["$id"])
	path, ok := strings.CutPrefix(SchemaID, "https://raw.githubusercontent.com/pvnbot/pvnbot/main/")
	require.True(t, ok, SchemaID)
	_, err := os.Stat(filepath.Join("..", "..", path))
	assert.NoError(t, err, "the $id names a file of the repository")
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	assert.Contains(t, string(readme), "$schema="+SchemaID)
}
