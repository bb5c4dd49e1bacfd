package state

import (
	"bytes"
	"fmt"
	"math/rand"
	"slices"
	"testing"

	"github.com/flinkjob/flinkjob/engine/value"
)

type refID struct {
	ts    int64
	keyID string
}

// refTimers is the timer service's specification: a set of (domain, ts,
// key) that fires in (ts, key ID) order.
type refTimers struct{ set map[Domain]map[refID]any }

func (r *refTimers) sorted(d Domain) []refID {
	var ids []refID
	for id := range r.set[d] {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b refID) int {
		if a.ts != b.ts {
			if a.ts < b.ts {
				return -1
			}
			return 1
		}
		if a.keyID < b.keyID {
			return -1
		}
		if a.keyID > b.keyID {
			return 1
		}
		return 0
	})
	return ids
}

// Random registrations, deletions and pops (including registrations made
// while a timestamp is being fired) must match the specification, and a
// fired timer's key must be current with its own state, while keys gain
// and lose state (a key's entry and its timers are linked).
func TestTimersMatchSpecification(t *testing.T) {
	for seed := int64(0); seed < 300; seed++ {
		rng := rand.New(rand.NewSource(seed))
		k := NewHash()
		v := k.Value("v", Codec{})
		refState := map[int64]any{}
		tm := NewTimers(k)
		ref := &refTimers{set: map[Domain]map[refID]any{0: {}, 1: {}}}
		nkeys := 1 + rng.Intn(8)
		nts := 1 + rng.Intn(6)
		for step := 0; step < 400; step++ {
			d := Domain(rng.Intn(2))
			key := int64(rng.Intn(nkeys))
			ts := int64(rng.Intn(nts) * 10)
			switch op := rng.Intn(10); {
			case op < 4:
				k.SetCurrentKey(value.KeyID(key), key)
				tm.Register(d, ts)
				id := refID{ts, value.KeyID(key)}
				if _, ok := ref.set[d][id]; !ok {
					ref.set[d][id] = key
				}
			case op < 5:
				k.SetCurrentKey(value.KeyID(key), key)
				tm.Delete(d, ts)
				delete(ref.set[d], refID{ts, value.KeyID(key)})
			case op < 8:
				upTo := int64(rng.Intn(nts*10 + 5))
				got, ok := tm.PopDue(d, upTo)
				ids := ref.sorted(d)
				wantOK := len(ids) > 0 && ids[0].ts <= upTo
				if ok != wantOK {
					t.Fatalf("seed %d step %d: PopDue(%d, %d) ok = %v, want %v", seed, step, d, upTo, ok, wantOK)
				}
				if ok {
					w := ids[0]
					if got.Ts != w.ts || got.KeyID != w.keyID || got.Key != ref.set[d][w] || got.Domain != d {
						t.Fatalf("seed %d step %d: PopDue = %+v, want %+v", seed, step, got, w)
					}
					if k.CurrentKeyID() != w.keyID || k.CurrentKey() != got.Key {
						t.Fatalf("seed %d step %d: current key %q after PopDue of %q", seed, step, k.CurrentKeyID(), w.keyID)
					}
					if sv := v.Get(); sv != refState[got.Key.(int64)] {
						t.Fatalf("seed %d step %d: fired key %v has state %v, want %v", seed, step, got.Key, sv, refState[got.Key.(int64)])
					}
					if rng.Intn(3) == 0 { // the firing changes the key's state
						nv := any(int64(step))
						if rng.Intn(2) == 0 {
							nv = nil
						}
						v.Set(nv)
						refState[got.Key.(int64)] = nv
					}
					delete(ref.set[d], w)
				}
			case op < 9:
				got, ok := tm.Next(d)
				ids := ref.sorted(d)
				if ok != (len(ids) > 0) || ok && (got.Ts != ids[0].ts || got.KeyID != ids[0].keyID) {
					t.Fatalf("seed %d step %d: Next = %+v %v, want %v", seed, step, got, ok, ids)
				}
			default:
				if rng.Intn(10) == 0 {
					tm.Reset()
					ref.set = map[Domain]map[refID]any{0: {}, 1: {}}
				}
				// A key gains or loses its state.
				k.SetCurrentKey(value.KeyID(key), key)
				nv := any(int64(step))
				if rng.Intn(2) == 0 {
					nv = nil
				}
				v.Set(nv)
				refState[key] = nv
			}
			for dd := Domain(0); dd < 2; dd++ {
				if tm.Pending(dd) != len(ref.set[dd]) {
					t.Fatalf("seed %d step %d: Pending(%d) = %d, want %d", seed, step, dd, tm.Pending(dd), len(ref.set[dd]))
				}
			}
		}
		// Snapshot and restore keep exactly the registered timers.
		var buf bytes.Buffer
		if err := tm.Snapshot(&buf); err != nil {
			t.Fatal(err)
		}
		tm2 := NewTimers(NewHash())
		if err := tm2.Restore(buf.Bytes()); err != nil {
			t.Fatal(err)
		}
		for d := Domain(0); d < 2; d++ {
			var got []string
			for {
				x, ok := tm2.PopDue(d, 1<<62)
				if !ok {
					break
				}
				got = append(got, fmt.Sprint(x.Ts, x.KeyID))
			}
			var want []string
			for _, id := range ref.sorted(d) {
				want = append(want, fmt.Sprint(id.ts, id.keyID))
			}
			if !slices.Equal(got, want) {
				t.Fatalf("seed %d: restored timers fire %v, want %v", seed, got, want)
			}
		}
	}
}

// A timer registered for the timestamp being fired, by a key ordered
// before or after the one firing, fires in the same pass in key order.
func TestTimersRegisterWhileFiring(t *testing.T) {
	k := NewHash()
	tm := NewTimers(k)
	for _, key := range []string{"b", "d", "f"} {
		k.SetCurrentKey(key, key)
		tm.Register(EventTime, 100)
	}
	var fired []string
	for {
		x, ok := tm.PopDue(EventTime, 100)
		if !ok {
			break
		}
		fired = append(fired, x.KeyID)
		if x.KeyID == "d" {
			k.SetCurrentKey("a", "a") // before everything: fires next
			tm.Register(EventTime, 100)
			k.SetCurrentKey("e", "e")
			tm.Register(EventTime, 100)
			k.SetCurrentKey("f", "f") // already registered: once
			tm.Register(EventTime, 100)
			k.SetCurrentKey("c", "c") // later timestamp: not due
			tm.Register(EventTime, 101)
		}
	}
	if want := []string{"b", "d", "a", "e", "f"}; !slices.Equal(fired, want) {
		t.Fatalf("fired %v, want %v", fired, want)
	}
	if x, ok := tm.Next(EventTime); !ok || x.Ts != 101 || x.KeyID != "c" || tm.Pending(EventTime) != 1 {
		t.Fatalf("Next = %+v %v, pending %d", x, ok, tm.Pending(EventTime))
	}
}

// BenchmarkTimersWindowEnds registers a timer per key at a shared window
// end and fires them, as a window operator does: per timer.
func BenchmarkTimersWindowEnds(b *testing.B) {
	k := NewHash()
	tm := NewTimers(k)
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = value.KeyID(int64(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += len(ids) {
		ts := int64(i)
		for _, id := range ids {
			k.SetCurrentKey(id, nil)
			tm.Register(EventTime, ts)
		}
		for {
			if _, ok := tm.PopDue(EventTime, ts); !ok {
				break
			}
		}
	}
}
