package operator

import "github.com/flinkjob/flinkjob/engine/value"

// RecycleDrops hands the values that the filters at the front of a source
// chain reject back to the source's reader (connector.Recycler), which may
// reuse their memory for the records it reads next, as Flink's object
// reuse does. Only those filters count: a value reaches them unchanged
// (the source operator only reads its timestamp), and a rejected one has
// been seen by nothing but their expressions, which keep no reference.
// A filter further down, or any other operator, may have let a copy or
// a reference escape (into state, a window, an output buffer), so its
// drops are left to the garbage collector.
func (c *Chain) RecycleDrops(recycle func(v any)) {
	if c.Source == nil {
		return
	}
	for _, op := range c.Ops[1:] {
		f, ok := op.(*Filter)
		if !ok {
			return
		}
		f.dropped = recycle
	}
}

// drop tells the recycler, if any, that r's value was rejected.
func (f *Filter) drop(r *value.Record) {
	if f.dropped != nil {
		f.dropped(r.Value)
	}
}
