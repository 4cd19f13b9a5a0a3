package runner

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
)

// Redacted replaces a secret's value wherever a job printed it.
const Redacted = "[redacted]"

// MinSecretLength is the fewest characters a secret value may have (SPEC
// §8): a shorter one cannot be redacted without destroying the output.
const MinSecretLength = 4

// Redactor replaces the values of a job's sensitive variables, in the
// forms a job is likely to print them: as they are, JSON- and Go-quoted,
// base64 and URL-encoded.
type Redactor struct {
	forms []string // longest first, so that a secret containing another is replaced whole
}

// NewRedactor redacts the sensitive values of env. A value shorter than
// MinSecretLength (a secret is never that short; a value derived from one
// may be) is left alone: replacing it would destroy the output and hide
// nothing.
func NewRedactor(env []EnvVar) *Redactor {
	r := &Redactor{}
	for _, v := range env {
		if !v.Sensitive || utf8.RuneCountInString(v.Value) < MinSecretLength {
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

// None reports whether there is nothing to redact.
func (r *Redactor) None() bool { return len(r.forms) == 0 }

// Bytes is b with every form of every value replaced.
func (r *Redactor) Bytes(b []byte) []byte {
	for _, f := range r.forms {
		if bytes.Contains(b, []byte(f)) {
			b = bytes.ReplaceAll(b, []byte(f), []byte(Redacted))
		}
	}
	return b
}

// String is s with every form of every value replaced.
func (r *Redactor) String(s string) string {
	for _, f := range r.forms {
		s = strings.ReplaceAll(s, f, Redacted)
	}
	return s
}

// Err is err with its message redacted.
func (r *Redactor) Err(err error) error {
	if err == nil || r.None() {
		return err
	}
	if msg := r.String(err.Error()); msg != err.Error() {
		return errors.New(msg)
	}
	return err
}

// Result removes secret values from what a job printed and from the error
// of its run, before anything is stored, shown or posted: a job may echo
// its own PVN_PARAM_ secrets. What is read from the output (getInfo's
// texts, structured fetch's messages) is redacted again once decoded.
func (r *Redactor) Result(res Result, runErr error) (Result, error) {
	if r.None() {
		return res, runErr
	}
	res.Stdout = r.Bytes(res.Stdout)
	res.Stderr = r.Bytes(res.Stderr)
	res.ExecError = r.String(res.ExecError)
	return res, r.Err(runErr)
}
