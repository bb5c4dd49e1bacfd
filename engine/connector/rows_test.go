package connector

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// rowsTestSchema types the records of rowsTestRecords.
var rowsTestSchema = []spec.SchemaField{
	{Name: "id", Type: spec.TypeInt},
	{Name: "name", Type: spec.TypeString},
	{Name: "price", Type: spec.TypeDouble},
	{Name: "ok", Type: spec.TypeBool, Nullable: true},
	{Name: "at", Type: spec.TypeTimestamp},
	{Name: "note", Type: spec.TypeString, Nullable: true},
}

// rowsTestRecords have three different sets of fields (three row schemas,
// the first one coming back), nested maps and lists, nulls, missing
// fields and bytes.
func rowsTestRecords() []any {
	return []any{
		map[string]any{"id": int64(1), "name": "a", "price": 2.5, "ok": true, "at": int64(1704164645678), "note": nil,
			"nested": map[string]any{"x": []any{int64(1), map[string]any{"y": "z"}}}, "line": "l1"},
		map[string]any{"id": int64(2), "name": "b,c", "price": int64(3), "ok": nil, "at": "2024-01-02T03:04:05.678Z", "line": int64(5)},
		map[string]any{"id": 3.0, "name": "q\"uote", "price": 1.5, "at": int64(0), "extra": []byte("hi")},
		map[string]any{"id": int64(4), "name": "d", "price": 0.25, "ok": false, "at": int64(-5), "note": "n",
			"nested": map[string]any{}, "line": nil},
	}
}

