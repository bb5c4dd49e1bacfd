// Package projection describes which fields of a record a job reads, so a
// source can leave out the rest (projection pushdown): the planner derives
// a Fields tree for a source from the expressions of the steps that see its
// records (engine/plan), and a source that supports it (the nexmark
// generator) builds only those fields. Records keep their shape: a field
// left out is simply absent, which no expression of the job can observe,
// because any use of a value other than selecting a named field of it
// (passing it on whole, comparing it, size(), iterating it, an index that
// is not a constant string) marks the whole value as read.
package projection

import (
	"slices"
	"strings"
)

// Fields is the part of a value that is read. A nil *Fields reads
// nothing; All reads the whole value; otherwise Sub lists the fields of a
// map that are read, each with its own part.
type Fields struct {
	All bool
	Sub map[string]*Fields
}

// All returns Fields that read the whole value.
func All() *Fields { return &Fields{All: true} }

// None returns Fields that read nothing yet (Add paths to it).
func None() *Fields { return &Fields{} }

// IsAll reports whether the whole value is read. A nil Fields reads nothing.
func (f *Fields) IsAll() bool { return f != nil && f.All }

// Add marks the value at path (and everything under it) as read; an empty
// path marks the whole value.
func (f *Fields) Add(path []string) {
	for _, name := range path {
		if f.All {
			return
		}
		f = f.child(name)
	}
	f.All, f.Sub = true, nil
}

// Merge adds everything o reads to f.
func (f *Fields) Merge(o *Fields) {
	if o == nil || f.All {
		return
	}
	if o.All {
		f.All, f.Sub = true, nil
		return
	}
	for name, sub := range o.Sub {
		f.child(name).Merge(sub)
	}
}

// child returns the entry of field name in Sub, adding an empty one.
func (f *Fields) child(name string) *Fields {
	if f.Sub == nil {
		f.Sub = map[string]*Fields{}
	}
	c := f.Sub[name]
	if c == nil {
		c = &Fields{}
		f.Sub[name] = c
	}
	return c
}

// Field returns what is read of field name: nil when nothing, All when
// f reads the whole value.
func (f *Fields) Field(name string) *Fields {
	if f == nil {
		return nil
	}
	if f.All {
		return f
	}
	return f.Sub[name]
}

// Has reports whether anything of field name is read.
func (f *Fields) Has(name string) bool { return f.Field(name) != nil }

// String is a compact, sorted form for logs and tests: "*" for all,
// "{a,b:{c}}" for fields.
func (f *Fields) String() string {
	if f == nil {
		return "-"
	}
	if f.All {
		return "*"
	}
	names := make([]string, 0, len(f.Sub))
	for n := range f.Sub {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		if s := f.Sub[n]; !s.All {
			b.WriteByte(':')
			b.WriteString(s.String())
		}
	}
	b.WriteByte('}')
	return b.String()
}
