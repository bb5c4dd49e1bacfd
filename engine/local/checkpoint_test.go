package local_test

import (
	"context"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/checkpoint"
	"github.com/flinkjob/flinkjob/engine/enginetest"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// The job of the exactly-once state test: a rolling sum per key. The sink
// runs chained to the reduce (same parallelism), so a key's updates reach
// it in order and the last one is the key's final sum.
const checkpointJob = `
parallelism: 2
steps:
  - name: nums
    source:
      datagen: {value: "{'k': seq % 13, 'v': seq}", count: 20000, ratePerSecond: 150000}
  - name: sums
    parallelism: 3
    keyBy: record.k
    reduce: "{'k': acc.k, 'v': acc.v + record.v}"
  - name: out
    parallelism: 3
    sink: {call: out}
`

// lastPerKey folds a rolling sum's updates into the last value per key.
func lastPerKey(into map[string]string, c *enginetest.Collect) {
	for _, v := range c.Values("out") {
		m := v.(map[string]any)
		into[string(value.ToJSON(m["k"]))] = string(value.ToJSON(m["v"]))
	}
}

func runCollect(t *testing.T, opts local.Options, ctx context.Context) (*enginetest.Collect, error) {
	t.Helper()
	return runJob(t, checkpointJob, opts, ctx)
}

// runJob runs job (STREAMING) into a collecting "out" sink.
func runJob(t *testing.T, job string, opts local.Options, ctx context.Context) (*enginetest.Collect, error) {
	t.Helper()
	c := enginetest.NewCollect()
	opts.Env.CallSink = c.Sink
	err := local.Run(ctx, newPlan(t, job, spec.Streaming), opts)
	return c, err
}

// A job cancelled at a random moment after a checkpoint and restored from
// the latest complete checkpoint ends with the failure-free run's state:
// every record counted exactly once in the rolling sums.
func TestCheckpointRestoreExactlyOnceState(t *testing.T) {
	ref, err := runCollect(t, local.Options{}, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	lastPerKey(want, ref)
	if len(want) != 13 {
		t.Fatalf("reference run has %d keys, want 13", len(want))
	}
	for seed := int64(1); seed <= 10; seed++ {
		rng := rand.New(rand.NewSource(seed))
		delay := time.Duration(rng.Intn(60)) * time.Millisecond
		// The first run must complete a checkpoint before its 20000
		// records end (about 0.13 s at the job's pace). On a loaded
		// machine it may not: then the seed runs again at a slower pace
		// (the source's position is its sequence number, whatever the
		// pace), so the test still cancels a run after a checkpoint.
		var (
			dir   string
			c1    *enginetest.Collect
			err1  error
			first atomic.Bool
		)
		for _, pace := range []int{150000, 20000, 2000} {
			dir = t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			first.Store(false)
			opts := local.Options{CheckpointInterval: 20 * time.Millisecond, CheckpointDir: dir, BatchSize: 64,
				OnCheckpoint: func(int64) {
					if first.CompareAndSwap(false, true) {
						time.AfterFunc(delay, cancel)
					}
				}}
			job := strings.Replace(checkpointJob, "ratePerSecond: 150000", fmt.Sprintf("ratePerSecond: %d", pace), 1)
			c1, err1 = runJob(t, job, opts, ctx)
			cancel()
			if first.Load() || err1 != nil {
				break
			}
			t.Logf("seed %d: the run at %d records/s ended before a checkpoint completed; again slower", seed, pace)
		}
		if !first.Load() {
			t.Fatalf("seed %d: no checkpoint completed (run error %v)", seed, err1)
		}
		store := checkpoint.LocalStore{Dir: dir}
		latest, ok, err := checkpoint.Latest(context.Background(), store)
		if err != nil || !ok {
			t.Fatalf("seed %d: latest checkpoint: %v %v", seed, ok, err)
		}
		done, _ := checkpoint.Completed(context.Background(), store)
		if len(done) > 3 {
			t.Errorf("seed %d: %d complete checkpoints retained, want at most 3", seed, len(done))
		}
		opts2 := local.Options{CheckpointInterval: 20 * time.Millisecond, CheckpointDir: dir, BatchSize: 64, RestoreFrom: "latest"}
		c2, err := runCollect(t, opts2, context.Background())
		if err != nil {
			t.Fatalf("seed %d: restored run (from %d): %v", seed, latest, err)
		}
		got := map[string]string{}
		lastPerKey(got, c1)
		lastPerKey(got, c2)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("seed %d (cancelled after %v, first run error %v, restored from %d, %d+%d updates): sums\n got %v\nwant %v",
				seed, delay, err1, latest, len(c1.Values("out")), len(c2.Values("out")), got, want)
		}
	}
}

// Restoring from a checkpoint ID that is not complete fails.
func TestCheckpointRestoreUnknown(t *testing.T) {
	_, err := runCollect(t, local.Options{CheckpointDir: t.TempDir(), RestoreFrom: "7"}, context.Background())
	if err == nil {
		t.Fatal("restore from a missing checkpoint succeeded")
	}
}

// A checkpoint taken with the keyed step at parallelism 3 restores at
// parallelism 1, 2 and 5: keyed state is stored by key group and every
// subtask takes the key groups it owns now, so the rolling sums end where
// the failure-free run's do.
func TestCheckpointRestoreRescaled(t *testing.T) {
	ref, err := runCollect(t, local.Options{}, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	lastPerKey(want, ref)
	for i, n := range []int{1, 2, 5} {
		dir := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		var first atomic.Bool
		opts := local.Options{CheckpointInterval: 20 * time.Millisecond, CheckpointDir: dir, BatchSize: 64,
			OnCheckpoint: func(int64) {
				if first.CompareAndSwap(false, true) {
					time.AfterFunc(time.Duration(10*i)*time.Millisecond, cancel)
				}
			}}
		c1, err1 := runCollect(t, opts, ctx)
		cancel()
		if err1 == nil {
			t.Fatalf("n=%d: the first run ended before it was cancelled", n)
		}
		job := strings.ReplaceAll(checkpointJob, "parallelism: 3", fmt.Sprintf("parallelism: %d", n))
		c2 := enginetest.NewCollect()
		opts2 := local.Options{CheckpointDir: dir, RestoreFrom: "latest", BatchSize: 64}
		opts2.Env.CallSink = c2.Sink
		if err := local.Run(context.Background(), newPlan(t, job, spec.Streaming), opts2); err != nil {
			t.Fatalf("n=%d: restored run: %v", n, err)
		}
		got := map[string]string{}
		lastPerKey(got, c1)
		lastPerKey(got, c2)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("n=%d: sums\n got %v\nwant %v", n, got, want)
		}
	}
}

// Sources keep their parallelism: a restore at another source parallelism
// fails naming the step.
func TestCheckpointRestoreSourceParallelism(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var first atomic.Bool
	opts := local.Options{CheckpointInterval: 20 * time.Millisecond, CheckpointDir: dir, BatchSize: 64,
		OnCheckpoint: func(int64) {
			if first.CompareAndSwap(false, true) {
				cancel()
			}
		}}
	runCollect(t, opts, ctx)
	cancel()
	job := strings.Replace(checkpointJob, "parallelism: 2", "parallelism: 3", 1)
	c := enginetest.NewCollect()
	opts2 := local.Options{CheckpointDir: dir, RestoreFrom: "latest"}
	opts2.Env.CallSink = c.Sink
	err := local.Run(context.Background(), newPlan(t, job, spec.Streaming), opts2)
	if err == nil || !strings.Contains(err.Error(), `"nums"`) || !strings.Contains(err.Error(), "parallelism") {
		t.Fatalf("restore at another source parallelism: %v", err)
	}
}

// Checkpoints go on after a bounded source finished (Flink's FLIP-147):
// its end position stands for it in later checkpoints, so a restore does
// not read it again, and the sums count its records exactly once.
func TestCheckpointsAfterASourceFinished(t *testing.T) {
	const job = `
parallelism: 2
steps:
  - name: bonus
    parallelism: 1
    source: {elements: [{k: 0, v: 1000000}, {k: 1, v: 2000000}]}
  - name: nums
    source:
      datagen: {value: "{'k': seq % 13, 'v': seq}", count: 20000, ratePerSecond: 100000}
  - name: all
    inputs: [nums, bonus]
    union: {}
  - name: sums
    parallelism: 3
    keyBy: record.k
    reduce: "{'k': acc.k, 'v': acc.v + record.v}"
  - name: out
    parallelism: 3
    sink: {call: out}
`
	run := func(opts local.Options, ctx context.Context) (*enginetest.Collect, error) {
		return runJob(t, job, opts, ctx)
	}
	// The killed run reads nums at a slower pace (its position is the
	// sequence number, whatever the pace): it must still be running after
	// 3+seed checkpoints, and at 100k/s its 0.2 s of input ended before
	// that on a loaded machine. 4k/s gives the checkpoints 5 s.
	slowJob := strings.Replace(job, "ratePerSecond: 100000", "ratePerSecond: 4000", 1)
	if slowJob == job {
		t.Fatal("the job has no ratePerSecond: 100000 to slow down")
	}
	ref, err := run(local.Options{}, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	lastPerKey(want, ref)
	for seed := int64(1); seed <= 3; seed++ {
		dir := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		var n atomic.Int64
		opts := local.Options{CheckpointInterval: 15 * time.Millisecond, CheckpointDir: dir, BatchSize: 64,
			OnCheckpoint: func(int64) {
				if n.Add(1) == 3+seed {
					cancel()
				}
			}}
		c1, err1 := runJob(t, slowJob, opts, ctx)
		cancel()
		if err1 == nil {
			t.Fatalf("seed %d: ended before the kill (%d checkpoints)", seed, n.Load())
		}
		if n.Load() < 3+seed {
			t.Fatalf("seed %d: %d checkpoints completed: they stopped when bonus finished (%v)", seed, n.Load(), err1)
		}
		dirStore, m, err := checkpoint.Resolve(context.Background(), checkpoint.LocalStore{Dir: dir}, "latest", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dirStore.Get(context.Background(), checkpoint.SourcePositionName("bonus", 0, 1)); err != nil {
			t.Fatalf("seed %d: checkpoint %d has no position for the finished source: %v", seed, m.ID, err)
		}
		c2, err := run(local.Options{CheckpointDir: dir, RestoreFrom: "latest", BatchSize: 64}, context.Background())
		if err != nil {
			t.Fatalf("seed %d: restore: %v", seed, err)
		}
		got := map[string]string{}
		lastPerKey(got, c1)
		lastPerKey(got, c2)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("seed %d: sums\n got %v\nwant %v", seed, got, want)
		}
	}
}
