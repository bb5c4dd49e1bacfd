package operator

import (
	"cmp"
	"context"
	"reflect"
	"slices"
	"testing"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/expr"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/udf"
	"github.com/flinkjob/flinkjob/engine/value"
)

// Tests that the operators treat a *value.Row exactly as the map it stands
// for: the same records are fed once as maps and once as rows (at every
// depth), and what comes out must print the same.

// printed is the JSON and timestamp of each record.
func printed(recs []value.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(value.ToJSON(r.Value))+"@"+string(value.ToJSON(r.Ts)))
	}
	return out
}

// withRows sets value.UseRows for the test.
func withRows(t *testing.T, on bool) {
	old := value.UseRows
	value.UseRows = on
	t.Cleanup(func() { value.UseRows = old })
}

// TestProcessActionRows: a row of actions does what its map does (emit,
// state, timers), and a malformed one fails with the same error.
func TestProcessActionRows(t *testing.T) {
	apply := func(res any) (emitted []string, st string, err error) {
		p, out := openProcess(t, "{}", "{'emit': [timer]}")
		r := &value.Record{Value: map[string]any{"k": int64(1)}, Ts: 5}
		r.WithKey(int64(1))
		p.setKey(r)
		if err := p.apply(res, r.Ts, false); err != nil {
			return nil, "", err
		}
		st = string(value.ToJSON(p.val.Get()))
		if err := p.Watermark(1000); err != nil {
			t.Fatal(err)
		}
		return printed(out.recs), st, nil
	}
	for _, c := range []map[string]any{
		{"emit": []any{map[string]any{"a": int64(1), "b": []any{map[string]any{"c": "x"}}}, int64(2)},
			"state": map[string]any{"n": int64(3)}, "timers": []any{int64(100), int64(150)}},
		{"state": nil, "emit": nil},
		{"timers": []any{}, "processingTimers": nil},
		{},
	} {
		wantOut, wantSt, err := apply(c)
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		for _, rows := range []any{value.RowOf(c), value.Rows(c)} {
			gotOut, gotSt, err := apply(rows)
			if err != nil {
				t.Fatalf("row %v: %v", rows, err)
			}
			if !reflect.DeepEqual(gotOut, wantOut) || gotSt != wantSt {
				t.Errorf("row %v: emitted %v, state %s; the map: %v, state %s", rows, gotOut, gotSt, wantOut, wantSt)
			}
		}
	}
	if out, _, _ := apply(map[string]any{"emit": []any{int64(1)}, "timers": []any{int64(9)}}); len(out) != 2 {
		t.Fatalf("the reference emitted %v, want the element and the timer", out)
	}
	for _, c := range []map[string]any{
		{"state": int64(1), "bogus": int64(2)},
		{"emit": int64(3)},
		{"broadcast": int64(1)},
		{"timers": int64(5)},
	} {
		_, _, want := apply(c)
		_, _, got := apply(value.RowOf(c))
		if want == nil || got == nil || got.Error() != want.Error() {
			t.Errorf("%v: row error %v, map error %v", c, got, want)
		}
	}
}

// TestMapSharesInputRows: a map step's output row is checked like a map,
// and a row inside it counts as a container of the input's.
func TestMapSharesInputRows(t *testing.T) {
	ch, _ := sourceChain(t, connector.NewDiscardSink(), spec.Step{Name: "m", Map: "{'a': record.a, 'n': record.n * 2}"})
	m := ch.Ops[1].(*Map)
	if !m.fresh {
		t.Fatal("a map literal is not fresh")
	}
	for _, out := range []map[string]any{
		{"a": int64(1), "n": int64(2)},
		{"a": map[string]any{}, "n": int64(2)},
		{"a": []any{}, "n": int64(2)},
		{"a": []byte("x"), "n": int64(2)},
		{"a": value.RowOf(map[string]any{"x": int64(1)}), "n": int64(2)},
		{"n": int64(2)},
	} {
		want := m.sharesInput(out)
		if _, isRow := out["a"].(*value.Row); isRow && !want {
			t.Fatalf("a map holding a row in a checked entry is not sharing")
		}
		if got := m.sharesInput(value.RowOf(out)); got != want {
			t.Errorf("sharesInput(row of %v) = %v, the map %v", out, got, want)
		}
	}
}

