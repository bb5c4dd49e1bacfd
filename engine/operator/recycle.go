package operator

import (
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/value"
)

// RecycleSourceValues hands the source's values that the chain is provably
// done with back to its reader (connector.Recycler), which may reuse their
// memory for the records it reads next, as Flink's object reuse does. A
// value reaches the filters at the front of a source chain unchanged (the
// source operator only reads its timestamp, a udf.Peek step only looks),
// so:
//
//   - a value one of those filters rejects has been seen by nothing but
//     their expressions, which keep no reference;
//   - a value that passes them into a map step whose expression is a map
//     literal (expr.Program.FreshMap) is done with once the map computed
//     its new output, if no entry of that output that could hold one of
//     the input's maps or lists does: checked on every record, in a few
//     lookups;
//   - a value that passes them into a map step that picks a part of it
//     (record.bid) is done with once that part is cut out of it: the
//     reader's values are trees, so the rest holds no reference to it.
//   - and whatever that map step computed, when its output goes (through
//     filters at most) into a sink whose writer keeps no reference
//     (reuseOutputs), the value is done with once the sink returned.
//
// Anything further down (or another kind of step) may keep a reference
// (in state, a window, an output buffer), so its values are left to the
// garbage collector.
func (c *Chain) RecycleSourceValues(recycle func(v any)) {
	if c.Source == nil {
		return
	}
	for _, op := range c.Ops[1:] {
		switch o := op.(type) {
		case *Filter:
			o.dropped = recycle
			continue
		case *Call:
			if o.peek != nil {
				continue // it keeps nothing and passes the value on as is
			}
		case *Map:
			o.consumed = recycle
		}
		return
	}
}

// drop tells the recycler, if any, that r's value was rejected.
func (f *Filter) drop(r *value.Record) {
	if f.dropped != nil {
		f.dropped(r.Value)
	}
}

// sharesInput reports whether the map step's output may share a map, row,
// list or byte slice with its input: it is not a map value, or one of the
// entries FreshMap could not rule out holds one.
func (m *Map) sharesInput(out any) bool {
	if !value.IsMap(out) {
		return true
	}
	for _, k := range m.freshCheck {
		if f, _ := value.Field(out, k); isContainer(f) {
			return true
		}
	}
	return false
}

// isContainer reports whether v is a value with parts a reader may reuse.
func isContainer(v any) bool {
	switch v.(type) {
	case map[string]any, *value.Row, []any, []byte:
		return true
	}
	return false
}

// detach cuts the value at path out of in, so that recycling in cannot
// reuse it: a map drops the key, a row (whose fields are fixed) has the
// field set to null, which leaves the reader nothing of it to refill.
// False when in has no map value at each step of the path.
func detach(in any, path []string) bool {
	for _, k := range path[:len(path)-1] {
		f, ok := value.Field(in, k)
		if !ok {
			return false
		}
		in = f
	}
	last := path[len(path)-1]
	switch m := in.(type) {
	case map[string]any:
		delete(m, last)
		return true
	case *value.Row:
		if i := m.Schema().Index(last); i >= 0 {
			m.Set(i, nil)
		}
		return true
	}
	return false
}

// reuseOutputs marks the map steps whose output goes, through filters at
// most, into a sink whose writer keeps no reference to it
// (connector.ValueReleaser), or out of the chain into a tail collector
// that says the same: once the sink's Write or the
// tail's Collect returned, nothing holds the output, nor the input it may
// share parts with. Such a step recycles its input (when it reads a
// source's values) and, when its expression is a map literal, builds its
// output in one map it refills for every record (expr.Evaluator.EvalInto).
// Called by Open, once the writers exist.
func (c *Chain) reuseOutputs(tail Collector) {
	for i, op := range c.Ops {
		m, ok := op.(*Map)
		if !ok {
			continue
		}
		j := i + 1
		for j < len(c.Ops) {
			if _, ok := c.Ops[j].(*Filter); !ok {
				break
			}
			j++
		}
		released := false
		if j == len(c.Ops) {
			released = connector.ReleasesValues(tail)
		} else if s, ok := c.Ops[j].(*Sink); ok {
			released = connector.ReleasesValues(s.w)
		}
		if released {
			m.outputReleased = true
			if m.fresh {
				m.scratch = make(map[string]any, 8)
			}
		}
	}
}
