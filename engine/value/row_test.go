package value

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

// A row is the map with the same fields: same encoding, same JSON, and
// Plain turns it (at any depth) into that map.
func TestRowIsItsMap(t *testing.T) {
	inner := RowOf(map[string]any{"id": int64(7), "tags": []any{"a", nil}})
	row := RowOf(map[string]any{"z": "last", "a": inner, "m": nil, "n": []any{RowOf(map[string]any{"x": 1.5})}})
	want := map[string]any{"z": "last", "a": map[string]any{"id": int64(7), "tags": []any{"a", nil}}, "m": nil,
		"n": []any{map[string]any{"x": 1.5}}}
	if got := Plain(row); !reflect.DeepEqual(got, want) {
		t.Fatalf("Plain = %#v, want %#v", got, want)
	}
	if a, b := Append(nil, row), Append(nil, want); !bytes.Equal(a, b) {
		t.Fatalf("row encodes to %x, its map to %x", a, b)
	}
	var e Encoder
	if a, b := e.Append(nil, row), Append(nil, want); !bytes.Equal(a, b) {
		t.Fatalf("Encoder: row encodes to %x, its map to %x", a, b)
	}
	if a, b := ToJSON(row), ToJSON(want); !bytes.Equal(a, b) {
		t.Fatalf("row JSON %s, map JSON %s", a, b)
	}
	if j, err := json.Marshal([]any{row}); err != nil || string(j) != "["+string(ToJSON(want))+"]" {
		t.Fatalf("encoding/json: %s %v", j, err)
	}
	if TypeName(row) != "map" {
		t.Fatalf("TypeName = %s", TypeName(row))
	}
	if v, ok := Field(row, "m"); !ok || v != nil {
		t.Fatalf("a null field is present: %v %v", v, ok)
	}
	if _, ok := Field(row, "absent"); ok {
		t.Fatal("absent field found")
	}
	if n, ok := MapLen(row); !ok || n != 4 {
		t.Fatalf("MapLen = %d %v", n, ok)
	}
	var names []string
	RangeFields(row, func(k string, _ any) bool { names = append(names, k); return true })
	if !reflect.DeepEqual(names, []string{"a", "m", "n", "z"}) {
		t.Fatalf("fields in order %v", names)
	}
}

func TestSchemaInterned(t *testing.T) {
	a := MustSchemaOf("b", "a", "c")
	b := MustSchemaOf("c", "b", "a")
	if a != b || SchemaOfSorted([]string{"a", "b", "c"}) != a {
		t.Fatal("schemas of the same names are not one")
	}
	if a.Index("c") != 2 || a.Index("d") != -1 {
		t.Fatalf("Index: %d %d", a.Index("c"), a.Index("d"))
	}
	if MustSchemaOf("a", "b") == MustSchemaOf("a\x00b") || SchemaOfSorted([]string{""}) == MustSchemaOf() {
		t.Fatal("schemas of different names are one")
	}
	if _, err := SchemaOf("x", "x"); err == nil {
		t.Fatal("duplicate field accepted")
	}
	wide := make([]string, 20)
	for i := range wide {
		wide[i] = string(rune('a' + i))
	}
	w := MustSchemaOf(wide...)
	for i, n := range wide {
		if w.Index(n) != i {
			t.Fatalf("wide Index(%s) = %d", n, w.Index(n))
		}
	}
	for n := range 12 {
		names := wide[:n]
		r := NewRow(MustSchemaOf(names...))
		if r.Len() != n || len(r.Values()) != n {
			t.Fatalf("NewRow of %d fields has %d", n, r.Len())
		}
	}
}

// Past maxInterned schemas, new names get schemas of their own (the table
// stops growing) and rows of them still work; known names stay shared.
func TestSchemaTableIsBounded(t *testing.T) {
	known := MustSchemaOf("known")
	defer func(was int64) { maxInterned = was }(maxInterned)
	maxInterned = interned.Load() + 6
	for interned.Load() < maxInterned {
		i := interned.Load()
		SchemaOfSorted([]string{fmt.Sprintf("k%08d", i)})
	}
	n := interned.Load()
	a, b := MustSchemaOf("fresh", "x"), MustSchemaOf("x", "fresh")
	if interned.Load() != n {
		t.Fatalf("the table grew past its bound: %d", interned.Load())
	}
	if a == b || !reflect.DeepEqual(a.Names(), b.Names()) {
		t.Fatal("names past the bound should get equal, unshared schemas")
	}
	if MustSchemaOf("known") != known {
		t.Fatal("a known schema is no longer shared")
	}
	r := NewRow(a)
	r.Set(a.Index("x"), int64(1))
	if got := string(ToJSON(r)); got != `{"fresh":null,"x":1}` {
		t.Fatalf("row of an unshared schema: %s", got)
	}
}

func TestRowsIsPlainsInverse(t *testing.T) {
	in := map[string]any{"a": []any{map[string]any{"x": int64(1)}, "s"}, "b": map[string]any{"c": nil}}
	r := Rows(in)
	row, ok := r.(*Row)
	if !ok {
		t.Fatalf("Rows gave %T", r)
	}
	if a, _ := row.Get("a"); !reflect.DeepEqual(a.([]any)[1], "s") {
		t.Fatal("list element lost")
	} else if _, ok := a.([]any)[0].(*Row); !ok {
		t.Fatal("a map inside a list is not a row")
	}
	if !reflect.DeepEqual(Plain(r), in) {
		t.Fatalf("Plain(Rows(v)) = %v, want %v", Plain(r), in)
	}
	if _, ok := in["b"].(map[string]any); !ok {
		t.Fatal("Rows modified its input")
	}
}
