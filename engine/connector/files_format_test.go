package connector

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// The schema of the Parquet tests: every type, required and nullable.
var pqSchema = []spec.SchemaField{
	{Name: "id", Type: spec.TypeInt},
	{Name: "name", Type: spec.TypeString, Nullable: true},
	{Name: "score", Type: spec.TypeDouble},
	{Name: "ok", Type: spec.TypeBool},
	{Name: "ts", Type: spec.TypeTimestamp},
	{Name: "blob", Type: spec.TypeBytes, Nullable: true},
}

// pqRecord is record i as the job would produce it (ints where the schema
// says double, an RFC 3339 string for one timestamp: the sink converts),
// and pqWant the same row as it must read back.
func pqRecord(i int) map[string]any {
	m := map[string]any{
		"id":    int64(i),
		"score": float64(i) / 4,
		"ok":    i%3 == 0,
		"ts":    int64(1_700_000_000_000 + i*1001),
		"extra": "not in the schema",
	}
	if i%5 != 0 {
		m["name"] = fmt.Sprintf("name-%d-é", i)
	}
	if i%7 == 0 {
		m["blob"] = []byte{byte(i), 0, 255}
	}
	if i%4 == 0 {
		m["score"] = int64(i / 4)
	}
	if i == 3 {
		m["ts"] = "2023-11-14T22:13:23.003Z"
	}
	return m
}

func pqWant(i int) map[string]any {
	m := map[string]any{
		"id":    int64(i),
		"score": float64(i) / 4,
		"ok":    i%3 == 0,
		"ts":    int64(1_700_000_000_000 + i*1001),
		"name":  nil,
		"blob":  nil,
	}
	if i%5 != 0 {
		m["name"] = fmt.Sprintf("name-%d-é", i)
	}
	if i%7 == 0 {
		m["blob"] = []byte{byte(i), 0, 255}
	}
	return m
}

// arrowRows reads a Parquet file with Apache Arrow's reader, an
// implementation independent of the one that wrote it, and checks the
// column types it sees.
func arrowRows(t *testing.T, data []byte) []map[string]any {
	t.Helper()
	pr, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	wantTypes := map[string]string{"id": "int64", "name": "utf8", "score": "float64", "ok": "bool", "ts": "timestamp[ms, tz=UTC]", "blob": "binary"}
	rows := make([]map[string]any, tbl.NumRows())
	for i := range rows {
		rows[i] = map[string]any{}
	}
	for c := 0; c < int(tbl.NumCols()); c++ {
		col := tbl.Column(c)
		if got := col.DataType().String(); got != wantTypes[col.Name()] {
			t.Errorf("column %s: arrow type %s, want %s", col.Name(), got, wantTypes[col.Name()])
		}
		nullable := tbl.Schema().Field(c).Nullable
		if want := col.Name() == "name" || col.Name() == "blob"; nullable != want {
			t.Errorf("column %s: nullable %v, want %v", col.Name(), nullable, want)
		}
		r := 0
		for _, chunk := range col.Data().Chunks() {
			for j := 0; j < chunk.Len(); j++ {
				var v any
				if !chunk.IsNull(j) {
					switch a := chunk.(type) {
					case *array.Int64:
						v = a.Value(j)
					case *array.Float64:
						v = a.Value(j)
					case *array.Boolean:
						v = a.Value(j)
					case *array.String:
						v = a.Value(j)
					case *array.Binary:
						v = append([]byte(nil), a.Value(j)...)
					case *array.Timestamp:
						v = int64(a.Value(j))
					default:
						t.Fatalf("column %s: unexpected arrow array %T", col.Name(), chunk)
					}
				}
				rows[r][col.Name()] = v
				r++
			}
		}
	}
	return rows
}

func sortByID(rows []map[string]any) {
	sort.Slice(rows, func(i, j int) bool { return rows[i]["id"].(int64) < rows[j]["id"].(int64) })
}

// Parquet written by the sink, through checkpoints and size rolls, reads
// back with Arrow's reader and with our own source to exactly the rows
// written (converted to the schema).
func TestParquetSinkReadsBackWithArrowLocal(t *testing.T) {
	parquetRoundTrip(t, S3Config{}, filepath.Join(t.TempDir(), "pq"))
}

