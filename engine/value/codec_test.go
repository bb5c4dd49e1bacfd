package value

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
)

// equalValues is reflect.DeepEqual for this package's dynamic values, except
// that doubles compare by bit pattern: NaN equals the same NaN (DeepEqual
// says NaN != NaN) and -0 differs from +0 (DeepEqual says they are equal),
// which is what a lossless round trip must preserve. A row equals its map.
func equalValues(a, b any) bool {
	return equalPlain(Plain(a), Plain(b))
}

func equalPlain(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool, int64, uint64, string:
		return a == b
	case float64:
		y, ok := b.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y)
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalPlain(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, e := range x {
			f, ok := y[k]
			if !ok || !equalPlain(e, f) {
				return false
			}
		}
		return true
	}
	return false
}

func equalRecords(a, b *Record) bool {
	return a.KeyID == b.KeyID && a.Ts == b.Ts && equalValues(a.Key, b.Key) && equalValues(a.Value, b.Value)
}

var roundTripCases = []struct {
	name string
	v    any
}{
	{"nil", nil},
	{"false", false},
	{"true", true},
	{"int zero", int64(0)},
	{"int one", int64(1)},
	{"int minus one", int64(-1)},
	{"int 63", int64(63)},
	{"int -64", int64(-64)},
	{"int 64", int64(64)},
	{"int big", int64(1700000000000)},
	{"int max", int64(math.MaxInt64)},
	{"int min", int64(math.MinInt64)},
	{"uint zero", uint64(0)},
	{"uint 127", uint64(127)},
	{"uint 128", uint64(128)},
	{"uint max int64+1", uint64(math.MaxInt64) + 1},
	{"uint max", uint64(math.MaxUint64)},
	{"double zero", 0.0},
	{"double negative zero", math.Copysign(0, -1)},
	{"double", 12.5},
	{"double pi", math.Pi},
	{"double smallest", math.SmallestNonzeroFloat64},
	{"double max", math.MaxFloat64},
	{"double +Inf", math.Inf(1)},
	{"double -Inf", math.Inf(-1)},
	{"double NaN", math.NaN()},
	{"double NaN payload", math.Float64frombits(0x7ff8000000000abc)},
	{"string empty", ""},
	{"string", "flink"},
	{"string unicode", "héllo, 世界 🌍"},
	{"string NUL and invalid UTF-8", "a\x00b\xff\xfe"},
	{"string long", strings.Repeat("x", 300)},
	{"bytes empty", []byte{}},
	{"bytes", []byte{0, 1, 2, 0xff}},
	{"bytes long", bytes.Repeat([]byte{7}, 200)},
	{"list empty", []any{}},
	{"list mixed", []any{nil, true, int64(-5), uint64(5), 1.5, "s", []byte("b")}},
	{"list nested", []any{[]any{[]any{}}, []any{int64(1), []any{int64(2)}}}},
	{"map empty", map[string]any{}},
	{"map one", map[string]any{"k": "v"}},
	{"map empty key", map[string]any{"": int64(1), "a": int64(2)}},
	{"map typical", map[string]any{"word": "flink", "n": int64(1), "ts": int64(1700000000000), "price": 12.5}},
	{"map nested", map[string]any{
		"list": []any{map[string]any{"x": int64(1)}, map[string]any{}},
		"map":  map[string]any{"inner": map[string]any{"deep": []any{math.NaN()}}},
		"uni":  map[string]any{"ключ": "значение", "鍵": []byte("v")},
	}},
	{"map many keys", manyKeys(40)},
}

func manyKeys(n int) map[string]any {
	m := make(map[string]any, n)
	for i := 0; i < n; i++ {
		m[fmt.Sprintf("key%03d", (i*7919)%n)] = int64(i)
	}
	return m
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range roundTripCases {
		t.Run(tc.name, func(t *testing.T) {
			enc := Append(nil, tc.v)
			got, rest, err := Decode(enc)
			if err != nil {
				t.Fatalf("Decode(%x): %v", enc, err)
			}
			if len(rest) != 0 {
				t.Fatalf("Decode left %d bytes", len(rest))
			}
			if !equalValues(got, tc.v) {
				t.Fatalf("round trip: got %#v, want %#v", got, tc.v)
			}
			if again := Append(nil, got); !bytes.Equal(again, enc) {
				t.Fatalf("re-encoding differs:\n%x\n%x", again, enc)
			}
			// Decode must not consume bytes after the value.
			tail := []byte{0xde, 0xad}
			got, rest, err = Decode(append(append([]byte{}, enc...), tail...))
			if err != nil || !bytes.Equal(rest, tail) || !equalValues(got, tc.v) {
				t.Fatalf("decode with trailing bytes: %#v, rest %x, %v", got, rest, err)
			}
			// Appending to a non-empty buffer keeps the prefix.
			pre := Append([]byte("prefix"), tc.v)
			if !bytes.HasPrefix(pre, []byte("prefix")) || !bytes.Equal(pre[6:], enc) {
				t.Fatalf("Append to non-empty buffer: %x", pre)
			}
		})
	}
}

