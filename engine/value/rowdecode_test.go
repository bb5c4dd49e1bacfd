package value

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// rowDecoder is a Decoder that decodes maps into rows whatever UseRows
// says, so the tests of both forms run in either suite.
func rowDecoder() *Decoder {
	d := new(Decoder)
	d.init().rows = true
	return d
}

// hasMap reports whether v holds a map[string]any at any depth that the
// rows decoder should have made a row: one of at most maxRowFields fields
// while the schema table has room (past it, new shapes stay maps).
func hasMap(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		if len(x) <= maxRowFields && interned.Load() < maxInterned {
			return true
		}
		for _, e := range x {
			if hasMap(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if hasMap(e) {
				return true
			}
		}
	case *Row:
		for _, e := range x.Values() {
			if hasMap(e) {
				return true
			}
		}
	}
	return false
}

// checkRowDecode decodes enc as rows (without and with a Decoder's caches)
// and as maps, and requires the rows to be the maps: equal through Plain,
// no map left in them, the same bytes consumed, and re-encoding (by
// Append and by an Encoder) to exactly the bytes they came from.
func checkRowDecode(t *testing.T, d *Decoder, enc []byte) {
	t.Helper()
	want, wrest, werr := decode(enc, 0, nil)
	for name, dec := range map[string]func([]byte) (any, []byte, error){
		"rowsCtx": func(b []byte) (any, []byte, error) { return decode(b, 0, &rowsCtx) },
		"Decoder": d.Decode,
	} {
		got, rest, err := dec(enc)
		if (err == nil) != (werr == nil) {
			t.Fatalf("%s: rows give error %v, maps %v (bytes %x)", name, err, werr, enc)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: error does not wrap ErrCorrupt: %v", name, err)
			}
			continue
		}
		if len(rest) != len(wrest) {
			t.Fatalf("%s: rows leave %d bytes, maps %d", name, len(rest), len(wrest))
		}
		if !equalValues(got, want) {
			t.Fatalf("%s: rows %v differ from maps %v", name, got, want)
		}
		used := enc[:len(enc)-len(rest)]
		if again := Append(nil, got); !bytes.Equal(again, used) {
			t.Fatalf("%s: row re-encodes to %x, not %x", name, again, used)
		}
		var e Encoder
		if again := e.Append(nil, got); !bytes.Equal(again, used) {
			t.Fatalf("%s: Encoder re-encodes the row to %x, not %x", name, again, used)
		}
		if hasMap(got) {
			t.Fatalf("%s: a map left in %#v", name, got)
		}
	}
}

// Every round-trip case decodes into rows that are its maps, through one
// Decoder (whose schema caches see all the shapes, twice) and without one.
func TestDecodeRows(t *testing.T) {
	d := rowDecoder()
	for round := 0; round < 2; round++ {
		for _, tc := range roundTripCases {
			checkRowDecode(t, d, Append(nil, tc.v))
		}
	}
}

// A Decoder's schema caches give the right schema whatever the order of
// shapes: the same fields again (a hit), the same number of other fields
// (differing at the first field, in the middle, at the last), alternating
// shapes, shapes nested in lists and maps at several depths, maps too
// wide or too deep for the per-depth cache, and the empty map.
func TestDecoderRowShapes(t *testing.T) {
	wide := map[string]any{}
	for i := range 20 {
		wide[fmt.Sprintf("w%02d", i)] = int64(i)
	}
	deep := any(map[string]any{"leaf": int64(1)})
	for i := 0; i < 6; i++ {
		deep = map[string]any{"d": deep, "n": int64(i)}
	}
	var values []any
	for i := 0; i < 40; i++ {
		values = append(values,
			map[string]any{"a": int64(i), "b": "x", "c": nil},
			map[string]any{"a": int64(i), "b": "x", "c": nil},
			map[string]any{"a": int64(i), "b": "x", "d": true}, // differs at the last field
			map[string]any{"a": int64(i), "bb": "x", "c": nil}, // in the middle
			map[string]any{"0": int64(i), "b": "x", "c": nil},  // at the first
			map[string]any{"a": int64(i), "b": "x", "c": 1.5},  // the first shape again
			map[string]any{"a": map[string]any{"a": int64(i), "b": "y", "c": nil}, "z": []any{map[string]any{"a": nil, "b": nil, "c": nil}}},
			map[string]any{},
			[]any{map[string]any{}, map[string]any{"k": int64(i)}, map[string]any{"j": int64(i)}},
			wide, deep,
			map[string]any{"x": map[string]any{"y": map[string]any{"z": map[string]any{"w": map[string]any{"v": int64(i)}}}}},
		)
	}
	d := rowDecoder()
	for _, v := range values {
		checkRowDecode(t, d, Append(nil, v))
		r := Record{Value: v, Ts: 5}
		r.WithKey(v)
		body := AppendRecord(nil, &r)
		var got Record
		if err := d.DecodeRecord(body, &got); err != nil {
			t.Fatal(err)
		}
		if !equalRecords(&got, &r) || hasMap(got.Value) || hasMap(got.Key) || got.KeyID != r.KeyID {
			t.Fatalf("record %+v decoded to %+v", r, got)
		}
		if !bytes.Equal(AppendRecord(nil, &got), body) {
			t.Fatal("a decoded record with rows re-encodes differently")
		}
	}
}