// TestDetachRows: cutting a picked part out of a row leaves the reader no
// reference to it (the field reads null), as deleting it from a map does.
func TestDetachRows(t *testing.T) {
	for _, c := range []struct {
		path []string
		ok   bool
	}{
		{[]string{"bid"}, true},
		{[]string{"bid", "price"}, true},
		{[]string{"absent"}, true},
		{[]string{"type", "x"}, false},
		{[]string{"absent", "x"}, false},
	} {
		event := func() map[string]any {
			return map[string]any{"type": "bid", "bid": map[string]any{"price": int64(3), "auction": int64(1)}}
		}
		m := event()
		wantOK := detach(m, c.path)
		if wantOK != c.ok {
			t.Fatalf("%v: map detach = %v", c.path, wantOK)
		}
		r := value.Rows(event()).(*value.Row)
		if got := detach(r, c.path); got != wantOK {
			t.Errorf("%v: row detach = %v, map %v", c.path, got, wantOK)
		}
		if !wantOK {
			continue
		}
		// What the map lost, the row holds as null; nothing else changed.
		var holder any = r
		for _, k := range c.path[:len(c.path)-1] {
			holder, _ = value.Field(holder, k)
		}
		if f, _ := value.Field(holder, c.path[len(c.path)-1]); f != nil {
			t.Errorf("%v: the row still holds %v", c.path, f)
		}
		plain := value.Plain(r).(map[string]any)
		var ph any = plain
		for _, k := range c.path[:len(c.path)-1] {
			ph = ph.(map[string]any)[k]
		}
		delete(ph.(map[string]any), c.path[len(c.path)-1])
		if !reflect.DeepEqual(plain, m) {
			t.Errorf("%v: row after detach %v, map %v", c.path, plain, m)
		}
	}
}

// rowsWriter records the values a Go sink gets; accepts says whether it
// handles rows (RowsAware).
type rowsWriter struct {
	got     *[]any
	accepts bool
}

func (w rowsWriter) Write(r *value.Record) error { *w.got = append(*w.got, r.Value); return nil }
func (w rowsWriter) Close() error                { return nil }
func (w rowsWriter) Abort()                      {}
func (w rowsWriter) AcceptsRows() bool           { return w.accepts }

type rowsSink struct {
	got     *[]any
	accepts bool
}

func (s rowsSink) Open(context.Context, int, int) (connector.Writer, error) {
	return rowsWriter(s), nil
}

// TestGoCodeSeesMaps: Go functions (`call:` steps) and Go sinks are user
// code written against map[string]any: while rows are on they get the
// maps the rows stand for, unless a sink says it reads rows; built-in
// sinks get the rows.
func TestGoCodeSeesMaps(t *testing.T) {
	var seen []any
	udf.Register("rows-test-seen", func(v any, emit func(any)) error {
		seen = append(seen, v)
		emit(v)
		return nil
	})
	row := value.Rows(map[string]any{"a": []any{map[string]any{"b": int64(1)}}, "c": map[string]any{}})
	for _, on := range []bool{false, true} {
		withRows(t, on)
		var plainGot, rowsGot []any
		for _, accepts := range []bool{false, true} {
			seen = nil
			got := &plainGot
			if accepts {
				got = &rowsGot
			}
			n := int64(1)
			p, err := plan.New(&spec.Job{RuntimeMode: spec.Batch, Parallelism: 1, Steps: []spec.Step{
				{Name: "src", Source: &spec.Source{Nexmark: &spec.Nexmark{Events: &n}}},
				{Name: "c", Call: "rows-test-seen"},
				{Name: "out", Sink: &spec.Sink{Call: "out"}},
			}}, plan.Options{})
			if err != nil {
				t.Fatal(err)
			}
			ch, err := NewChain(p.Stages[0], p.Mode, map[string]connector.Sink{"out": rowsSink{got, accepts}})
			if err != nil {
				t.Fatal(err)
			}
			if err := ch.Open(&Context{Ctx: context.Background(), Mode: spec.Batch, Parallelism: 1}, nop); err != nil {
				t.Fatal(err)
			}
			if err := ch.Ops[1].Process(&value.Record{Value: row}, 0); err != nil {
				t.Fatal(err)
			}
			// Straight into the sink too: a row the function did not see.
			if err := ch.Ops[2].Process(&value.Record{Value: row}, 0); err != nil {
				t.Fatal(err)
			}
			if len(seen) != 1 {
				t.Fatalf("the function saw %d values", len(seen))
			}
			if on {
				if !reflect.DeepEqual(seen[0], value.Plain(row)) {
					t.Errorf("rows on: the function got %#v, want the plain map", seen[0])
				}
			} else if seen[0] != row {
				t.Errorf("rows off: the function got %#v, want the value as it came", seen[0])
			}
		}
		if len(plainGot) != 2 || len(rowsGot) != 2 {
			t.Fatalf("sinks got %d and %d values", len(plainGot), len(rowsGot))
		}
		if on {
			if !reflect.DeepEqual(plainGot[1], value.Plain(row)) {
				t.Errorf("rows on: a Go sink got %#v, want the plain map", plainGot[1])
			}
			if rowsGot[1] != row {
				t.Errorf("rows on: a rows-aware Go sink got %#v, want the row", rowsGot[1])
			}
		} else if plainGot[1] != row || rowsGot[1] != row {
			t.Errorf("rows off: Go sinks got %#v and %#v, want the value as it came", plainGot[1], rowsGot[1])
		}
	}
	// A built-in sink is no Go sink: it gets what comes.
	ch, _ := sourceChain(t, connector.NewDiscardSink())
	if s := ch.Ops[len(ch.Ops)-1].(*Sink); s.goSink {
		t.Error("a discard sink is taken for a Go sink")
	}
}