// TestDecodedBytesDoNotAlias checks that decoded strings and bytes are
// copies: callers decode from reused buffers (stream readers, sort arenas).
func TestDecodedBytesDoNotAlias(t *testing.T) {
	enc := Append(nil, []any{[]byte("abc"), "def"})
	v, _, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range enc {
		enc[i] = 0
	}
	if want := []any{[]byte("abc"), "def"}; !equalValues(v, want) {
		t.Fatalf("decoded value changed with its buffer: %#v", v)
	}
}

func TestAppendNormalizesGoTypes(t *testing.T) {
	cases := []struct {
		in, want any
	}{
		{int(7), int64(7)},
		{int32(-7), int64(-7)},
		{uint8(7), uint64(7)},
		{float32(1.5), 1.5},
		{[]string{"a", "b"}, []any{"a", "b"}},
		{map[string]string{"a": "b"}, map[string]any{"a": "b"}},
		{map[string]any{"n": int(3)}, map[string]any{"n": int64(3)}},
		{[]any{int16(2)}, []any{int64(2)}},
	}
	for _, tc := range cases {
		if got, want := Append(nil, tc.in), Append(nil, tc.want); !bytes.Equal(got, want) {
			t.Errorf("Append(%#v) = %x, want %x", tc.in, got, want)
		}
	}
}

func TestKeyIDIgnoresMapOrder(t *testing.T) {
	// Go randomizes map iteration; build the same maps in different
	// insertion orders many times and require identical IDs.
	keys := []string{"z", "a", "m", "", "aa", "é", "b", "key10", "key9"}
	want := ""
	for round := 0; round < 50; round++ {
		m := map[string]any{}
		for i := range keys {
			k := keys[(i*round+round)%len(keys)]
			m[k] = []any{k, map[string]any{"x": int64(len(k)), "a": k}}
		}
		for _, k := range keys {
			m[k] = []any{k, map[string]any{"x": int64(len(k)), "a": k}}
		}
		id := KeyID(m)
		if want == "" {
			want = id
		} else if id != want {
			t.Fatalf("round %d: KeyID differs:\n%x\n%x", round, id, want)
		}
	}
	// Maps larger than Append's stack of entries take its other sort:
	// the same canonical bytes, which decode back (decoding accepts only
	// ascending keys).
	big, want2 := map[string]any{}, ""
	for round := 0; round < 20; round++ {
		clear(big)
		for i := range 40 {
			j := (i*7 + round) % 40
			big[fmt.Sprintf("k%02d", j)] = int64(j % 3)
		}
		id := KeyID(big)
		if want2 == "" {
			want2 = id
		} else if id != want2 {
			t.Fatalf("40-key map, round %d: KeyID differs", round)
		}
		v, rest, err := Decode([]byte(id))
		if err != nil || len(rest) != 0 || func() int { n, _ := MapLen(v); return n }() != 40 {
			t.Fatalf("40-key map does not decode: %v", err)
		}
	}
	if KeyID(map[string]any{"a": int64(1), "b": int64(2)}) == KeyID(map[string]any{"a": int64(2), "b": int64(1)}) {
		t.Fatal("different maps share a KeyID")
	}
	// Distinct kinds never collide, even when their Go values look alike.
	ids := map[string]any{}
	for _, k := range []any{nil, false, int64(0), uint64(0), 0.0, "", []byte{}, []any{}, map[string]any{}, int64(1), uint64(1), 1.0, "1", []byte("1")} {
		id := KeyID(k)
		if prev, ok := ids[id]; ok {
			t.Fatalf("KeyID(%#v) == KeyID(%#v)", k, prev)
		}
		ids[id] = k
	}
}

