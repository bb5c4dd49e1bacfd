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
// accumulator is a *fieldAcc with one slot per field.
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

// fieldAcc is an aggregate step's accumulator: a slot per field, with
// counts, sums and averages unboxed, so that adding a record allocates
// nothing (an int64 boxed in an any allocates once it passes 255), and with
// room for two slots inline (one allocation for the usual one or two
// fields). State snapshots hold the []any form aggregate steps always
// stored (see fields.codec), so savepoints read the same.
type fieldAcc struct {
	slots  []aggSlot
	inline [2]aggSlot
}

type aggSlot struct {
	n   int64   // count; avg's count; an int sum
	f   float64 // avg's sum; a float sum
	v   any     // min, max, accumulator; a sum of another type
	num sumKind // what a sum holds
}

type sumKind uint8

const (
	sumNull sumKind = iota
	sumInt
	sumFloat
	sumOther
)

// sum is a sum slot's value.
func (s *aggSlot) sum() any {
	switch s.num {
	case sumInt:
		return s.n
	case sumFloat:
		return s.f
	case sumOther:
		return s.v
	}
	return nil
}

func (s *aggSlot) setSum(v any) {
	switch x := v.(type) {
	case nil:
		s.num = sumNull
	case int64:
		s.num, s.n = sumInt, x
	case float64:
		s.num, s.f = sumFloat, x
	default:
		s.num, s.v = sumOther, v
	}
}

// addSum adds b as addNumbers does, without boxing the running sum in the
// common cases.
func (s *aggSlot) addSum(b any) error {
	switch s.num {
	case sumInt:
		if y, ok := b.(int64); ok {
			s.n += y
			return nil
		}
	case sumFloat:
		if y, ok := value.ToFloat(b); ok {
			s.f += y
			return nil
		}
	}
	v, err := addNumbers(s.sum(), b)
	if err != nil {
		return err
	}
	s.setSum(v)
	return nil
}

func (a fields) newAcc() *fieldAcc {
	acc := &fieldAcc{}
	a.initAcc(acc)
	return acc
}

// initAcc makes acc an empty accumulator of len(a.fs) slots.
func (a fields) initAcc(acc *fieldAcc) {
	if len(a.fs) <= len(acc.inline) {
		acc.slots = acc.inline[:len(a.fs)]
	} else {
		acc.slots = make([]aggSlot, len(a.fs))
	}
}

func (a fields) create() (any, error) { return a.createIn(&fieldAcc{}) }

// createIn is create in memory the caller provides (a window's).
func (a fields) createIn(acc *fieldAcc) (any, error) {
	a.initAcc(acc)
	for i, f := range a.fs {
		if a.kinds[i] == aggAccumulator {
			v, err := f.Init.Eval()
			if err != nil {
				return nil, fmt.Errorf("aggregate field %q init: %w", f.Name, err)
			}
			acc.slots[i].v = v
		}
	}
	return acc, nil
}

func (a fields) add(accAny any, r *value.Record) (any, error) {
	acc := accAny.(*fieldAcc)
	for i, f := range a.fs {
		var arg any
		if ev := a.args[i]; ev != nil {
			v, err := ev.Eval1(r.Value)
			if err != nil {
				return nil, fmt.Errorf("aggregate field %q: %w", f.Name, err)
			}
			arg = v
		}
		s := &acc.slots[i]
		var err error
		switch kind := a.kinds[i]; kind {
		case aggCount:
			s.n++
		case aggSum:
			err = s.addSum(arg)
		case aggMin, aggMax:
			if arg == nil {
				continue
			}
			if s.v == nil {
				s.v = arg
				continue
			}
			c, cerr := value.Compare(arg, s.v)
			if cerr != nil {
				err = cerr
			} else if (kind == aggMin && c < 0) || (kind == aggMax && c > 0) {
				s.v = arg
			}
		case aggAvg:
			x, ok := value.ToFloat(arg)
			if !ok {
				err = fmt.Errorf("avg needs a number, got %s", value.TypeName(arg))
				break
			}
			s.f, s.n = s.f+x, s.n+1
		case aggAccumulator:
			s.v, err = a.adds[i].Eval2(s.v, r.Value)
		}
		if err != nil {
			return nil, fmt.Errorf("aggregate field %q: %w", f.Name, err)
		}
	}
	return accAny, nil
}

