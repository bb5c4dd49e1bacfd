package value

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

// stdFromJSON is FromJSON as it was before json.go: encoding/json's Decoder
// with UseNumber, then Normalize. It is the reference the parser is held to.
func stdFromJSON(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after JSON value")
	}
	return Normalize(v), nil
}

// refFromJSON is stdFromJSON, strict about trailing data: Decoder.More
// says false before ']' and '}', so stdFromJSON took `1]` or `{}}x` as
// their first value; the parser rejects anything after the value, as
// json.Unmarshal and json.Valid do.
func refFromJSON(raw []byte) (any, error) {
	v, err := stdFromJSON(raw)
	if err == nil && !json.Valid(raw) {
		return nil, errors.New("trailing data after JSON value")
	}
	return v, err
}

var jsonCases = []string{
	// scalars and whitespace
	`null`, `true`, `false`, ` true `, "\t\r\n1\n", `""`, `"a"`,
	// numbers: what Normalize makes of a json.Number
	`0`, `-0`, `1`, `-1`, `1.0`, `-0.0`, `1e3`, `1E3`, `1e+3`, `1e-3`, `0.5`, `-0.5e-2`,
	`123456789012345678`, `1234567890123456789`, `-1234567890123456789`,
	`9223372036854775807`, `9223372036854775808`, `-9223372036854775808`, `-9223372036854775809`,
	`18446744073709551615`, `18446744073709551616`, `-18446744073709551616`,
	`1e400`, `-1e400`, `1e-400`, `4.9e-324`, `1.7976931348623157e308`, `0.1`, `123.456e7`,
	`00`, `01`, `-`, `-a`, `+1`, `.5`, `1.`, `1.e3`, `1e`, `1e+`, `0x10`, `1_000`, `--1`, `1.5.`, `Infinity`, `NaN`,
	// strings: escapes, surrogates, invalid UTF-8, control characters
	`"\"\\\/\b\f\n\r\t"`, `"\u0041\u00e9\u20ac"`, `"\ud83d\ude00"`, `"\uD83D\uDE00"`,
	`"\ud83d"`, `"\ude00"`, `"\ud83dx"`, `"\ud83d\u0041"`, `"\ud83d\ud83d\ude00"`, `"\ude00\ud83d"`,
	`"\ud83d\"`, `"\ud83d\\"`, `"\u12"`, `"\u12g4"`, `"\x"`, `"\'"`, `"\`, `"abc`, `"\u"`,
	"\"\xff\"", "\"a\xc3\"", "\"\xc3\xa9\"", "\"\xed\xa0\x80\"", "\"\xef\xbf\xbd\"", "\"\xf4\x90\x80\x80\"",
	"\"\x00\"", "\"\x1f\"", "\"\x7f\"", "\"a\tb\"", "\"\u2028\"",
	// literals
	`nul`, `nulll`, `tru`, `truex`, `fals`, `True`, `null null`,
	// arrays
	`[]`, `[ ]`, `[1]`, `[1,2,3]`, `[1,]`, `[,1]`, `[1 2]`, `[`, `]`, `[[[]]]`, `[null,true,"x",{}]`,
	// objects, duplicate keys, escaped keys
	`{}`, `{ }`, `{"a":1}`, `{"b":1,"a":2}`, `{"a":1,"a":2}`, `{"a":1,"b":2,"a":3}`, `{"a":{"a":{"a":1}}}`,
	`{"\u0061":1,"a":2}`, "{\"\xff\":1,\"\xfe\":2}", `{"a" : 1 , "b" : [ 1 , { "c" : null } ] }`,
	`{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{1:2}`, `{"a":1 "b":2}`, `{"a";1}`, `{`, `{"a":1`, `{'a':1}`,
	// trailing data
	`1 2`, `{} {}`, `[] x`, `"a" "b"`, `1]`, `{}}`, `[]]`, `1 ]`, `{"a":1}}garbage`, `1,`, `1x`,
	// empty and odd input
	``, ` `, "\n", "\ufeff1", "\x00", `/* */1`,
}