func TestRecordRoundTrip(t *testing.T) {
	recs := []Record{
		{Value: nil, Ts: NoTimestamp},
		{Value: "plain", Ts: 0},
		{Value: map[string]any{"word": "flink", "n": int64(1)}, Ts: 1700000000000},
		{Value: int64(-3), Ts: -1},
		{Value: []any{1.5}, Ts: math.MaxInt64},
	}
	for _, k := range []any{nil, "flink", int64(42), []any{"a", int64(1)}, map[string]any{"b": 2.5, "a": []byte{1}}} {
		r := Record{Value: map[string]any{"k": k}, Ts: 17}
		r.WithKey(k)
		recs = append(recs, r)
	}
	for i := range recs {
		want := &recs[i]
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			enc := AppendRecord(nil, want)
			// Decode into a dirty record: every field must be overwritten.
			got := Record{Value: "old", Key: "old", KeyID: KeyID("old"), Ts: 99}
			if err := DecodeRecord(enc, &got); err != nil {
				t.Fatalf("DecodeRecord: %v", err)
			}
			if !equalRecords(&got, want) {
				t.Fatalf("got %+v, want %+v", got, *want)
			}
			if want.KeyID == "" && got.Key != nil {
				t.Fatalf("unkeyed record decoded with key %#v", got.Key)
			}
			if !bytes.Equal(AppendRecord(nil, &got), enc) {
				t.Fatal("re-encoding differs")
			}
			for n := 0; n < len(enc); n++ {
				if err := DecodeRecord(enc[:n], &got); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("truncated to %d of %d bytes: err = %v", n, len(enc), err)
				}
			}
			if err := DecodeRecord(append(enc, 0), &got); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("trailing byte: err = %v", err)
			}
		})
	}
}

func TestDecodeTruncated(t *testing.T) {
	for _, tc := range roundTripCases {
		enc := Append(nil, tc.v)
		for n := 0; n < len(enc); n++ {
			if v, _, err := Decode(enc[:n]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: prefix of %d/%d bytes decoded to %#v, err %v", tc.name, n, len(enc), v, err)
			}
		}
	}
}

func TestDecodeCorrupt(t *testing.T) {
	deep := func(n int) []byte {
		b := bytes.Repeat([]byte{tagList, 1}, n)
		return append(b, tagNil)
	}
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown tag", []byte{0x0a}},
		{"high tag", []byte{0xff}},
		{"int no payload", []byte{tagInt}},
		{"int unterminated", []byte{tagInt, 0x80, 0x80}},
		{"int overflow", append([]byte{tagInt}, bytes.Repeat([]byte{0xff}, 11)...)},
		{"int padded", []byte{tagInt, 0x80, 0x00}},
		{"uint padded", []byte{tagUint, 0x81, 0x80, 0x00}},
		{"uint 10th byte too big", append(append([]byte{tagUint}, bytes.Repeat([]byte{0xff}, 9)...), 0x02)},
		{"double short", []byte{tagDouble, 1, 2, 3, 4, 5, 6, 7}},
		{"string length past end", []byte{tagString, 5, 'a', 'b'}},
		{"string length huge", append([]byte{tagString}, binary.AppendUvarint(nil, math.MaxUint64)...)},
		{"string length padded", []byte{tagString, 0x81, 0x00, 'a'}},
		{"bytes length past end", []byte{tagBytes, 1}},
		{"list count past end", []byte{tagList, 3, tagNil, tagNil}},
		{"list count huge", append([]byte{tagList}, binary.AppendUvarint(nil, math.MaxUint64)...)},
		{"list count padded", []byte{tagList, 0x80, 0x00}},
		{"list bad element", []byte{tagList, 1, 0x42}},
		{"map count past end", []byte{tagMap, 2, 1, 'a', tagNil}},
		{"map count huge", append([]byte{tagMap}, binary.AppendUvarint(nil, math.MaxUint64)...)},
		{"map key past end", []byte{tagMap, 1, 9, 'a', tagNil}},
		{"map missing value", []byte{tagMap, 1, 1, 'a'}},
		{"map keys out of order", []byte{tagMap, 2, 1, 'b', tagNil, 1, 'a', tagNil}},
		{"map duplicate key", []byte{tagMap, 2, 1, 'a', tagNil, 1, 'a', tagTrue}},
		{"map duplicate empty key", []byte{tagMap, 2, 0, tagNil, 0, tagNil}},
		{"too deep", deep(maxDepth + 1)},
		{"far too deep", deep(100000)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, _, err := Decode(tc.b)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode(%x) = %#v, %v; want ErrCorrupt", tc.b, v, err)
			}
			// The same bytes as a record value or key must fail too.
			var r Record
			body := append([]byte{0, 0}, tc.b...)
			if err := DecodeRecord(body, &r); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("as record value: %v", err)
			}
			if len(tc.b) == 0 {
				return // an empty key ID is a valid unkeyed record
			}
			body = append(binary.AppendUvarint(nil, uint64(len(tc.b))), tc.b...)
			body = append(body, 0, tagNil)
			if err := DecodeRecord(body, &r); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("as record key: %v", err)
			}
		})
	}
	if _, _, err := Decode(deep(maxDepth)); err != nil {
		t.Fatalf("nesting at the depth limit: %v", err)
	}
}

