package connector

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// A declared schema (spec.SchemaField) types the records of the text
// formats, and is the schema of the Parquet files the sink writes.
//
// In records, int is int64, double float64, bool bool, string string, bytes
// []byte and timestamp int64 milliseconds since the epoch: the engine has no
// time type, and event-time code (source.timestamp, windows) works in ms.
// Text formats write a timestamp as RFC 3339 in UTC and read RFC 3339 or
// epoch milliseconds, so what the sink writes the source reads back.
//
// A record that does not fit the schema is malformed: the source fails the
// read naming the file, the line and the field, and the sink fails the write
// naming the field, as the schemaless formats do for bad JSON. Dropping it
// would make results differ from the input without anyone noticing.

// schemaField is one checked field of a schema.
type schemaField struct {
	name     string
	typ      spec.FieldType
	nullable bool
}

// recordSchema is a checked schema; nil means no schema was declared.
type recordSchema []schemaField

// parseSchema checks a declared schema: names present and unique, known
// types. Paths in errors are relative to the schema list.
func parseSchema(fields []spec.SchemaField) (recordSchema, error) {
	if len(fields) == 0 {
		return nil, nil
	}
	out := make(recordSchema, 0, len(fields))
	seen := map[string]bool{}
	for i, f := range fields {
		if f.Name == "" {
			return nil, fmt.Errorf("schema[%d].name is empty", i)
		}
		if seen[f.Name] {
			return nil, fmt.Errorf("schema[%d].name %q is declared twice", i, f.Name)
		}
		seen[f.Name] = true
		if !knownFieldType(f.Type) {
			return nil, fmt.Errorf("schema[%d].type %q is unknown (want string, int, double, bool, timestamp or bytes)", i, f.Type)
		}
		out = append(out, schemaField{name: f.Name, typ: f.Type, nullable: f.Nullable})
	}
	return out, nil
}

func knownFieldType(t spec.FieldType) bool {
	switch t {
	case spec.TypeString, spec.TypeInt, spec.TypeDouble, spec.TypeBool, spec.TypeTimestamp, spec.TypeBytes:
		return true
	}
	return false
}

// names lists the field names in declared order.
func (s recordSchema) names() []string {
	out := make([]string, len(s))
	for i, f := range s {
		out[i] = f.name
	}
	return out
}

// conform loads the schema's fields of v through l into vals (len(s),
// in schema order) and converts them to their types. A missing or null
// field is null when nullable and an error otherwise.
func (s recordSchema) conform(l *fieldLoader, v any, vals []any) error {
	if !l.load(v, vals) {
		return fmt.Errorf("a record with a schema must be an object, got %s", value.TypeName(v))
	}
	for i, f := range s {
		x, err := f.convert(vals[i])
		if err != nil {
			return err
		}
		vals[i] = x
	}
	return nil
}

// record is a new record of conformed values (in schema order): a row of
// shape when it is set, else a map.
func (s recordSchema) record(vals []any, shape *rowShape) any {
	if shape != nil {
		r := value.NewRow(shape.schema)
		for i, j := range shape.at {
			r.Set(j, vals[i])
		}
		return r
	}
	m := make(map[string]any, len(s))
	for i, f := range s {
		m[f.name] = vals[i]
	}
	return m
}

// rowShape is the row form of a declared schema: its interned (sorted)
// schema, and at[i] the index in it of declared field i.
type rowShape struct {
	schema *value.Schema
	at     []int
}

// rowShape computes the row form once, for a sink or a source that builds
// rows of this schema (the names were checked distinct by parseSchema).
func (s recordSchema) rowShape() *rowShape {
	rs := &rowShape{schema: value.MustSchemaOf(s.names()...)}
	for _, f := range s {
		rs.at = append(rs.at, rs.schema.Index(f.name))
	}
	return rs
}

// fieldLoader reads the same fields out of every record, for the sinks
// and decoders that do: a map's by name, a row's by index, found once per
// row schema (the rows of a stream share one, so it is one pointer
// comparison per record). Not safe for concurrent use: one per writer or
// decoder.
type fieldLoader struct {
	names  []string
	schema *value.Schema // of the last row seen
	at     []int         // index in schema of names[i], or -1
}

func newFieldLoader(names []string) *fieldLoader { return &fieldLoader{names: names} }

// load stores field names[i] of v in vals[i] (nil when v has no such
// field), and reports whether v is a map value at all.
func (l *fieldLoader) load(v any, vals []any) bool {
	switch x := v.(type) {
	case map[string]any:
		for i, n := range l.names {
			vals[i] = x[n]
		}
		return true
	case *value.Row:
		if s := x.Schema(); s != l.schema {
			l.schema, l.at = s, l.at[:0]
			for _, n := range l.names {
				l.at = append(l.at, s.Index(n))
			}
		}
		for i, j := range l.at {
			if j >= 0 {
				vals[i] = x.At(j)
			} else {
				vals[i] = nil
			}
		}
		return true
	}
	return false
}

