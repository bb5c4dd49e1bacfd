package connector

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// The exactly-once file sink driven directly, as the task drives it: two
// subtasks write, pre-commit at checkpoints 1 and 2, commit 1, then "die"
// after checkpoint 2 completed but before Commit(2) reached them, with
// parts rolled after the barrier and a part in progress. A new attempt
// recovers from checkpoint 2 and replays the records after it; the output
// holds every record exactly once, and nothing staged is left behind.
func TestFileSinkExactlyOnceLocal(t *testing.T) {
	dir := t.TempDir()
	exactlyOnceScenario(t, S3Config{}, filepath.Join(dir, "out"), nil)
}

func TestFileSinkExactlyOnceS3(t *testing.T) {
	cfg := testS3(t)
	bucket := testBucket(t, cfg)
	exactlyOnceScenario(t, cfg, "s3://"+bucket+"/eo/out", func(loc Location) {
		// A killed writer can leave an open multipart upload with parts
		// (a big part in progress): Recover must abort it.
		core := minio.Core{Client: testClient(t, cfg)}
		key := "eo/out/_pending/part-0-2-7.jsonl"
		id, err := core.NewMultipartUpload(context.Background(), bucket, key, minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		data := strings.Repeat("{\"n\":-1}\n", 1000)
		if _, err := core.PutObjectPart(context.Background(), bucket, key, id, 1, strings.NewReader(data), int64(len(data)), minio.PutObjectPartOptions{}); err != nil {
			t.Fatal(err)
		}
		if ups := incompleteUploads(t, cfg, bucket); len(ups) != 1 {
			t.Fatalf("incomplete uploads %v, want the one just made", ups)
		}
	})
	if ups := incompleteUploads(t, cfg, bucket); len(ups) != 0 {
		t.Fatalf("after recovery, incomplete uploads %v", ups)
	}
}

func numRec(n int) *value.Record { return &value.Record{Value: map[string]any{"n": int64(n)}} }

// readNums reads the visible output as the files source does and returns
// the n fields, sorted.
func readNums(t *testing.T, cfg S3Config, path string) []int {
	t.Helper()
	loc := mustLocation(t, path, cfg)
	if _, err := loc.List(context.Background()); err != nil {
		return nil // nothing visible yet (an S3 prefix with no object)
	}
	var out []int
	for _, s := range readAll(t, mustSource(t, spec.FileSource{Path: path, Format: spec.FormatJSONL}, cfg), 1) {
		v, err := value.FromJSON([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, int(v.(map[string]any)["n"].(int64)))
	}
	sort.Ints(out)
	return out
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func exactlyOnceScenario(t *testing.T, cfg S3Config, path string, beforeRestore func(Location)) {
	ctx := context.Background()
	open := func(sink Sink, i int) (Writer, Transactional) {
		w, err := sink.Open(ctx, i, 2)
		if err != nil {
			t.Fatal(err)
		}
		return w, w.(Transactional)
	}
	write := func(ws []Writer, from, to int) {
		for n := from; n < to; n++ {
			if err := ws[n%2].Write(numRec(n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	preCommit := func(ts []Transactional, id int64) [][]byte {
		var out [][]byte
		for _, tx := range ts {
			b, err := tx.PreCommit(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
		return out
	}
	commit := func(ts []Transactional, id int64) {
		for _, tx := range ts {
			if err := tx.Commit(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	newSink := func() *FileSink {
		// Parts of about 5 records, so parts roll between checkpoints too.
		return mustSink(t, spec.FileSink{Path: path, RollingPolicy: &spec.RollingPolicy{MaxPartSize: 40}}, cfg).(*FileSink)
	}

	// Attempt 1.
	sink := newSink()
	w0, t0 := open(sink, 0)
	w1, t1 := open(sink, 1)
	ws, ts := []Writer{w0, w1}, []Transactional{t0, t1}
	write(ws, 0, 30)
	preCommit(ts, 1)
	write(ws, 30, 60) // parts rolled after barrier 1: not covered by it
	if got := readNums(t, cfg, path); len(got) != 0 {
		t.Fatalf("before any commit, %d records are visible", len(got))
	}
	commit(ts, 1)
	if got, want := readNums(t, cfg, path), seq(0, 30); !reflect.DeepEqual(got, want) {
		t.Fatalf("after Commit(1) visible %v, want %v", got, want)
	}
	cp2 := preCommit(ts, 2)
	write(ws, 60, 100) // rolled and in-progress parts after barrier 2
	// Attempt 1 dies here: checkpoint 2 completed, but no subtask got to
	// Commit(2). Nothing is aborted (a killed process aborts nothing).
	if got, want := readNums(t, cfg, path), seq(0, 30); !reflect.DeepEqual(got, want) {
		t.Fatalf("after the failure visible %v, want %v", got, want)
	}
	loc := mustLocation(t, path, cfg)
	if beforeRestore != nil {
		beforeRestore(loc)
	}

	// Attempt 2, restored from checkpoint 2 twice: the first restore dies
	// right after Recover, so Recover must be idempotent.
	for attempt := 2; attempt <= 3; attempt++ {
		sink = newSink()
		w0, t0 = open(sink, 0)
		w1, t1 = open(sink, 1)
		ws, ts = []Writer{w0, w1}, []Transactional{t0, t1}
		for i, tx := range ts {
			if err := tx.Recover(ctx, cp2[i]); err != nil {
				t.Fatalf("attempt %d: %v", attempt, err)
			}
		}
		if got, want := readNums(t, cfg, path), seq(0, 60); !reflect.DeepEqual(got, want) {
			t.Fatalf("attempt %d: after Recover(2) visible %v, want %v", attempt, got, want)
		}
	}
	// The source replays from checkpoint 2's position.
	write(ws, 60, 90)
	preCommit(ts, 3)
	write(ws, 90, 100)
	commit(ts, 3)
	// A commit of an id this attempt never pre-committed is a no-op.
	commit(ts, 2)
	if got, want := readNums(t, cfg, path), seq(0, 90); !reflect.DeepEqual(got, want) {
		t.Fatalf("after Commit(3) visible %v, want %v", got, want)
	}
	for _, w := range ws {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	finish(t, sink)
	if got, want := readNums(t, cfg, path), seq(0, 100); !reflect.DeepEqual(got, want) {
		t.Fatalf("at the end visible %v, want %v", got, want)
	}
	files, err := loc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 8 {
		t.Errorf("%d part files; want the rolling policy to have made many", len(files))
	}
	for _, f := range files {
		var sub, ep, n int
		if _, err := fmt.Sscanf(f.Name, "part-%d-%d-%d.jsonl", &sub, &ep, &n); err != nil {
			t.Errorf("part %q is not named part-<subtask>-<checkpoint>-<n>.jsonl", f.Name)
		}
	}
	// Nothing staged is left: no pending part, temp file or upload.
	if staged, err := sink.pending.List(ctx); err == nil && len(staged) > 0 {
		t.Errorf("staged files left: %v", staged)
	}
	if ll, ok := loc.(*localLocation); ok {
		if names := readDir(t, ll.root); len(names) != len(files)+1 {
			t.Errorf("output dir holds %v", names)
		}
	}
}

// Without checkpoints (BATCH, or STREAMING with checkpoints off), a retried
// subtask must not leave the parts of its failed attempt for Finish: they
// would double its records.
func TestFileSinkRetriedSubtaskLeavesNoStaleParts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sink := mustSink(t, spec.FileSink{Path: dir, RollingPolicy: &spec.RollingPolicy{MaxPartSize: 20}}, S3Config{})
	w, _ := sink.Open(ctx, 0, 1)
	for n := 0; n < 50; n++ {
		if err := w.Write(numRec(n)); err != nil {
			t.Fatal(err)
		}
	}
	// The first attempt dies (killed: no Abort, no Close) with many
	// pending parts and one in progress. The retry writes fewer records
	// per part (a different rolling outcome), so names do not line up.
	sink = mustSink(t, spec.FileSink{Path: dir, RollingPolicy: &spec.RollingPolicy{MaxPartSize: 1000}}, S3Config{})
	w, _ = sink.Open(ctx, 0, 1)
	for n := 0; n < 50; n++ {
		if err := w.Write(numRec(n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	finish(t, sink)
	if got, want := readNums(t, S3Config{}, dir), seq(0, 50); !reflect.DeepEqual(got, want) {
		t.Fatalf("visible %v, want %v", got, want)
	}
}

// Parts roll by size, by age (checked at the next record) and at every
// checkpoint.
func TestFileSinkRollingPolicy(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sink := mustSink(t, spec.FileSink{Path: dir, Format: spec.FormatText,
		RollingPolicy: &spec.RollingPolicy{MaxPartSize: 15, RolloverInterval: "1m"}}, S3Config{}).(*FileSink)
	now := time.Unix(1000, 0)
	sink.now = func() time.Time { return now }
	w, _ := sink.Open(ctx, 1, 2)
	tx := w.(Transactional)
	put := func(s string) {
		t.Helper()
		if err := w.Write(&value.Record{Value: s}); err != nil {
			t.Fatal(err)
		}
	}
	put("aaaa") // part 0-0
	now = now.Add(30 * time.Second)
	put("bbbb")
	now = now.Add(31 * time.Second) // part 0-0 is 61s old: the next record starts 0-1
	put("cccc")
	put("dddd")
	put("eeee") // 15 bytes: 0-1 is full
	put("ffff") // part 0-2
	if _, err := tx.PreCommit(ctx, 4); err != nil {
		t.Fatal(err)
	}
	put("gggg") // part 4-0
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	finish(t, sink)
	want := map[string]string{
		"part-1-0-0.txt": "aaaa\nbbbb\n",
		"part-1-0-1.txt": "cccc\ndddd\neeee\n",
		"part-1-0-2.txt": "ffff\n",
		"part-1-4-0.txt": "gggg\n",
	}
	got := map[string]string{}
	loc := mustLocation(t, dir, S3Config{})
	files, err := loc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		rc, err := loc.Open(ctx, f.Name)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		got[f.Name] = string(b)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parts:\n got %q\nwant %q", got, want)
	}
}