// Decoded rows of one shape share one interned schema, and a hit builds
// the row with one allocation: no field name strings, no map.
func TestDecoderRowHitAllocatesOnce(t *testing.T) {
	d := rowDecoder()
	in := Record{Value: map[string]any{"auction": int64(7), "bidder": int64(8), "channel": "Google", "ok": true, "n": nil}, Ts: 1}
	in.WithKey(int64(7))
	body := AppendRecord(nil, &in)
	var first, r Record
	if err := d.DecodeRecord(body, &first); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		r = Record{}
		if err := d.DecodeRecord(body, &r); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Fatalf("%v allocations decoding a row of a known shape, want 1", n)
	}
	a, b := first.Value.(*Row), r.Value.(*Row)
	if a.Schema() != b.Schema() || a.Schema() != MustSchemaOf("auction", "bidder", "channel", "ok", "n") {
		t.Fatal("rows of one shape do not share the interned schema")
	}
	if a == b {
		t.Fatal("two decodes share one row")
	}
}

// A row decoder keeps the strictness of the map decoder on the bytes
// where only a row's caches could let something through: keys out of
// order or repeated after a prefix of a remembered schema.
func TestDecoderRowStrict(t *testing.T) {
	d := rowDecoder()
	checkRowDecode(t, d, Append(nil, map[string]any{"a": nil, "b": nil, "c": nil}))
	for _, b := range [][]byte{
		{tagMap, 3, 1, 'a', tagNil, 1, 'a', tagNil, 1, 'c', tagNil}, // repeats the remembered first name
		{tagMap, 3, 1, 'a', tagNil, 1, 'b', tagNil, 1, 'b', tagNil}, // repeats the remembered second
		{tagMap, 3, 1, 'a', tagNil, 1, 'c', tagNil, 1, 'b', tagNil}, // leaves the schema, then descends
		{tagMap, 3, 1, 'b', tagNil, 1, 'a', tagNil, 1, 'c', tagNil},
		{tagMap, 3, 1, 'a', tagNil, 1, 'b', tagNil, 1, 'c'},       // a value missing after the names
		{tagMap, 3, 1, 'a', tagNil, 1, 'b', tagNil, 1, 'c', 0x42}, // a bad value
	} {
		if v, _, err := d.Decode(b); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Decode(%x) = %v, %v; want ErrCorrupt", b, v, err)
		}
		checkRowDecode(t, d, b)
	}
}

// Field names that a naive interning key confuses (a NUL byte joining
// names, the empty name and no name) decode into rows of their own names.
func TestDecoderRowNULName(t *testing.T) {
	d := rowDecoder()
	MustSchemaOf("a", "b")
	for _, v := range []any{
		map[string]any{"a": int64(1), "b": int64(2)},
		map[string]any{"a\x00b": int64(3)},
		map[string]any{"a\x00b": int64(3), "c": nil},
		map[string]any{},
		map[string]any{"": false},
		map[string]any{"": []any{map[string]any{}}},
	} {
		checkRowDecode(t, d, Append(nil, v))
	}
}

