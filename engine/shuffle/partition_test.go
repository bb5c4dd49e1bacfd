package shuffle

import (
	"hash/fnv"
	"testing"

	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// KeyGroup is FNV-1a (32 bit) of the key ID: key groups must not move
// between versions.
func TestKeyGroupIsFNV1a(t *testing.T) {
	for _, k := range []any{nil, int64(0), int64(-7), "a", "", "flink", []any{int64(1), "x"}, map[string]any{"a": 2.5}} {
		id := value.KeyID(k)
		h := fnv.New32a()
		h.Write([]byte(id))
		if want := int(h.Sum32() % plan.MaxParallelism); KeyGroup(id) != want {
			t.Errorf("KeyGroup(%v) = %d, want %d", k, KeyGroup(id), want)
		}
	}
}

func BenchmarkRouteHash(b *testing.B) {
	job := &spec.Job{Parallelism: 1, Steps: []spec.Step{
		{Name: "src", Source: &spec.Source{Elements: []spec.Value{{Raw: []byte(`{"g":1}`)}}}},
		{Name: "sum", KeyBy: "record.g", Reduce: "acc"},
		{Name: "out", Sink: &spec.Sink{Print: &spec.PrintSink{}}},
	}}
	p, err := plan.New(job, plan.Options{Mode: spec.Streaming})
	if err != nil {
		b.Fatal(err)
	}
	e := p.Stages[0].Outputs[0]
	part := NewPartitioner(e, 0)
	recs := make([]map[string]any, 1000)
	for i := range recs {
		recs[i] = map[string]any{"g": int64(i)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := value.Record{Value: recs[i%len(recs)]}
		if _, err := part.Route(&r); err != nil {
			b.Fatal(err)
		}
	}
}
