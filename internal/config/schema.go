package config

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode"
)

// SchemaID is where the JSON Schema of *.pvn.yaml documents is published:
// schema/pvn.schema.json of pvnbot's repository.
const SchemaID = "https://raw.githubusercontent.com/pvnbot/pvnbot/main/schema/pvn.schema.json"

// JSONSchema returns the JSON Schema (draft 2020-12) of one *.pvn.yaml
// document, for editors (yaml-language-server). It describes what the
// decoder accepts, keys and types: a document it accepts passes, and one
// with an unknown key, a value of the wrong type or a missing required
// field fails. What needs the whole set (references, templates) is left to
// `bot validate`.
func JSONSchema() []byte {
	doc := jsObject("One pvnbot config document: exactly one of runtime, application or service.", jsProps{
		"runtime":     jsRef("runtime"),
		"application": jsRef("application"),
		"service":     jsRef("service"),
	})
	doc["minProperties"], doc["maxProperties"] = 1, 1
	doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	doc["$id"] = SchemaID
	doc["title"] = "pvnbot *.pvn.yaml"
	doc["$defs"] = schemaDefs()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		panic(err) // plain maps and slices: cannot fail
	}
	return b.Bytes()
}

type jsonSchema = map[string]any

// jsProps are the properties of an object, by camelCase key.
type jsProps map[string]jsonSchema

func jsRef(name string) jsonSchema { return jsonSchema{"$ref": "#/$defs/" + name} }

func jsDesc(s jsonSchema, desc string) jsonSchema {
	out := jsonSchema{}
	for k, v := range s {
		out[k] = v
	}
	out["description"] = desc
	return out
}

// object is a mapping with only the given keys, each also under its
// snake_case spelling; required lists the keys it must have (either
// spelling). A null value is accepted as the empty mapping, as the decoder
// does.
func jsObject(desc string, p jsProps, required ...string) jsonSchema {
	properties := jsonSchema{}
	for k, v := range p {
		properties[k] = v
		if s := snakeCase(k); s != k {
			properties[s] = v
		}
	}
	s := jsonSchema{"type": []string{"object", "null"}, "properties": properties, "additionalProperties": false}
	if desc != "" {
		s["description"] = desc
	}
	var all []jsonSchema
	for _, r := range required {
		if snakeCase(r) == r {
			s["required"] = append(asStrings(s["required"]), r)
			continue
		}
		all = append(all, jsonSchema{"anyOf": []jsonSchema{{"required": []string{r}}, {"required": []string{snakeCase(r)}}}})
	}
	if len(all) > 0 {
		s["allOf"] = all
	}
	if len(required) > 0 {
		s["type"] = "object"
	}
	return s
}

func asStrings(v any) []string {
	s, _ := v.([]string)
	return s
}

// exactlyOne adds to an object that it has exactly one of keys.
func jsExactlyOne(s jsonSchema, keys ...string) jsonSchema {
	var one []jsonSchema
	for _, k := range keys {
		one = append(one, jsonSchema{"required": []string{k}})
		if sk := snakeCase(k); sk != k {
			one = append(one, jsonSchema{"required": []string{sk}})
		}
	}
	s["oneOf"] = one
	return s
}

// jsNotBoth adds to an object that it does not have both a and b (two
// spellings of one section), in any spelling.
func jsNotBoth(s jsonSchema, a, b string) jsonSchema {
	var both []jsonSchema
	for _, x := range []string{a, snakeCase(a)} {
		for _, y := range []string{b, snakeCase(b)} {
			both = append(both, jsonSchema{"required": []string{x, y}})
		}
	}
	s["not"] = jsonSchema{"anyOf": both}
	return s
}

