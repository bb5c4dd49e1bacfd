package operator

import (
	"testing"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// TestRecycleDropsOnlyLeadingFilters: the filters right after the source
// hand back what they reject; one behind a map does not (the map's output
// is not the source's value, and what it kept is unknown).
func TestRecycleDropsOnlyLeadingFilters(t *testing.T) {
	n := int64(10)
	job := &spec.Job{RuntimeMode: spec.Batch, Parallelism: 1, Steps: []spec.Step{
		{Name: "src", Source: &spec.Source{Nexmark: &spec.Nexmark{Events: &n}}},
		{Name: "f1", Filter: "record.type != 'person'"},
		{Name: "f2", Filter: "record.type == 'bid'"},
		{Name: "m", Map: "record"},
		{Name: "f3", Filter: "true"},
		{Name: "out", Sink: &spec.Sink{Discard: &spec.DiscardSink{}}},
	}}
	p, err := plan.New(job, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewChain(p.Stages[0], p.Mode, map[string]connector.Sink{"out": connector.NewDiscardSink()})
	if err != nil {
		t.Fatal(err)
	}
	var got []any
	c.RecycleDrops(func(v any) { got = append(got, v) })
	for i, want := range map[int]bool{1: true, 2: true, 4: false} {
		f := c.Ops[i].(*Filter)
		if (f.dropped != nil) != want {
			t.Errorf("%s: recycles drops = %v, want %v", p.Stages[0].Chain[i].Name, f.dropped != nil, want)
		}
	}
	c.Ops[2].(*Filter).drop(&value.Record{Value: "rejected"})
	c.Ops[4].(*Filter).drop(&value.Record{Value: "behind a map"})
	if len(got) != 1 || got[0] != "rejected" {
		t.Fatalf("recycled %v, want [rejected]", got)
	}
}
