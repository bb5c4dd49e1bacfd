package expr

import (
	"reflect"
	"sync/atomic"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"

	"github.com/flinkjob/flinkjob/engine/value"
)

// Rows (value.Row) in CEL's own evaluation. CEL meets the engine's values
// through its type adapter, which turns a native value into a CEL one when
// the interpreter reads it. rowAdapter adds *value.Row to what CEL's own
// adapter knows, as rowVal: a CEL map over the row's fields, read in place
// (no map is built per access). It also makes the lists and maps CEL reads
// from the inputs use this adapter, so a row anywhere inside them — in a
// list, in a map, in a list in a row — is a rowVal too.

// celAdapter is the type adapter of every environment (cel.CustomTypeAdapter).
var celAdapter types.Adapter = rowAdapter{}

type rowAdapter struct{}

func (rowAdapter) NativeToValue(v any) ref.Val {
	switch x := v.(type) {
	case *value.Row:
		return rowVal{x}
	case map[string]any:
		return types.NewStringInterfaceMap(celAdapter, x)
	case []any:
		return types.NewDynamicList(celAdapter, x)
	}
	return types.DefaultTypeAdapter.NativeToValue(v)
}

// rowVal is a row as a CEL map with string keys. A single pointer, it is
// stored in an interface without an allocation. It behaves as the CEL map
// of the same entries does (types.NewStringInterfaceMap of its map): the
// same results and errors, except that it iterates over its keys in
// sorted order (a map's order is unspecified).
type rowVal struct{ r *value.Row }

var (
	rowType               = reflect.TypeOf((*value.Row)(nil))
	_       traits.Mapper = rowVal{}
	_       traits.Zeroer = rowVal{}
)

// asMap is the row as the CEL map CEL's adapter makes of its map, for the
// operations that need no speed.
func (v rowVal) asMap() traits.Mapper {
	return types.NewStringInterfaceMap(celAdapter, v.r.ToMap())
}

func (v rowVal) ConvertToNative(t reflect.Type) (any, error) {
	if t == rowType {
		return v.r, nil
	}
	return v.asMap().ConvertToNative(t)
}

func (v rowVal) ConvertToType(t ref.Type) ref.Val {
	switch t {
	case types.MapType:
		return v
	case types.TypeType:
		return types.MapType
	}
	return v.asMap().ConvertToType(t)
}

// Equal is a map's: the same size, and each key found in other with an
// equal value.
func (v rowVal) Equal(other ref.Val) ref.Val {
	o, ok := other.(traits.Mapper)
	if !ok {
		return types.False
	}
	if o.Size() != types.Int(v.r.Len()) {
		return types.False
	}
	for i, f := range v.r.Values() {
		ov, found := o.Find(types.String(v.r.Name(i)))
		if !found {
			return types.False
		}
		if types.Equal(celAdapter.NativeToValue(f), ov) == types.False {
			return types.False
		}
	}
	return types.True
}

func (v rowVal) Type() ref.Type    { return types.MapType }
func (v rowVal) Value() any        { return v.r }
func (v rowVal) IsZeroValue() bool { return v.r.Len() == 0 }
func (v rowVal) Size() ref.Val     { return types.Int(v.r.Len()) }

func (v rowVal) Contains(key ref.Val) ref.Val {
	_, found := v.Find(key)
	return types.Bool(found)
}

func (v rowVal) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return nil, false
	}
	f, ok := v.r.Get(string(k))
	if !ok {
		return nil, false
	}
	return celAdapter.NativeToValue(f), true
}

func (v rowVal) Get(key ref.Val) ref.Val {
	f, found := v.Find(key)
	if !found {
		return types.ValOrErr(f, "no such key: %v", key)
	}
	return f
}

// Iterator visits the keys in sorted order.
func (v rowVal) Iterator() traits.Iterator {
	return types.NewStringList(celAdapter, v.r.Schema().Names()).Iterator()
}

// String prints the row as CEL prints its map.
func (v rowVal) String() string { return types.Format(v.asMap()) }

// fieldSite reads one field at one place of an expression (a field
// selection, a presence test, a step of a field path) from a map or a
// row. For rows it caches the field's index per schema (interned, so a
// pointer), so that reading a field of a row is a pointer comparison and
// an index. A Program is shared by goroutines: the cache is an immutable
// value behind an atomic pointer, replaced (up to siteSchemas schemas)
// when a new schema comes by.
type fieldSite struct {
	name  string
	cache atomic.Pointer[siteCache]
}

const siteSchemas = 4

type siteCache struct {
	n       int
	schemas [siteSchemas]*value.Schema
	index   [siteSchemas]int
}

func newFieldSite(name string) *fieldSite { return &fieldSite{name: name} }

// get is the field of a map value and whether it has it; false also for
// a value that is not a map. (The first schema's hit is tested here, the
// rest in index, so that this stays small.)
func (f *fieldSite) get(v any) (any, bool) {
	if m, ok := v.(*value.Row); ok {
		s := m.Schema()
		if c := f.cache.Load(); c != nil && c.schemas[0] == s {
			if i := c.index[0]; i >= 0 {
				return m.At(i), true
			}
			return nil, false
		}
		if i := f.index(s); i >= 0 {
			return m.At(i), true
		}
		return nil, false
	}
	if m, ok := v.(map[string]any); ok {
		x, ok := m[f.name]
		return x, ok
	}
	return nil, false
}

// index is the field's index in schema s, or -1.
func (f *fieldSite) index(s *value.Schema) int {
	c := f.cache.Load()
	if c != nil {
		for j := 0; j < c.n; j++ {
			if c.schemas[j] == s {
				return c.index[j]
			}
		}
	}
	i := s.Index(f.name)
	if c == nil || c.n < siteSchemas {
		next := &siteCache{}
		if c != nil {
			*next = *c
		}
		next.schemas[next.n], next.index[next.n] = s, i
		next.n++
		// A lost race only loses a cache entry.
		f.cache.CompareAndSwap(c, next)
	}
	return i
}