func TestFromJSONMatchesEncodingJSON(t *testing.T) {
	inputs := append([]string(nil), jsonCases...)
	inputs = append(inputs, strings.Repeat("[", 10000)+strings.Repeat("]", 10000),
		strings.Repeat("[", 10001)+strings.Repeat("]", 10001),
		strings.Repeat(`{"a":`, 10000)+"1"+strings.Repeat("}", 10000),
		strings.Repeat(`{"a":`, 10001)+"1"+strings.Repeat("}", 10001),
		wideObject(64, 0), wideObject(65, 0), wideObject(70, 10), wideObject(200, 150))
	for _, rows := range []bool{false, true} {
		d := newJSONDecoder(rows)
		for _, in := range inputs {
			checkFromJSON(t, d, rows, []byte(in))
		}
	}
}

// wideObject is an object of n members, the last dup of them repeating
// earlier keys.
func wideObject(n, dup int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		k := i
		if i >= n-dup {
			k = i - (n - dup)
		}
		fmt.Fprintf(&b, `"k%03d":%d`, k, i)
	}
	b.WriteByte('}')
	return b.String()
}

func newJSONDecoder(rows bool) *JSONDecoder {
	saved := UseRows
	defer func() { UseRows = saved }()
	UseRows = rows
	return NewJSONDecoder()
}

// TestJSONDecoderKeepsItsForm: a decoder keeps the form UseRows had when
// it was made (NewJSONDecoder) or first used (the zero value).
func TestJSONDecoderKeepsItsForm(t *testing.T) {
	saved := UseRows
	defer func() { UseRows = saved }()
	for _, rows := range []bool{false, true} {
		UseRows = rows
		made := NewJSONDecoder()
		var zero JSONDecoder
		if _, err := zero.Decode([]byte(`1`)); err != nil {
			t.Fatal(err)
		}
		UseRows = !rows
		for _, d := range []*JSONDecoder{made, &zero} {
			v, err := d.Decode([]byte(`{"a":1}`))
			if _, isRow := v.(*Row); err != nil || isRow != rows {
				t.Fatalf("decoder made with rows=%v gives %T, %v", rows, v, err)
			}
		}
	}
}

// checkFromJSON parses in with FromJSON and with d (whose caches have seen
// every earlier input), rows on or off, and requires both to fail exactly
// when the reference fails and otherwise to give its value: DeepEqual
// through Plain, floats bit for bit, objects as rows when rows are on.
func checkFromJSON(t *testing.T, d *JSONDecoder, rows bool, in []byte) {
	t.Helper()
	want, wantErr := refFromJSON(in)
	saved := UseRows
	UseRows = rows
	got, err := FromJSON(in)
	UseRows = saved
	got2, err2 := d.Decode(in)
	for i, g := range []struct {
		v   any
		err error
	}{{got, err}, {got2, err2}} {
		name := []string{"FromJSON", "JSONDecoder"}[i]
		rows := rows && i == 1 // FromJSON builds maps
		if (g.err != nil) != (wantErr != nil) {
			t.Fatalf("rows=%v %s(%q): error %v, encoding/json's %v", rows, name, trunc(in), g.err, wantErr)
		}
		if g.err != nil {
			var je *JSONError
			if !errors.As(g.err, &je) || je.Offset < 0 || je.Offset > len(in) || !strings.Contains(g.err.Error(), " at offset ") {
				t.Fatalf("rows=%v %s(%q): error %v names no offset in the input", rows, name, trunc(in), g.err)
			}
			continue
		}
		if p := Plain(g.v); !reflect.DeepEqual(p, want) || !equalPlain(p, want) {
			t.Fatalf("rows=%v %s(%q) = %#v, encoding/json gives %#v", rows, name, trunc(in), p, want)
		}
		if rows && jsonHasMap(g.v) {
			t.Fatalf("rows=%v %s(%q) = %#v: an object that should be a row is a map", rows, name, trunc(in), g.v)
		}
		if !rows && hasRow(g.v) {
			t.Fatalf("rows=%v %s(%q) = %#v holds a row", rows, name, trunc(in), g.v)
		}
	}
}

