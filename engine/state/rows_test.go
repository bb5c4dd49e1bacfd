package state_test

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/flinkjob/flinkjob/engine/shuffle"
	"github.com/flinkjob/flinkjob/engine/state"
	"github.com/flinkjob/flinkjob/engine/value"
)

// withRows runs fn with value.UseRows set as given, so restores decode
// maps into rows (or maps) whatever the suite runs with.
func withRows(t *testing.T, on bool, fn func()) {
	t.Helper()
	old := value.UseRows
	value.UseRows = on
	defer func() { value.UseRows = old }()
	fn()
}

// State holding rows is state holding their maps: the same snapshots
// (Keyed.Snapshot and GroupWriter, byte for byte), the same Dump, and a
// restore with rows on (values decode as rows) gives back state whose
// handles read the same, including a MapState restored as a row.
func TestStateRowsAreMaps(t *testing.T) {
	type handles struct {
		k  *state.Keyed
		v  state.ValueState
		l  state.ListState
		m  state.MapState
		tm *state.Timers
	}
	build := func(rows bool) handles {
		k := state.NewHash()
		h := handles{k: k, v: k.Value("v", state.Codec{}), l: k.List("l"), m: k.Map("m"), tm: state.NewTimers(k)}
		form := func(m map[string]any) any {
			if rows {
				return value.RowOf(m)
			}
			return m
		}
		for i := int64(0); i < 200; i++ {
			key := form(map[string]any{"id": i, "kind": "k"})
			k.SetCurrentKey(value.KeyID(key), key)
			h.v.Set(form(map[string]any{"sum": i * 3, "nested": form(map[string]any{"n": i, "null": nil}), "list": []any{form(map[string]any{"x": 1.5})}}))
			if i%2 == 0 {
				h.l.Add(form(map[string]any{"e": i}))
				h.l.Add("plain")
			}
			if i%3 == 0 {
				h.m.Put("a", form(map[string]any{"q": i}))
				h.m.Put("b", i)
			}
			if i%5 == 0 {
				h.tm.Register(state.EventTime, 1000+i)
			}
		}
		return h
	}
	maps, rows := build(false), build(true)
	if a, b := state.Dump(maps.k, maps.tm), state.Dump(rows.k, rows.tm); !reflect.DeepEqual(a, b) {
		t.Fatalf("Dump differs: maps %v, rows %v", a, b)
	}
	snap := func(h handles, tm *state.Timers) []byte {
		w := state.NewGroupWriter(h.k, shuffle.KeyGroup)
		w.AddAll(h.k, tm)
		return w.Bytes()
	}
	// Timers are written in a Go map's order: compare the entries' bytes
	// without them, and restore the snapshot of rows with them.
	if !bytes.Equal(snap(maps, state.NewTimers(maps.k)), snap(rows, state.NewTimers(rows.k))) {
		t.Fatal("GroupWriter snapshots of rows and of maps differ")
	}
	groupBytes := snap(rows, rows.tm)
	var b bytes.Buffer
	if err := rows.k.Snapshot(&b); err != nil {
		t.Fatal(err)
	}
	// Snapshot iterates a Go map: compare what restores from it.
	for _, on := range []bool{false, true} {
		withRows(t, on, func() {
			for name, restore := range map[string]func(h handles) error{
				"Restore": func(h handles) error { return h.k.Restore(b.Bytes()) },
				"RestoreGroups": func(h handles) error {
					return state.RestoreGroups(h.k, h.tm, groupBytes, func(int) bool { return true })
				},
			} {
				k := state.NewHash()
				h := handles{k: k, v: k.Value("v", state.Codec{}), l: k.List("l"), m: k.Map("m"), tm: state.NewTimers(k)}
				if err := restore(h); err != nil {
					t.Fatal(err)
				}
				if name == "RestoreGroups" {
					if got, want := state.Dump(h.k, h.tm), state.Dump(maps.k, maps.tm); !reflect.DeepEqual(got, want) {
						t.Fatalf("rows %v, %s: Dump %v, want %v", on, name, got, want)
					}
				}
				for i := int64(0); i < 200; i++ {
					key := map[string]any{"id": i, "kind": "k"}
					id := value.KeyID(key)
					k.SetCurrentKey(id, key)
					maps.k.SetCurrentKey(id, key)
					if got, want := value.Plain(h.v.Get()), value.Plain(maps.v.Get()); !reflect.DeepEqual(got, want) {
						t.Fatalf("rows %v, %s, key %d: value %v, want %v", on, name, i, got, want)
					}
					if got, want := value.Plain(h.l.Get()), value.Plain(maps.l.Get()); !reflect.DeepEqual(got, want) {
						t.Fatalf("rows %v, %s, key %d: list %v, want %v", on, name, i, got, want)
					}
					// A restored map (a row when rows are on) reads and
					// writes as the map it was.
					if got, want := value.Plain(h.m.Entries()), value.Plain(maps.m.Entries()); !reflect.DeepEqual(got, want) {
						t.Fatalf("rows %v, %s, key %d: map state %v, want %v", on, name, i, got, want)
					}
					if i%3 == 0 {
						if v, ok := h.m.Get("b"); !ok || v != i {
							t.Fatalf("rows %v, %s, key %d: map state entry b = %v %v", on, name, i, v, ok)
						}
						h.m.Put("c", true)
						h.m.Remove("a")
						if got := value.Plain(h.m.Entries()); !reflect.DeepEqual(got, map[string]any{"b": i, "c": true}) {
							t.Fatalf("rows %v, %s, key %d: map state after writes %v", on, name, i, got)
						}
					}
				}
			}
		})
	}
}
