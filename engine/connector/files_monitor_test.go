package connector

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// readUntil reads r until it has emitted want values in total (a
// continuous reader never ends by itself), failing after a generous
// deadline.
func readUntil(t *testing.T, r Reader, got *[]string, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(*got) < want {
		if err := r.Read(context.Background(), 7, func(v any) { *got = append(*got, string(value.ToJSON(v))) }); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d records in 30s", len(*got), want)
		}
	}
}

// The continuous files source: unbounded, files split by name hash, files
// that appear later are read, each file once, and a position taken
// mid-file resumes in a fresh reader without loss or repeat.
func TestFileSourceMonitorsDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "landing") // does not exist yet
	src := mustSource(t, spec.FileSource{Path: dir, Format: spec.FormatJSONL, MonitorInterval: "20ms"}, S3Config{})
	if src.Bounded() {
		t.Fatal("a monitored files source says it is bounded")
	}
	ctx := context.Background()
	const p = 3
	readers := make([]Reader, p)
	for i := range readers {
		r, err := src.Open(ctx, i, p)
		if err != nil {
			t.Fatal(err)
		}
		readers[i] = r
	}
	// Nothing there: Read returns without records instead of blocking, so
	// the task can pass checkpoint barriers.
	for _, r := range readers {
		if err := r.Read(ctx, 10, func(any) { t.Fatal("record from an empty directory") }); err != nil {
			t.Fatal(err)
		}
	}
	put := func(name string, from, to int) {
		var b strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&b, "{\"n\":%d}\n", i)
		}
		writeFile(t, filepath.Join(dir, name), b.String())
	}
	wantOf := func(names ...string) map[int]int {
		out := map[int]int{}
		for _, n := range names {
			out[owner(n, p)] += 10
		}
		return out
	}
	got := make([][]string, p)
	readAllOf := func(want map[int]int) {
		for i, r := range readers {
			readUntil(t, r, &got[i], want[i])
		}
	}
	names := []string{"a.jsonl", "b.jsonl", "c.jsonl", "d.jsonl", "e.jsonl", "f.jsonl"}
	for k, n := range names[:3] {
		put(n, k*10, k*10+10)
	}
	readAllOf(wantOf(names[:3]...))
	// Files appearing later; a hidden one (in progress) is skipped.
	for k, n := range names[3:] {
		put(n, 30+k*10, 40+k*10)
	}
	put(".inprogress.jsonl", 1000, 1010)
	readAllOf(wantOf(names...))

	// Subtask 0 stops mid-file; a fresh reader restored from its position
	// reads the rest of that file and what appears next, nothing twice.
	put("g.jsonl", 60, 80) // 20 records
	owner0 := owner("g.jsonl", p)
	r := readers[owner0]
	before := len(got[owner0])
	if err := r.Read(ctx, 5, func(v any) { got[owner0] = append(got[owner0], string(value.ToJSON(v))) }); err != nil {
		t.Fatal(err)
	}
	for len(got[owner0]) == before {
		if err := r.Read(ctx, 5, func(v any) { got[owner0] = append(got[owner0], string(value.ToJSON(v))) }); err != nil {
			t.Fatal(err)
		}
	}
	pos, err := r.(Positioned).Position()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(pos), `"current":"g.jsonl"`) {
		t.Fatalf("position %s: want it mid g.jsonl", pos)
	}
	r.Close()
	r2, err := src.Open(ctx, owner0, p)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if err := r2.(Positioned).Seek(pos); err != nil {
		t.Fatal(err)
	}
	readers[owner0] = r2
	want := wantOf(names...)
	want[owner0] += 20
	readAllOf(want)

	var all []int
	for i := range got {
		for _, s := range got[i] {
			v, _ := value.FromJSON([]byte(s))
			all = append(all, int(v.(map[string]any)["n"].(int64)))
		}
	}
	sort.Ints(all)
	var wantAll []int
	for i := 0; i < 80; i++ {
		wantAll = append(wantAll, i)
	}
	if !reflect.DeepEqual(all, wantAll) {
		t.Fatalf("read %v, want 0..79 once each", all)
	}
	for _, r := range readers {
		r.Close()
	}
}