func trunc(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}

// jsonHasMap reports whether v holds a map the parser should have made a
// row: of at most maxRowFields fields while the schema table is less than
// half full (past that, a new shape may stay a map: codec.go's schemaOf).
func jsonHasMap(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		if len(x) <= maxRowFields && interned.Load() < maxInterned/2 {
			return true
		}
		for _, e := range x {
			if jsonHasMap(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if jsonHasMap(e) {
				return true
			}
		}
	case *Row:
		for _, e := range x.Values() {
			if jsonHasMap(e) {
				return true
			}
		}
	}
	return false
}

func hasRow(v any) bool {
	switch x := v.(type) {
	case *Row:
		return true
	case []any:
		for _, e := range x {
			if hasRow(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if hasRow(e) {
				return true
			}
		}
	}
	return false
}

// TestFromJSONValues pins what the parser gives, independently of
// encoding/json.
func TestFromJSONValues(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{`-0`, int64(0)},
		{`1.0`, 1.0},
		{`1e3`, 1000.0},
		{`-0.0`, math.Copysign(0, -1)},
		{`9223372036854775808`, uint64(1 << 63)},
		{`18446744073709551616`, 18446744073709551616.0},
		{`-9223372036854775809`, -9223372036854775809.0},
		{`1e400`, math.Inf(1)},
		{`"\ud83d\ude00"`, "\U0001F600"},
		{`"\ud83d\u0041"`, "\uFFFDA"},
		{"\"a\xffb\"", "a\uFFFDb"},
		{"\"\xed\xa0\x80\"", "\uFFFD\uFFFD\uFFFD"},
		{`{"a":1,"a":2}`, map[string]any{"a": int64(2)}},
		{`[{}, []]`, []any{map[string]any{}, []any{}}},
	} {
		for _, rows := range []bool{false, true} {
			v, err := newJSONDecoder(rows).Decode([]byte(tc.in))
			if err != nil || !equalPlain(Plain(v), tc.want) || !reflect.DeepEqual(Plain(v), tc.want) {
				t.Errorf("rows=%v: %s = %#v, %v; want %#v", rows, tc.in, v, err, tc.want)
			}
		}
	}
}

func TestFromJSONErrors(t *testing.T) {
	for _, tc := range []struct {
		in, msg string
	}{
		{`{"a":1} x`, "trailing data after JSON value at offset 8"},
		{`{"a":1}]`, "trailing data after JSON value at offset 7"},
		{`{"a":tru}`, `invalid character '}' in literal true at offset 8`},
		{`[1,2`, "unexpected end of input after an array element at offset 4"},
		{"\"a\x01\"", `invalid character '\x01' (a control character) in a string at offset 2`},
		{`"\q"`, `invalid character 'q' in a string escape at offset 2`},
		{``, "unexpected end of input looking for the beginning of a value at offset 0"},
		{strings.Repeat("[", 10001), "nesting deeper than 10000 at offset 10000"},
	} {
		_, err := FromJSON([]byte(tc.in))
		if err == nil || err.Error() != tc.msg {
			t.Errorf("FromJSON(%q): error %v, want %q", trunc([]byte(tc.in)), err, tc.msg)
		}
	}
}