// exactInt is v as an int64 when that loses nothing: an int64, a uint64
// up to MaxInt64, or an integral double within 2^53.
func exactInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true
		}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), true
		}
	}
	return 0, false
}

// convert converts one dynamic value to the field's type. Only lossless
// conversions are made (an integral double to int, an int to double, an
// RFC 3339 string to a timestamp, base64 text to bytes); anything else is
// an error rather than a guess.
func (f schemaField) convert(v any) (any, error) {
	if v == nil {
		if f.nullable {
			return nil, nil
		}
		return nil, fmt.Errorf("field %q is required (not nullable) but missing or null", f.name)
	}
	bad := func() error {
		return fmt.Errorf("field %q: want %s, got %s %s", f.name, f.typ, value.TypeName(v), truncate(string(value.AppendJSON(nil, v)), 40))
	}
	// A value that has the field's type already is returned as it is:
	// boxing it again would allocate.
	switch f.typ {
	case spec.TypeString:
		if _, ok := v.(string); ok {
			return v, nil
		}
	case spec.TypeInt:
		if _, ok := v.(int64); ok {
			return v, nil
		}
		if x, ok := exactInt(v); ok {
			return x, nil
		}
	case spec.TypeDouble:
		switch x := v.(type) {
		case float64:
			return v, nil
		case int64:
			return float64(x), nil
		case uint64:
			return float64(x), nil
		}
	case spec.TypeBool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case spec.TypeTimestamp:
		if _, ok := v.(int64); ok {
			return v, nil
		}
		if x, ok := exactInt(v); ok {
			return x, nil
		}
		if x, ok := v.(string); ok {
			ms, err := parseTimestamp(x)
			if err != nil {
				return nil, fmt.Errorf("field %q: %w", f.name, err)
			}
			return ms, nil
		}
	case spec.TypeBytes:
		switch x := v.(type) {
		case []byte:
			return v, nil
		case string:
			// JSON has no bytes: they travel as base64 text, which is also
			// how the sinks write them.
			b, err := base64.StdEncoding.DecodeString(x)
			if err != nil {
				return nil, fmt.Errorf("field %q: bytes must be base64 text: %w", f.name, err)
			}
			return b, nil
		}
	}
	return nil, bad()
}

// parseCell converts one CSV cell. An empty cell is null for a nullable
// field; for a required string field it is the empty string.
func (f schemaField) parseCell(cell string) (any, error) {
	if cell == "" {
		if f.nullable {
			return nil, nil
		}
		if f.typ == spec.TypeString {
			return "", nil
		}
		return nil, fmt.Errorf("field %q is required (not nullable) but the cell is empty", f.name)
	}
	var err error
	switch f.typ {
	case spec.TypeString:
		return cell, nil
	case spec.TypeInt:
		var n int64
		if n, err = strconv.ParseInt(strings.TrimSpace(cell), 10, 64); err == nil {
			return n, nil
		}
	case spec.TypeDouble:
		var d float64
		if d, err = strconv.ParseFloat(strings.TrimSpace(cell), 64); err == nil {
			return d, nil
		}
	case spec.TypeBool:
		var b bool
		if b, err = strconv.ParseBool(strings.TrimSpace(cell)); err == nil {
			return b, nil
		}
	case spec.TypeTimestamp:
		var ms int64
		if ms, err = parseTimestamp(strings.TrimSpace(cell)); err == nil {
			return ms, nil
		}
	case spec.TypeBytes:
		var b []byte
		if b, err = base64.StdEncoding.DecodeString(cell); err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("field %q: %q is not a valid %s", f.name, truncate(cell, 40), f.typ)
}

// formatCell renders a conformed value as a CSV cell: a timestamp as RFC
// 3339, anything else as csvCell does.
func (f schemaField) formatCell(v any) string {
	if x, ok := v.(int64); ok && f.typ == spec.TypeTimestamp {
		return formatTimestamp(x)
	}
	return csvCell(v)
}

// parseTimestamp reads RFC 3339 (with or without fractional seconds) or
// integer epoch milliseconds.
func parseTimestamp(s string) (int64, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("timestamp %q is neither RFC 3339 nor epoch milliseconds", truncate(s, 40))
	}
	return t.UnixMilli(), nil
}

// formatTimestamp writes ms since the epoch as RFC 3339 in UTC with
// millisecond precision, which parseTimestamp reads back exactly.
func formatTimestamp(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
