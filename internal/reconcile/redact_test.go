package reconcile

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/runner"
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
