package operator

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// collect is a Collector that keeps what it gets.
type collect struct{ recs []value.Record }

func (c *collect) Collect(r *value.Record) error { c.recs = append(c.recs, *r); return nil }
func (c *collect) Watermark(int64) error         { return nil }

// openProcess plans src -> keyBy(record.k) process -> sink and opens the
// process operator in STREAMING mode.
func openProcess(t testing.TB, onElement, onTimer string) (*Process, *collect) {
	t.Helper()
	n := int64(1)
	job := &spec.Job{RuntimeMode: spec.Streaming, Parallelism: 1, Steps: []spec.Step{
		{Name: "src", Source: &spec.Source{Nexmark: &spec.Nexmark{Events: &n}}},
		{Name: "p", KeyBy: "record.k", Process: &spec.Process{OnElement: onElement, OnTimer: onTimer}},
		{Name: "out", Sink: &spec.Sink{Discard: &spec.DiscardSink{}}},
	}}
	p, err := plan.New(job, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := p.Stages[len(p.Stages)-1]
	c, err := NewChain(st, p.Mode, map[string]connector.Sink{"out": connector.NewDiscardSink()})
	if err != nil {
		t.Fatal(err)
	}
	out := &collect{}
	if err := c.Ops[0].Open(&Context{Ctx: context.Background(), Mode: spec.Streaming, Now: func() int64 { return 0 }}, out); err != nil {
		t.Fatal(err)
	}
	return c.Ops[0].(*Process), out
}

// A process step's actions, decoded from the map its expression returns
// (natively or by CEL), and the errors of malformed actions.
func TestProcessActions(t *testing.T) {
	// Keeps a running sum per key in state, emits it, and at the timer
	// (record.v + 100) emits the state and clears it.
	p, out := openProcess(t,
		"dyn({'state': (state == null ? 0 : state) + record.v, 'emit': [{'k': key, 'sum': (state == null ? 0 : state) + record.v}], 'timers': [record.v + 100]})",
		"{'emit': [{'k': key, 'final': state, 'at': timer, 'd': timeDomain}], 'state': null}")
	rec := func(k, v int64) *value.Record {
		r := &value.Record{Value: map[string]any{"k": k, "v": v}, Ts: v}
		r.WithKey(k)
		return r
	}
	for _, r := range []*value.Record{rec(1, 1), rec(2, 5), rec(1, 2)} {
		if err := p.Process(r, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Watermark(103); err != nil {
		t.Fatal(err)
	}
	var got []any
	for _, r := range out.recs {
		// The literals build rows while rows are on: compare the maps.
		got = append(got, value.Plain(r.Value))
	}
	want := []any{
		map[string]any{"k": int64(1), "sum": int64(1)},
		map[string]any{"k": int64(2), "sum": int64(5)},
		map[string]any{"k": int64(1), "sum": int64(3)},
		map[string]any{"k": int64(1), "final": int64(3), "at": int64(101), "d": "event"},
		map[string]any{"k": int64(1), "final": nil, "at": int64(102), "d": "event"}, // cleared at 101
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("emitted %v, want %v", got, want)
	}
	// Key 2's timer at 105 comes with the next watermark.
	if err := p.Watermark(200); err != nil {
		t.Fatal(err)
	}
	if last := value.Plain(out.recs[len(out.recs)-1].Value); !reflect.DeepEqual(last, map[string]any{"k": int64(2), "final": int64(5), "at": int64(105), "d": "event"}) {
		t.Errorf("last emitted %v", last)
	}

	// A processing-time timer.
	p, out = openProcess(t, "{'processingTimers': [record.v + 1000]}", "{'emit': [{'at': timer, 'd': timeDomain, 'wm': watermark}]}")
	if err := p.Process(rec(3, 7), 0); err != nil {
		t.Fatal(err)
	}
	if err := p.FireProcessingTimers(2000); err != nil {
		t.Fatal(err)
	}
	if len(out.recs) != 1 || !reflect.DeepEqual(value.Plain(out.recs[0].Value), map[string]any{"at": int64(1007), "d": "processing", "wm": int64(value.MinWatermark)}) {
		t.Errorf("processing timer emitted %v", out.recs)
	}

	for _, c := range []struct{ expr, err string }{
		{"{'state': 1, 'bogus': 2}", `unknown action "bogus"`},
		{"{'timers': 5}", "timers: want a list of int timestamps, got int"},
		{"{'timers': [1, 'x']}", `timers: timestamp "x" is not RFC 3339`},
		{"{'emit': 3}", "emit must be a list, got int"},
		{"{'broadcast': 1}", "only records of a broadcast input may update broadcast state"},
		{"dyn([1])", "want a map of actions"},
	} {
		p, _ := openProcess(t, c.expr, "")
		err := p.Process(rec(1, 1), 0)
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: error %v, want %q", c.expr, err, c.err)
		}
	}
}