func (a fields) merge(x, y any) (any, error) {
	ax, ay := x.(*fieldAcc), y.(*fieldAcc)
	out := a.newAcc()
	for i, f := range a.fs {
		sx, sy, so := &ax.slots[i], &ay.slots[i], &out.slots[i]
		var err error
		switch kind := a.kinds[i]; kind {
		case aggCount:
			so.n = sx.n + sy.n
		case aggSum:
			var v any
			if v, err = addNumbers(sx.sum(), sy.sum()); err == nil {
				so.setSum(v)
			}
		case aggMin, aggMax:
			switch {
			case sx.v == nil:
				so.v = sy.v
			case sy.v == nil:
				so.v = sx.v
			default:
				c, cerr := value.Compare(sy.v, sx.v)
				err = cerr
				so.v = sx.v
				if (kind == aggMin && c < 0) || (kind == aggMax && c > 0) {
					so.v = sy.v
				}
			}
		case aggAvg:
			so.f, so.n = sx.f+sy.f, sx.n+sy.n
		case aggAccumulator:
			so.v, err = f.Merge.Eval(sx.v, sy.v)
		}
		if err != nil {
			return nil, fmt.Errorf("aggregate field %q merge: %w", f.Name, err)
		}
	}
	return out, nil
}

// fieldValue is field i's result.
func (a fields) fieldValue(acc *fieldAcc, i int) (any, error) {
	s := &acc.slots[i]
	switch a.kinds[i] {
	case aggCount:
		return s.n, nil
	case aggSum:
		return s.sum(), nil
	case aggAvg:
		if s.n > 0 {
			return s.f / float64(s.n), nil
		}
		return nil, nil
	case aggAccumulator:
		if f := a.fs[i]; f.Result != nil {
			v, err := f.Result.Eval1(s.v)
			if err != nil {
				return nil, fmt.Errorf("aggregate field %q result: %w", f.Name, err)
			}
			return v, nil
		}
	}
	return s.v, nil
}

func (a fields) result(accAny any, out *aggOut) (any, error) {
	acc := accAny.(*fieldAcc)
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
		v, err := a.fieldValue(acc, i)
		if err != nil {
			return nil, err
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

// toValue is an accumulator as state snapshots hold it: a []any with a
// slot per field (a count an int, a sum its value, an average [sum, n],
// min, max and accumulators their values).
func (a fields) toValue(accAny any) any {
	acc := accAny.(*fieldAcc)
	out := make([]any, len(a.fs))
	for i := range a.fs {
		s := &acc.slots[i]
		switch a.kinds[i] {
		case aggCount:
			out[i] = s.n
		case aggSum:
			out[i] = s.sum()
		case aggAvg:
			out[i] = []any{s.f, s.n}
		default:
			out[i] = s.v
		}
	}
	return out
}

// fromValue reads an accumulator from its snapshot form (toValue).
func (a fields) fromValue(v any) (any, error) {
	list, ok := v.([]any)
	if !ok || len(list) != len(a.fs) {
		return nil, fmt.Errorf("aggregate state: want a list of %d fields, got %s", len(a.fs), value.TypeName(v))
	}
	acc := a.newAcc()
	for i, f := range a.fs {
		s := &acc.slots[i]
		bad := false
		switch a.kinds[i] {
		case aggCount:
			s.n, ok = list[i].(int64)
			bad = !ok
		case aggSum:
			s.setSum(list[i])
		case aggAvg:
			p, ok := list[i].([]any)
			if bad = !ok || len(p) != 2; !bad {
				var ok1, ok2 bool
				s.f, ok1 = p[0].(float64)
				s.n, ok2 = p[1].(int64)
				bad = !ok1 || !ok2
			}
		default:
			s.v = list[i]
		}
		if bad {
			return nil, fmt.Errorf("aggregate state: field %q holds %s", f.Name, value.TypeName(list[i]))
		}
	}
	return acc, nil
}

// accCodec is how a step keeps its accumulators in state: fields as
// fieldAcc (snapshotted as lists), a reduce's as the values they are.
func accCodec(agg aggregator) state.Codec {
	if f, ok := agg.(fields); ok {
		return state.Codec{ToValue: f.toValue, FromValue: f.fromValue}
	}
	return state.Codec{}
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
	o.acc = o.st.Value("acc", accCodec(o.agg))
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
	fresh := acc == nil
	if fresh {
		var err error
		if acc, err = o.agg.create(); err != nil {
			return o.fail(err)
		}
	}
	acc, err := o.agg.add(acc, r)
	if err != nil {
		return o.fail(err)
	}
	// Fields update their accumulator in place (Get marked the key's
	// state as changed); a reduce's is a new value.
	if fresh || !o.isAgg {
		o.acc.Set(acc)
	}
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
