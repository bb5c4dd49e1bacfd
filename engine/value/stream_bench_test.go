package value_test

import (
	"testing"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/value"
)

// q4Bodies encodes the records nexmark q4's keyed step receives over the
// exchange, in stream order: each auction and bid of the first n events
// as q4's map makes it ({id, category, dateTime, expires} or {id, price,
// dateTime}), keyed by the auction id, as generated (hot and in-flight
// auctions, timestamps of one millisecond in runs).
func q4Bodies(n int64) [][]byte {
	var out [][]byte
	for i := int64(0); i < n; i++ {
		e := connector.DefaultNexmarkConfig.Event(0, i)
		var v map[string]any
		switch e["type"] {
		case "auction":
			a := e["auction"].(map[string]any)
			v = map[string]any{"id": a["id"], "category": a["category"], "dateTime": a["dateTime"], "expires": a["expires"]}
		case "bid":
			b := e["bid"].(map[string]any)
			v = map[string]any{"id": b["auction"], "price": b["price"], "dateTime": b["dateTime"]}
		default:
			continue
		}
		r := value.Record{Value: v, Ts: e["ts"].(int64)}
		r.WithKey(v["id"])
		out = append(out, value.AppendRecord(nil, &r))
	}
	return out
}

// BenchmarkDecodeKeyedStream decodes q4's keyed input with one Decoder,
// as an exchange stream does (a fresh record per element), into maps and
// into rows: per record, the cost of the value, its key and KeyID.
func BenchmarkDecodeKeyedStream(b *testing.B) {
	bodies := q4Bodies(200_000)
	for _, rows := range []bool{false, true} {
		name := "maps"
		if rows {
			name = "rows"
		}
		b.Run(name, func(b *testing.B) {
			old := value.UseRows
			value.UseRows = rows
			var d value.Decoder
			d.DecodeRecord(bodies[0], new(value.Record)) // set up in this form
			value.UseRows = old
			recs := make([]value.Record, 512)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r := &recs[i%len(recs)]
				*r = value.Record{}
				if err := d.DecodeRecord(bodies[i%len(bodies)], r); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