func TestDecodeRecordCorrupt(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
	}{
		{"key id with trailing bytes", []byte{2, tagNil, tagNil, 0, tagNil}},
		{"key id not a value", []byte{1, 0x42, 0, tagNil}},
		{"key id length padded", []byte{0x81, 0x00, tagNil, 0, tagNil}},
		{"ts padded", []byte{0, 0x80, 0x00, tagNil}},
		{"ts missing", []byte{0}},
		{"value missing", []byte{0, 0}},
	}
	for _, tc := range cases {
		var r Record
		if err := DecodeRecord(tc.b, &r); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: DecodeRecord(%x) = %v, want ErrCorrupt", tc.name, tc.b, err)
		}
	}
}

// TestDecodeHostileCountsStaySmall checks that decoding a small hostile
// input does not reserve memory for the counts it claims: nested lists that
// each claim as many elements as there are bytes left.
func TestDecodeHostileCountsStaySmall(t *testing.T) {
	// Lists nested past maxDepth, each claiming as many elements as there
	// are bytes after its header (3-byte counts), then padding.
	const size, levels = 1 << 16, 2 * maxDepth
	b := make([]byte, 0, size)
	for i := 0; i < levels; i++ {
		b = append(b, tagList)
		b = binary.AppendUvarint(b, uint64(size-(i+1)*4))
	}
	for len(b) < size {
		b = append(b, tagNil)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("hostile input: err = %v", err)
	}
	runtime.ReadMemStats(&after)
	// Trusting every count would reserve about maxDepth * 16 * size bytes.
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64*size {
		t.Fatalf("decoding %d hostile bytes allocated %d bytes", len(b), grew)
	}
}

func FuzzDecode(f *testing.F) {
	for _, tc := range roundTripCases {
		f.Add(Append(nil, tc.v))
	}
	f.Add([]byte{tagMap, 2, 1, 'b', tagNil, 1, 'a', tagNil})
	f.Add([]byte{tagList, 0x80, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		v, rest, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		used := data[:len(data)-len(rest)]
		enc := Append(nil, v)
		// Decoding is strict, so what decodes is canonical and re-encodes
		// to exactly the bytes it came from.
		if !bytes.Equal(enc, used) {
			t.Fatalf("re-encoding %#v differs:\n got %x\nfrom %x", v, enc, used)
		}
		v2, rest2, err := Decode(enc)
		if err != nil || len(rest2) != 0 {
			t.Fatalf("re-encoding does not decode: %v, %d bytes left", err, len(rest2))
		}
		if !equalValues(v, v2) {
			t.Fatalf("second decode differs: %#v vs %#v", v, v2)
		}
	})
}

// FuzzDecodeRows requires decoding into rows (with and without a
// Decoder's caches, which see every input of a fuzzing process) to accept
// exactly what decoding into maps accepts, and to give rows that are those
// maps and re-encode to the bytes they came from.
func FuzzDecodeRows(f *testing.F) {
	for _, tc := range roundTripCases {
		f.Add(Append(nil, tc.v))
	}
	f.Add([]byte{tagMap, 2, 1, 'b', tagNil, 1, 'a', tagNil})
	f.Add([]byte{tagMap, 2, 1, 'a', tagNil, 1, 'a', tagNil})
	f.Add([]byte{tagList, 2, tagMap, 1, 1, 'a', tagNil, tagMap, 1, 1, 'b', tagNil})
	d := rowDecoder()
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRowDecode(t, d, data)
	})
}

