package operator

import (
	"context"
	"reflect"
	"testing"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/udf"
	"github.com/flinkjob/flinkjob/engine/value"
)

// TestRecycleSourceValuesHooks: the filters right after the source hand
// back what they reject and the map after them what it consumed; a filter
// behind the map does not (its input is not the source's value).
func TestRecycleSourceValuesHooks(t *testing.T) {
	c, p := sourceChain(t, connector.NewDiscardSink(),
		spec.Step{Name: "f1", Filter: "record.type != 'person'"},
		spec.Step{Name: "f2", Filter: "record.type == 'bid'"},
		spec.Step{Name: "m", Map: "record"},
		spec.Step{Name: "f3", Filter: "true"})
	var got []any
	c.RecycleSourceValues(func(v any) { got = append(got, v) })
	for i, want := range map[int]bool{1: true, 2: true, 4: false} {
		f := c.Ops[i].(*Filter)
		if (f.dropped != nil) != want {
			t.Errorf("%s: recycles drops = %v, want %v", p.Stages[0].Chain[i].Name, f.dropped != nil, want)
		}
	}
	if m := c.Ops[3].(*Map); m.consumed == nil || m.fresh || m.picks != nil {
		t.Error("the map `record` (neither a map literal nor a part of record) recycles its inputs without a sink releasing them")
	}
	c.Ops[2].(*Filter).drop(&value.Record{Value: "rejected"})
	c.Ops[4].(*Filter).drop(&value.Record{Value: "behind a map"})
	if len(got) != 1 || got[0] != "rejected" {
		t.Fatalf("recycled %v, want [rejected]", got)
	}
}

// A udf.Peek step between the source and its filters keeps recycling on
// (it only looks); any other call step ends it. The peek sees every value
// as it is and passes it on unchanged.
func TestRecyclingLooksThroughPeek(t *testing.T) {
	var seen []any
	udf.Peek("recycle-test-peek", func(v any) error { seen = append(seen, v); return nil })
	udf.MapRows("recycle-test-identity", func(v any) (any, error) { return v, nil })
	for _, c := range []struct {
		call     string
		recycles bool
	}{{"recycle-test-peek", true}, {"recycle-test-identity", false}} {
		ch, _ := sourceChain(t, connector.NewDiscardSink(),
			spec.Step{Name: "look", Call: c.call},
			spec.Step{Name: "f", Filter: "record.type == 'bid'"})
		ch.RecycleSourceValues(func(any) {})
		if got := ch.Ops[2].(*Filter).dropped != nil; got != c.recycles {
			t.Errorf("filter after %s: recycles drops = %v, want %v", c.call, got, c.recycles)
		}
	}
	ch, _ := sourceChain(t, connector.NewDiscardSink(), spec.Step{Name: "look", Call: "recycle-test-peek"})
	in := value.RowOf(map[string]any{"type": "bid", "n": int64(1)})
	var out []any
	peek := ch.Ops[1].(*Call)
	if err := peek.Open(&Context{}, collectorFunc(func(r *value.Record) error { out = append(out, r.Value); return nil })); err != nil {
		t.Fatal(err)
	}
	if err := peek.Process(&value.Record{Value: in, Ts: 7}, 0); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != any(in) || len(out) != 1 || out[0] != any(in) {
		t.Fatalf("peek saw %v and passed on %v, want the row itself both times", seen, out)
	}
}

// TestMapSharesInput: a map literal's output is checked only at the
// entries that could hold an input's container.
func TestMapSharesInput(t *testing.T) {
	for _, c := range []struct {
		expr  string
		out   any
		hooks bool
		want  bool
	}{
		{"{'a': record.a, 'n': record.n * 2}", map[string]any{"a": int64(1), "n": int64(2)}, true, false},
		{"{'a': record.a, 'n': record.n * 2}", map[string]any{"a": map[string]any{}, "n": int64(2)}, true, true},
		{"{'a': record.a, 'n': record.n * 2}", map[string]any{"a": []any{}, "n": int64(2)}, true, true},
		{"{'a': record.a, 'n': record.n * 2}", map[string]any{"a": []byte("x"), "n": int64(2)}, true, true},
		{"{'a': record.a}", "not a map", true, true},
		{"record", map[string]any{}, false, true},
	} {
		ch, _ := sourceChain(t, connector.NewDiscardSink(), spec.Step{Name: "m", Map: c.expr})
		ch.RecycleSourceValues(func(any) {})
		m := ch.Ops[1].(*Map)
		if m.fresh != c.hooks {
			t.Errorf("%s: recycles = %v, want %v", c.expr, m.fresh, c.hooks)
			continue
		}
		if c.hooks {
			if got := m.sharesInput(c.out); got != c.want {
				t.Errorf("%s: sharesInput(%v) = %v, want %v", c.expr, c.out, got, c.want)
			}
		}
	}
}

