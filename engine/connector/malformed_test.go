package connector

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// describe renders what a reader emitted: a record's JSON, or a malformed
// record's location and raw text.
func describe(v any) string {
	if m, ok := v.(*Malformed); ok {
		return fmt.Sprintf("malformed %s %q", m.Location, m.Raw)
	}
	return string(value.ToJSON(v))
}

// readToEnd reads r to its end.
func readToEnd(t *testing.T, ctx context.Context, r Reader, max int, got *[]string) {
	t.Helper()
	for {
		err := r.Read(ctx, max, func(v any) { *got = append(*got, describe(v)) })
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestMalformedPositionsRestore: the reader's position moves past a routed
// record like past any other, so a reader restored at the position taken
// after any number of reads neither repeats nor loses a record, good or
// malformed (the checkpointed position of a STREAMING files source).
func TestMalformedPositionsRestore(t *testing.T) {
	for _, tc := range []struct {
		format spec.Format
		csv    *spec.CSVOptions
		files  map[string]string
		want   int // records and malformed records
	}{
		{format: spec.FormatJSONL, files: map[string]string{
			"a.jsonl": "{\"a\": 1}\nbad\n\n{\"a\": 2}\n{\nbad again\n{\"a\": 3}\n",
			"b.jsonl": "x\n{\"b\": 1}\n",
		}, want: 8},
		{format: spec.FormatCSV, csv: &spec.CSVOptions{Header: true}, files: map[string]string{
			"a.csv": "k,v\n1,2\n3\n4,5\n6,\"7\n8\"\n9,\"x\"y\n10,11\n",
		}, want: 6},
	} {
		t.Run(string(tc.format), func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tc.files {
				writeFile(t, filepath.Join(dir, name), body)
			}
			src, err := NewSource(&spec.Source{Files: &spec.FileSource{Path: dir, Format: tc.format, CSV: tc.csv}, MalformedOutput: "bad"}, nil, nil, Env{})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			r, err := src.Open(ctx, 0, 1)
			if err != nil {
				t.Fatal(err)
			}
			var all []string
			readToEnd(t, ctx, r, 1, &all)
			r.Close()
			if len(all) != tc.want || !strings.Contains(strings.Join(all, "\n"), "malformed") {
				t.Fatalf("read %d values, want %d with malformed ones:\n%s", len(all), tc.want, strings.Join(all, "\n"))
			}
			for k := 0; k <= len(all); k++ {
				r, _ := src.Open(ctx, 0, 1)
				var got []string
				for len(got) < k {
					if err := r.Read(ctx, 1, func(v any) { got = append(got, describe(v)) }); err != nil {
						t.Fatal(err)
					}
				}
				pos, err := r.(Positioned).Position()
				if err != nil {
					t.Fatal(err)
				}
				r.Close()
				r, _ = src.Open(ctx, 0, 1)
				if err := r.(Positioned).Seek(pos); err != nil {
					t.Fatalf("seek to %s after %d values: %v", pos, k, err)
				}
				readToEnd(t, ctx, r, 3, &got)
				r.Close()
				if strings.Join(got, "\n") != strings.Join(all, "\n") {
					t.Fatalf("restored after %d values at %s:\n%s\nwant:\n%s", k, pos, strings.Join(got, "\n"), strings.Join(all, "\n"))
				}
			}
		})
	}
}

// TestMalformedMonitoredFiles: a continuous files source routes too and
// keeps reading the next lines.
func TestMalformedMonitoredFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.jsonl"), "{\"a\": 1}\nbad\n{\"a\": 2}\n")
	src, err := NewSource(&spec.Source{Files: &spec.FileSource{Path: dir, Format: spec.FormatJSONL, MonitorInterval: "10ms"}, MalformedOutput: "bad"}, nil, nil, Env{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := src.Open(ctx, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []string
	for len(got) < 3 {
		if err := r.Read(ctx, 10, func(v any) { got = append(got, describe(v)) }); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{`{"a":1}`, fmt.Sprintf("malformed %s:2 %q", filepath.Join(dir, "a.jsonl"), "bad"), `{"a":2}`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