// TestKeyedOperatorsPassRows: the join and window operators keep and emit
// row values as they do maps (their values are opaque to them; the CEL
// parts are tested with rows in package expr and engine/local).
func TestKeyedOperatorsPassRows(t *testing.T) {
	type in struct {
		v     map[string]any
		key   int64
		ts    int64
		input int
	}
	var ins []in
	for i := int64(0); i < 40; i++ {
		ins = append(ins, in{map[string]any{"i": i, "nested": map[string]any{"l": []any{map[string]any{"x": i % 3}}}}, i % 3, i * 7 % 50, int(i % 2)})
	}
	for _, c := range []struct {
		name string
		op   func() Operator
	}{
		{"window join", func() Operator {
			return &WindowJoin{keyedBase: keyedBase{base: base{name: "j"}}, asg: assigner{typ: spec.Tumbling, size: 20}}
		}},
		{"interval join", func() Operator {
			return &IntervalJoin{keyedBase: keyedBase{base: base{name: "j"}}, lower: -10, upper: 10}
		}},
		{"window count", func() Operator {
			return &Window{keyedBase: keyedBase{base: base{name: "w"}}, step: "w", asg: assigner{typ: spec.Sliding, size: 20, slide: 10},
				agg: newFields([]plan.AggField{{Name: "n", Kind: "count"}}), isAgg: true, lateness: 5}
		}},
	} {
		for _, mode := range []spec.RuntimeMode{spec.Streaming, spec.Batch} {
			var outs [2][]string
			for k, rows := range []bool{false, true} {
				op := c.op()
				out := &collect{}
				ctx := &Context{Ctx: context.Background(), Mode: mode, Parallelism: 1, Now: func() int64 { return 0 }}
				if err := op.Open(ctx, out); err != nil {
					t.Fatal(err)
				}
				feed := ins
				if mode == spec.Batch {
					// BATCH feeds one key at a time, sorted by time.
					feed = slices.Clone(ins)
					slices.SortStableFunc(feed, func(a, b in) int { return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.ts, b.ts)) })
				}
				for i, x := range feed {
					var v any = x.v
					if rows {
						v = value.Rows(x.v)
					}
					if mode == spec.Batch && i > 0 && x.key != feed[i-1].key {
						if err := op.(Keyed).EndKey(); err != nil {
							t.Fatal(err)
						}
					}
					r := &value.Record{Value: v, Ts: x.ts}
					r.WithKey(x.key)
					if err := op.Process(r, x.input); err != nil {
						t.Fatal(err)
					}
					if mode == spec.Streaming && i%5 == 4 {
						if err := op.Watermark(x.ts - 15); err != nil {
							t.Fatal(err)
						}
					}
				}
				if mode == spec.Batch {
					if err := op.(Keyed).EndKey(); err != nil {
						t.Fatal(err)
					}
				} else if err := op.Watermark(value.MaxWatermark); err != nil {
					t.Fatal(err)
				}
				outs[k] = printed(out.recs)
			}
			if len(outs[0]) == 0 {
				t.Fatalf("%s %s: no output", c.name, mode)
			}
			if !reflect.DeepEqual(outs[0], outs[1]) {
				t.Errorf("%s %s: rows gave\n%v\nmaps gave\n%v", c.name, mode, outs[1], outs[0])
			}
		}
	}
}