func TestParquetSinkReadsBackWithArrowS3(t *testing.T) {
	cfg := testS3(t)
	bucket := testBucket(t, cfg)
	parquetRoundTrip(t, cfg, "s3://"+bucket+"/warehouse/pq/")
}

func parquetRoundTrip(t *testing.T, cfg S3Config, path string) {
	ctx := context.Background()
	const n = 3000
	sink := mustSink(t, spec.FileSink{Path: path, Format: spec.FormatParquet, Schema: pqSchema,
		RollingPolicy: &spec.RollingPolicy{MaxPartSize: 16 << 10}}, cfg)
	var ws []Writer
	for i := 0; i < 2; i++ {
		w, err := sink.Open(ctx, i, 2)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	for i := 0; i < n; i++ {
		if err := ws[i%2].Write(&value.Record{Value: pqRecord(i)}); err != nil {
			t.Fatal(err)
		}
		if i == n/2 {
			for _, w := range ws {
				if _, err := w.(Transactional).PreCommit(ctx, 1); err != nil {
					t.Fatal(err)
				}
				if err := w.(Transactional).Commit(ctx, 1); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// A record that does not fit the schema is refused, naming the field,
	// and leaves the part intact.
	err := ws[0].Write(&value.Record{Value: map[string]any{"id": "seven", "score": 1.0, "ok": true, "ts": int64(0)}})
	if err == nil || !strings.Contains(err.Error(), `field "id": want int, got string`) {
		t.Fatalf("bad record: err = %v", err)
	}
	if err := ws[1].Write(&value.Record{Value: map[string]any{"id": int64(1), "ok": true, "ts": int64(0)}}); err == nil || !strings.Contains(err.Error(), `"score" is required`) {
		t.Fatalf("missing required field: err = %v", err)
	}
	for _, w := range ws {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	finish(t, sink)

	loc := mustLocation(t, path, cfg)
	files, err := loc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Errorf("%d parquet files; want several (checkpoint and size rolls)", len(files))
	}
	var got []map[string]any
	for _, f := range files {
		if !strings.HasSuffix(f.Name, ".parquet") {
			t.Errorf("unexpected file %s", f.Name)
		}
		rc, err := loc.Open(ctx, f.Name)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, arrowRows(t, data)...)
	}
	var want []map[string]any
	for i := 0; i < n; i++ {
		want = append(want, pqWant(i))
	}
	sortByID(got)
	if len(got) != n {
		t.Fatalf("arrow read %d rows, want %d", len(got), n)
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("arrow row %d:\n got %v\nwant %v", i, got[i], want[i])
		}
	}

	// Our own source infers the schema from the files.
	var ours []map[string]any
	for _, s := range readAll(t, mustSource(t, spec.FileSource{Path: path, Format: spec.FormatParquet}, cfg), 3) {
		v, err := value.FromJSON([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		ours = append(ours, v.(map[string]any))
	}
	sortByID(ours)
	if len(ours) != n {
		t.Fatalf("source read %d rows, want %d", len(ours), n)
	}
	for i := range want {
		w := want[i]
		if b, ok := w["blob"].([]byte); ok {
			w["blob"] = base64.StdEncoding.EncodeToString(b) // bytes travel as base64 in JSON
		}
		if !reflect.DeepEqual(ours[i], w) {
			t.Fatalf("source row %d:\n got %v\nwant %v", i, ours[i], w)
		}
	}
}

// A Parquet file from another writer (Arrow's, with INT32, FLOAT,
// microsecond timestamps and nulls) reads with the schema stored in it, and
// a checkpointed position resumes mid-file.
func TestParquetSourceReadsArrowWrittenFile(t *testing.T) {
	dir := t.TempDir()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "i32", Type: arrow.PrimitiveTypes.Int32},
		{Name: "f32", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String},
		{Name: "us", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	const n = 500
	for i := 0; i < n; i++ {
		b.Field(0).(*array.Int32Builder).Append(int32(i))
		if i%2 == 0 {
			b.Field(1).(*array.Float32Builder).AppendNull()
		} else {
			b.Field(1).(*array.Float32Builder).Append(float32(i) + 0.5)
		}
		b.Field(2).(*array.StringBuilder).Append(fmt.Sprint("s", i))
		b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(int64(i)*1_000_000 + 999))
	}
	writeFile(t, filepath.Join(dir, "a.parquet"), arrowParquet(t, schema, b))

	want := func(i int) string {
		m := map[string]any{"i32": int64(i), "f32": nil, "s": fmt.Sprint("s", i), "us": int64(i) * 1000}
		if i%2 == 1 {
			m["f32"] = float64(float32(i) + 0.5)
		}
		return string(value.ToJSON(m))
	}
	src := mustSource(t, spec.FileSource{Path: dir, Format: spec.FormatParquet}, S3Config{})
	ctx := context.Background()
	r, err := src.Open(ctx, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	emit := func(v any) { got = append(got, string(value.ToJSON(v))) }
	if err := r.Read(ctx, 123, emit); err != nil {
		t.Fatal(err)
	}
	pos, err := r.(Positioned).Position()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	r, _ = src.Open(ctx, 0, 1)
	defer r.Close()
	if err := r.(Positioned).Seek(pos); err != nil {
		t.Fatal(err)
	}
	for {
		err := r.Read(ctx, 100, emit)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != n {
		t.Fatalf("read %d rows, want %d", len(got), n)
	}
	for i := range got {
		if got[i] != want(i) {
			t.Fatalf("row %d: got %s want %s", i, got[i], want(i))
		}
	}

	// A file that is not Parquet fails with its name.
	writeFile(t, filepath.Join(dir, "b.parquet"), "PAR1 but not really")
	r2, _ := src.Open(ctx, 0, 1)
	defer r2.Close()
	var rerr error
	for rerr == nil {
		rerr = r2.Read(ctx, 1000, func(any) {})
	}
	if !strings.Contains(rerr.Error(), "b.parquet") {
		t.Fatalf("bad file: err = %v", rerr)
	}
}

// JSON lines and CSV with a declared schema: values are converted to the
// declared types, only declared fields are kept, and what the sink writes
// reads back to the same records.
func TestTextFormatsWithSchema(t *testing.T) {
	schema := []spec.SchemaField{
		{Name: "id", Type: spec.TypeInt},
		{Name: "price", Type: spec.TypeDouble},
		{Name: "ok", Type: spec.TypeBool, Nullable: true},
		{Name: "at", Type: spec.TypeTimestamp},
		{Name: "note", Type: spec.TypeString, Nullable: true},
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "in.jsonl"),
		`{"id": 1, "price": 2, "ok": true, "at": "2024-01-02T03:04:05.678Z", "note": "a", "drop": 1}`+"\n"+
			`{"id": 2.0, "price": 2.5, "at": 1704164645678}`+"\n")
	writeFile(t, filepath.Join(dir, "in.csv"), "note,at,price,id,ok,drop\n"+
		"a,2024-01-02T03:04:05.678Z,2,1,true,x\n"+
		",1704164645678,2.5,2,,y\n")
	want := jsonStrings(
		map[string]any{"id": int64(1), "price": 2.0, "ok": true, "at": int64(1704164645678), "note": "a"},
		map[string]any{"id": int64(2), "price": 2.5, "ok": nil, "at": int64(1704164645678), "note": nil},
	)
	for _, c := range []struct {
		format spec.Format
		csv    *spec.CSVOptions
		name   string
	}{{spec.FormatJSONL, nil, "in.jsonl"}, {spec.FormatCSV, &spec.CSVOptions{Header: true}, "in.csv"}} {
		t.Run(string(c.format), func(t *testing.T) {
			in := filepath.Join(dir, c.name)
			got := readAll(t, mustSource(t, spec.FileSource{Path: in, Format: c.format, CSV: c.csv, Schema: schema}, S3Config{}), 1)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("read:\n got %q\nwant %q", got, want)
			}
			out := filepath.Join(t.TempDir(), "out")
			sink := mustSink(t, spec.FileSink{Path: out, Format: c.format, CSV: c.csv, Schema: schema}, S3Config{})
			var vals []any
			for _, s := range got {
				v, _ := value.FromJSON([]byte(s))
				vals = append(vals, v)
			}
			writeAll(t, sink, 1, vals)
			back := readAll(t, mustSource(t, spec.FileSource{Path: out, Format: c.format, CSV: c.csv, Schema: schema}, S3Config{}), 1)
			if !reflect.DeepEqual(back, want) {
				t.Fatalf("read back:\n got %q\nwant %q", back, want)
			}
			// Timestamps are written as RFC 3339, readable without the schema.
			raw := readAll(t, mustSource(t, spec.FileSource{Path: out, Format: spec.FormatText}, S3Config{}), 1)
			if !strings.Contains(strings.Join(raw, "\n"), "2024-01-02T03:04:05.678Z") {
				t.Errorf("timestamps not written as RFC 3339: %q", raw)
			}
		})
	}

	// Malformed records fail the read with the file, the line and the field.
	for _, c := range []struct {
		format         spec.Format
		content, wants string
	}{
		{spec.FormatJSONL, `{"id": 1, "price": 1, "at": 0}` + "\n" + `{"id": "x", "price": 1, "at": 0}` + "\n", `bad.jsonl: line 2: field "id": want int, got string`},
		{spec.FormatJSONL, `{"id": 1, "at": 0}` + "\n", `bad.jsonl: line 1: field "price" is required`},
		{spec.FormatJSONL, `{"id": 1, "price": 1, "at": "yesterday"}` + "\n", `line 1: field "at": timestamp "yesterday" is neither RFC 3339 nor epoch milliseconds`},
		{spec.FormatCSV, "id,price,at\n1,1,0\n2,cheap,0\n", `bad.csv: line 3: field "price": "cheap" is not a valid double`},
		{spec.FormatCSV, "id,at\n1,0\n", `schema field "price" is required but the file has no such column`},
		{spec.FormatCSV, "id,price,at\n,1,0\n", `line 2: field "id" is required (not nullable) but the cell is empty`},
	} {
		bad := filepath.Join(t.TempDir(), "bad."+string(c.format))
		writeFile(t, bad, c.content)
		r, err := mustSource(t, spec.FileSource{Path: bad, Format: c.format, CSV: &spec.CSVOptions{Header: true}, Schema: schema}, S3Config{}).Open(context.Background(), 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		var rerr error
		for rerr == nil {
			rerr = r.Read(context.Background(), 10, func(any) {})
		}
		r.Close()
		if rerr == io.EOF || !strings.Contains(rerr.Error(), c.wants) {
			t.Errorf("%s %q: err = %v, want %q", c.format, c.content, rerr, c.wants)
		}
	}
}

// Nested Parquet columns (a list, a struct) read as lists and maps.
func TestParquetSourceNestedColumns(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "l", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64), Nullable: true},
		{Name: "s", Type: arrow.StructOf(arrow.Field{Name: "a", Type: arrow.BinaryTypes.String}, arrow.Field{Name: "b", Type: arrow.PrimitiveTypes.Float64, Nullable: true}), Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	lb := b.Field(0).(*array.ListBuilder)
	sb := b.Field(1).(*array.StructBuilder)
	for i := 0; i < 3; i++ {
		lb.Append(true)
		for j := 0; j <= i; j++ {
			lb.ValueBuilder().(*array.Int64Builder).Append(int64(j))
		}
		sb.Append(true)
		sb.FieldBuilder(0).(*array.StringBuilder).Append(fmt.Sprint("x", i))
		sb.FieldBuilder(1).(*array.Float64Builder).Append(float64(i) + 0.5)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "n.parquet"), arrowParquet(t, schema, b))
	got := readAll(t, mustSource(t, spec.FileSource{Path: dir, Format: spec.FormatParquet}, S3Config{}), 1)
	want := []string{
		`{"l":[0,1,2],"s":{"a":"x2","b":2.5}}`,
		`{"l":[0,1],"s":{"a":"x1","b":1.5}}`,
		`{"l":[0],"s":{"a":"x0","b":0.5}}`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

// arrowParquet is a parquet file (as pqarrow writes it) of the record
// batch that b built.
func arrowParquet(t *testing.T, schema *arrow.Schema, b *array.RecordBuilder) string {
	t.Helper()
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	fw, err := pqarrow.NewFileWriter(schema, &buf, nil, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}
