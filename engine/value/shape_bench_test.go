package value

import "testing"

// shapes are record values of the sizes and nesting that cross a STREAMING
// exchange: a flat event of six fields with a payload string, and a nested
// accumulator-like value (a map holding a list of maps).
func shapes() map[string]*Record {
	bid := map[string]any{"auction": int64(1000123), "bidder": int64(2000456), "price": int64(8765432),
		"channel": "Google", "url": "https://www.nexmark.com/abc/def/item.htm?query=1", "dateTime": int64(1700000000123)}
	flat := &Record{Value: bid, Ts: 1700000000123}
	flat.WithKey(int64(1000123))
	nested := &Record{Value: map[string]any{"price": int64(8765432), "bids": []any{map[string]any{
		"auction": int64(1000123), "bidder": int64(2000456), "price": int64(8765432),
		"dateTime": int64(1700000000123), "extra": "abcdefghijklmnopqrstuvwxyz"}}}, Ts: 1700000000123}
	nested.WithKey(int64(1000123))
	return map[string]*Record{"flat": flat, "nested": nested}
}

// BenchmarkCodecShapes encodes (AppendRecord, and an Encoder as the
// exchange and record streams use it) and decodes (a Decoder, as
// the exchange does: interned field names, a fresh Record per element)
// the shapes above, into maps and into rows whatever UseRows says.
func BenchmarkCodecShapes(b *testing.B) {
	for _, name := range []string{"flat", "nested"} {
		r := shapes()[name]
		enc := AppendRecord(nil, r)
		b.Run("append/"+name, func(b *testing.B) {
			buf := make([]byte, 0, 256)
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendRecord(buf[:0], r)
			}
		})
		b.Run("encoder/"+name, func(b *testing.B) {
			var e Encoder
			buf := make([]byte, 0, 256)
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				buf = e.AppendRecord(buf[:0], r)
			}
		})
		b.Run("encoder-rows/"+name, func(b *testing.B) {
			var e Encoder
			rr := *r
			rr.Value = Rows(r.Value)
			buf := make([]byte, 0, 256)
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				buf = e.AppendRecord(buf[:0], &rr)
			}
		})
		for _, form := range []string{"maps", "rows"} {
			b.Run("decode-"+form+"/"+name, func(b *testing.B) {
				d := new(Decoder)
				d.init().rows = form == "rows"
				recs := make([]Record, 512)
				b.SetBytes(int64(len(enc)))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if i == len(recs) {
						clear(recs)
						i = 0
					}
					if err := d.DecodeRecord(enc, &recs[i]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}
