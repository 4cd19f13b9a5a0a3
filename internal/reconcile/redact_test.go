package reconcile

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
)

func withSecret(value string) option {
	return func(tg *desired.Target) {
		env := []runner.EnvVar{{Name: "PVN_PARAM_token", Value: value, Sensitive: true}}
		tg.Apply.Env = env
		if tg.Fetch != nil {
			tg.Fetch.Env = env
		}
		if tg.GetInfo != nil {
			tg.GetInfo.Env = env
		}
	}
}

func TestSecretsPrintedByJobsAreRedacted(t *testing.T) {
	w := newWorld(t)
	w.runner.results(api, apply, runner.Result{ExitCode: 1, Stdout: []byte("using token hunter2\n"), Stderr: []byte("login hunter2 refused")})
	w.runner.results(api, getInfo, runner.Result{Stdout: []byte(`{"outputs":[{"name":"token","text":"hunter2"}]}`)})
	w.push(tgt("api", "staging", withGetInfo, withSecret("hunter2")))

	st := w.state(api)
	assert.NotContains(t, st.Message, "hunter2")
	assert.Contains(t, st.Message, "login [redacted] refused")
	for _, run := range w.runs(api) {
		assert.NotContains(t, run.OutputTail, "hunter2", run.Action)
	}
	assert.Equal(t, "[redacted]", st.Info[0].Text, "getInfo output is shown to people: redacted too")
}

// A secret is redacted in every form a job may print it: as it is,
// JSON-escaped, base64 and URL-encoded, and in what getInfo and a
// structured fetch say once their JSON is decoded.
func TestSecretsAreRedactedInEveryForm(t *testing.T) {
	const secret = `pa"ss\wörd/+?&=<x>`
	jsonText, _ := json.Marshal(secret)
	forms := []string{
		secret,
		string(jsonText[1 : len(jsonText)-1]),
		base64.StdEncoding.EncodeToString([]byte(secret)),
		base64.RawURLEncoding.EncodeToString([]byte(secret)),
		url.QueryEscape(secret),
		url.PathEscape(secret),
	}
	w := newWorld(t)
	w.runner.results(api, fetch,
		runner.Result{ExitCode: 0, Stdout: []byte(`{"objects":[{"name":"db","status":"FAILED","message":"login \u0070a\"ss\\w\u00f6rd/+?&=\u003cx\u003e refused"}]}`)},
	)
	w.runner.results(api, apply, runner.Result{ExitCode: 1, Stdout: []byte(strings.Join(forms, "\n") + "\n"), Stderr: []byte("bad " + url.QueryEscape(secret))})
	w.runner.results(api, getInfo, runner.Result{Stdout: []byte(`{"outputs":[{"name":"pw","text":` + string(jsonText) + `},{"name":"` + "\\u0070a\\\"ss\\\\w\\u00f6rd/+?\\u0026=\\u003cx\\u003e" + `","text":"x"}]}`)})
	w.push(tgt("api", "staging", withFetch, withGetInfo, withSecret(secret), policy(func(p *desired.Policy) { p.FetchMode = config.FetchModeStructuredOutput })))

	st := w.state(api)
	for _, f := range forms {
		assert.NotContains(t, st.Message, f)
		for _, run := range w.runs(api) {
			assert.NotContains(t, run.OutputTail, f, run.Action)
			assert.NotContains(t, run.Error, f, run.Action)
		}
	}
	assert.Contains(t, st.Message, "bad [redacted]")
	require.Len(t, st.Info, 2)
	assert.Equal(t, []store.InfoOutput{{Name: "pw", Text: "[redacted]"}, {Name: "[redacted]", Text: "x"}}, st.Info)
	fetchMessage := ""
	for _, run := range w.runs(api) {
		if run.Action == apply {
			fetchMessage = run.Note
		}
	}
	assert.Contains(t, fetchMessage, "db is FAILED: login [redacted] refused")
}

// A sensitive value too short to be a secret (derived from one: its
// length, a yes or no) is not redacted: that would destroy the output.
func TestShortSensitiveValuesAreNotRedacted(t *testing.T) {
	w := newWorld(t)
	w.runner.results(api, apply, runner.Result{ExitCode: 1, Stdout: []byte("hello everyone\n")})
	w.push(tgt("api", "staging", func(tg *desired.Target) {
		tg.Apply.Env = []runner.EnvVar{{Name: "LEN", Value: "e", Sensitive: true}, {Name: "PVN_PARAM_token", Value: "hunter2", Sensitive: true}}
	}))
	runs := w.runs(api)
	require.NotEmpty(t, runs)
	assert.Equal(t, "hello everyone\n", runs[0].OutputTail)
}
