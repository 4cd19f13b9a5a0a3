package config

import (
	"cmp"
	"errors"
	"slices"
	"strings"
)

// Severity says whether a problem makes a config invalid.
type Severity string

const (
	// SeverityError, the zero value, makes the config invalid.
	SeverityError Severity = ""
	// SeverityWarning is reported but does not make the config invalid:
	// something accepted and ignored, or a default taken in place of what
	// was written.
	SeverityWarning Severity = "warning"
)

// IsWarning reports whether s is SeverityWarning.
func (s Severity) IsWarning() bool { return s == SeverityWarning }

// Error is one problem in a config, at the position of the offending key.
// Warnings are Errors of SeverityWarning; they are carried apart from the
// errors (Set.Warnings), never in the error a load or Validate returns.
type Error struct {
	Pos      Pos
	Msg      string
	Severity Severity
}

// Error is "path:line:col: message", or "path:line:col: warning: message".
func (e *Error) Error() string {
	if e.Severity.IsWarning() {
		return e.Pos.String() + ": warning: " + e.Msg
	}
	return e.Pos.String() + ": " + e.Msg
}

// Errors is every problem found, sorted by file, line and column. Its Error
// method prints one problem per line.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Combine merges the Errors found in errs (as by errors.As) into one sorted
// Errors without duplicates. nil errors are skipped; it returns nil when
// nothing is left. An error that holds no Errors is joined as it is.
func Combine(errs ...error) error {
	var all Errors
	var other []error
	for _, err := range errs {
		if err == nil {
			continue
		}
		var es Errors
		if errors.As(err, &es) {
			all = append(all, es...)
			continue
		}
		var e *Error
		if errors.As(err, &e) {
			all = append(all, e)
			continue
		}
		other = append(other, err)
	}
	all = all.sorted()
	switch {
	case len(other) > 0 && len(all) > 0:
		return errors.Join(append(other, all)...)
	case len(other) > 0:
		return errors.Join(other...)
	case len(all) > 0:
		return all
	}
	return nil
}

// sorted returns the errors ordered by position then message, with exact
// duplicates removed.
func (es Errors) sorted() Errors {
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col),
			cmp.Compare(a.Msg, b.Msg),
			cmp.Compare(a.Severity, b.Severity),
		)
	})
	return slices.CompactFunc(es, func(a, b *Error) bool { return *a == *b })
}

// orNil returns the sorted errors, or nil when there are none, so that a
// nil error interface is returned rather than an empty Errors.
func (es Errors) orNil() error {
	if len(es) == 0 {
		return nil
	}
	return es.sorted()
}