func FuzzDecodeRecord(f *testing.F) {
	for _, tc := range roundTripCases {
		r := Record{Value: tc.v, Ts: 1700000000000}
		f.Add(AppendRecord(nil, &r))
		r.WithKey(tc.v)
		r.Ts = NoTimestamp
		f.Add(AppendRecord(nil, &r))
	}
	rows := rowDecoder()
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Record
		if err := DecodeRecord(data, &r); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if r.KeyID != "" && r.KeyID != KeyID(r.Key) {
			t.Fatalf("decoded KeyID %x is not KeyID(%#v)", r.KeyID, r.Key)
		}
		if r.KeyID == "" && r.Key != nil {
			t.Fatalf("unkeyed record with key %#v", r.Key)
		}
		enc := AppendRecord(nil, &r)
		if !bytes.Equal(enc, data) {
			t.Fatalf("re-encoding differs:\n got %x\nfrom %x", enc, data)
		}
		var r2 Record
		if err := DecodeRecord(enc, &r2); err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		if !equalRecords(&r, &r2) {
			t.Fatalf("second decode differs: %+v vs %+v", r, r2)
		}
		// Decoded as rows, by a Decoder whose caches have seen the
		// inputs before: the same record, the same bytes.
		var r3 Record
		if err := rows.DecodeRecord(data, &r3); err != nil || !equalRecords(&r, &r3) || r3.KeyID != r.KeyID {
			t.Fatalf("decoded as rows: %+v, %v; as maps %+v", r3, err, r)
		}
		if enc := AppendRecord(nil, &r3); !bytes.Equal(enc, data) {
			t.Fatalf("rows re-encode differently:\n got %x\nfrom %x", enc, data)
		}
	})
}

func typicalRecord() *Record {
	r := &Record{
		Value: map[string]any{"word": "flink", "n": int64(1), "ts": int64(1700000000000), "price": 12.5},
		Ts:    1700000000000,
	}
	r.WithKey("flink")
	return r
}

func BenchmarkAppendRecord(b *testing.B) {
	r := typicalRecord()
	buf := AppendRecord(nil, r)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRecord(buf[:0], r)
	}
}

func BenchmarkDecodeRecord(b *testing.B) {
	enc := AppendRecord(nil, typicalRecord())
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	var r Record
	for b.Loop() {
		if err := DecodeRecord(enc, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// An Encoder writes exactly what Append writes, whatever mix of map shapes
// it sees: the same field names (its remembered order), the same number
// of fields with other names, nested maps of their own shapes at every
// depth, maps too large or too deep to remember, and normalized Go types.
func TestEncoderMatchesAppend(t *testing.T) {
	var enc Encoder
	deep := any(map[string]any{"leaf": int64(1), "z": "y"})
	for i := 0; i < 6; i++ {
		deep = map[string]any{"d": deep, "n": int64(i)}
	}
	big := map[string]any{}
	for i := range 20 {
		big[fmt.Sprintf("f%02d", i)] = int64(i)
	}
	values := []any{}
	for i := 0; i < 50; i++ {
		values = append(values,
			map[string]any{"auction": int64(i), "bidder": int64(2 * i), "price": int64(3 * i), "url": "u"},
			map[string]any{"auction": int64(i), "bidder": int64(2 * i), "price": int64(3 * i), "extra": "e"}, // same size, other names
			map[string]any{"price": int64(i), "bids": []any{map[string]any{"auction": int64(i), "b": true}, map[string]any{"a": nil, "b": false}}},
			map[string]any{"only": int64(i)},
			map[string]any{"other": int64(i)},
			map[string]any{},
			map[string]int{"typed": i},
			deep, big,
			[]any{map[string]any{"x": 1.5, "y": "s"}, map[string]any{"x": 2.5, "w": "s"}},
		)
	}
	// The same values with their maps as rows, mixed with the maps: the
	// Encoder's remembered row names must not leak between schemas of one
	// size and depth.
	for _, v := range values[:len(values)/2] {
		values = append(values, Rows(v))
	}
	for round := 0; round < 2; round++ {
		for i, v := range values {
			want := Append(nil, v)
			if got := enc.Append(nil, v); !bytes.Equal(got, want) {
				t.Fatalf("round %d value %d (%v): Encoder wrote\n%x\nAppend wrote\n%x", round, i, v, got, want)
			}
			r := Record{Value: v, Ts: int64(i)}
			r.WithKey(int64(i))
			if got, want := enc.AppendRecord([]byte("p"), &r), AppendRecord([]byte("p"), &r); !bytes.Equal(got, want) {
				t.Fatalf("round %d record %d: Encoder and AppendRecord differ", round, i)
			}
		}
	}
	var nilEnc *Encoder
	if got := nilEnc.Append(nil, values[0]); !bytes.Equal(got, Append(nil, values[0])) {
		t.Fatal("a nil Encoder differs from Append")
	}
}
