package reconcile

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/runner"
)

// redacted replaces a secret's value wherever a job printed it.
const redacted = "[redacted]"

// redactor replaces the values of a job's sensitive variables, in the
// forms a job is likely to print them: as they are, JSON- and Go-quoted,
// base64 and URL-encoded.
type redactor struct {
	forms []string // longest first, so that a secret containing another is replaced whole
}

// newRedactor redacts the sensitive values of env. A value shorter than
// desired.MinSecretLength (a secret is never that short; a value derived
// from one may be) is left alone: replacing it would destroy the output and
// hide nothing.
func newRedactor(env []runner.EnvVar) *redactor {
	r := &redactor{}
	for _, v := range env {
		if !v.Sensitive || utf8.RuneCountInString(v.Value) < desired.MinSecretLength {
			continue
		}
		for _, f := range encodings(v.Value) {
			if !slices.Contains(r.forms, f) {
				r.forms = append(r.forms, f)
			}
		}
	}
	slices.SortStableFunc(r.forms, func(a, b string) int { return len(b) - len(a) })
	return r
}

// encodings are the forms of s a job may print.
func encodings(s string) []string {
	jsonForm := func(escapeHTML bool) string {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(escapeHTML)
		_ = enc.Encode(s)
		return strings.TrimSuffix(strings.TrimPrefix(strings.TrimSuffix(b.String(), "\n"), `"`), `"`)
	}
	quoted := strconv.Quote(s)
	raw := []byte(s)
	return []string{
		s,
		jsonForm(true), jsonForm(false),
		quoted[1 : len(quoted)-1],
		base64.StdEncoding.EncodeToString(raw), base64.RawStdEncoding.EncodeToString(raw),
		base64.URLEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(raw),
		url.QueryEscape(s), url.PathEscape(s),
	}
}

func (r *redactor) none() bool { return len(r.forms) == 0 }

func (r *redactor) bytes(b []byte) []byte {
	for _, f := range r.forms {
		if bytes.Contains(b, []byte(f)) {
			b = bytes.ReplaceAll(b, []byte(f), []byte(redacted))
		}
	}
	return b
}

func (r *redactor) string(s string) string {
	for _, f := range r.forms {
		s = strings.ReplaceAll(s, f, redacted)
	}
	return s
}

func (r *redactor) err(err error) error {
	if err == nil || r.none() {
		return err
	}
	if msg := r.string(err.Error()); msg != err.Error() {
		return errors.New(msg)
	}
	return err
}

// result removes secret values from what a job printed and from the error
// of its run, before anything is stored, shown or posted: a job may echo
// its own PVN_PARAM_ secrets. What is read from the output (getInfo's
// texts, structured fetch's messages) is redacted again once decoded.
func (r *redactor) result(res runner.Result, runErr error) (runner.Result, error) {
	if r.none() {
		return res, runErr
	}
	res.Stdout = r.bytes(res.Stdout)
	res.Stderr = r.bytes(res.Stderr)
	res.ExecError = r.string(res.ExecError)
	return res, r.err(runErr)
}

// redactResult is newRedactor(env).result(res, runErr).
func redactResult(res runner.Result, runErr error, env []runner.EnvVar) (runner.Result, error) {
	return newRedactor(env).result(res, runErr)
}
