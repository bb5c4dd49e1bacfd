package value

import (
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
)

// A Row is the engine's other form of a map value: fields named by a shared,
// interned Schema and their values in a slice. It means exactly what the
// map[string]any with the same fields means (a nil value is a field that is
// present and null), encodes to the same bytes, prints as the same JSON and
// is equal to it. Rows exist for speed: a record's fields are found by
// index instead of by hashing (a reader caches a field's index per schema
// pointer), a row is built with one allocation instead of a map's several,
// and the many records of a stream share one set of field names.
//
// Code that handles map values must handle *Row too. The helpers below
// (Field, MapLen, RangeFields, Plain) do it for code that does not
// need the speed.

// UseRows says whether the producers of rows (sources, CEL map literals,
// aggregates, the binary decoder) build rows or maps. They read it when
// they are set up, not per record. It is on unless FLINKJOB_ROWS=0, which
// keeps the map form so the two can be compared in one benchmark run and a
// whole suite run in either; tests may set it before they build anything.
var UseRows = os.Getenv("FLINKJOB_ROWS") != "0"

// Schema is the sorted, distinct field names of a row. Schemas are interned:
// rows with the same fields share one *Schema, so a reader can cache what it
// worked out for a schema by its pointer. Up to maxInterned names in all:
// past that, a new set of names gets a schema of its own each time (decoded maps
// whose keys are data, such as a map from user id to count kept in state,
// would otherwise grow the table without end), so two schemas of the same
// names may differ by pointer. Equal pointers always mean equal names;
// code that needs equality compares Names when the pointers differ. Sorted
// order is the order of the binary encoding and of
// JSON output, so a row is written field by field without sorting.
type Schema struct {
	names []string
	// index finds a field of a wide schema; narrow ones are scanned.
	index map[string]int
}

// wideSchema is the width from which a schema keeps an index map. Names
// of one length (the worst case for a scan: each compare reads the bytes)
// looking up a late field, scan vs map, ns: 4 fields 14-16 vs 16-19, 8
// fields 34-42 vs 13, 12 fields 47-52 vs 15-17 (one run, alternating).
// Readers cache a field's index per schema, so this is the cost of a miss
// and of Field/Get.
const wideSchema = 6

var (
	schemas  sync.Map // schemaKey(names) -> *Schema
	interned atomic.Int64
)

// maxInterned bounds the field names the shared schemas hold in all (a few
// MB), not the number of schemas: a job whose records carry dozens of data
// keys would otherwise keep far more; a variable for tests.
var maxInterned int64 = 1 << 17

// SchemaOf returns the interned schema of these field names (in any order).
// It fails on a duplicate name.
func SchemaOf(names ...string) (*Schema, error) {
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return nil, fmt.Errorf("value: duplicate field %q in a row schema", sorted[i])
		}
	}
	return internSorted(sorted), nil
}

// MustSchemaOf is SchemaOf for names known to be distinct.
func MustSchemaOf(names ...string) *Schema {
	s, err := SchemaOf(names...)
	if err != nil {
		panic(err)
	}
	return s
}

// SchemaOfSorted returns the interned schema of names that are already
// sorted and distinct (as a decoder reads them); it does not copy names
// when the schema is known.
func SchemaOfSorted(names []string) *Schema {
	key := schemaKey(names)
	if s, ok := schemas.Load(key); ok {
		return s.(*Schema)
	}
	return internNew(key, slices.Clone(names))
}

func internSorted(sorted []string) *Schema {
	key := schemaKey(sorted)
	if s, ok := schemas.Load(key); ok {
		return s.(*Schema)
	}
	return internNew(key, sorted)
}

// internNew interns a schema of sorted names (owned by it) that the table
// did not hold under key a moment ago: past the bound, it stays unshared.
func internNew(key string, sorted []string) *Schema {
	s := &Schema{names: sorted}
	if len(sorted) >= wideSchema {
		s.index = make(map[string]int, len(sorted))
		for i, n := range sorted {
			s.index[n] = i
		}
	}
	if interned.Load() >= maxInterned {
		return s
	}
	actual, loaded := schemas.LoadOrStore(key, s)
	if !loaded {
		interned.Add(int64(len(sorted)) + 1)
	}
	return actual.(*Schema)
}