// Maps wider than maxRowFields, and maps of a shape the full schema table
// does not hold, decode as maps (equal to what they encode, re-encoding
// to the same bytes); narrower ones and known shapes still as rows.
func TestDecoderRowLimits(t *testing.T) {
	wide := func(n int, prefix string) map[string]any {
		m := map[string]any{}
		for i := range n {
			m[fmt.Sprintf("%s%03d", prefix, i)] = int64(i)
		}
		return m
	}
	d := rowDecoder()
	for _, tc := range []struct {
		v   map[string]any
		row bool
	}{{wide(maxRowFields, "w"), true}, {wide(maxRowFields+1, "w"), false}, {wide(200, "v"), false}} {
		enc := Append(nil, map[string]any{"in": tc.v})
		checkRowDecode(t, d, enc)
		got, _, err := d.Decode(enc)
		if err != nil {
			t.Fatal(err)
		}
		in, _ := Field(got, "in")
		if _, isRow := in.(*Row); isRow != tc.row {
			t.Fatalf("a map of %d fields decoded as a %T", len(tc.v), in)
		}
	}

	known := map[string]any{"known-a": int64(1), "known-b": "x"}
	MustSchemaOf("known-a", "known-b")
	old := maxInterned
	maxInterned = interned.Load() // full from now on
	defer func() { maxInterned = old }()
	for _, dec := range []func([]byte) (any, []byte, error){rowDecoder().Decode, func(b []byte) (any, []byte, error) { return decode(b, 0, &rowsCtx) }} {
		for round := 0; round < 3; round++ {
			fresh := map[string]any{fmt.Sprintf("fresh-%d", round): int64(round), "z": nil}
			for _, tc := range []struct {
				v   map[string]any
				row bool
			}{{known, true}, {fresh, false}} {
				enc := Append(nil, tc.v)
				got, rest, err := dec(enc)
				if err != nil || len(rest) != 0 || !equalValues(got, tc.v) || !bytes.Equal(Append(nil, got), enc) {
					t.Fatalf("full table: %v decoded to %v, %v", tc.v, got, err)
				}
				if _, isRow := got.(*Row); isRow != tc.row {
					t.Fatalf("full table: %v decoded as a %T", tc.v, got)
				}
			}
		}
	}
}

// Once the schema table is half full, a Decoder interns names it has not
// seen before only on their second sighting: a data-keyed map seen once
// stays a map and leaves the table as it was; a record shape that repeats
// becomes a row from its second map on; names the table holds are rows at
// once.
func TestDecoderInternsOnSecondSighting(t *testing.T) {
	old := maxInterned
	MustSchemaOf("pad-a", "pad-b", "pad-c") // the table is not empty
	maxInterned = 2*interned.Load() - 1     // half full, far from full

	defer func() { maxInterned = old }()
	d := rowDecoder()
	decodeOne := func(v map[string]any) any {
		t.Helper()
		enc := Append(nil, v)
		got, rest, err := d.Decode(enc)
		if err != nil || len(rest) != 0 || !equalValues(got, v) || !bytes.Equal(Append(nil, got), enc) {
			t.Fatalf("%v decoded to %v, %v", v, got, err)
		}
		return got
	}
	before := interned.Load()
	for i := range 50 {
		if _, isRow := decodeOne(map[string]any{fmt.Sprintf("user-%d", i): int64(i)}).(*Row); isRow {
			t.Fatalf("data-keyed map %d decoded as a row on its first sighting", i)
		}
	}
	if interned.Load() != before {
		t.Fatalf("maps seen once grew the schema table by %d", interned.Load()-before)
	}
	shape := map[string]any{"second-a": int64(1), "second-b": "x"}
	if _, isRow := decodeOne(shape).(*Row); isRow {
		t.Fatal("a new shape decoded as a row on its first sighting")
	}
	for range 3 {
		if _, isRow := decodeOne(shape).(*Row); !isRow {
			t.Fatal("a repeated shape is not a row from its second sighting on")
		}
	}
	MustSchemaOf("held-a", "held-b")
	if _, isRow := decodeOne(map[string]any{"held-a": nil, "held-b": nil}).(*Row); !isRow {
		t.Fatal("names the table holds are not a row at once")
	}
}