// TestAggregateResultRows: with rows on, aggregate steps (rolling and
// windowed) and joins without a select emit rows; they print as the maps
// they emit with rows off.
func TestAggregateResultRows(t *testing.T) {
	prog := func(src string, vars ...string) *expr.Program {
		p, err := expr.Compile(src, expr.Any, vars...)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	aggFields := func() fields {
		return newFields([]plan.AggField{
			{Name: "n", Kind: "count"},
			{Name: "s", Kind: "sum", Arg: prog("record.v", expr.Record)},
			{Name: "lo", Kind: "min", Arg: prog("record.v", expr.Record)},
			{Name: "a", Kind: "avg", Arg: prog("record.v", expr.Record)},
			{Name: "acc", Kind: "accumulator", Init: prog("{'c': 0}"), Add: prog("{'c': acc.c + record.v}", expr.Acc, expr.Record),
				Result: prog("acc.c * 2", expr.Acc)},
		})
	}
	for _, c := range []struct {
		name string
		op   func() Operator
	}{
		{"rolling", func() Operator {
			return &Rolling{keyedBase: keyedBase{base: base{name: "r"}}, agg: aggFields(), isAgg: true}
		}},
		{"window", func() Operator {
			return &Window{keyedBase: keyedBase{base: base{name: "w"}}, step: "w", asg: assigner{typ: spec.Tumbling, size: 20},
				agg: aggFields(), isAgg: true}
		}},
		{"interval join", func() Operator {
			return &IntervalJoin{keyedBase: keyedBase{base: base{name: "j"}}, lower: -10, upper: 10, j: newJoiner(nil)}
		}},
	} {
		var outs [2][]string
		for k, rows := range []bool{false, true} {
			withRows(t, rows)
			op := c.op()
			out := &collect{}
			if err := op.Open(&Context{Ctx: context.Background(), Mode: spec.Streaming, Parallelism: 1}, out); err != nil {
				t.Fatal(err)
			}
			for i := int64(0); i < 30; i++ {
				r := &value.Record{Value: map[string]any{"v": i * 3 % 7}, Ts: i * 2}
				r.WithKey(i % 3)
				if err := op.Process(r, int(i%2)); err != nil {
					t.Fatal(err)
				}
			}
			if err := op.Watermark(value.MaxWatermark); err != nil {
				t.Fatal(err)
			}
			if len(out.recs) == 0 {
				t.Fatalf("%s: no output", c.name)
			}
			for _, r := range out.recs {
				if _, isRow := r.Value.(*value.Row); isRow != rows {
					t.Fatalf("%s rows=%v: emitted a %T", c.name, rows, r.Value)
				}
			}
			outs[k] = printed(out.recs)
		}
		if !reflect.DeepEqual(outs[0], outs[1]) {
			t.Errorf("%s: rows gave\n%v\nmaps gave\n%v", c.name, outs[1], outs[0])
		}
	}
}

// TestRowsAwareFunction: a function registered with udf.MapRows gets the
// engine's rows as they are, while one registered with udf.Map gets maps.
func TestRowsAwareFunction(t *testing.T) {
	withRows(t, true)
	var seen []any
	udf.MapRows("rows-test-aware", func(v any) (any, error) { seen = append(seen, v); return v, nil })
	udf.Map("rows-test-plain", func(v any) (any, error) { seen = append(seen, v); return v, nil })
	if !udf.AcceptsRows("rows-test-aware") || udf.AcceptsRows("rows-test-plain") {
		t.Fatal("udf.AcceptsRows does not tell the two apart")
	}
	row := value.Rows(map[string]any{"a": map[string]any{"b": int64(1)}})
	for _, fn := range []string{"rows-test-aware", "rows-test-plain"} {
		seen = nil
		ch, _ := sourceChain(t, connector.NewDiscardSink(), spec.Step{Name: "c", Call: fn})
		if err := ch.Open(&Context{Ctx: context.Background(), Mode: spec.Batch, Parallelism: 1}, nop); err != nil {
			t.Fatal(err)
		}
		if err := ch.Ops[1].Process(&value.Record{Value: row}, 0); err != nil {
			t.Fatal(err)
		}
		if len(seen) != 1 {
			t.Fatalf("%s saw %d values", fn, len(seen))
		}
		if _, isRow := seen[0].(*value.Row); isRow != (fn == "rows-test-aware") {
			t.Errorf("%s got a %T", fn, seen[0])
		}
	}
}
