package value

import (
	"encoding/json"
	"reflect"
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
