package value

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestNormalizeNested(t *testing.T) {
	in := map[string]any{
		"a": int(1),
		"b": []any{int32(2), map[string]any{"c": json.Number("3"), "d": json.Number("1.5")}, "s"},
		"e": []string{"x"},
		"f": map[string]string{"g": "h"},
		"i": map[string]any{"j": int64(4), "k": []any{uint8(5), nil}},
		"l": float32(0.5),
	}
	want := map[string]any{
		"a": int64(1),
		"b": []any{int64(2), map[string]any{"c": int64(3), "d": 1.5}, "s"},
		"e": []any{"x"},
		"f": map[string]any{"g": "h"},
		"i": map[string]any{"j": int64(4), "k": []any{uint64(5), nil}},
		"l": float64(0.5),
	}
	if got := Normalize(in); !reflect.DeepEqual(got, want) {
		t.Fatalf("Normalize = %#v\nwant %#v", got, want)
	}
	// Normalizing again changes nothing.
	if got := Normalize(want); !reflect.DeepEqual(got, want) {
		t.Fatalf("second Normalize = %#v", got)
	}
}

// An already normalized value is not written to, so it may be shared by
// goroutines that only read it.
func TestNormalizeNormalizedDoesNotAllocate(t *testing.T) {
	v := map[string]any{"a": int64(1), "b": []any{"x", map[string]any{"c": 2.5}}}
	if n := testing.AllocsPerRun(100, func() { Normalize(v) }); n != 0 {
		t.Fatalf("%v allocations normalizing a normalized value", n)
	}
}

// A Decoder (interning map keys) decodes what DecodeRecord decodes.
func TestDecoderMatchesDecodeRecord(t *testing.T) {
	var d Decoder
	for i := 0; i < 2000; i++ {
		v := map[string]any{"id": int64(i), "k": int64(i % 7), fmt.Sprintf("f%d", i%300): "x",
			"nested":                   map[string]any{"a": []any{int64(1), map[string]any{"b": nil}}},
			strings.Repeat("long", 10): true,
			// Interned values: repeated and colliding integers, strings
			// at and past the interned length.
			"big": int64(1_000_000 + i%5), "neg": int64(-1000 - i%300), "ts": int64(1700000000000 + int64(i/10)),
			"s32": strings.Repeat("a", 31) + string(rune('a'+i%3)), "s33": strings.Repeat("b", 33), "s": fmt.Sprint(i % 400)}
		in := Record{Value: v, Ts: int64(i)}
		in.WithKey(int64(i % 3))
		body := AppendRecord(nil, &in)
		var a, b Record
		if err := DecodeRecord(body, &a); err != nil {
			t.Fatal(err)
		}
		if err := d.DecodeRecord(body, &b); err != nil {
			t.Fatal(err)
		}
		if !equalRecords(&a, &b) || !equalValues(a.Value, v) {
			t.Fatalf("record %d: Decoder gives %+v, DecodeRecord %+v", i, b, a)
		}
	}
}

// Decoding into a record that held the same key keeps its Key and KeyID.
func TestDecodeRecordSameKey(t *testing.T) {
	in := Record{Value: "v", Ts: 1}
	in.WithKey([]any{"k", int64(1)})
	body := AppendRecord(nil, &in)
	var r Record
	if err := DecodeRecord(body, &r); err != nil {
		t.Fatal(err)
	}
	key := r.Key
	if err := DecodeRecord(body, &r); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.Key, []any{"k", int64(1)}) || r.KeyID != in.KeyID || &key.([]any)[0] != &r.Key.([]any)[0] {
		t.Fatalf("got %+v", r)
	}
	other := Record{Value: "w"}
	other.WithKey("z")
	if err := DecodeRecord(AppendRecord(nil, &other), &r); err != nil || r.Key != "z" || r.KeyID != other.KeyID {
		t.Fatalf("got %+v, %v", r, err)
	}
	if err := DecodeRecord(AppendRecord(nil, &Record{Value: int64(1)}), &r); err != nil || r.Key != nil || r.KeyID != "" {
		t.Fatalf("unkeyed: got %+v, %v", r, err)
	}
}

// A Decoder reuses the Key and KeyID of a key it decoded recently, into
// fresh records (as the exchange decodes): the keys stay exact across many
// distinct keys (slots collide and are replaced), composite keys, unkeyed
// records and keys too long to cache.
func TestDecoderRecordKeyCache(t *testing.T) {
	var d Decoder
	keys := []any{nil, "a", int64(0), int64(-1), []any{"k", int64(1)}, map[string]any{"x": int64(1), "y": "z"},
		strings.Repeat("long key ", 20)}
	for i := 0; i < 1000; i++ {
		keys = append(keys, int64(i*7919))
	}
	for round := 0; round < 3; round++ {
		for i, k := range keys {
			in := Record{Value: int64(i), Ts: int64(i)}
			if k != nil {
				in.WithKey(k)
			}
			var got Record
			if err := d.DecodeRecord(AppendRecord(nil, &in), &got); err != nil {
				t.Fatal(err)
			}
			if got.KeyID != in.KeyID || !equalValues(got.Key, in.Key) || got.Value != int64(i) {
				t.Fatalf("round %d key %d: got %+v, want %+v", round, i, got, in)
			}
		}
	}
	// A hot key decodes without allocating its Key or KeyID again.
	in := Record{Value: int64(1)}
	in.WithKey(int64(123456789))
	body := AppendRecord(nil, &in)
	var r Record
	if n := testing.AllocsPerRun(100, func() {
		r = Record{}
		if err := d.DecodeRecord(body, &r); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations decoding a cached key with a small value", n)
	}
}
