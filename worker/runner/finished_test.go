package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/checkpoint"
	"github.com/flinkjob/flinkjob/internal/testminio"
	"github.com/flinkjob/flinkjob/worker/control"
	"github.com/flinkjob/flinkjob/worker/runner"
)

// TestStreamingCheckpointsAfterASourceFinished: across worker processes,
// checkpoints go on after the subtasks of a bounded source finished
// (Flink's FLIP-147, as engine/local does): each finished subtask sends
// its end position with its "finished" report, and the leader writes it
// into every later checkpoint. The bounded source "bonus" (two subtasks:
// the leader's own and a follower) ends at once; the job is killed after
// a few checkpoints and restored from the latest: the sums count bonus's
// records and every generated record exactly once.
func TestStreamingCheckpointsAfterASourceFinished(t *testing.T) {
	// About 12 s of input in the killed run: it must still run at its
	// third checkpoint, which on a loaded machine (six processes starting)
	// came after the 3 s it had before. The restored run reads the rest
	// at full speed (the position is the sequence number, whatever the
	// pace).
	const count, rate = 6000, 500
	s3 := testminio.Start(t)
	bucket := testminio.Bucket(t, s3)
	e := newCkptEnv(t, s3, bucket, "finished-source")
	jobAt := func(rate int) string {
		return fmt.Sprintf(`
runtimeMode: STREAMING
parallelism: 2
steps:
  - name: bonus
    source: {elements: [{k: 0, v: 1000000}, {k: 1, v: 2000000}]}
  - name: nums
    source:
      datagen: {value: "{'k': seq %% 13, 'v': seq}", count: %d, ratePerSecond: %d}
  - name: all
    inputs: [nums, bonus]
    union: {}
  - name: sums
    keyBy: record.k
    reduce: "{'k': acc.k, 'v': acc.v + record.v}"
  - name: out
    sink: {files: {path: "%s", format: jsonl}}
`, count, rate, e.out)
	}
	job := loadJob(t, jobAt(rate))
	want := map[int64]int64{0: 1000000, 1: 2000000}
	for s := int64(0); s < count; s++ {
		want[s%13] += s
	}
	ctl := e.controlStore(t)
	checkpoints, err := checkpoint.OpenURL(s3)(e.checkpoints)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Kill the job once a third checkpoint holds both of bonus's end
	// positions (without carrying finished subtasks, checkpoints stop as
	// soon as bonus ends, and the job runs to its end instead).
	r, err := runner.New(job, runner.Options{Worker: workerBin, Dir: t.TempDir(), Env: e.env("FLINKJOB_CHECKPOINT_INTERVAL=100ms")})
	if err != nil {
		t.Fatal(err)
	}
	rctx, kill := context.WithCancel(ctx)
	defer kill()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	var latest control.LatestCheckpoint
	for {
		var l control.LatestCheckpoint
		if readJSON(t, ctl, control.LatestObject, &l) && l.ID >= 3 && hasPositions(ctx, checkpoints, l.ID, "bonus", 2) {
			latest = l
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the job ended (%v) before a third checkpoint with bonus's end positions (latest %+v): checkpoints stopped when bonus finished", err, l)
		case <-time.After(20 * time.Millisecond):
		}
	}
	kill()
	if err := <-done; err == nil {
		t.Fatal("the job finished before it was killed: slow it down")
	}
	before := sinkLines(t, s3, e.out)
	t.Logf("killed after checkpoint %d; %d lines published", latest.ID, len(before))

	r, err = runner.New(loadJob(t, jobAt(0)), runner.Options{Worker: workerBin, Dir: t.TempDir(),
		Env: e.env("FLINKJOB_CHECKPOINT_INTERVAL=100ms", "FLINKJOB_RESTORE_FROM=latest")})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	// The sums only grow: the largest per key is its final sum.
	got := map[int64]int64{}
	for _, line := range sinkLines(t, s3, e.out) {
		var rec struct{ K, V int64 }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("output line %q: %v", line, err)
		}
		got[rec.K] = max(got[rec.K], rec.V)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("key %d: final sum %d, want %d (a record lost or counted twice)", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d keys in the output, want %d", len(got), len(want))
	}
}

// hasPositions reports whether checkpoint id stores a position for every
// subtask of source step.
func hasPositions(ctx context.Context, s checkpoint.Store, id int64, step string, parallelism int) bool {
	dir := checkpoint.Sub(s, checkpoint.DirName(id))
	for i := 0; i < parallelism; i++ {
		if _, err := dir.Get(ctx, checkpoint.SourcePositionName(step, i, parallelism)); err != nil {
			return false
		}
	}
	return true
}
