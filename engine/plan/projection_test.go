package plan_test

import (
	"testing"

	"github.com/flinkjob/flinkjob/engine/bench"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
)

// TestNexmarkProjections pins what each Nexmark sample reads of its
// source's records: what the nexmark generator then builds.
func TestNexmarkProjections(t *testing.T) {
	want := map[string]string{
		"q0": "{bid,ts,type}", // map: record.bid passes the bid on whole
		"q1": "{bid:{auction,bidder,dateTime,price},ts,type}",
		"q2": "{bid:{auction,price},ts,type}",
		"q3": "{auction:{category,id,seller},person:{city,id,name,state},ts,type}",
		"q4": "{auction:{category,dateTime,expires,id},bid:{auction,dateTime,price},ts,type}",
		"q8": "{auction:{dateTime,seller},person:{dateTime,id,name},ts,type}",
	}
	for _, q := range bench.NexmarkQueries {
		job, err := bench.NexmarkJob("../../config/samples/nexmark", q, bench.NexmarkOptions{Events: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, mode := range []spec.RuntimeMode{spec.Streaming, spec.Batch} {
			g, err := plan.Build(job, plan.Options{Mode: mode})
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			got := g.Node("events").Fields.String()
			if w, ok := want[q]; ok && got != w {
				t.Errorf("%s %s: source reads %s, want %s", q, mode, got, w)
			}
			t.Logf("%s %s: %s", q, mode, got)
			g, err = plan.Build(job, plan.Options{Mode: mode, ReadAllFields: true})
			if err != nil {
				t.Fatal(err)
			}
			if f := g.Node("events").Fields; f != nil {
				t.Errorf("%s: ReadAllFields still projects %s", q, f)
			}
		}
	}
}

// TestProjectionFollowsSteps covers the rules step by step: a filter
// passes the record on (its consumers count), a keyBy's key reads it, and
// any step that keeps records whole (here a sink and a reduce) reads all.
func TestProjectionFollowsSteps(t *testing.T) {
	src := spec.Step{Name: "src", Source: &spec.Source{Elements: []spec.Value{{Raw: []byte(`{"a":1,"b":{"c":2,"d":3}}`)}}}}
	for _, c := range []struct {
		name  string
		steps []spec.Step
		want  string
	}{
		{"filter then map", []spec.Step{
			{Name: "f", Filter: "record.a > 0"},
			{Name: "m", Map: "record.b.c"},
			{Name: "out", Sink: &spec.Sink{Discard: &spec.DiscardSink{}}},
		}, "{a,b:{c}}"},
		{"filter then sink", []spec.Step{
			{Name: "f", Filter: "record.a > 0"},
			{Name: "out", Sink: &spec.Sink{Discard: &spec.DiscardSink{}}},
		}, "-"},
		{"keyBy then reduce", []spec.Step{
			{Name: "k", KeyBy: "record.a"},
			{Name: "r", Reduce: "record"},
			{Name: "out", Sink: &spec.Sink{Discard: &spec.DiscardSink{}}},
		}, "-"},
		{"keyBy then process", []spec.Step{
			{Name: "k", KeyBy: "record.a"},
			{Name: "p", Process: &spec.Process{OnElement: "{'emit': [record.b.d]}"}},
			{Name: "out", Sink: &spec.Sink{Discard: &spec.DiscardSink{}}},
		}, "{a,b:{d}}"},
	} {
		job := &spec.Job{RuntimeMode: spec.Streaming, Parallelism: 1, Steps: append([]spec.Step{src}, c.steps...)}
		g, err := plan.Build(job, plan.Options{})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := g.Node("src").Fields.String(); got != c.want {
			t.Errorf("%s: source reads %s, want %s", c.name, got, c.want)
		}
	}
}
