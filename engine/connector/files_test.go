package connector

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// readSubtasks reads every subtask of src and returns each one's records,
// rendered as JSON so they compare and sort easily.
func readSubtasks(t *testing.T, src Source, parallelism int) ([][]string, error) {
	t.Helper()
	ctx := context.Background()
	out := make([][]string, parallelism)
	for i := 0; i < parallelism; i++ {
		r, err := src.Open(ctx, i, parallelism)
		if err != nil {
			return nil, err
		}
		for {
			err := r.Read(ctx, 7, func(v any) { out[i] = append(out[i], string(value.ToJSON(v))) })
			if err == io.EOF {
				break
			}
			if err != nil {
				r.Close()
				return nil, err
			}
		}
		if err := r.Close(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readAll reads every subtask and returns all records, sorted.
func readAll(t *testing.T, src Source, parallelism int) []string {
	t.Helper()
	parts, err := readSubtasks(t, src, parallelism)
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, p := range parts {
		all = append(all, p...)
	}
	sort.Strings(all)
	return all
}

// writeAll writes vals through sink with parallelism writers (round robin)
// and finishes the sink.
func writeAll(t *testing.T, sink Sink, parallelism int, vals []any) {
	t.Helper()
	ctx := context.Background()
	ws := make([]Writer, parallelism)
	for i := range ws {
		w, err := sink.Open(ctx, i, parallelism)
		if err != nil {
			t.Fatal(err)
		}
		ws[i] = w
	}
	for i, v := range vals {
		if err := ws[i%parallelism].Write(&value.Record{Value: v, Ts: value.NoTimestamp}); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range ws {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.(Finisher).Finish(ctx); err != nil {
		t.Fatal(err)
	}
}

// finish runs a sink's job-wide Finish.
func finish(t *testing.T, sink Sink) {
	t.Helper()
	if err := sink.(Finisher).Finish(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func jsonStrings(vals ...any) []string {
	var out []string
	for _, v := range vals {
		out = append(out, string(value.ToJSON(v)))
	}
	sort.Strings(out)
	return out
}

func mustSource(t *testing.T, s spec.FileSource, cfg S3Config) Source {
	t.Helper()
	src, err := NewFileSource(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func mustSink(t *testing.T, s spec.FileSink, cfg S3Config) Sink {
	t.Helper()
	sink, err := NewFileSink(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return sink
}

// roundTripCase is one format's input files and the records they hold.
type roundTripCase struct {
	format spec.Format
	csv    *spec.CSVOptions
	files  map[string]string
	want   []any
}

func roundTripCases() []roundTripCase {
	return []roundTripCase{
		{
			format: spec.FormatText,
			files: map[string]string{
				"a.txt":     "hello world\r\nsecond line\n\nlast without newline",
				"b.txt":     "\xef\xbb\xbfbom stripped\n",
				"sub/c.txt": "nested \"quoted\" line\n",
			},
			want: []any{
				map[string]any{"line": "hello world"},
				map[string]any{"line": "second line"},
				map[string]any{"line": ""},
				map[string]any{"line": "last without newline"},
				map[string]any{"line": "bom stripped"},
				map[string]any{"line": `nested "quoted" line`},
			},
		},
		{
			format: spec.FormatJSONL,
			files: map[string]string{
				"a.jsonl": "{\"w\":\"x\",\"n\":1}\n\n  \n{\"w\":\"y\",\"n\":2.5,\"l\":[1,null,true]}\n",
				"b.jsonl": "\"just a string\"\r\n{\"big\":9007199254740993}",
			},
			want: []any{
				map[string]any{"w": "x", "n": int64(1)},
				map[string]any{"w": "y", "n": 2.5, "l": []any{int64(1), nil, true}},
				"just a string",
				map[string]any{"big": int64(9007199254740993)},
			},
		},
		{
			format: spec.FormatCSV,
			csv:    &spec.CSVOptions{Header: true, Columns: []string{"word", "n", "note"}},
			files: map[string]string{
				"a.csv": "word,n,note\nx,1,plain\ny,007,\"with, comma\"\n",
				"b.csv": "word,n,note\nz,2.50,\"multi\nline \"\"quoted\"\"\"\n",
			},
			want: []any{
				map[string]any{"word": "x", "n": "1", "note": "plain"},
				map[string]any{"word": "y", "n": "007", "note": "with, comma"},
				map[string]any{"word": "z", "n": "2.50", "note": "multi\nline \"quoted\""},
			},
		},
	}
}

// roundTrip writes the case's files under in, reads them with a 3-way
// source, writes the records to out with a 2-way sink and reads them back.
func roundTrip(t *testing.T, tc roundTripCase, cfg S3Config, in, out string, put func(name, content string)) {
	t.Helper()
	for name, content := range tc.files {
		put(name, content)
	}
	want := jsonStrings(tc.want...)
	got := readAll(t, mustSource(t, spec.FileSource{Path: in, Format: tc.format, CSV: tc.csv}, cfg), 3)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read %s:\n got %q\nwant %q", tc.format, got, want)
	}
	var vals []any
	for _, s := range got {
		v, err := value.FromJSON([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		vals = append(vals, v)
	}
	sink := mustSink(t, spec.FileSink{Path: out, Format: tc.format, CSV: tc.csv}, cfg)
	if err := sink.(OutputClearer).ClearOutput(context.Background()); err != nil {
		t.Fatal(err)
	}
	writeAll(t, sink, 2, vals)
	back := readAll(t, mustSource(t, spec.FileSource{Path: out, Format: tc.format, CSV: tc.csv}, cfg), 2)
	if !reflect.DeepEqual(back, want) {
		t.Fatalf("read back %s:\n got %q\nwant %q", tc.format, back, want)
	}
	loc, err := ParseLocation(out, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ext := map[spec.Format]string{spec.FormatText: "txt", spec.FormatJSONL: "jsonl", spec.FormatCSV: "csv"}[tc.format]
	for _, n := range []string{"_SUCCESS", "part-0-0-0." + ext, "part-1-0-0." + ext} {
		ok, err := loc.Exists(context.Background(), n)
		if err != nil || !ok {
			t.Errorf("%s: exists=%v err=%v", loc.URL(n), ok, err)
		}
	}
}

func TestFileRoundTripLocal(t *testing.T) {
	for _, tc := range roundTripCases() {
		t.Run(string(tc.format), func(t *testing.T) {
			dir := t.TempDir()
			in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
			roundTrip(t, tc, S3Config{}, in, out, func(name, content string) {
				writeFile(t, filepath.Join(in, name), content)
			})
			entries, _ := os.ReadDir(out)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if len(names) != 3 {
				t.Errorf("output dir holds %v; want two parts and _SUCCESS, no temp files", names)
			}
		})
	}
}

func TestFileSourceSplitCoversEachFileOnce(t *testing.T) {
	dir := t.TempDir()
	var want []any
	for i := 0; i < 8; i++ {
		name := string(rune('a'+i)) + ".txt"
		writeFile(t, filepath.Join(dir, name), name+"-1\n"+name+"-2\n")
		want = append(want, map[string]any{"line": name + "-1"}, map[string]any{"line": name + "-2"})
	}
	// Hidden files and directories are markers or in-progress writes.
	writeFile(t, filepath.Join(dir, "_SUCCESS"), "")
	writeFile(t, filepath.Join(dir, ".a.txt.tmp-123"), "partial\n")
	writeFile(t, filepath.Join(dir, "_temporary", "x.txt"), "partial\n")

	src := mustSource(t, spec.FileSource{Path: dir}, S3Config{})
	parts, err := readSubtasks(t, src, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Sorted names a..h: subtask i reads files i, i+3, i+6.
	wantParts := [][]string{
		{"a", "d", "g"}, {"b", "e", "h"}, {"c", "f"},
	}
	var all []string
	for i, p := range parts {
		var files []string
		for j := 0; j < len(p); j += 2 {
			files = append(files, p[j][len(`{"line":"`):len(`{"line":"`)+1])
		}
		if !reflect.DeepEqual(files, wantParts[i]) {
			t.Errorf("subtask %d read files %v, want %v", i, files, wantParts[i])
		}
		all = append(all, p...)
	}
	sort.Strings(all)
	if !reflect.DeepEqual(all, jsonStrings(want...)) {
		t.Errorf("union of subtasks:\n got %q\nwant %q", all, jsonStrings(want...))
	}
}

func TestFileSourceSingleFileAndMoreSubtasksThanFiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "only.jsonl")
	writeFile(t, p, `{"a":1}`+"\n"+`{"a":2}`+"\n")
	got := readAll(t, mustSource(t, spec.FileSource{Path: p, Format: spec.FormatJSONL}, S3Config{}), 4)
	if want := jsonStrings(map[string]any{"a": int64(1)}, map[string]any{"a": int64(2)}); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestFileSourceMissingPath(t *testing.T) {
	src := mustSource(t, spec.FileSource{Path: filepath.Join(t.TempDir(), "nope")}, S3Config{})
	if _, err := src.Open(context.Background(), 0, 1); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v, want one naming the missing path", err)
	}
}

func TestJSONLMalformedLineNamesFileAndLine(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.jsonl"), `{"ok":1}`+"\n")
	writeFile(t, filepath.Join(dir, "b.jsonl"), `{"ok":2}`+"\n\n"+`{"broken": }`+"\n"+`{"ok":3}`+"\n")
	_, err := readSubtasks(t, mustSource(t, spec.FileSource{Path: dir, Format: spec.FormatJSONL}, S3Config{}), 1)
	if err == nil {
		t.Fatal("malformed line was accepted")
	}
	want := filepath.Join(dir, "b.jsonl") + ": line 3: invalid JSON"
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %q, want it to contain %q", err, want)
	}
	// Trailing data after one value is malformed too, not two records.
	writeFile(t, filepath.Join(dir, "b.jsonl"), `{"a":1} {"b":2}`+"\n")
	if _, err := readSubtasks(t, mustSource(t, spec.FileSource{Path: dir, Format: spec.FormatJSONL}, S3Config{}), 1); err == nil || !strings.Contains(err.Error(), "b.jsonl: line 1") {
		t.Fatalf("err = %v", err)
	}
}

func TestCSVSourceColumns(t *testing.T) {
	cases := []struct {
		name    string
		opts    *spec.CSVOptions
		content string
		want    []any
		err     string
	}{
		{name: "default names", content: "1,2\n3,4\n", want: []any{
			map[string]any{"c0": "1", "c1": "2"}, map[string]any{"c0": "3", "c1": "4"},
		}},
		{name: "columns", opts: &spec.CSVOptions{Columns: []string{"a", "b"}}, content: "1,2\n", want: []any{
			map[string]any{"a": "1", "b": "2"},
		}},
		{name: "delimiter", opts: &spec.CSVOptions{Header: true, Delimiter: ";"}, content: "a;b\n1,5;2\n", want: []any{
			map[string]any{"a": "1,5", "b": "2"},
		}},
		{name: "header only", opts: &spec.CSVOptions{Header: true}, content: "a,b\n"},
		{name: "empty file", opts: &spec.CSVOptions{Header: true}, content: ""},
		{name: "ragged row", opts: &spec.CSVOptions{Header: true}, content: "a,b\n1,2\n3\n", err: "line 3"},
		{name: "row vs columns", opts: &spec.CSVOptions{Columns: []string{"a", "b"}}, content: "1,2,3\n", err: "line 1"},
		{name: "duplicate header", opts: &spec.CSVOptions{Header: true}, content: "a,a\n1,2\n", err: `column "a" twice`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "f.csv")
			writeFile(t, p, tc.content)
			parts, err := readSubtasks(t, mustSource(t, spec.FileSource{Path: p, Format: spec.FormatCSV, CSV: tc.opts}, S3Config{}), 1)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), p) {
					t.Fatalf("err = %v, want file name and %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := parts[0]
			sort.Strings(got)
			if want := jsonStrings(tc.want...); !reflect.DeepEqual(got, want) {
				t.Fatalf("got %q want %q", got, want)
			}
		})
	}
}

func TestFileOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"source format", func() error {
			_, err := NewFileSource(spec.FileSource{Path: "x", Format: "orc"}, S3Config{})
			return err
		}()},
		{"parquet source with a schema", func() error {
			_, err := NewFileSource(spec.FileSource{Path: "x", Format: spec.FormatParquet, Schema: []spec.SchemaField{{Name: "a", Type: spec.TypeInt}}}, S3Config{})
			return err
		}()},
		{"parquet sink without a schema", func() error {
			_, err := NewFileSink(spec.FileSink{Path: "x", Format: spec.FormatParquet}, S3Config{})
			return err
		}()},
		{"unknown field type", func() error {
			_, err := NewFileSink(spec.FileSink{Path: "x", Schema: []spec.SchemaField{{Name: "a", Type: "decimal"}}}, S3Config{})
			return err
		}()},
		{"duplicate field", func() error {
			_, err := NewFileSource(spec.FileSource{Path: "x", Format: spec.FormatJSONL, Schema: []spec.SchemaField{{Name: "a", Type: spec.TypeInt}, {Name: "a", Type: spec.TypeString}}}, S3Config{})
			return err
		}()},
		{"negative part size", func() error {
			_, err := NewFileSink(spec.FileSink{Path: "x", RollingPolicy: &spec.RollingPolicy{MaxPartSize: -1}}, S3Config{})
			return err
		}()},
		{"bad monitor interval", func() error {
			_, err := NewFileSource(spec.FileSource{Path: "x", MonitorInterval: "0s"}, S3Config{})
			return err
		}()},
		{"source delimiter", func() error {
			_, err := NewFileSource(spec.FileSource{Path: "x", Format: spec.FormatCSV, CSV: &spec.CSVOptions{Delimiter: `"`}}, S3Config{})
			return err
		}()},
		{"sink csv without columns", func() error {
			_, err := NewFileSink(spec.FileSink{Path: "x", Format: spec.FormatCSV}, S3Config{})
			return err
		}()},
		{"sink format", func() error { _, err := NewFileSink(spec.FileSink{Path: "x", Format: "xml"}, S3Config{}); return err }()},
	} {
		if tc.err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// readDir returns the visible and hidden names of a directory.
func readDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestFileSinkEncodings(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		sink spec.FileSink
		vals []any
		want string
	}{
		{
			sink: spec.FileSink{Format: spec.FormatText},
			vals: []any{map[string]any{"line": "from field"}, "a string", map[string]any{"line": int64(5)}, map[string]any{"b": 1.0, "a": nil}, int64(7)},
			want: "from field\na string\n5\n{\"a\":null,\"b\":1.0}\n7\n",
		},
		{
			sink: spec.FileSink{}, // jsonl is the default
			vals: []any{map[string]any{"z": "x", "a": []any{int64(1), "é"}}},
			want: "{\"a\":[1,\"é\"],\"z\":\"x\"}\n",
		},
		{
			sink: spec.FileSink{Format: spec.FormatCSV, CSV: &spec.CSVOptions{Header: true, Delimiter: ";", Columns: []string{"k", "n", "extra"}}},
			vals: []any{
				map[string]any{"k": "a;b", "n": int64(3), "ignored": "x"},
				map[string]any{"k": "q\"uote", "n": 1.5, "extra": []byte("hi")},
				map[string]any{"n": map[string]any{"x": true}},
			},
			want: "k;n;extra\n\"a;b\";3;\n\"q\"\"uote\";1.5;aGk=\n;\"{\"\"x\"\":true}\";\n",
		},
	}
	for _, tc := range cases {
		dir := t.TempDir()
		tc.sink.Path = dir
		sink := mustSink(t, tc.sink, S3Config{})
		w, err := sink.Open(ctx, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range tc.vals {
			if err := w.Write(&value.Record{Value: v}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		finish(t, sink)
		ext := map[spec.Format]string{spec.FormatText: "txt", "": "jsonl", spec.FormatCSV: "csv"}[tc.sink.Format]
		b, err := os.ReadFile(filepath.Join(dir, "part-0-0-0."+ext))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", ext, b, tc.want)
		}
	}

	// A csv sink refuses records that are not maps, without tearing the part.
	dir := t.TempDir()
	sink := mustSink(t, spec.FileSink{Path: dir, Format: spec.FormatCSV, CSV: &spec.CSVOptions{Columns: []string{"a"}}}, S3Config{})
	w, _ := sink.Open(ctx, 0, 1)
	if err := w.Write(&value.Record{Value: "not a map"}); err == nil {
		t.Error("csv sink accepted a string record")
	}
	if err := w.Write(&value.Record{Value: map[string]any{"a": "ok"}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	finish(t, sink)
	if b, _ := os.ReadFile(filepath.Join(dir, "part-0-0-0.csv")); string(b) != "ok\n" {
		t.Errorf("part = %q", b)
	}
}

func TestFileSinkStagesUntilFinishLocal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	pending := filepath.Join(dir, "_pending")
	sink := mustSink(t, spec.FileSink{Path: dir}, S3Config{})

	// While writing only a hidden temp file exists; readers see nothing.
	w, _ := sink.Open(ctx, 0, 2)
	if err := w.Write(&value.Record{Value: "x"}); err != nil {
		t.Fatal(err)
	}
	names := readDir(t, pending)
	if len(names) != 1 || !strings.HasPrefix(names[0], ".part-0-0-0.jsonl.tmp-") {
		t.Fatalf("while writing, _pending holds %v; want only a hidden temp file", names)
	}
	if got := readAll(t, mustSource(t, spec.FileSource{Path: dir, Format: spec.FormatJSONL}, S3Config{}), 1); len(got) != 0 {
		t.Fatalf("a reader saw uncommitted records %q", got)
	}
	// Abort leaves nothing at all.
	w.Abort()
	if names := readDir(t, pending); len(names) != 0 {
		t.Fatalf("after abort, _pending holds %v", names)
	}
	// Close stages the part: still invisible to readers until Finish.
	w, _ = sink.Open(ctx, 0, 2)
	if err := w.Write(&value.Record{Value: "y"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readDir(t, pending); !reflect.DeepEqual(got, []string{"part-0-0-0.jsonl"}) {
		t.Fatalf("after Close, _pending holds %v", got)
	}
	if got := readAll(t, mustSource(t, spec.FileSource{Path: dir, Format: spec.FormatJSONL}, S3Config{}), 1); len(got) != 0 {
		t.Fatalf("a reader saw staged records %q", got)
	}
	// A writer with no records creates no part file.
	w, _ = sink.Open(ctx, 1, 2)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	finish(t, sink)
	if got := readDir(t, dir); !reflect.DeepEqual(got, []string{"_SUCCESS", "part-0-0-0.jsonl"}) {
		t.Fatalf("after Finish, dir holds %v", got)
	}
	if got := readAll(t, mustSource(t, spec.FileSource{Path: dir, Format: spec.FormatJSONL}, S3Config{}), 1); !reflect.DeepEqual(got, []string{`"y"`}) {
		t.Fatalf("after Finish read %q", got)
	}
	// Close is idempotent and writes after it fail.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(&value.Record{Value: "late"}); err == nil {
		t.Fatal("write after close succeeded")
	}
}

func TestFileSinkRollsParts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sink := mustSink(t, spec.FileSink{Path: dir, Format: spec.FormatText}, S3Config{}).(*FileSink)
	sink.rollSize = 10
	w, _ := sink.Open(ctx, 3, 4)
	for _, s := range []string{"aaaa", "bbbb", "cccc", "dddd", "eeee"} {
		if err := w.Write(&value.Record{Value: s}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	finish(t, sink)
	got := readDir(t, dir)
	want := []string{"_SUCCESS", "part-3-0-0.txt", "part-3-0-1.txt", "part-3-0-2.txt"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parts %v, want %v", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "part-3-0-1.txt")); string(b) != "cccc\ndddd\n" {
		t.Fatalf("part-3-0-1 = %q", b)
	}
}

func TestFileSinkClearOutputLocal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, n := range []string{"part-0-0.jsonl", "part-7-3-1.jsonl", "_SUCCESS", ".part-0-0.jsonl.tmp-dead", "_pending/part-1-2-0.jsonl", "_pending/.part-1-3-0.jsonl.tmp-x", "keep.txt", "sub/part-0-0.jsonl"} {
		writeFile(t, filepath.Join(dir, n), "x\n")
	}
	sink := mustSink(t, spec.FileSink{Path: dir}, S3Config{})
	if err := sink.(OutputClearer).ClearOutput(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := readDir(t, dir), []string{"keep.txt", "sub"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after ClearOutput: %v, want %v", got, want)
	}
	// Clearing a directory that does not exist yet is fine.
	sink = mustSink(t, spec.FileSink{Path: filepath.Join(dir, "fresh")}, S3Config{})
	if err := sink.(OutputClearer).ClearOutput(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestParseLocation(t *testing.T) {
	s3 := S3Config{Endpoint: "127.0.0.1:9"}
	for _, tc := range []struct {
		path, want, err string
		cfg             S3Config
	}{
		{path: "data/in/", want: "data/in"},
		{path: "/abs/x.txt", want: "/abs/x.txt"},
		{path: "file:///abs/dir", want: "/abs/dir"},
		{path: "s3://bucket/pre/fix/", cfg: s3, want: "s3://bucket/pre/fix/"},
		{path: "s3a://bucket", cfg: s3, want: "s3://bucket/"},
		{path: "s3://bucket/p", cfg: S3Config{Endpoint: "https://minio.example:9000"}, want: "s3://bucket/p"},
		{path: "s3:///nobucket", cfg: s3, err: "no bucket"},
		{path: "s3://bucket/p", err: "no S3 endpoint"},
		{path: "s3://bucket/p", cfg: S3Config{Endpoint: "ftp://x"}, err: "http or https"},
		{path: "gs://bucket/p", err: "unsupported scheme"},
		{path: "", err: "empty path"},
	} {
		loc, err := ParseLocation(tc.path, tc.cfg)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err = %v, want %q", tc.path, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.path, err)
			continue
		}
		if loc.String() != tc.want {
			t.Errorf("%q: String() = %q, want %q", tc.path, loc.String(), tc.want)
		}
	}
	loc, _ := ParseLocation("s3://b/dir", s3)
	if got := loc.URL("x/y.txt"); got != "s3://b/dir/x/y.txt" {
		t.Errorf("URL = %q", got)
	}
}

func TestS3ConfigFromEnv(t *testing.T) {
	for _, k := range []string{"FLINKJOB_S3_ENDPOINT", "FLINKJOB_S3_ACCESS_KEY", "FLINKJOB_S3_SECRET_KEY", "FLINKJOB_S3_REGION", "FLINKJOB_S3_SECURE", "FLINKJOB_S3_INSECURE_SKIP_VERIFY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"} {
		t.Setenv(k, "")
	}
	t.Setenv("FLINKJOB_S3_ENDPOINT", "minio:9000")
	t.Setenv("AWS_ACCESS_KEY_ID", "aws-id")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
	t.Setenv("FLINKJOB_S3_SECURE", "true")
	want := S3Config{Endpoint: "minio:9000", AccessKey: "aws-id", SecretKey: "aws-secret", Secure: true}
	if got := S3ConfigFromEnv(); got != want {
		t.Fatalf("got %+v want %+v", got, want)
	}
	t.Setenv("FLINKJOB_S3_ACCESS_KEY", "fj-id")
	t.Setenv("FLINKJOB_S3_SECRET_KEY", "fj-secret")
	t.Setenv("FLINKJOB_S3_REGION", "eu-1")
	t.Setenv("FLINKJOB_S3_SECURE", "nonsense")
	want = S3Config{Endpoint: "minio:9000", AccessKey: "fj-id", SecretKey: "fj-secret", Region: "eu-1"}
	if got := S3ConfigFromEnv(); got != want {
		t.Fatalf("got %+v want %+v", got, want)
	}
}
