package connector

import (
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/flinkjob/flinkjob/engine/value"
)

// Malformed records: a files or kafka source whose step sets
// source.malformedOutput emits a *Malformed in place of each record it
// cannot read, instead of failing the read. The reader's position moves
// past it as past any record, so it is emitted in the same read as the
// records around it and a restore neither repeats nor loses it. The
// source operator (operator.Source) turns it into the side output's
// record, {error, raw, location}, and counts it; a record is never
// dropped in silence.

// Malformed is a record a reader could not read.
type Malformed struct {
	// Err is the message the read would have failed with.
	Err string
	// Raw is the line or message value, as read.
	Raw []byte
	// Location is "<file>:<line>" or "<topic>/<partition>@<offset>".
	Location string
}

// malformedSchema is the shape of the side output's records.
var malformedSchema = value.MustSchemaOf("error", "raw", "location")

// MalformedRecord builds the side output's record: {error, raw, location},
// raw a string when it is valid UTF-8, else bytes; a row when rows is set
// (value.UseRows), else a map.
func MalformedRecord(errMsg string, raw []byte, location string, rows bool) any {
	var r any = string(raw)
	if raw == nil {
		r = nil
	} else if !utf8.Valid(raw) {
		r = append([]byte(nil), raw...)
	}
	if rows {
		row := value.NewRow(malformedSchema)
		row.Set(malformedSchema.Index("error"), errMsg)
		row.Set(malformedSchema.Index("raw"), r)
		row.Set(malformedSchema.Index("location"), location)
		return row
	}
	return map[string]any{"error": errMsg, "raw": r, "location": location}
}

// Locator is implemented by readers that can say where the value they
// emitted last came from and what it was before decoding, for a record
// that fails later in the source (its timestamp expression). It is called
// during emit only.
type Locator interface {
	Locate() (raw []byte, location string)
}

// malformedError is a decoder's error for one record it cannot read when
// the rest of the input can still be read. Its message is the one the
// read fails with when the source does not route malformed records.
type malformedError struct {
	err  error
	raw  string
	line int
}

func (e *malformedError) Error() string { return e.err.Error() }
func (e *malformedError) Unwrap() error { return e.err }

// malformedAt returns the Malformed for err when err is one record's and
// route is set; nil means the read fails with err.
func malformedAt(err error, route bool, url string) *Malformed {
	var me *malformedError
	if !route || !errors.As(err, &me) {
		return nil
	}
	return &Malformed{Err: me.Error(), Raw: []byte(me.raw), Location: url + ":" + strconv.Itoa(me.line)}
}