// schemaKey is the interning key of sorted names: each name length-prefixed,
// since a field name may hold any byte (a separator would let ["a\x00b"]
// and ["a", "b"] share a key).
func schemaKey(sorted []string) string {
	n := 0
	for _, name := range sorted {
		n += len(name) + binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	for _, name := range sorted {
		b = binary.AppendUvarint(b, uint64(len(name)))
		b = append(b, name...)
	}
	return string(b)
}

// Len is the number of fields.
func (s *Schema) Len() int { return len(s.names) }

// Name is the name of field i.
func (s *Schema) Name(i int) string { return s.names[i] }

// Names is the sorted field names; the caller must not modify them.
func (s *Schema) Names() []string { return s.names }

// Index is the position of a field, or -1 when the schema has no such field.
func (s *Schema) Index(name string) int {
	if s.index != nil {
		if i, ok := s.index[name]; ok {
			return i
		}
		return -1
	}
	for i, n := range s.names {
		if n == name {
			return i
		}
	}
	return -1
}

// Row is a map value with a shared schema; see the top of this file.
type Row struct {
	schema *Schema
	vals   []any
}

// Rows of up to eight fields are allocated together with their values.
type (
	row1 struct {
		Row
		a [1]any
	}
	row2 struct {
		Row
		a [2]any
	}
	row3 struct {
		Row
		a [3]any
	}
	row4 struct {
		Row
		a [4]any
	}
	row5 struct {
		Row
		a [5]any
	}
	row6 struct {
		Row
		a [6]any
	}
	row7 struct {
		Row
		a [7]any
	}
	row8 struct {
		Row
		a [8]any
	}
)

// NewRow returns a row of schema s with every field null.
func NewRow(s *Schema) *Row {
	var r *Row
	switch len(s.names) {
	case 0:
		r = &Row{}
	case 1:
		x := &row1{}
		x.vals, r = x.a[:], &x.Row
	case 2:
		x := &row2{}
		x.vals, r = x.a[:], &x.Row
	case 3:
		x := &row3{}
		x.vals, r = x.a[:], &x.Row
	case 4:
		x := &row4{}
		x.vals, r = x.a[:], &x.Row
	case 5:
		x := &row5{}
		x.vals, r = x.a[:], &x.Row
	case 6:
		x := &row6{}
		x.vals, r = x.a[:], &x.Row
	case 7:
		x := &row7{}
		x.vals, r = x.a[:], &x.Row
	case 8:
		x := &row8{}
		x.vals, r = x.a[:], &x.Row
	default:
		r = &Row{vals: make([]any, len(s.names))}
	}
	r.schema = s
	return r
}

// RowOf builds a row from a map (a shallow copy: nested maps stay maps).
func RowOf(m map[string]any) *Row {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	r := NewRow(internSorted(names))
	for i, n := range names {
		r.vals[i] = m[n]
	}
	return r
}

// Schema is the row's schema.
func (r *Row) Schema() *Schema { return r.schema }

// Len is the number of fields.
func (r *Row) Len() int { return len(r.vals) }

// Name is the name of field i (fields are in sorted order).
func (r *Row) Name(i int) string { return r.schema.names[i] }

// At is the value of field i.
func (r *Row) At(i int) any { return r.vals[i] }

// Set sets the value of field i.
func (r *Row) Set(i int, v any) { r.vals[i] = v }

// Values is the field values in schema order; writing to it writes the row.
func (r *Row) Values() []any { return r.vals }

// Get is the value of a field and whether the row has it.
func (r *Row) Get(name string) (any, bool) {
	if i := r.schema.Index(name); i >= 0 {
		return r.vals[i], true
	}
	return nil, false
}

// ToMap returns the row as a new map (shallow: nested rows stay rows).
func (r *Row) ToMap() map[string]any {
	m := make(map[string]any, len(r.vals))
	for i, v := range r.vals {
		m[r.schema.names[i]] = v
	}
	return m
}

// String prints the row as its JSON.
func (r *Row) String() string { return string(AppendJSON(nil, r)) }

// MarshalJSON makes encoding/json print a row as the map it stands for,
// in the engine's JSON (AppendJSON): a whole double keeps its ".0" and NaN
// or an infinity prints as null, where encoding/json would print a map's
// 1.0 as 1 and fail on NaN.
func (r *Row) MarshalJSON() ([]byte, error) { return AppendJSON(nil, r), nil }

// IsMap reports whether v is a map value (map[string]any or *Row).
func IsMap(v any) bool {
	switch v.(type) {
	case map[string]any, *Row:
		return true
	}
	return false
}

// Field is the value of a field of a map value and whether it has it;
// false for a value that is not a map.
func Field(v any, name string) (any, bool) {
	switch x := v.(type) {
	case map[string]any:
		f, ok := x[name]
		return f, ok
	case *Row:
		return x.Get(name)
	}
	return nil, false
}

// MapLen is the number of fields of a map value, and false for a value that
// is not a map.
func MapLen(v any) (int, bool) {
	switch x := v.(type) {
	case map[string]any:
		return len(x), true
	case *Row:
		return len(x.vals), true
	}
	return 0, false
}

// RangeFields calls fn for each field of a map value until fn returns false
// (rows in sorted order, maps in Go's map order). It reports whether v is a
// map.
func RangeFields(v any, fn func(name string, field any) bool) bool {
	switch x := v.(type) {
	case map[string]any:
		for k, f := range x {
			if !fn(k, f) {
				break
			}
		}
		return true
	case *Row:
		for i, f := range x.vals {
			if !fn(x.schema.names[i], f) {
				break
			}
		}
		return true
	}
	return false
}

// Rows returns v with every map in it, at any depth, turned into a row:
// the inverse of Plain (v itself is not modified). Tests use it to feed
// the engine both forms of the same value.
func Rows(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = Rows(e)
		}
		return RowOf(m)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = Rows(e)
		}
		return out
	}
	return v
}

// Plain returns v with every row in it, at any depth, turned into a
// map[string]any: the form code outside the engine's hot paths (tests,
// reflection, CEL's own adapter) expects. Values without rows are returned
// as they are, not copied.
func Plain(v any) any {
	out, _ := plain(v)
	return out
}

// plain reports whether it changed anything, so containers without rows
// are not copied.
func plain(v any) (any, bool) {
	switch x := v.(type) {
	case *Row:
		m := make(map[string]any, len(x.vals))
		for i, f := range x.vals {
			m[x.schema.names[i]], _ = plain(f)
		}
		return m, true
	case []any:
		var out []any
		for i, e := range x {
			if p, changed := plain(e); changed {
				if out == nil {
					out = slices.Clone(x)
				}
				out[i] = p
			}
		}
		if out == nil {
			return v, false
		}
		return out, true
	case map[string]any:
		var out map[string]any
		for k, e := range x {
			if p, changed := plain(e); changed {
				if out == nil {
					out = make(map[string]any, len(x))
					for k2, e2 := range x {
						out[k2] = e2
					}
				}
				out[k] = p
			}
		}
		if out == nil {
			return v, false
		}
		return out, true
	}
	return v, false
}