// TestFromJSONShapes feeds one decoder objects of several shapes, key
// orders, missing, extra and repeated keys at several depths, so shapes are
// remembered, matched, half matched and replaced, and checks every value.
func TestFromJSONShapes(t *testing.T) {
	docs := []string{
		`{"b":1,"a":2,"c":{"y":1,"x":2}}`,
		`{"b":3,"a":4,"c":{"y":3,"x":4}}`,
		`{"b":5,"a":6,"c":{"x":5,"y":6}}`,
		`{"b":7,"a":8}`,
		`{"b":9,"a":10,"c":{"y":1,"x":2},"d":0}`,
		`{"b":9,"a":10,"b":11}`,
		`{"b":1,"a":2,"c":{"y":1,"x":2}}`,
		`{"a":1,"b":2}`,
		`{"b":1}`,
		`{"e":1}`, `{"f":1}`, `{"g":1}`, `{"h":1}`, `{"i":1}`,
		`{"b":1,"a":2,"c":{"y":1,"x":2}}`,
		`[{"b":1,"a":2},{"b":3,"a":4},{"b":5,"z":6},{"b":7,"a":8}]`,
		`{"\u0062":1,"a":2,"c":{"y":1,"x":2}}`,
		`{"b":1,"a":2,"c":{"y":1,"x":2,"y":3}}`,
	}
	for _, rows := range []bool{false, true} {
		d := newJSONDecoder(rows)
		for range 3 {
			for _, doc := range docs {
				checkFromJSON(t, d, rows, []byte(doc))
			}
		}
	}
	// Same-shaped objects share the schema.
	d := newJSONDecoder(true)
	v1, _ := d.Decode([]byte(`{"x":1,"w":2}`))
	v2, _ := d.Decode([]byte(`{"x":3,"w":4}`))
	r1, ok1 := v1.(*Row)
	r2, ok2 := v2.(*Row)
	if !ok1 || !ok2 || r1.Schema() != r2.Schema() || r1.Schema() != MustSchemaOf("w", "x") {
		t.Fatalf("rows of one shape: %#v %#v", v1, v2)
	}
	if r2.vals[0] != int64(4) || r2.vals[1] != int64(3) {
		t.Fatalf("second row %v", r2)
	}
}

// FuzzFromJSON holds the parser to encoding/json + Normalize on any input:
// it fails exactly when they do (refFromJSON) and otherwise gives their
// value, with rows off and on, through FromJSON and through decoders whose
// caches see every input of the fuzzing process.
func FuzzFromJSON(f *testing.F) {
	for _, c := range jsonCases {
		f.Add([]byte(c))
	}
	for _, c := range benchJSON {
		f.Add([]byte(c.doc))
	}
	maps, rows := newJSONDecoder(false), newJSONDecoder(true)
	f.Fuzz(func(t *testing.T, in []byte) {
		checkFromJSON(t, maps, false, in)
		checkFromJSON(t, rows, true, in)
	})
}

var benchJSON = []struct{ name, doc string }{
	{"bid", `{"auction":1017,"bidder":2291,"price":6543210,"channel":"channel-4123","url":"https://www.nexmark.com/kc/oiw/item.htm?query=1&channel_id=1610612736","dateTime":1690000001234,"extra":"bnpkvtxsuhe"}`},
	{"nested", `{"event_type":1,"person":null,"auction":{"id":1042,"itemName":"lpr kzq","description":"tkqbfnmy ujdi","initialBid":1523,"reserve":2880,"dateTime":1690000001234,"expires":1690000011234,"seller":1077,"category":11,"extra":""},"bid":null}`},
	{"sensor", `{"sensor_id":"s-0117","ts":"2024-05-01T12:00:03.250Z","temperature":21.75,"humidity":0.4375,"ok":true,"location":{"lat":52.5208,"lon":13.4094},"tags":["roof","north"]}`},
}

// BenchmarkFromJSON compares encoding/json + Normalize (old) with FromJSON
// (pooled parsers) and a kept JSONDecoder with rows off and on, on three
// kinds of record.
// Run with -count to alternate them.
func BenchmarkFromJSON(b *testing.B) {
	for _, c := range benchJSON {
		doc := []byte(c.doc)
		b.Run(c.name+"/old", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				if _, err := stdFromJSON(doc); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/FromJSON", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				if _, err := FromJSON(doc); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, rows := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/Decoder/rows=%v", c.name, rows), func(b *testing.B) {
				d := newJSONDecoder(rows)
				b.ReportAllocs()
				b.SetBytes(int64(len(doc)))
				for b.Loop() {
					if _, err := d.Decode(doc); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
