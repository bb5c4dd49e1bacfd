package extsort

import (
	"math/rand"
	"testing"

	"github.com/flinkjob/flinkjob/engine/value"
)

// Records holding rows (values and keys) sort, in memory and through
// spilled runs, exactly as the records of their maps, and come back equal
// to them: as rows when rows are on (the sorter's readers decode with
// value.UseRows), as maps when off.
func TestSortRowsAsMaps(t *testing.T) {
	for _, on := range []bool{false, true} {
		for _, budget := range []int64{0, 4 << 10} {
			old := value.UseRows
			value.UseRows = on
			maps := randomRecords(rand.New(rand.NewSource(3)), 3000)
			rows := make([]value.Record, len(maps))
			for i := range maps {
				if i%4 == 0 {
					maps[i].WithKey(map[string]any{"k": int64(i % 10), "kind": "map"})
				}
				r := maps[i]
				r.Value = value.RowOf(r.Value.(map[string]any))
				if m, ok := r.Key.(map[string]any); ok {
					r.WithKey(value.RowOf(m))
					if r.KeyID != maps[i].KeyID {
						t.Fatal("a row key has another key ID than its map")
					}
				}
				rows[i] = r
			}
			want := sortAll(t, New(Options{MemoryBudget: budget, TempDir: t.TempDir()}), maps)
			s := New(Options{MemoryBudget: budget, TempDir: t.TempDir()})
			got := sortAll(t, s, rows)
			value.UseRows = old
			if budget > 0 && s.Spills() == 0 {
				t.Fatal("nothing spilled")
			}
			requireEqual(t, got, want)
			requireEqual(t, got, stableSorted(maps))
			for i := range got {
				if _, isRow := got[i].Value.(*value.Row); isRow != on {
					t.Fatalf("rows %v, budget %d: record %d is a %T", on, budget, i, got[i].Value)
				}
			}
		}
	}
}