// writeSinkBytes writes vals through one writer of a sink and returns
// what it wrote: the print sink's output, or the file sink's part file.
// With scribble, every row written is overwritten once Write returns (as
// the task refills a value a ValueReleaser writer was handed).
func writeSinkBytes(t *testing.T, sk spec.Sink, vals []any, scribble ...bool) ([]byte, error) {
	t.Helper()
	ctx := context.Background()
	var out bytes.Buffer
	dir := filepath.Join(t.TempDir(), "out")
	if sk.Files != nil {
		f := *sk.Files
		f.Path = dir
		sk.Files = &f
	}
	sink, err := NewSink(&sk, Env{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	w, err := sink.Open(ctx, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vals {
		if err := w.Write(&value.Record{Value: v, Ts: value.NoTimestamp}); err != nil {
			w.Abort()
			return nil, err
		}
		if r, ok := v.(*value.Row); ok && len(scribble) > 0 && scribble[0] {
			if !ReleasesValues(w) {
				t.Fatalf("%T keeps the values it is given", w)
			}
			for i := range r.Values() {
				r.Set(i, "scribbled")
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if sk.Files == nil {
		return out.Bytes(), nil
	}
	finish(t, sink)
	ext := map[spec.Format]string{spec.FormatText: "txt", spec.FormatJSONL: "jsonl", spec.FormatCSV: "csv", spec.FormatParquet: "parquet"}[sk.Files.Format]
	b, err := os.ReadFile(filepath.Join(dir, "part-0-0-0."+ext))
	if err != nil {
		t.Fatal(err)
	}
	return b, nil
}

// TestSinksWriteRowsAsMaps: every sink format writes rows (at any depth,
// of changing schemas) byte for byte as it writes the equal maps, and
// refuses the same records with the same errors.
func TestSinksWriteRowsAsMaps(t *testing.T) {
	files := func(f spec.FileSink) spec.Sink { return spec.Sink{Files: &f} }
	sinks := []struct {
		name string
		sink spec.Sink
	}{
		{"print", spec.Sink{Print: &spec.PrintSink{Prefix: "> "}}},
		{"text", files(spec.FileSink{Format: spec.FormatText})},
		{"jsonl", files(spec.FileSink{Format: spec.FormatJSONL})},
		{"jsonl-schema", files(spec.FileSink{Format: spec.FormatJSONL, Schema: rowsTestSchema})},
		{"csv", files(spec.FileSink{Format: spec.FormatCSV, CSV: &spec.CSVOptions{Header: true, Columns: []string{"id", "name", "nested", "extra", "line", "missing"}}})},
		{"csv-schema", files(spec.FileSink{Format: spec.FormatCSV, Schema: rowsTestSchema, CSV: &spec.CSVOptions{Header: true, Columns: []string{"at", "name", "extra", "ok", "nested"}}})},
		{"csv-schema-columns", files(spec.FileSink{Format: spec.FormatCSV, Schema: rowsTestSchema})},
		{"parquet", files(spec.FileSink{Format: spec.FormatParquet, Schema: rowsTestSchema})},
	}
	for _, s := range sinks {
		t.Run(s.name, func(t *testing.T) {
			maps := rowsTestRecords()
			var rows []any
			for _, m := range maps {
				rows = append(rows, value.Rows(m))
			}
			want, err := writeSinkBytes(t, s.sink, maps)
			if err != nil {
				t.Fatal(err)
			}
			got, err := writeSinkBytes(t, s.sink, rows)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) == 0 || !bytes.Equal(got, want) {
				t.Fatalf("rows wrote\n%q\nmaps wrote\n%q", got, want)
			}
			// The rows are left as they were (a writer keeps and changes
			// nothing of them).
			for i, r := range rows {
				if !reflect.DeepEqual(value.Plain(r), maps[i]) {
					t.Fatalf("record %d changed: %v", i, value.Plain(r))
				}
			}
			// Nor does it keep them: rows overwritten after each Write
			// (ReleasesValues) leave what it wrote as it was.
			got, err = writeSinkBytes(t, s.sink, rows, true)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("rows overwritten after Write wrote\n%q\nmaps wrote\n%q", got, want)
			}
		})
	}
	// A record that does not fit fails the same way in both forms.
	// (The messages name the part file, in a directory of each run's own.)
	msg := func(err error) string {
		if err == nil {
			return "no error"
		}
		_, after, _ := strings.Cut(err.Error(), "part-0-0-0.")
		return after
	}
	for _, s := range sinks {
		if s.sink.Files == nil || s.sink.Files.Schema == nil {
			continue
		}
		for _, bad := range []any{
			map[string]any{"id": "seven", "name": "a", "price": 1.0, "at": int64(0)},
			map[string]any{"id": int64(1), "name": "a", "at": int64(0)},
			map[string]any{"id": int64(1), "name": map[string]any{"x": int64(1)}, "price": 1.0, "at": int64(0)},
		} {
			_, werr := writeSinkBytes(t, s.sink, []any{bad})
			_, gerr := writeSinkBytes(t, s.sink, []any{value.Rows(bad)})
			if werr == nil || msg(werr) != msg(gerr) {
				t.Errorf("%s: %v: rows fail with %v, maps with %v", s.name, bad, gerr, werr)
			}
		}
	}
}

// readValues reads every record of a one-subtask source as it comes.
func readValues(t *testing.T, src Source) []any {
	t.Helper()
	r, err := src.Open(context.Background(), 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []any
	for {
		err := r.Read(context.Background(), 3, func(v any) { out = append(out, v) })
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestFileSourceRows: with value.UseRows the text and csv formats and the
// declared-schema formats read rows that share one schema, equal to the
// maps they read without it; the others read maps either way.
func TestFileSourceRows(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "in.txt"), "one\n\ntwo, three\n")
	writeFile(t, filepath.Join(dir, "in.jsonl"),
		`{"id": 1, "name": "a", "price": 2, "ok": true, "at": "2024-01-02T03:04:05.678Z", "note": "x", "drop": 1}`+"\n"+
			`{"id": 2.0, "name": "b", "price": 2.5, "at": 1704164645678}`+"\n")
	writeFile(t, filepath.Join(dir, "in.csv"), "note,at,price,id,ok,drop,name\n"+
		"a,2024-01-02T03:04:05.678Z,2,1,true,x,n1\n"+
		",1704164645678,2.5,2,,y,n2\n")
	for _, c := range []struct {
		src  spec.FileSource
		rows bool
	}{
		{spec.FileSource{Path: "in.txt", Format: spec.FormatText}, true},
		{spec.FileSource{Path: "in.jsonl", Format: spec.FormatJSONL, Schema: rowsTestSchema}, true},
		{spec.FileSource{Path: "in.csv", Format: spec.FormatCSV, CSV: &spec.CSVOptions{Header: true}, Schema: rowsTestSchema}, true},
		{spec.FileSource{Path: "in.jsonl", Format: spec.FormatJSONL}, false},
		{spec.FileSource{Path: "in.csv", Format: spec.FormatCSV, CSV: &spec.CSVOptions{Header: true}}, true},
		{spec.FileSource{Path: "in.csv", Format: spec.FormatCSV, CSV: &spec.CSVOptions{Columns: []string{"z", "a", "b", "c0", "c1", "q", "c6"}}}, true},
		{spec.FileSource{Path: "in.csv", Format: spec.FormatCSV}, true},
	} {
		c.src.Path = filepath.Join(dir, c.src.Path)
		withRows(t, false)
		maps := readValues(t, mustSource(t, c.src, S3Config{}))
		withRows(t, true)
		rows := readValues(t, mustSource(t, c.src, S3Config{}))
		if len(maps) < 2 || len(rows) != len(maps) {
			t.Fatalf("%s: %d records as maps, %d as rows", c.src.Path, len(maps), len(rows))
		}
		var schema *value.Schema
		for i, v := range rows {
			if _, isMap := maps[i].(map[string]any); !isMap {
				t.Fatalf("%s: record %d is a %T without rows", c.src.Path, i, maps[i])
			}
			r, isRow := v.(*value.Row)
			if isRow != c.rows {
				t.Fatalf("%s: record %d is a %T with rows", c.src.Path, i, v)
			}
			if isRow {
				if schema != nil && r.Schema() != schema {
					t.Fatalf("%s: records of two schemas", c.src.Path)
				}
				schema = r.Schema()
			}
			if !reflect.DeepEqual(value.Plain(v), maps[i]) {
				t.Fatalf("%s: record %d is %v as a row, %v as a map", c.src.Path, i, value.Plain(v), maps[i])
			}
		}
	}
}

// TestFieldLoader: fields are read by name from maps and by index from
// rows, the index found again when the row schema changes.
func TestFieldLoader(t *testing.T) {
	l := newFieldLoader([]string{"b", "zz", "a"})
	vals := make([]any, 3)
	for _, c := range []struct {
		v    any
		want []any
	}{
		{map[string]any{"a": int64(1), "b": "x"}, []any{"x", nil, int64(1)}},
		{value.RowOf(map[string]any{"a": int64(2), "b": "y"}), []any{"y", nil, int64(2)}},
		{value.RowOf(map[string]any{"a": int64(3), "b": "z"}), []any{"z", nil, int64(3)}},
		{value.RowOf(map[string]any{"zz": true, "b": nil, "c": 1.5}), []any{nil, true, nil}},
		{value.RowOf(map[string]any{"a": int64(4)}), []any{nil, nil, int64(4)}},
		{map[string]any{"zz": false}, []any{nil, false, nil}},
	} {
		for i := range vals {
			vals[i] = "stale"
		}
		if !l.load(c.v, vals) || !reflect.DeepEqual(vals, c.want) {
			t.Errorf("load(%v) = %v, want %v", c.v, vals, c.want)
		}
	}
	if l.load([]any{int64(1)}, vals) || l.load(nil, vals) {
		t.Error("load took a list or null for a map")
	}
}
