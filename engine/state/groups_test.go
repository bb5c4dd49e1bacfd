package state_test

import (
	"fmt"
	"math/rand"
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

// Snapshots of single-key state (BATCH: one entry reused key after key)
// and repeated snapshots of hash state put every key and timer in its own
// key group, though a key's group is computed once and kept.
func TestGroupWriterKeepsGroupsRight(t *testing.T) {
	groupsOf := func(data []byte) map[string]int {
		out := map[string]int{}
		for g := 0; g < plan.MaxParallelism; g++ {
			k := state.NewHash()
			k.Value("v", state.Codec{})
			tm := state.NewTimers(k)
			if err := state.RestoreGroups(k, tm, data, func(h int) bool { return h == g }); err != nil {
				t.Fatal(err)
			}
			for item := range state.Dump(k, tm) {
				out[item] = g
			}
		}
		return out
	}
	single := state.NewSingleKey()
	sv := single.Value("v", state.Codec{})
	stm := state.NewTimers(single)
	hash := state.NewHash()
	hv := hash.Value("v", state.Codec{})
	htm := state.NewTimers(hash)
	for i := 0; i < 50; i++ {
		key := fmt.Sprintf("key-%d", i)
		id := value.KeyID(key)
		single.SetCurrentKey(id, key)
		stm.Reset()
		sv.Set(int64(i))
		stm.Register(state.EventTime, int64(i))
		w := state.NewGroupWriter(single, shuffle.KeyGroup)
		w.AddCurrent(single, stm)
		for item, g := range groupsOf(w.Bytes()) {
			if g != shuffle.KeyGroup(id) {
				t.Fatalf("single-key state: %s in key group %d, want %d", item, g, shuffle.KeyGroup(id))
			}
		}
		hash.SetCurrentKey(id, key)
		hv.Set(int64(i))
		htm.Register(state.EventTime, int64(i))
	}
	for round := 0; round < 2; round++ {
		w := state.NewGroupWriter(hash, shuffle.KeyGroup)
		w.AddAll(hash, htm)
		got := groupsOf(w.Bytes())
		if len(got) != 100 {
			t.Fatalf("round %d: %d items restored, want 100", round, len(got))
		}
		for i := 0; i < 50; i++ {
			key := fmt.Sprintf("key-%d", i)
			want := shuffle.KeyGroup(value.KeyID(key))
			if g, ok := got[fmt.Sprintf("state %q", key)]; !ok || g != want {
				t.Fatalf("round %d: %s's state in key group %d (%v), want %d", round, key, g, ok, want)
			}
			if g, ok := got[fmt.Sprintf("timer event %d %q", i, key)]; !ok || g != want {
				t.Fatalf("round %d: %s's timer in key group %d (%v), want %d", round, key, g, ok, want)
			}
		}
	}
}

// A checkpoint copies the encoding of the keys nothing touched since the
// last one: whatever is done to state between snapshots (values changed
// in place through what a handle returned, without a Set; writes; clears;
// new keys; timers registered, deleted and fired; a key kept current
// across the snapshot and then changed),
// each snapshot restores to exactly the state it was taken of.
func TestGroupSnapshotIncremental(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	k := state.NewHash()
	v := k.Value("v", state.Codec{})
	l := k.List("l")
	m := k.Map("m")
	tm := state.NewTimers(k)
	key := func(i int) (string, any) { return value.KeyID(int64(i)), int64(i) }
	for round := 0; round < 30; round++ {
		for n := rng.Intn(60); n > 0; n-- {
			id, kv := key(rng.Intn(400))
			k.SetCurrentKey(id, kv)
			switch rng.Intn(9) {
			case 8:
				tm.Delete(state.EventTime, int64(rng.Intn(round+1)))
			case 0:
				v.Set(map[string]any{"n": int64(round), "inner": map[string]any{"x": int64(n)}})
			case 1:
				// In place, as operators change what Get returned.
				if cur, ok := v.Get().(map[string]any); ok {
					cur["n"] = int64(round*1000 + n)
					if in, ok := cur["inner"].(map[string]any); ok {
						in["y"] = "changed"
					}
				}
			case 2:
				l.Add(int64(n))
			case 3:
				if cur := l.Get(); len(cur) > 0 {
					cur[0] = "in place"
				}
			case 4:
				m.Put(fmt.Sprint(n%3), int64(round))
			case 5:
				v.Clear()
				l.Clear()
			case 6:
				tm.Register(state.EventTime, int64(round))
			case 7:
				// Selected but not read: nothing changes.
			}
		}
		for n := rng.Intn(5); n > 0; n-- {
			if _, ok := tm.PopDue(state.EventTime, int64(round-3)); !ok {
				break
			}
		}
		// The current key stays current across the snapshot; changing it
		// afterwards needs no SetCurrentKey.
		w := state.NewGroupWriter(k, shuffle.KeyGroup)
		w.AddAll(k, tm)
		data := w.Bytes()
		before := state.Dump(k, tm)
		if cur, ok := v.Get().(map[string]any); ok && round%2 == 0 {
			cur["after"] = int64(round)
		}
		want := state.Dump(k, tm)
		w = state.NewGroupWriter(k, shuffle.KeyGroup)
		w.AddAll(k, tm)
		for i, b := range [][]byte{data, w.Bytes()} {
			k2 := state.NewHash()
			k2.Value("v", state.Codec{})
			k2.List("l")
			k2.Map("m")
			tm2 := state.NewTimers(k2)
			if err := state.RestoreGroups(k2, tm2, b, func(int) bool { return true }); err != nil {
				t.Fatal(err)
			}
			got, want := state.Dump(k2, tm2), want
			if i == 0 {
				want = before // taken before the last change
			}
			if !reflect.DeepEqual(got, want) {
				for kk, vv := range want {
					if got[kk] != vv {
						t.Errorf("round %d: %s restored as %q, want %q", round, kk, got[kk], vv)
					}
				}
				t.Fatalf("round %d: restored state differs (%d items, want %d)", round, len(got), len(want))
			}
		}
	}
}
