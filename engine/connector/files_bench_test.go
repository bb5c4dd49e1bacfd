package connector

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// BenchmarkFileSinkWrite writes records of five fields through one writer
// into a local directory, in each format, with and without a checkpoint
// (PreCommit + Commit: a part rolled and published) every 10,000 records,
// the records as maps and as rows (A/B in one run). Figures are per
// record; b.N records in all.
func BenchmarkFileSinkWrite(b *testing.B) {
	schema := []spec.SchemaField{
		{Name: "id", Type: spec.TypeInt}, {Name: "name", Type: spec.TypeString},
		{Name: "price", Type: spec.TypeDouble}, {Name: "ok", Type: spec.TypeBool},
		{Name: "ts", Type: spec.TypeTimestamp},
	}
	rec := func(i int) *value.Record {
		return &value.Record{Value: map[string]any{"id": int64(i), "name": "item-name", "price": float64(i) / 3, "ok": i%2 == 0, "ts": int64(1_700_000_000_000 + i)}}
	}
	for _, c := range []struct {
		name string
		sink spec.FileSink
	}{
		{"jsonl", spec.FileSink{Format: spec.FormatJSONL}},
		{"jsonl-schema", spec.FileSink{Format: spec.FormatJSONL, Schema: schema}},
		{"csv-schema", spec.FileSink{Format: spec.FormatCSV, Schema: schema}},
		{"parquet", spec.FileSink{Format: spec.FormatParquet, Schema: schema}},
	} {
		for _, run := range []struct {
			every int
			rows  bool
		}{{0, false}, {0, true}, {10_000, false}, {10_000, true}} {
			every := run.every
			form := map[bool]string{false: "maps", true: "rows"}[run.rows]
			b.Run(fmt.Sprintf("%s/checkpoint-every-%d/%s", c.name, every, form), func(b *testing.B) {
				ctx := context.Background()
				c.sink.Path = b.TempDir()
				sink, err := NewFileSink(c.sink, S3Config{})
				if err != nil {
					b.Fatal(err)
				}
				w, err := sink.Open(ctx, 0, 1)
				if err != nil {
					b.Fatal(err)
				}
				recs := make([]*value.Record, 1024)
				for i := range recs {
					recs[i] = rec(i)
					if run.rows {
						recs[i].Value = value.RowOf(recs[i].Value.(map[string]any))
					}
				}
				b.ReportAllocs()
				cpu0 := processCPU()
				benchWrite(b, w, every, func(i int) *value.Record { return recs[i%len(recs)] })
				// The process's CPU time, steadier than ns/op on a shared machine.
				b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
				if err := sink.(Finisher).Finish(ctx); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// benchWrite resets the timer and writes b.N records (rec(i)) through w,
// with a checkpoint (PreCommit, then Commit) every `every` records (0:
// none), then closes w.
func benchWrite(b *testing.B, w Writer, every int, rec func(i int) *value.Record) {
	ctx := context.Background()
	tx := w.(Transactional)
	b.ResetTimer()
	id := int64(0)
	for i := 0; i < b.N; i++ {
		if err := w.Write(rec(i)); err != nil {
			b.Fatal(err)
		}
		if every > 0 && (i+1)%every == 0 {
			id++
			if _, err := tx.PreCommit(ctx, id); err != nil {
				b.Fatal(err)
			}
			if err := tx.Commit(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkFileSourceRead reads a local file of 10,000 records in each
// format, as maps and as rows (value.UseRows when the source is created):
// one op is one record.
func BenchmarkFileSourceRead(b *testing.B) {
	schema := []spec.SchemaField{
		{Name: "id", Type: spec.TypeInt}, {Name: "name", Type: spec.TypeString},
		{Name: "price", Type: spec.TypeDouble}, {Name: "ok", Type: spec.TypeBool},
		{Name: "ts", Type: spec.TypeTimestamp},
	}
	const records = 10_000
	dir := b.TempDir()
	var jsonl, csvText, text []byte
	csvText = append(csvText, "id,name,price,ok,ts\n"...)
	for i := range records {
		jsonl = fmt.Appendf(jsonl, `{"id":%d,"name":"item-name","price":%g,"ok":%v,"ts":%d}`+"\n", i, float64(i)/3, i%2 == 0, 1_700_000_000_000+i)
		csvText = fmt.Appendf(csvText, "%d,item-name,%g,%v,%d\n", i, float64(i)/3, i%2 == 0, 1_700_000_000_000+i)
		text = fmt.Appendf(text, "line %d of the text file\n", i)
	}
	for name, data := range map[string][]byte{"in.jsonl": jsonl, "in.csv": csvText, "in.txt": text} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	header := &spec.CSVOptions{Header: true}
	for _, c := range []struct {
		name string
		src  spec.FileSource
	}{
		{"text", spec.FileSource{Path: "in.txt", Format: spec.FormatText}},
		{"jsonl-schema", spec.FileSource{Path: "in.jsonl", Format: spec.FormatJSONL, Schema: schema}},
		{"csv", spec.FileSource{Path: "in.csv", Format: spec.FormatCSV, CSV: header}},
		{"csv-schema", spec.FileSource{Path: "in.csv", Format: spec.FormatCSV, CSV: header, Schema: schema}},
	} {
		for _, rows := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/rows=%v", c.name, rows), func(b *testing.B) {
				c.src.Path = filepath.Join(dir, filepath.Base(c.src.Path))
				old := value.UseRows
				value.UseRows = rows
				src, err := NewFileSource(c.src, S3Config{})
				value.UseRows = old
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				b.ReportAllocs()
				cpu0 := processCPU()
				n := 0
				for n < b.N {
					r, err := src.Open(ctx, 0, 1)
					if err != nil {
						b.Fatal(err)
					}
					for err == nil && n < b.N {
						err = r.Read(ctx, 256, func(any) { n++ })
					}
					if err != nil && err != io.EOF {
						b.Fatal(err)
					}
					r.Close()
				}
				b.ReportMetric(float64(processCPU()-cpu0)/float64(n), "cpu-ns/op")
			})
		}
	}
}
