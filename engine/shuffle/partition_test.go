package shuffle

import (
	"hash/fnv"
	"reflect"
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

// hashEdge plans a job keyed by record.g at parallelism par and returns
// its hash edge.
func hashEdge(tb testing.TB, par int) *plan.Edge {
	tb.Helper()
	job := &spec.Job{Parallelism: int32(par), Steps: []spec.Step{
		{Name: "src", Source: &spec.Source{Elements: []spec.Value{{Raw: []byte(`{"g":1}`)}}}},
		{Name: "sum", KeyBy: "record.g", Reduce: "acc"},
		{Name: "out", Sink: &spec.Sink{Print: &spec.PrintSink{}}},
	}}
	p, err := plan.New(job, plan.Options{Mode: spec.Streaming})
	if err != nil {
		tb.Fatal(err)
	}
	var e *plan.Edge
	for _, s := range p.Stages {
		for _, o := range s.Outputs {
			if o.Partitioning == spec.Hash {
				e = o
			}
		}
	}
	if e == nil || e.To.Parallelism != par {
		tb.Fatalf("no hash edge to %d subtasks in\n%s", par, p)
	}
	return e
}

func BenchmarkRouteHash(b *testing.B) {
	part := NewPartitioner(hashEdge(b, 1), 0)
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

// Route sets the key and key ID of value.KeyID and the subtask of
// SubtaskForKey, whatever its caches hold.
func TestRouteHashKeys(t *testing.T) {
	for _, par := range []int{1, 3} {
		e := hashEdge(t, par)
		part := NewPartitioner(e, 0)
		keys := []any{"a", "b", 1.5, true, nil, []any{int64(1)}, map[string]any{"x": "y"}}
		for i := int64(-5000); i < 5000; i += 7 {
			keys = append(keys, i, i*4096, i<<40)
		}
		for round := 0; round < 2; round++ {
			for _, k := range keys {
				r := value.Record{Value: map[string]any{"g": k}, Key: "stale", KeyID: "stale"}
				sub, err := part.Route(&r)
				if err != nil {
					t.Fatal(err)
				}
				id := value.KeyID(k)
				if r.KeyID != id || !reflect.DeepEqual(r.Key, k) || sub != SubtaskForKey(id, par) {
					t.Fatalf("Route(%v) = %d, key %v %q; want %d, %q", k, sub, r.Key, r.KeyID, SubtaskForKey(id, par), id)
				}
			}
		}
	}
}

// A record whose value is a row routes as the record of its map: the same
// key (a map key given as a row keeps its map's key ID), the same subtask.
func TestRouteHashRows(t *testing.T) {
	for _, par := range []int{1, 3} {
		part := NewPartitioner(hashEdge(t, par), 0)
		keys := []any{"a", int64(7), nil, map[string]any{"x": "y"}, value.RowOf(map[string]any{"x": "y", "n": int64(1)}),
			[]any{value.RowOf(map[string]any{"z": 1.5})}}
		for _, k := range keys {
			m := value.Record{Value: map[string]any{"g": value.Plain(k), "other": "o"}}
			r := value.Record{Value: value.RowOf(map[string]any{"g": k, "other": "o"})}
			msub, err := part.Route(&m)
			if err != nil {
				t.Fatal(err)
			}
			rsub, err := part.Route(&r)
			if err != nil {
				t.Fatal(err)
			}
			if rsub != msub || r.KeyID != m.KeyID || r.KeyID != value.KeyID(k) ||
				!reflect.DeepEqual(value.Plain(r.Key), value.Plain(m.Key)) {
				t.Fatalf("key %v: a row routes to %d, key %v %q; its map to %d, key %v %q", k, rsub, r.Key, r.KeyID, msub, m.Key, m.KeyID)
			}
		}
	}
}
