package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/internal/testminio"
	"github.com/flinkjob/flinkjob/worker"
	"github.com/flinkjob/flinkjob/worker/runner"
)

// TestBatchRecoveryRerunsOnlyTheKilledSubtask kills one subtask of the
// middle stage of a 3-stage BATCH job while it runs (a slow Go map keeps it
// busy), and checks the runner re-ran that subtask alone, from the
// materialized output of the stage before it in MinIO, and the result is
// exact.
func TestBatchRecoveryRerunsOnlyTheKilledSubtask(t *testing.T) {
	const (
		count    = 20_000
		keys     = 37
		mapDelay = 100 * time.Microsecond // ~1 s per stage-1 subtask
		killAt   = 300 * time.Millisecond
	)
	s3 := testminio.Start(t)
	bucket := testminio.Bucket(t, s3)
	outDir := filepath.Join(t.TempDir(), "totals")
	job := loadJob(t, fmt.Sprintf(`
runtimeMode: BATCH
parallelism: 2
steps:
  - name: gen
    source:
      datagen:
        value: "{'k': seq %% %d, 'n': 1, 'sum': seq}"
        count: %d
  - name: slow
    partitioning: REBALANCE
    call: slow
  - name: totals
    keyBy: record.k
    reduce: "{'k': acc.k, 'n': acc.n + record.n, 'sum': acc.sum + record.sum}"
  - name: out
    sink: {files: {path: %s, format: jsonl}}
`, keys, count, outDir))
	shuffleURL := fmt.Sprintf("s3://%s/shuffle/", bucket)
	var mu sync.Mutex
	starts := map[[2]int][]int{}
	killed := make(chan bool, 1)
	dir := t.TempDir()
	opts := runner.Options{Worker: slowBin, Dir: dir, ShuffleURL: shuffleURL, Retries: 1,
		Env: append(testminio.Env(s3), "SLOW_MAP_DELAY="+mapDelay.String()),
		OnStart: func(stage, index, attempt int, p *os.Process) {
			mu.Lock()
			starts[[2]int{stage, index}] = append(starts[[2]int{stage, index}], attempt)
			mu.Unlock()
			if stage == 1 && index == 1 && attempt == 0 {
				go func() {
					time.Sleep(killAt)
					_, _, alive := procMemory(p.Pid)
					p.Kill()
					killed <- alive
				}()
			}
		}}
	r, err := runner.New(job, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(r.Plan().Stages); n != 3 {
		t.Fatalf("plan has %d stages, want 3", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("ran in %s", time.Since(start).Round(time.Millisecond))
	select {
	case alive := <-killed:
		if !alive {
			t.Fatalf("stage 1 subtask 1 had already ended %s after it started: the kill missed; slow it down", killAt)
		}
	default:
		t.Fatal("the kill never happened")
	}

	// The result is exact.
	var want []string
	for k := 0; k < keys; k++ {
		n, sum := 0, 0
		for s := k; s < count; s += keys {
			n++
			sum += s
		}
		want = append(want, fmt.Sprintf(`{"k":%d,"n":%d,"sum":%d}`, k, n, sum))
	}
	sort.Strings(want)
	equalLines(t, "totals per key", readOutput(t, outDir, connector.S3Config{}), want)

	// Only the killed subtask ran twice.
	for _, s := range r.Plan().Stages {
		for i := 0; i < s.Parallelism; i++ {
			wantAttempts := []int{0}
			if s.ID == 1 && i == 1 {
				wantAttempts = []int{0, 1}
			}
			if got := starts[[2]int{s.ID, i}]; fmt.Sprint(got) != fmt.Sprint(wantAttempts) {
				t.Errorf("stage %d subtask %d started with attempts %v, want %v", s.ID, i, got, wantAttempts)
			}
			for attempt := 0; attempt < 3; attempt++ {
				f := filepath.Join(dir, fmt.Sprintf("term-%d-%d-%d.json", s.ID, i, attempt))
				b, err := os.ReadFile(f)
				// The killed attempt had no chance to write one.
				wantFile := attempt == 0 && !(s.ID == 1 && i == 1) || attempt == 1 && s.ID == 1 && i == 1
				if (err == nil) != wantFile {
					t.Errorf("%s: exists %v, want %v", filepath.Base(f), err == nil, wantFile)
					continue
				}
				if err != nil {
					continue
				}
				var res worker.Result
				if err := json.Unmarshal(b, &res); err != nil || res.Error != "" || res.Attempt != attempt {
					t.Errorf("%s: %s (%v)", filepath.Base(f), b, err)
				}
			}
		}
	}
	// The re-run's manifest in MinIO records its attempt.
	store, err := worker.NewLocationStore(shuffleURL, s3)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		m, err := store.Manifest(ctx, 1, i)
		if err != nil {
			t.Fatalf("manifest of stage 1 subtask %d: %v", i, err)
		}
		if m.Attempt != i || m.Records == 0 {
			t.Errorf("manifest of stage 1 subtask %d: %+v, want attempt %d", i, m, i)
		}
	}
}
