package state

import (
	"bytes"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/flinkjob/flinkjob/engine/value"
)

// Keyed state selected by key IDs that are sometimes the same string and
// sometimes equal copies (the entry cache keys on the string's address)
// reads what was written, across clears that remove entries.
func TestKeyedStateMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	k := NewHash()
	a := k.Value("a", Codec{})
	b := k.Value("b", Codec{})
	ref := map[string][2]any{}
	ids := make([]string, 50)
	for i := range ids {
		ids[i] = value.KeyID(fmt.Sprintf("key-%d", i))
	}
	for step := 0; step < 20000; step++ {
		id := ids[rng.Intn(len(ids))]
		if rng.Intn(2) == 0 {
			id = strings.Clone(id) // equal, at another address
		}
		k.SetCurrentKey(id, id)
		cur := ref[id]
		if got := [2]any{a.Get(), b.Get()}; got != cur {
			t.Fatalf("step %d key %s: state %v, want %v", step, id, got, cur)
		}
		switch rng.Intn(4) {
		case 0:
			v := int64(step)
			a.Set(v)
			cur[0] = v
		case 1:
			b.Set("x")
			cur[1] = "x"
		case 2:
			a.Clear()
			cur[0] = nil
		case 3:
			b.Clear()
			cur[1] = nil
		}
		if cur == [2]any{} {
			delete(ref, id)
		} else {
			ref[id] = cur
		}
		if k.Keys() != len(ref) {
			t.Fatalf("step %d: %d keys, want %d", step, k.Keys(), len(ref))
		}
	}
	// A snapshot restored into new state holds the same.
	var buf bytes.Buffer
	if err := k.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	if err := k.Restore(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		k.SetCurrentKey(id, id)
		if got := [2]any{a.Get(), b.Get()}; got != ref[id] {
			t.Fatalf("restored key %s: %v, want %v", id, got, ref[id])
		}
	}
}

// BenchmarkKeyedValue selects one of 1000 keys and updates its value, per
// record of a keyed operator.
func BenchmarkKeyedValue(b *testing.B) {
	k := NewHash()
	v := k.Value("v", Codec{})
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = value.KeyID(int64(i))
	}
	one := any(int64(1))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		k.SetCurrentKey(ids[i%len(ids)], nil)
		if v.Get() == nil {
			v.Set(one)
		}
	}
}