// TestMapPicksPart: a map step picking record.bid emits the bid whole and
// recycles the rest of the event without it, for a map event (the field
// is removed) and a row event (a row's fields are fixed: it is nulled).
func TestMapPicksPart(t *testing.T) {
	for _, rows := range []bool{false, true} {
		ch, _ := sourceChain(t, connector.NewDiscardSink(), spec.Step{Name: "m", Map: "record.bid"})
		var recycled []any
		ch.RecycleSourceValues(func(v any) { recycled = append(recycled, v) })
		var emitted []any
		m := ch.Ops[1].(*Map)
		if err := m.Open(&Context{}, collectorFunc(func(r *value.Record) error { emitted = append(emitted, r.Value); return nil })); err != nil {
			t.Fatal(err)
		}
		var event any = map[string]any{"type": "bid", "bid": map[string]any{"price": int64(3)}}
		if rows {
			event = value.Rows(event)
		}
		bid, _ := value.Field(event, "bid")
		if err := m.Process(&value.Record{Value: event}, 0); err != nil {
			t.Fatal(err)
		}
		if len(emitted) != 1 || !sameObject(emitted[0], bid) {
			t.Fatalf("rows=%v: emitted %v, want the event's bid itself", rows, emitted)
		}
		if len(recycled) != 1 || !sameObject(recycled[0], event) {
			t.Fatalf("rows=%v: recycled %v, want the event", rows, recycled)
		}
		if f, still := value.Field(event, "bid"); still != rows || f != nil {
			t.Fatalf("rows=%v: the recycled event still holds %v", rows, f)
		}
	}
}

// sameObject reports whether a and b are the same map or row, not equal
// copies.
func sameObject(a, b any) bool {
	if ra, ok := a.(*value.Row); ok {
		return ra == b
	}
	ma, ok1 := a.(map[string]any)
	mb, ok2 := b.(map[string]any)
	return ok1 && ok2 && reflect.ValueOf(ma).UnsafePointer() == reflect.ValueOf(mb).UnsafePointer()
}

// sourceChain builds the chain of the first stage of a BATCH job: a
// nexmark source "src", steps, and a sink step "out" writing to sink.
func sourceChain(t *testing.T, sink connector.Sink, steps ...spec.Step) (*Chain, *plan.Plan) {
	t.Helper()
	n := int64(1)
	all := append([]spec.Step{{Name: "src", Source: &spec.Source{Nexmark: &spec.Nexmark{Events: &n}}}}, steps...)
	all = append(all, spec.Step{Name: "out", Sink: &spec.Sink{Discard: &spec.DiscardSink{}}})
	p, err := plan.New(&spec.Job{RuntimeMode: spec.Batch, Parallelism: 1, Steps: all}, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewChain(p.Stages[0], p.Mode, map[string]connector.Sink{"out": sink})
	if err != nil {
		t.Fatal(err)
	}
	return c, p
}

// nop is a chain output that drops what it gets; it does not say that it
// keeps nothing (it is no connector.ValueReleaser; see releasingFunc).
var nop = collectorFunc(func(*value.Record) error { return nil })

type collectorFunc func(r *value.Record) error

func (f collectorFunc) Collect(r *value.Record) error { return f(r) }
func (collectorFunc) Watermark(int64) error           { return nil }

// TestReuseOutputsWiring: a map literal's output map is reused only when
// it goes (through filters) into a sink whose writer releases values.
func TestReuseOutputsWiring(t *testing.T) {
	for _, c := range []struct {
		name           string
		steps          []spec.Step
		sink           connector.Sink
		want, released bool
	}{
		{"map, filter, discard", []spec.Step{{Name: "m", Map: "{'a': record.type}"}, {Name: "f", Filter: "true"}}, connector.NewDiscardSink(), true, true},
		{"map, keeping sink", []spec.Step{{Name: "m", Map: "{'a': record.type}"}}, keepingSink{}, false, false},
		{"map of a part", []spec.Step{{Name: "m", Map: "record.bid"}}, connector.NewDiscardSink(), false, true},
		{"map, map, discard", []spec.Step{{Name: "m", Map: "{'a': record.type}"}, {Name: "m2", Map: "{'b': record.a}"}}, connector.NewDiscardSink(), false, false},
	} {
		ch, _ := sourceChain(t, c.sink, c.steps...)
		if err := ch.Open(&Context{Ctx: context.Background()}, nop); err != nil {
			t.Fatal(err)
		}
		m := ch.Ops[1].(*Map)
		if got := m.scratch != nil; got != c.want {
			t.Errorf("%s: reuses its output = %v, want %v", c.name, got, c.want)
		}
		if m.outputReleased != c.released {
			t.Errorf("%s: output released = %v, want %v", c.name, m.outputReleased, c.released)
		}
	}
}

type keepingSink struct{}

func (keepingSink) Open(context.Context, int, int) (connector.Writer, error) {
	return keepingWriter{}, nil
}

type keepingWriter struct{}

func (keepingWriter) Write(*value.Record) error { return nil }
func (keepingWriter) Close() error              { return nil }
func (keepingWriter) Abort()                    {}

type releasingFunc struct{ collectorFunc }

func (releasingFunc) ReleasesValues() bool { return true }

// TestReuseOutputsAtReleasingTail: a map step at the end of a chain whose
// output collector keeps nothing (a BATCH edge) reuses its output map; one
// whose collector buffers (a STREAMING edge) does not.
func TestReuseOutputsAtReleasingTail(t *testing.T) {
	steps := []spec.Step{
		{Name: "m", Map: "dyn(record.type == 'bid' ? {'a': record.ts} : {'b': 1})"},
		{Name: "k", KeyBy: "record.a"},
		{Name: "r", Reduce: "acc"},
	}
	for _, c := range []struct {
		name string
		out  Collector
		want bool
	}{
		{"releasing", releasingFunc{nop}, true},
		{"buffering", nop, false},
	} {
		ch, _ := sourceChain(t, connector.NewDiscardSink(), steps...)
		if err := ch.Open(&Context{Ctx: context.Background()}, c.out); err != nil {
			t.Fatal(err)
		}
		m := ch.Ops[1].(*Map)
		if m.outputReleased != c.want || (m.scratch != nil) != c.want {
			t.Errorf("%s tail: output released %v, scratch %v; want %v", c.name, m.outputReleased, m.scratch != nil, c.want)
		}
	}
}