func snakeCase(key string) string {
	var b strings.Builder
	for _, r := range key {
		if unicode.IsUpper(r) {
			b.WriteByte('_')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// jsText is a string; numbers are taken as written.
func jsText(desc string) jsonSchema {
	s := jsonSchema{"type": []string{"string", "number"}}
	if desc != "" {
		s["description"] = desc
	}
	return s
}

func jsInt(desc string, minimum *int) jsonSchema {
	s := jsonSchema{
		"type":        []string{"integer", "string"},
		"pattern":     `^[-+]?[0-9]+$`,
		"description": strings.TrimPrefix(desc+"; an integer, or one written as a quoted string", "; "),
	}
	if minimum != nil {
		s["minimum"] = *minimum
	}
	return s
}

func jsBool(desc string) jsonSchema { return jsonSchema{"type": "boolean", "description": desc} }

func jsDuration(desc string) jsonSchema {
	return jsonSchema{
		"type":        "string",
		"pattern":     `^\+?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$`,
		"description": desc + " (a duration: 300s, 1.5s, 5m, 1h30m)",
	}
}

func jsList(item jsonSchema, desc string) jsonSchema {
	return jsonSchema{"type": "array", "items": item, "description": desc}
}

func jsEnum(desc string, values ...string) jsonSchema {
	return jsonSchema{"enum": values, "description": desc}
}

var (
	jsZero = 0
	jsOne  = 1
)

var jsExitCode = func() jsonSchema {
	s := jsInt("An exit code, 1-255", &jsOne)
	s["maximum"] = 255
	return s
}()

func schemaDefs() jsonSchema {
	name := jsonSchema{"type": "string", "pattern": nameRE.String(), "maxLength": maxNameLen}
	paramName := jsonSchema{"type": "string", "pattern": paramNameRE.String(), "maxLength": maxNameLen}
	metadata := jsonSchema{"type": []string{"object", "null"}, "description": "Prodvana metadata: accepted and ignored (with a warning)."}
	withMetadata := func(p jsProps, keys ...string) jsProps {
		for _, k := range keys {
			p[k] = metadata
		}
		return p
	}
	meta := []string{"labels", "annotations", "deployAnnotations"}

	jobProps := func(p jsProps) jsProps {
		p["taskConfig"] = jsRef("taskConfig")
		p["kubernetesConfig"] = jsRef("kubernetesConfig")
		p["env"] = jsRef("env")
		p["timeout"] = jsDuration("The job's deadline")
		return p
	}
	job := func(desc string, p jsProps) jsonSchema {
		return jsExactlyOne(jsObject(desc, jobProps(p)), "taskConfig", "kubernetesConfig")
	}
	custom := jsNotBoth(jsObject("A custom runtime: the apply, fetch and getInfo jobs and their parameters.", jsProps{
		"type":                       jsEnum("Only GENERIC", "GENERIC"),
		"proxyRuntime":               jsRef("proxyRuntime"),
		"apply":                      jsRef("apply"),
		"fetch":                      jsRef("fetch"),
		"getInfo":                    jsRef("getInfo"),
		"debug":                      jsDesc(jsRef("getInfo"), "The old name of getInfo"),
		"parameters":                 jsList(jsRef("parameter"), "The runtime's parameters, {{.Params.NAME}} in its templates"),
		"applyId":                    jsText("Apply runs only when this renders to another value than the last successful apply's"),
		"convergenceGracePeriod":     jsDuration("How long after apply started fetch may still report drift before apply runs again (default 10m)"),
		"requireApprovalBeforeApply": jsBool("Every apply needs a manual approval"),
	}, "proxyRuntime", "apply"), "getInfo", "debug")
	values := jsObject("Values given to the runtime's parameters.", jsProps{
		"parameterValues": jsList(jsRef("parameterValue"), "One value per runtime parameter"),
	})
	secretKey := jsObject("", jsProps{"key": jsText("The secret's key where the bot reads secrets"), "version": jsText("The secret's version (default: the latest)")}, "key")

	return jsonSchema{
		"runtime": jsExactlyOne(jsObject("A custom runtime.", withMetadata(jsProps{
			"name":      name,
			"custom":    jsRef("custom"),
			"extension": jsDesc(jsRef("custom"), "An alias of custom"),
		}, meta...), "name"), "custom", "extension"),
		"custom": custom,
		"proxyRuntime": jsObject("Where the runtime's jobs run.", jsProps{
			"runtime": jsText(`A Kubernetes runtime linked in the bot's configuration, or "local" (processes on the bot's machine)`),
			"containerOrchestration": jsObject("", jsProps{
				"k8s": jsObject("", jsProps{"namespace": jsDesc(name, "An existing namespace (default: pvn-proxy-runtime-<runtime>)")}),
			}),
		}, "runtime"),
		"apply": job("The job that applies a change.", jsProps{
			"maxConcurrency":     jsInt("At most this many applies of the runtime at once; 0: no cap", &jsZero),
			"retryPolicy":        jsRef("retryPolicy"),
			"retryableExitCodes": jsList(jsExitCode, "Exit codes of apply that mean: try again"),
		}),
		"fetch": job("The job that says whether the world matches: exit 0 converged, 2 drift.", jsProps{
			"pollInterval":            jsDuration("While not converged (default 30s)"),
			"steadyStatePollInterval": jsDuration("While converged, to catch drift (default 5m)"),
			"fetchMode":               jsEnum("How fetch's result is read", string(FetchModeExitCode), string(FetchModeStructuredOutput)),
			"retryPolicy":             jsRef("retryPolicy"),
		}),
		"getInfo": job("The job that prints information for people: {\"outputs\":[{\"name\",\"text\"}]}.", jsProps{
			"pollInterval": jsDuration("How often (default 5m)"),
			"retryPolicy":  jsRef("retryPolicy"),
		}),
		"retryPolicy": jsObject("Backoff after a failed job.", jsProps{
			"baseInterval": jsDuration("The first wait"),
			"maxInterval":  jsDuration("The longest wait (default 5m)"),
			"maxAttempts":  jsInt("Give up after this many attempts; 0 or less: unlimited", nil),
		}),
		"taskConfig": jsObject("A program, as a process (local) or a container (Kubernetes).", jsProps{
			"program": jsRef("program"),
			"ttl":     jsDuration("How long a finished Kubernetes Job is kept (default 1h)"),
			"k8s":     jsObject("", jsProps{"serviceAccount": jsText("The pod's service account")}),
		}, "program"),
		"program": jsObject("", jsProps{
			"cmd":               jsList(jsText(""), "The command's arguments (templates)"),
			"entrypoint":        jsList(jsText(""), "The command (templates)"),
			"env":               jsRef("env"),
			"workingDirectory":  jsText("Relative to the repository root"),
			"image":             jsText("A full image reference"),
			"imageTag":          jsText("The tag of imageRegistryInfo's repository"),
			"imageRegistryInfo": jsRef("imageRegistryInfo"),
			"serviceAccount":    jsText("The pod's service account"),
		}),
		"imageRegistryInfo": jsObject("", jsProps{
			"containerRegistry": jsText("A container registry linked in the bot's configuration"),
			"imageRepository":   jsText("The repository in that registry"),
		}, "containerRegistry", "imageRepository"),
		"env": jsonSchema{
			"type":          "object",
			"description":   "Environment variables: NAME: {value: ...} or NAME: {kubernetesSecret: {secretName, key}}",
			"propertyNames": jsonSchema{"pattern": envNameRE.String(), "not": jsonSchema{"pattern": "^PVN_"}},
			"additionalProperties": jsExactlyOne(jsObject("", jsProps{
				"value": jsText("The value (a template)"),
				"kubernetesSecret": jsObject("", jsProps{
					"secretName": jsText("The Kubernetes secret"),
					"key":        jsText("Its key"),
				}, "secretName", "key"),
			}), "value", "kubernetesSecret"),
		},
		"kubernetesConfig": jsObject("A job as one batch/v1 Job manifest file (templates).", jsProps{
			"type":  jsEnum("Only KUBERNETES", "KUBERNETES"),
			"local": jsObject("", jsProps{"path": jsText("Relative to this file's folder")}, "path"),
		}, "local"),
		"parameter": jsExactlyOne(jsObject("A parameter, of one type.", jsProps{
			"name":        paramName,
			"description": jsText(""),
			"required":    jsBool("A value must be given"),
			"string":      jsObject("", jsProps{"defaultValue": jsText("")}),
			"int":         jsObject("", jsProps{"defaultValue": jsInt("", nil)}),
			"secret":      jsObject("A secret: its value is looked up by the bot, never written here", jsProps{}),
			"dockerImage": jsObject("{{.Params.NAME}} is the full image reference, {{.Params.NAME.Tag}} its tag", jsProps{
				"defaultTag":        jsText(""),
				"imageRegistryInfo": jsRef("imageRegistryInfo"),
			}, "imageRegistryInfo"),
			"commit": jsObject("A commit SHA", jsProps{"repository": jsText(""), "branch": jsText("")}),
			"blob":   jsObject("A text, given inlined", jsProps{}),
		}, "name"), "string", "int", "secret", "dockerImage", "commit", "blob"),

		"application": jsObject("An application: release channels and the runtimes they deploy to.", withMetadata(jsProps{
			"name":            name,
			"releaseChannels": jsList(jsRef("releaseChannel"), "The release channels, such as staging then production"),
		}, meta...), "name", "releaseChannels"),
		"releaseChannel": jsObject("", withMetadata(jsProps{
			"name":          name,
			"runtimes":      jsList(jsRef("runtimeLink"), "The channel's runtimes"),
			"preconditions": jsList(jsRef("precondition"), "What must hold before an apply"),
		}, meta...), "name", "runtimes"),
		"runtimeLink": jsObject("", jsProps{
			"runtime": jsText("A runtime's name"),
			"name":    jsDesc(name, "The connection name services choose with runtimeConnection (default: the runtime's name)"),
			"type":    jsEnum("Only EXTENSION (a custom runtime)", "EXTENSION"),
		}, "runtime"),
		"precondition": jsExactlyOne(jsObject("", jsProps{
			"releaseChannelStable": jsObject("The same service is converged in that channel", jsProps{"releaseChannel": jsText("")}, "releaseChannel"),
			"manualApproval": jsObject("A person approves", jsProps{
				"name":         jsText(""),
				"description":  jsText(""),
				"everyAction":  jsBool("Every apply, drift included, needs its own approval"),
				"minApprovers": jsInt("Distinct approvers needed; 0: one", &jsZero),
			}),
		}), "releaseChannelStable", "manualApproval"),

		"service": jsNotBoth(jsObject("A service of an application, deployed to its runtime in every release channel.", withMetadata(jsProps{
			"name":              name,
			"application":       jsText("The application's name"),
			"runtimeConnection": jsText("The channel runtime connection to use, when a channel has several"),
			"customRuntime":     values,
			"runtimeExtension":  jsDesc(values, "An alias of customRuntime"),
			"parameters":        jsList(jsRef("parameter"), "The service's parameters, {{.Params.NAME}} in its values"),
			"perReleaseChannel": jsList(jsRef("perReleaseChannel"), "Values and connection for one release channel"),
		}, meta...), "name", "application"), "customRuntime", "runtimeExtension"),
		"perReleaseChannel": jsNotBoth(jsObject("", withMetadata(jsProps{
			"releaseChannel":    jsText("The release channel"),
			"runtimeConnection": jsText("The connection to use in this channel"),
			"customRuntime":     values,
			"runtimeExtension":  jsDesc(values, "An alias of customRuntime"),
		}, "deployAnnotations"), "releaseChannel"), "customRuntime", "runtimeExtension"),
		"parameterValue": jsExactlyOne(jsObject("A value for one runtime parameter.", jsProps{
			"name":           paramName,
			"string":         jsText("A template"),
			"int":            jsInt("", nil),
			"secret":         jsonSchema{"anyOf": []jsonSchema{jsExactlyOne(jsObject("", jsProps{"secretRef": secretKey}), "secretRef"), secretKey}},
			"dockerImageTag": jsText("The image tag (a template)"),
			"commit":         jsText("A commit SHA (a template)"),
			"blob":           jsObject("", jsProps{"inlined": jsText("The text (a template)")}, "inlined"),
		}, "name"), "string", "int", "secret", "dockerImageTag", "commit", "blob"),
	}
}
