// Package value defines the record that flows through the engine and the
// dynamic values it carries: nil, bool, int64, uint64, float64, string,
// []byte, []any and map[string]any (the JSON data model plus 64-bit integers
// and bytes, which is what CEL expressions read and produce), and *Row, the
// other form of a map: the same fields by index under a shared schema
// (row.go), which sources, CEL map literals, aggregates and the binary
// decoder build while UseRows is on (FLINKJOB_ROWS=0 turns it off). It also
// holds the compact binary encoding used for everything that crosses a
// shuffle or goes to storage.
package value

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
)

// NoTimestamp marks a record without an event-time timestamp.
const NoTimestamp = math.MinInt64

// MaxWatermark is the watermark that says event time has ended
// (Flink's Watermark.MAX_WATERMARK).
const MaxWatermark = math.MaxInt64

// MinWatermark is the watermark before any record.
const MinWatermark = math.MinInt64

// Record is one element of a stream.
type Record struct {
	// Value is the payload: one of the dynamic types of this package.
	Value any
	// Key is the record's key after a keyBy (nil when KeyID is empty).
	Key any
	// KeyID is the canonical encoding of Key; empty for records not keyed.
	// It is what keyed state, hash partitioning and sorting use.
	KeyID string
	// Ts is the event-time timestamp in ms, or NoTimestamp.
	Ts int64
}

// WithKey sets Key and KeyID from a key value.
func (r *Record) WithKey(k any) {
	r.Key = k
	r.KeyID = KeyID(k)
}

// KeyID is the canonical encoding of a key: equal keys give equal IDs.
func KeyID(k any) string {
	return string(Append(nil, k))
}

// FromJSON parses one JSON value (whitespace around it allowed) into a
// dynamic value: integers as int64 (uint64, float64 past its range),
// objects as map[string]any (a JSONDecoder builds rows when UseRows is on).
// See json.go.
func FromJSON(raw []byte) (any, error) {
	return fromJSON(raw) // json.go
}

// Normalize converts Go values (json.Number, int, float32, []string, typed
// maps...) into this package's dynamic types. Unknown types become strings
// through fmt so nothing is silently lost.
func Normalize(v any) any {
	switch x := v.(type) {
	case nil, bool, int64, uint64, float64, string, []byte:
		return x
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i
		}
		if u, err := strconv.ParseUint(string(x), 10, 64); err == nil {
			return u
		}
		f, _ := x.Float64()
		return f
	case int:
		return int64(x)
	case int32:
		return int64(x)
	case int16:
		return int64(x)
	case int8:
		return int64(x)
	case uint:
		return uint64(x)
	case uint32:
		return uint64(x)
	case uint16:
		return uint64(x)
	case uint8:
		return uint64(x)
	case float32:
		return float64(x)
	case []any:
		// Write back only what changes: an already normalized value is
		// left untouched (no writes, no write barriers, no map rehash).
		for i, e := range x {
			if n, changed := normalizeIn(e); changed {
				x[i] = n
			}
		}
		return v // not x: boxing the slice again would allocate
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	case map[string]any:
		for k, e := range x {
			if n, changed := normalizeIn(e); changed {
				x[k] = n
			}
		}
		return x
	case *Row:
		for i, e := range x.vals {
			if n, changed := normalizeIn(e); changed {
				x.vals[i] = n
			}
		}
		return x
	case map[string]string:
		out := make(map[string]any, len(x))
		for k, s := range x {
			out[k] = s
		}
		return out
	default:
		return fmt.Sprint(x)
	}
}

// normalizeIn normalizes e, an element of a list or map, and reports
// whether the container must store the result: scalars of this package's
// types are already normalized, and lists and maps are normalized in
// place, so only other types (json.Number, int, typed slices...) change.
func normalizeIn(e any) (any, bool) {
	switch e.(type) {
	case nil, bool, int64, uint64, float64, string, []byte:
		return e, false
	case []any, map[string]any, *Row:
		Normalize(e)
		return e, false
	}
	return Normalize(e), true
}

// ToJSON renders a value as JSON with map keys sorted (so output is
// deterministic). Bytes become base64 strings; NaN and infinities become null.
func ToJSON(v any) []byte {
	return AppendJSON(nil, v)
}

// AppendJSON appends the JSON form of v to b.
func AppendJSON(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, x)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case uint64:
		return strconv.AppendUint(b, x, 10)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return append(b, "null"...)
		}
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			// Keep a decimal point so the value reads back as a double.
			return strconv.AppendFloat(b, x, 'f', 1, 64)
		}
		return strconv.AppendFloat(b, x, 'g', -1, 64)
	case string:
		return appendJSONString(b, x)
	case []byte:
		return appendJSONString(b, base64.StdEncoding.EncodeToString(x))
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendJSON(b, e)
		}
		return append(b, ']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = AppendJSON(b, x[k])
		}
		return append(b, '}')
	case *Row:
		b = append(b, '{')
		for i, f := range x.vals {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, x.schema.names[i])
			b = append(b, ':')
			b = AppendJSON(b, f)
		}
		return append(b, '}')
	default:
		return appendJSONString(b, fmt.Sprint(x))
	}
}

func appendJSONString(b []byte, s string) []byte {
	simple := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			simple = false
			break
		}
	}
	if simple {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	enc, _ := json.Marshal(s)
	return append(b, enc...)
}

// Compare orders two values of comparable kinds: numbers (ints, uints and
// doubles compare by value), strings, bytes and bools. It reports an error
// for other kinds or mixed kinds, which min/max turn into a clear job error.
func Compare(a, b any) (int, error) {
	switch x := a.(type) {
	case int64:
		switch y := b.(type) {
		case int64:
			return cmp3(x < y, x > y), nil
		case uint64:
			if x < 0 {
				return -1, nil
			}
			return cmp3(uint64(x) < y, uint64(x) > y), nil
		case float64:
			return cmpFloat(float64(x), y), nil
		}
	case uint64:
		switch y := b.(type) {
		case uint64:
			return cmp3(x < y, x > y), nil
		case int64:
			if y < 0 {
				return 1, nil
			}
			return cmp3(x < uint64(y), x > uint64(y)), nil
		case float64:
			return cmpFloat(float64(x), y), nil
		}
	case float64:
		switch y := b.(type) {
		case float64:
			return cmpFloat(x, y), nil
		case int64:
			return cmpFloat(x, float64(y)), nil
		case uint64:
			return cmpFloat(x, float64(y)), nil
		}
	case string:
		if y, ok := b.(string); ok {
			return cmp3(x < y, x > y), nil
		}
	case []byte:
		if y, ok := b.([]byte); ok {
			return bytes.Compare(x, y), nil
		}
	case bool:
		if y, ok := b.(bool); ok {
			return cmp3(!x && y, x && !y), nil
		}
	}
	return 0, fmt.Errorf("cannot compare %s with %s", TypeName(a), TypeName(b))
}

func cmp3(less, greater bool) int {
	switch {
	case less:
		return -1
	case greater:
		return 1
	}
	return 0
}

func cmpFloat(x, y float64) int { return cmp3(x < y, x > y) }

// TypeName names a value's kind for error messages.
func TypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case int64:
		return "int"
	case uint64:
		return "uint"
	case float64:
		return "double"
	case string:
		return "string"
	case []byte:
		return "bytes"
	case []any:
		return "list"
	case map[string]any, *Row:
		return "map"
	}
	return fmt.Sprintf("%T", v)
}

// ToFloat converts a number to float64.
func ToFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}
