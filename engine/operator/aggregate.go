package operator

import (
	"fmt"
	"slices"

	"github.com/flinkjob/flinkjob/engine/expr"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/state"
	"github.com/flinkjob/flinkjob/engine/value"
)

// aggregator is Flink's AggregateFunction: create an accumulator, add
// records to it, merge two (session windows), and read the result.
// Accumulators are dynamic values so state snapshots need no special codec.
type aggregator interface {
	create() (any, error)
	add(acc any, r *value.Record) (any, error)
	merge(a, b any) (any, error)
	// result is the output value: for an aggregate step, out's head
	// fields (the key, a window's bounds) and the fields' results.
	result(acc any, out *aggOut) (any, error)
}

// aggOut builds the records an aggregate step emits: its head fields (the
// key, and a window's bounds) and then each field's result. While rows are
// on (value.UseRows, read when the step is set up) they are rows of one
// schema computed once, so a result is one allocation and its fields are
// set by index; else maps, as before rows.
type aggOut struct {
	names  []string // the head fields' names, then the fields'
	nHead  int
	schema *value.Schema // nil: maps
	at     []int         // the slot of names[i] in schema
	// head holds the head values of the record being built.
	head [3]any
}

func newAggOut(f fields, heads ...string) *aggOut {
	o := &aggOut{names: slices.Clone(heads), nHead: len(heads)}
	for _, af := range f.fs {
		o.names = append(o.names, af.Name)
	}
	if !value.UseRows {
		return o
	}
	s, err := value.SchemaOf(o.names...)
	if err != nil {
		// A field named like a head field (the planner refuses that):
		// maps, in which the field's result wins, as it always did.
		return o
	}
	o.schema = s
	for _, n := range o.names {
		o.at = append(o.at, s.Index(n))
	}
	return o
}

// reducer folds records with a CEL expression over `acc` and `record`.
type reducer struct{ ev *expr.Evaluator }

func newReducer(p *expr.Program) reducer { return reducer{p.Evaluator()} }

func (reducer) create() (any, error) { return nil, nil }

func (f reducer) add(acc any, r *value.Record) (any, error) {
	if acc == nil {
		return r.Value, nil
	}
	return f.ev.Eval2(acc, r.Value)
}

func (f reducer) merge(a, b any) (any, error) {
	switch {
	case a == nil:
		return b, nil
	case b == nil:
		return a, nil
	}
	return f.ev.Eval2(a, b)
}

func (reducer) result(acc any, _ *aggOut) (any, error) { return acc, nil }

// fields computes the named aggregations of an aggregate step. The
// accumulator is a []any with one slot per field.
type fields struct {
	fs []plan.AggField
	// Per-subtask evaluators of the fields' Arg and Add programs.
	args, adds []*expr.Evaluator
	kinds      []aggKind // fs[i].Kind, decoded once
}

type aggKind uint8

const (
	aggCount aggKind = iota
	aggSum
	aggMin
	aggMax
	aggAvg
	aggAccumulator
	aggOther
)

func kindOf(k string) aggKind {
	switch k {
	case "count":
		return aggCount
	case "sum":
		return aggSum
	case "min":
		return aggMin
	case "max":
		return aggMax
	case "avg":
		return aggAvg
	case "accumulator":
		return aggAccumulator
	}
	return aggOther
}

func newFields(fs []plan.AggField) fields {
	a := fields{fs: fs, args: make([]*expr.Evaluator, len(fs)), adds: make([]*expr.Evaluator, len(fs)), kinds: make([]aggKind, len(fs))}
	for i, f := range fs {
		a.kinds[i] = kindOf(f.Kind)
		if f.Arg != nil {
			a.args[i] = f.Arg.Evaluator()
		}
		if f.Add != nil {
			a.adds[i] = f.Add.Evaluator()
		}
	}
	return a
}

func (a fields) create() (any, error) {
	acc := make([]any, len(a.fs))
	for i, f := range a.fs {
		switch f.Kind {
		case "count":
			acc[i] = int64(0)
		case "avg":
			acc[i] = []any{float64(0), int64(0)}
		case "accumulator":
			v, err := f.Init.Eval()
			if err != nil {
				return nil, fmt.Errorf("aggregate field %q init: %w", f.Name, err)
			}
			acc[i] = v
		}
	}
	return acc, nil
}

func (a fields) add(accAny any, r *value.Record) (any, error) {
	acc := accAny.([]any)
	for i, f := range a.fs {
		var arg any
		if ev := a.args[i]; ev != nil {
			v, err := ev.Eval1(r.Value)
			if err != nil {
				return nil, fmt.Errorf("aggregate field %q: %w", f.Name, err)
			}
			arg = v
		}
		var err error
		switch kind := a.kinds[i]; kind {
		case aggCount:
			acc[i] = acc[i].(int64) + 1
		case aggSum:
			acc[i], err = addNumbers(acc[i], arg)
		case aggMin, aggMax:
			if arg == nil {
				continue
			}
			if acc[i] == nil {
				acc[i] = arg
				continue
			}
			c, cerr := value.Compare(arg, acc[i])
			if cerr != nil {
				err = cerr
			} else if (kind == aggMin && c < 0) || (kind == aggMax && c > 0) {
				acc[i] = arg
			}
		case aggAvg:
			x, ok := value.ToFloat(arg)
			if !ok {
				err = fmt.Errorf("avg needs a number, got %s", value.TypeName(arg))
				break
			}
			p := acc[i].([]any) // this accumulator's own pair: update in place
			p[0], p[1] = p[0].(float64)+x, p[1].(int64)+1
		case aggAccumulator:
			acc[i], err = a.adds[i].Eval2(acc[i], r.Value)
		}
		if err != nil {
			return nil, fmt.Errorf("aggregate field %q: %w", f.Name, err)
		}
	}
	// The slots were updated in place: hand back the interface we got
	// (boxing acc again would allocate a slice header per record).
	return accAny, nil
}

