package state_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/shuffle"
	"github.com/flinkjob/flinkjob/engine/state"
	"github.com/flinkjob/flinkjob/engine/value"
)

// A snapshot split by key group and restored by n subtasks, each keeping
// the key groups it owns, gives back exactly the original state and
// timers, spread over the subtasks as the partitioner spreads the keys.
func TestGroupSnapshotRescales(t *testing.T) {
	k := state.NewHash()
	v := k.Value("v", state.Codec{})
	l := k.List("l")
	tm := state.NewTimers(k)
	for i := 0; i < 300; i++ {
		key := fmt.Sprintf("key-%d", i)
		id := value.KeyID(key)
		k.SetCurrentKey(id, key)
		v.Set(int64(i))
		if i%3 == 0 {
			l.Add("x")
		}
		if i%5 == 0 {
			tm.Register(state.EventTime, int64(1000+i))
			tm.Register(state.ProcessingTime, int64(5000+i))
		}
	}
	want := state.Dump(k, tm)
	w := state.NewGroupWriter(k, shuffle.KeyGroup)
	w.AddAll(k, tm)
	data := w.Bytes()
	for _, n := range []int{1, 2, 3, 7} {
		got := map[string]string{}
		for i := 0; i < n; i++ {
			k2 := state.NewHash()
			v2 := k2.Value("v", state.Codec{})
			k2.List("l")
			tm2 := state.NewTimers(k2)
			if err := state.RestoreGroups(k2, tm2, data, func(g int) bool { return g*n/plan.MaxParallelism == i }); err != nil {
				t.Fatal(err)
			}
			for kk, vv := range state.Dump(k2, tm2) {
				if _, dup := got[kk]; dup {
					t.Fatalf("n=%d: %s restored by two subtasks", n, kk)
				}
				got[kk] = vv
			}
			// A key's state is restored where the partitioner sends it.
			for j := 0; j < 300; j++ {
				key := fmt.Sprintf("key-%d", j)
				id := value.KeyID(key)
				k2.SetCurrentKey(id, key)
				if here := v2.Get() != nil; here != (shuffle.SubtaskForKey(id, n) == i) {
					t.Fatalf("n=%d: %s restored in subtask %d: %v", n, key, i, here)
				}
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("n=%d: restored %d items, want %d", n, len(got), len(want))
		}
	}
	// Names must match.
	k3 := state.NewHash()
	k3.Value("other", state.Codec{})
	k3.List("l")
	if err := state.RestoreGroups(k3, state.NewTimers(k3), data, func(int) bool { return true }); err == nil {
		t.Fatal("restore into an operator with other state names succeeded")
	}
}

// The cost of a checkpoint's keyed snapshot per key (a rolling sum's
// accumulator map per key).
func BenchmarkGroupSnapshot(b *testing.B) {
	k := state.NewHash()
	v := k.Value("acc", state.Codec{})
	const keys = 50_000
	for i := 0; i < keys; i++ {
		id := value.KeyID(int64(i))
		k.SetCurrentKey(id, int64(i))
		v.Set(map[string]any{"k": int64(i), "v": int64(i * 7)})
	}
	tm := state.NewTimers(k)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := state.NewGroupWriter(k, shuffle.KeyGroup)
		w.AddAll(k, tm)
		b.SetBytes(int64(len(w.Bytes())))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*keys), "ns/key")
}
