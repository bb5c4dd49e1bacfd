package operator

import (
	"testing"

	"github.com/flinkjob/flinkjob/engine/value"
)

// BenchmarkProcessOverhead is a keyed process step's own cost per record
// around a near-trivial expression (keys cycle over 1000, each record sets
// the key's state and, every 16th, a timer): key switch, state read and
// write, the arguments, the action row or map, timers. FLINKJOB_ROWS=0/1
// compares maps and rows.
func BenchmarkProcessOverhead(b *testing.B) {
	p, _ := openProcess(b, "record.v % 16 == 0 ? {'state': record.v, 'timers': [record.v]} : {'state': record.v}", "")
	recs := make([]value.Record, 1000)
	for i := range recs {
		recs[i] = value.Record{Value: map[string]any{"k": int64(i), "v": int64(i)}, Ts: int64(i)}
		recs[i].WithKey(int64(i))
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := p.Process(&recs[i%len(recs)], 0); err != nil {
			b.Fatal(err)
		}
	}
}
