package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/internal/testminio"
	"github.com/flinkjob/flinkjob/worker"
	"github.com/flinkjob/flinkjob/worker/runner"
)

// TestStreamingFailureStopsTheJob: a consumer that fails on one record
// ends the whole STREAMING job promptly, unbounded source included, and
// the error says which worker failed and why.
func TestStreamingFailureStopsTheJob(t *testing.T) {
	job := loadJob(t, `
runtimeMode: STREAMING
parallelism: 2
steps:
  - name: gen
    source:
      datagen: {value: "{'id': seq}", ratePerSecond: 200}
  - name: fragile
    partitioning: REBALANCE
    map: "{'id': record.id, 'x': 100 / (record.id - 50)}"
  - name: out
    sink: {discard: {}}
`)
	r, err := runner.New(job, runner.Options{Worker: workerBin, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	err = r.Run(ctx)
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("the job succeeded")
	}
	if !strings.Contains(err.Error(), "worker stage 1 subtask") || !strings.Contains(err.Error(), "division by zero") || !strings.Contains(err.Error(), "fragile") {
		t.Errorf("error does not say which worker failed and why: %v", err)
	}
	// Record 50 comes after ~0.25 s; the failing worker must not linger
	// waiting for its (unbounded) upstream to end its streams.
	if elapsed > 6*time.Second {
		t.Errorf("the job took %s to stop after a failure", elapsed)
	}
	t.Logf("stopped after %s: %v", elapsed.Round(time.Millisecond), firstLine(err.Error()))
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// TestBatchPermanentFailure: a subtask that fails on every attempt fails
// the job after Retries re-runs; its termination messages carry the error
// and the next stage never starts.
func TestBatchPermanentFailure(t *testing.T) {
	s3 := testminio.Start(t)
	bucket := testminio.Bucket(t, s3)
	job := loadJob(t, `
runtimeMode: BATCH
parallelism: 2
steps:
  - name: gen
    source:
      datagen: {value: "{'id': seq}", count: 100}
  - name: fragile
    partitioning: REBALANCE
    map: "{'id': record.id, 'x': 100 / (record.id - 51)}"
  - name: counts
    keyBy: record.id % 3
    reduce: "acc"
  - name: out
    sink: {discard: {}}
`)
	dir := t.TempDir()
	var mu sync.Mutex
	started := map[string]int{}
	r, err := runner.New(job, runner.Options{Worker: workerBin, Dir: dir, Retries: 2,
		ShuffleURL: fmt.Sprintf("s3://%s/shuffle/", bucket), Env: testminio.Env(s3),
		OnStart: func(stage, index, attempt int, _ *os.Process) {
			mu.Lock()
			started[fmt.Sprintf("%d/%d", stage, index)]++
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = r.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "division by zero") {
		t.Fatalf("want the job to fail with the map's error, got %v", err)
	}
	// Record 51 goes to subtask 1 of stage 1 (round robin from both producers).
	failing := ""
	for k, n := range started {
		if n > 1 {
			failing = k
		}
	}
	if failing == "" || started[failing] != 3 {
		t.Fatalf("starts per subtask %v: want one subtask run 1+2 times", started)
	}
	if started["2/0"]+started["2/1"] != 0 {
		t.Errorf("stage 2 started after stage 1 failed: %v", started)
	}
	var stage, index int
	fmt.Sscanf(failing, "%d/%d", &stage, &index)
	for attempt := 0; attempt < 3; attempt++ {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("term-%d-%d-%d.json", stage, index, attempt)))
		if err != nil {
			t.Fatal(err)
		}
		var res worker.Result
		if err := json.Unmarshal(b, &res); err != nil || !strings.Contains(res.Error, "division by zero") || res.Attempt != attempt {
			t.Errorf("termination message of attempt %d: %s", attempt, b)
		}
	}
}
