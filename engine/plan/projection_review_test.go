package plan_test

import (
	"testing"

	"github.com/flinkjob/flinkjob/engine/expr"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
)

// TestReviewReadsWholeValues: every use of a record value other than
// selecting a named field of it (shadowing comprehension variables of
// every macro form, presence and membership tests, size, iteration,
// equality, dyn, optional access, type checks) marks that value as read
// whole, so projection pushdown cannot leave out a field it observes.
func TestReviewReadsWholeValues(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"record.exists(k, k == 'bid')", "*"},
		{"'bid' in record", "*"},
		{"size(record) == 3", "*"},
		{"record == record", "*"},
		{"dyn(record).bid.price > 0", "*"},
		{"record.?bid.price.orValue(0) > 0", "*"},
		{"record[?'bid'].hasValue()", "*"},
		{"type(record) == map", "*"},
		{"[1].all(i, record, record > 0) && record.bid.price > 0", "*"},
		{"[3, 1].sortBy(record, record)[0] == record.bid.price", "*"},
		{"[3, 1].map(record, record * 2)[0] == record.bid.price", "*"},
		{"[[1]].exists(x, x.exists(record, record == 1)) || record.bid.price > 0", "*"},
		{"{'a': 1}.transformMap(record, v, v + 1).a == record.bid.price", "*"},
		{"record.bid.exists(k, v, k == 'price' && v == 1)", "{bid}"},
		{"'price' in record.bid", "{bid}"},
		{"size(record.bid) == 7", "{bid}"},
		{"record.bid == record.auction", "{auction,bid}"},
		{"type(record.bid) == map", "{bid}"},
		{"[record.bid][0].price > 0", "{bid}"},
		{"optional.of(record.bid).value().price > 0", "{bid}"},
		{"record.bid.transformMap(k, v, v) == {}", "{bid}"},
		{"has(record.bid.price)", "{bid:{price}}"},
		{"string(record.bid.price) != ''", "{bid:{price}}"},
		{"record.type.startsWith('b')", "{type}"},
		{"record['bid']['price'] > 1", "{bid:{price}}"},
		{"record.bid[record.type] == 1", "{bid,type}"},
	} {
		p, err := expr.Compile(c.src, expr.Bool, expr.Record)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		if got := p.Reads(expr.Record).String(); got != c.want {
			t.Errorf("Reads(%q) = %s, want %s", c.src, got, c.want)
		}
	}
}

// TestReviewProjectionConsumers: a source read whole by any consumer
// (sink, Go call, reduce, window, join, union, side output, broadcast)
// is read whole, also behind filters and keyBy steps.
func TestReviewProjectionConsumers(t *testing.T) {
	n := int64(10)
	src := spec.Step{Name: "src", Source: &spec.Source{Nexmark: &spec.Nexmark{Events: &n}, Timestamp: "record.ts"}}
	sink := func(name string, in ...string) spec.Step {
		return spec.Step{Name: name, Inputs: in, Sink: &spec.Sink{Discard: &spec.DiscardSink{}}}
	}
	for _, c := range []struct {
		name  string
		steps []spec.Step
		want  string
	}{
		{"map and filtered sink", []spec.Step{
			{Name: "m", Inputs: []string{"src"}, Map: "record.bid.price"}, sink("o1", "m"),
			{Name: "f", Inputs: []string{"src"}, Filter: "record.type == 'bid'"}, sink("o2", "f"),
		}, "-"},
		{"filter, keyBy, window", []spec.Step{
			{Name: "f", Filter: "record.type == 'bid'"},
			{Name: "w", KeyBy: "record.bid.auction", Window: &spec.Window{Type: "tumbling", Size: spec.Duration("1s"),
				Aggregate: &spec.Aggregate{Fields: []spec.AggregateField{{Name: "n", Count: true}}}}},
			sink("o", "w"),
		}, "-"},
		{"keyBy then process", []spec.Step{
			{Name: "k", KeyBy: "record.bid.auction"},
			{Name: "p", Process: &spec.Process{OnElement: "{'emit': [record.bid.price]}"}},
			sink("o", "p"),
		}, "{bid:{auction,price},ts}"},
		{"process keeping the record", []spec.Step{
			{Name: "k", KeyBy: "record.type"},
			{Name: "p", Process: &spec.Process{OnElement: "{'state': record.bid, 'emit': [1]}"}},
			sink("o", "p"),
		}, "{bid,ts,type}"},
	} {
		job := &spec.Job{RuntimeMode: spec.Streaming, Parallelism: 1, Steps: append([]spec.Step{src}, c.steps...)}
		g, err := plan.Build(job, plan.Options{})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := g.Nodes[0].Fields.String(); got != c.want {
			t.Errorf("%s: the source reads %s, want %s", c.name, got, c.want)
		}
	}
}
