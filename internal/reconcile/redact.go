package reconcile

import (
	"bytes"
	"errors"
	"slices"
	"strings"

	"github.com/pvnbot/pvnbot/internal/runner"
)

// redacted replaces a secret's value wherever a job printed it.
const redacted = "[redacted]"

// secretsOf returns the values of a job's sensitive variables, longest
// first so that a secret containing another is replaced whole.
func secretsOf(env []runner.EnvVar) []string {
	var out []string
	for _, v := range env {
		if v.Sensitive && v.Value != "" {
			out = append(out, v.Value)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// redactResult removes secret values from what a job printed and from the
// error of its run, before anything is stored, shown or posted: a job may
// echo its own PVN_PARAM_ secrets.
func redactResult(res runner.Result, runErr error, env []runner.EnvVar) (runner.Result, error) {
	secrets := secretsOf(env)
	if len(secrets) == 0 {
		return res, runErr
	}
	for _, s := range secrets {
		res.Stdout = bytes.ReplaceAll(res.Stdout, []byte(s), []byte(redacted))
		res.Stderr = bytes.ReplaceAll(res.Stderr, []byte(s), []byte(redacted))
		res.ExecError = strings.ReplaceAll(res.ExecError, s, redacted)
	}
	if runErr != nil {
		msg := runErr.Error()
		for _, s := range secrets {
			msg = strings.ReplaceAll(msg, s, redacted)
		}
		if msg != runErr.Error() {
			runErr = errors.New(msg)
		}
	}
	return res, runErr
}
