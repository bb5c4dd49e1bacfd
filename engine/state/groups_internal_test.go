package state

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"

	"github.com/flinkjob/flinkjob/engine/value"
)

// The GroupWriter's encoder, reused across values of varying shapes,
// writes exactly value.Append's bytes (the decoder checks map key order).
func TestStateEncoderSameBytes(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var enc value.Encoder
	for i := 0; i < 2000; i++ {
		m := map[string]any{}
		for j := rng.Intn(11); j > 0; j-- {
			m[fmt.Sprintf("f%d", rng.Intn(20))] = []any{int64(rng.Intn(100)), "x", map[string]any{"b": 1.5, "a": nil}}[rng.Intn(3)]
		}
		var v any = m
		if rng.Intn(5) == 0 {
			v = []any{m, int64(i)}
		}
		if got, want := enc.Append(nil, v), value.Append(nil, v); !bytes.Equal(got, want) {
			t.Fatalf("%v: Encoder %x, value.Append %x", v, got, want)
		}
		if _, _, err := value.Decode(enc.Append(nil, v)); err != nil {
			t.Fatal(err)
		}
	}
}

// The snapshot list stays bounded while keys come and go.
func TestEntryListCompacts(t *testing.T) {
	k := NewHash()
	v := k.Value("v", Codec{})
	for i := 0; i < 100000; i++ {
		id := value.KeyID(int64(i % 50))
		k.SetCurrentKey(id, int64(i%50))
		v.Set(int64(i))
		if i%3 == 0 {
			v.Clear()
		}
	}
	if len(k.list) > 2*len(k.entries)+1024 {
		t.Fatalf("list of %d entries for %d keys", len(k.list), len(k.entries))
	}
}
