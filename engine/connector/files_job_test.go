package connector_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/enginetest"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
)

// Jobs through engine/local in STREAMING with checkpoints, writing with
// the exactly-once file sink: killed at a random moment after a checkpoint
// and restored from the latest complete one, the job's visible output holds
// every record exactly once.

func newPlan(t *testing.T, src string) *plan.Plan {
	t.Helper()
	p, err := plan.New(enginetest.Parse(t, src), plan.Options{Mode: spec.Streaming})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// visibleNums reads a directory with the files source (so only published
// parts count) and returns how often each n was seen.
func visibleNums(t *testing.T, path string, cfg connector.S3Config) map[int64]int {
	t.Helper()
	src, err := connector.NewFileSource(spec.FileSource{Path: path, Format: spec.FormatJSONL}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := src.Open(ctx, 0, 1)
	if err != nil {
		return map[int64]int{} // nothing published yet
	}
	defer r.Close()
	seen := map[int64]int{}
	for {
		err := r.Read(ctx, 1000, func(v any) { seen[v.(map[string]any)["n"].(int64)]++ })
		if err == io.EOF {
			return seen
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func checkOnce(t *testing.T, what string, seen map[int64]int, n int64, complete bool) {
	t.Helper()
	for k, c := range seen {
		if c != 1 {
			t.Fatalf("%s: record %d visible %d times", what, k, c)
		}
		if k < 0 || k >= n {
			t.Fatalf("%s: unexpected record %d", what, k)
		}
	}
	if complete && int64(len(seen)) != n {
		var missing []int64
		for k := int64(0); k < n && len(missing) < 10; k++ {
			if seen[k] == 0 {
				missing = append(missing, k)
			}
		}
		t.Fatalf("%s: %d of %d records visible; missing e.g. %v", what, len(seen), n, missing)
	}
}

const eoJob = `
parallelism: 2
steps:
  - name: nums
    source:
      datagen: {value: "{'n': seq}", count: %d, ratePerSecond: 100000}
  - name: out
    parallelism: 3
    sink:
      files: {path: %q, format: jsonl, rollingPolicy: {maxPartSize: 8192}}
`

func TestFileSinkExactlyOnceThroughEngineLocal(t *testing.T) {
	exactlyOnceJob(t, connector.S3Config{}, func(seed int64) string { return filepath.Join(t.TempDir(), "out") }, 4)
}

func TestFileSinkExactlyOnceThroughEngineS3(t *testing.T) {
	cfg := connector.S3ForTest(t)
	bucket := connector.BucketForTest(t, cfg)
	exactlyOnceJob(t, cfg, func(seed int64) string { return fmt.Sprintf("s3://%s/run%d/out/", bucket, seed) }, 2)
}

func exactlyOnceJob(t *testing.T, cfg connector.S3Config, out func(seed int64) string, seeds int64) {
	const n = 20000
	var midRun int
	for seed := int64(1); seed <= seeds; seed++ {
		rng := rand.New(rand.NewSource(seed))
		path := out(seed)
		p := newPlan(t, fmt.Sprintf(eoJob, n, path))
		dir := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		var cps atomic.Int64
		kill := int64(1 + rng.Intn(4))
		delay := time.Duration(rng.Intn(3)) * time.Duration(rng.Intn(15)) * time.Millisecond
		opts := local.Options{Env: connector.Env{S3: cfg}, CheckpointInterval: 20 * time.Millisecond, CheckpointDir: dir, BatchSize: 64,
			OnCheckpoint: func(int64) {
				if cps.Add(1) == kill {
					if delay == 0 {
						cancel() // often before the subtasks commit
					} else {
						time.AfterFunc(delay, cancel)
					}
				}
			}}
		err := local.Run(ctx, p, opts)
		cancel()
		if err == nil {
			t.Logf("seed %d: the first run ended before it was killed", seed)
		} else if !errors.Is(err, context.Canceled) {
			t.Fatalf("seed %d: first run: %v", seed, err)
		}
		first := visibleNums(t, path, cfg)
		checkOnce(t, fmt.Sprintf("seed %d after the kill", seed), first, n, err == nil)
		if err == nil {
			continue
		}
		if len(first) > 0 {
			midRun++
		}
		opts2 := local.Options{Env: connector.Env{S3: cfg}, CheckpointInterval: 20 * time.Millisecond, CheckpointDir: dir, BatchSize: 64, RestoreFrom: "latest"}
		if err := local.Run(context.Background(), newPlan(t, fmt.Sprintf(eoJob, n, path)), opts2); err != nil {
			t.Fatalf("seed %d: restored run: %v", seed, err)
		}
		checkOnce(t, fmt.Sprintf("seed %d (kill after checkpoint %d + %v) at the end", seed, kill, delay), visibleNums(t, path, cfg), n, true)
		loc, err := connector.ParseLocation(path, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := loc.Exists(context.Background(), "_SUCCESS"); err != nil || !ok {
			t.Errorf("seed %d: no _SUCCESS (err %v)", seed, err)
		}
		if staged, err := loc.Sub("_pending/").List(context.Background()); err == nil && len(staged) > 0 {
			t.Errorf("seed %d: staged parts left: %v", seed, staged)
		}
	}
	if midRun == 0 {
		t.Errorf("no killed run had published anything: parts are not committed while the job runs")
	}
}

// A STREAMING job over a monitored S3 prefix reads the objects that appear
// while it runs, each once, and writes them exactly once through a kill and
// a restore (the continuous source's position is in the checkpoints).
func TestMonitoredS3PrefixThroughEngine(t *testing.T) {
	cfg := connector.S3ForTest(t)
	bucket := connector.BucketForTest(t, cfg)
	in, out := "s3://"+bucket+"/landing/", "s3://"+bucket+"/out/"
	job := fmt.Sprintf(`
parallelism: 2
steps:
  - name: events
    source:
      files: {path: %q, format: jsonl, monitorInterval: 30ms, schema: [{name: "n", type: int}]}
  - name: doubled
    map: "{'n': record.n}"
  - name: out
    parallelism: 3
    sink:
      files: {path: %q, format: jsonl}
`, in, out)
	inLoc, err := connector.ParseLocation(in, cfg)
	if err != nil {
		t.Fatal(err)
	}
	const perFile = 50
	put := func(file int) {
		t.Helper()
		w, err := inLoc.Create(context.Background(), fmt.Sprintf("batch-%03d.jsonl", file))
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for i := 0; i < perFile; i++ {
			fmt.Fprintf(&b, "{\"n\": %d}\n", file*perFile+i)
		}
		if _, err := w.Write([]byte(b.String())); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	// Waits until the first files*perFile records are visible.
	waitFor := func(files int, errc <-chan error) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			seen := visibleNums(t, out, cfg)
			checkOnce(t, "while running", seen, int64(files*perFile), false)
			if len(seen) == files*perFile {
				return
			}
			select {
			case err := <-errc:
				t.Fatalf("job ended while waiting for %d files: %v", files, err)
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 60s only %d of %d records visible", len(seen), files*perFile)
			}
		}
	}
	dir := t.TempDir()
	start := func(restore string) (context.CancelFunc, <-chan error) {
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		opts := local.Options{Env: connector.Env{S3: cfg}, CheckpointInterval: 40 * time.Millisecond, CheckpointDir: dir, BatchSize: 16, RestoreFrom: restore}
		go func() { errc <- local.Run(ctx, newPlan(t, job), opts) }()
		return cancel, errc
	}

	put(0) // there before the job starts
	cancel, errc := start("")
	waitFor(1, errc)
	for f := 1; f < 6; f++ { // appear while it runs
		put(f)
	}
	waitFor(6, errc)
	put(6)
	put(7)
	cancel() // killed, maybe mid-file
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v", err)
	}
	checkOnce(t, "after the kill", visibleNums(t, out, cfg), 8*perFile, false)

	cancel, errc = start("latest")
	put(8)
	waitFor(9, errc)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("restored run: %v", err)
	}
	seen := visibleNums(t, out, cfg)
	checkOnce(t, "at the end", seen, 9*perFile, true)
	keys := make([]int64, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	if keys[0] != 0 || keys[len(keys)-1] != 9*perFile-1 {
		t.Fatalf("records %d..%d", keys[0], keys[len(keys)-1])
	}
}