func (a fields) merge(x, y any) (any, error) {
	ax, ay := x.([]any), y.([]any)
	out := make([]any, len(a.fs))
	for i, f := range a.fs {
		var err error
		switch f.Kind {
		case "count":
			out[i] = ax[i].(int64) + ay[i].(int64)
		case "sum":
			out[i], err = addNumbers(ax[i], ay[i])
		case "min", "max":
			switch {
			case ax[i] == nil:
				out[i] = ay[i]
			case ay[i] == nil:
				out[i] = ax[i]
			default:
				c, cerr := value.Compare(ay[i], ax[i])
				err = cerr
				out[i] = ax[i]
				if (f.Kind == "min" && c < 0) || (f.Kind == "max" && c > 0) {
					out[i] = ay[i]
				}
			}
		case "avg":
			px, py := ax[i].([]any), ay[i].([]any)
			out[i] = []any{px[0].(float64) + py[0].(float64), px[1].(int64) + py[1].(int64)}
		case "accumulator":
			out[i], err = f.Merge.Eval(ax[i], ay[i])
		}
		if err != nil {
			return nil, fmt.Errorf("aggregate field %q merge: %w", f.Name, err)
		}
	}
	return out, nil
}

func (a fields) result(accAny any, out *aggOut) (any, error) {
	acc := accAny.([]any)
	var r *value.Row
	var m map[string]any
	if out.schema != nil {
		r = value.NewRow(out.schema)
		for i, v := range out.head[:out.nHead] {
			r.Set(out.at[i], v)
		}
	} else {
		m = make(map[string]any, len(out.names))
		for i, v := range out.head[:out.nHead] {
			m[out.names[i]] = v
		}
	}
	clear(out.head[:])
	for i, f := range a.fs {
		var v any
		switch f.Kind {
		case "avg":
			p := acc[i].([]any)
			if n := p[1].(int64); n > 0 {
				v = p[0].(float64) / float64(n)
			}
		case "accumulator":
			v = acc[i]
			if f.Result != nil {
				var err error
				if v, err = f.Result.Eval1(acc[i]); err != nil {
					return nil, fmt.Errorf("aggregate field %q result: %w", f.Name, err)
				}
			}
		default:
			v = acc[i]
		}
		if r != nil {
			r.Set(out.at[out.nHead+i], v)
		} else {
			m[f.Name] = v
		}
	}
	if r != nil {
		return r, nil
	}
	return m, nil
}

// addNumbers sums two numbers, staying integral while both are ints.
func addNumbers(a, b any) (any, error) {
	if a == nil {
		if _, ok := value.ToFloat(b); !ok && b != nil {
			return nil, fmt.Errorf("sum needs numbers, got %s", value.TypeName(b))
		}
		return b, nil
	}
	if b == nil {
		return a, nil
	}
	if x, ok := a.(int64); ok {
		if y, ok := b.(int64); ok {
			return x + y, nil
		}
	}
	x, ok1 := value.ToFloat(a)
	y, ok2 := value.ToFloat(b)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("sum needs numbers, got %s and %s", value.TypeName(a), value.TypeName(b))
	}
	return x + y, nil
}

// Rolling is a keyed rolling reduce or aggregation. In STREAMING it emits the
// updated result for every record; in BATCH only the final result per key,
// when the key ends.
type Rolling struct {
	keyedBase
	agg    aggregator
	isAgg  bool
	out    *aggOut // set by Open when isAgg
	acc    state.ValueState
	lastTs int64
}

func (o *Rolling) Open(ctx *Context, out Collector) error {
	o.openKeyed(ctx, out)
	o.acc = o.st.Value("acc", state.Codec{})
	if o.isAgg {
		o.out = newAggOut(o.agg.(fields), "key")
	}
	o.onTimer = func(state.Timer) error { return nil }
	o.endKey = o.emitFinal
	return nil
}

func (o *Rolling) Process(r *value.Record, _ int) error {
	o.setKey(r)
	acc := o.acc.Get()
	if acc == nil {
		var err error
		if acc, err = o.agg.create(); err != nil {
			return o.fail(err)
		}
	}
	acc, err := o.agg.add(acc, r)
	if err != nil {
		return o.fail(err)
	}
	o.acc.Set(acc)
	o.lastTs = r.Ts
	if o.ctx.Batch() {
		return nil
	}
	return o.emit(acc, r.Ts)
}

func (o *Rolling) emit(acc any, ts int64) error {
	if o.isAgg {
		o.out.head[0] = o.st.CurrentKey()
	}
	v, err := o.agg.result(acc, o.out)
	if err != nil {
		return o.fail(err)
	}
	return o.base.emit(v, ts)
}

func (o *Rolling) emitFinal() error {
	acc := o.acc.Get()
	if acc == nil {
		return nil
	}
	return o.emit(acc, o.lastTs)
}
