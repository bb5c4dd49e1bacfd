package plan

import (
	"fmt"
	"strings"
)

// FieldError is one problem in a job, located by its field path in the
// manifest (e.g. spec.steps[2].reduce) so users find it at once.
type FieldError struct {
	Path string
	Msg  string
}

func (e FieldError) Error() string { return e.Path + ": " + e.Msg }

// ValidationError lists every problem found in a job.
type ValidationError struct {
	Errors []FieldError
}

func (v *ValidationError) Error() string {
	if len(v.Errors) == 1 {
		return "invalid job: " + v.Errors[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid job: %d problems:", len(v.Errors))
	for _, e := range v.Errors {
		b.WriteString("\n  - ")
		b.WriteString(e.Error())
	}
	return b.String()
}

type errList struct {
	errs []FieldError
}

// add records a problem. An identical problem (same path and message) is
// recorded once: several consumers of one keyBy step, for example, would
// otherwise each report its bad expression.
func (l *errList) add(path, format string, args ...any) {
	e := FieldError{Path: path, Msg: fmt.Sprintf(format, args...)}
	for _, o := range l.errs {
		if o == e {
			return
		}
	}
	l.errs = append(l.errs, e)
}

func (l *errList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	return &ValidationError{Errors: l.errs}
}
