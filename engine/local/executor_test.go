package local_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/enginetest"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/udf"
	"github.com/flinkjob/flinkjob/engine/value"
)

// Executor-level tests: FLIP-134's acceptance case (a multi-stage BATCH
// job runs with one subtask alive at a time; STREAMING has every subtask
// up at once) and backpressure.

// Three stages with different parallelism: source (2) -> keyBy/reduce (3)
// -> rebalance map + sink (2). 7 subtasks.
const threeStages = `
parallelism: 2
steps:
  - name: nums
    source:
      datagen: {value: "{'k': seq % 5, 'v': seq}", count: 100}
  - name: sums
    parallelism: 3
    keyBy: record.k
    reduce: "{'k': acc.k, 'v': acc.v + record.v}"
  - name: fmt
    partitioning: REBALANCE
    map: "{'key': record.k, 'sum': record.v}"
  - name: out
    sink: {call: out}
`

// 0..99 by seq % 5: key k sums k, k+5, ..., k+95 = 20k + 950.
var threeStagesFinal = []string{
	`{"key":0,"sum":950}`, `{"key":1,"sum":970}`, `{"key":2,"sum":990}`, `{"key":3,"sum":1010}`, `{"key":4,"sum":1030}`,
}

// aliveTracker counts live subtasks through local.Options.OnSubtask.
type aliveTracker struct {
	mu       sync.Mutex
	alive    int
	max      int
	started  int
	ended    int
	allUp    chan struct{}
	total    int
	barrier  bool
	timedOut bool
}

func (a *aliveTracker) hook(stage, index int, running bool) {
	a.mu.Lock()
	if running {
		a.alive++
		a.started++
		if a.alive > a.max {
			a.max = a.alive
		}
		if a.started == a.total && a.allUp != nil {
			close(a.allUp)
		}
	} else {
		a.alive--
		a.ended++
	}
	a.mu.Unlock()
	if running && a.barrier {
		// Hold every subtask at its start until all have started: in
		// STREAMING they all run at once, so this returns promptly.
		select {
		case <-a.allUp:
		case <-time.After(10 * time.Second):
			a.mu.Lock()
			a.timedOut = true
			a.mu.Unlock()
		}
	}
}

func TestFLIP134BatchOneSubtaskAtATime(t *testing.T) {
	p := newPlan(t, threeStages, spec.Batch)
	if len(p.Stages) != 3 {
		t.Fatalf("want 3 stages, got:\n%s", p)
	}
	total := 0
	for _, s := range p.Stages {
		total += s.Parallelism
	}
	if total != 7 {
		t.Fatalf("want 7 subtasks, got %d:\n%s", total, p)
	}
	tr := &aliveTracker{total: total}
	col := enginetest.NewCollect()
	err := local.Run(context.Background(), p, local.Options{MaxConcurrent: 1, OnSubtask: tr.hook,
		Env: connector.Env{CallSink: col.Sink}})
	if err != nil {
		t.Fatal(err)
	}
	if tr.max != 1 {
		t.Errorf("BATCH with MaxConcurrent 1: %d subtasks alive at once, want 1", tr.max)
	}
	if tr.started != total || tr.ended != total {
		t.Errorf("started %d, ended %d subtasks, want %d each", tr.started, tr.ended, total)
	}
	sameMultiset(t, "batch result", col, "out", threeStagesFinal...)
}

func TestFLIP134StreamingAllSubtasksUp(t *testing.T) {
	p := newPlan(t, threeStages, spec.Streaming)
	tr := &aliveTracker{total: 7, allUp: make(chan struct{}), barrier: true}
	col := enginetest.NewCollect()
	err := local.Run(context.Background(), p, local.Options{OnSubtask: tr.hook, Env: connector.Env{CallSink: col.Sink}})
	if err != nil {
		t.Fatal(err)
	}
	if tr.timedOut || tr.max != 7 {
		t.Errorf("STREAMING: at most %d of 7 subtasks alive at once (timed out: %v), want all 7", tr.max, tr.timedOut)
	}
	// 100 updates in all. They are rebalanced over two map subtasks, so a
	// key's updates may overtake each other; the sums only grow, so the
	// largest is the final one.
	last := map[int64]int64{}
	recs := col.Values("out")
	for _, v := range recs {
		m := v.(map[string]any)
		last[m["key"].(int64)] = max(last[m["key"].(int64)], m["sum"].(int64))
	}
	if len(recs) != 100 {
		t.Errorf("STREAMING: %d updates, want 100", len(recs))
	}
	for k := int64(0); k < 5; k++ {
		if last[k] != 20*k+950 {
			t.Errorf("key %d: last update %d, want %d", k, last[k], 20*k+950)
		}
	}
}

func TestBatchMaxConcurrentDefaultRunsStageAtOnce(t *testing.T) {
	// Without MaxConcurrent, BATCH runs a whole stage at once but never
	// two stages: at most the largest stage's parallelism (3) is alive.
	p := newPlan(t, threeStages, spec.Batch)
	tr := &aliveTracker{total: 7}
	col := enginetest.NewCollect()
	if err := local.Run(context.Background(), p, local.Options{OnSubtask: tr.hook, Env: connector.Env{CallSink: col.Sink}}); err != nil {
		t.Fatal(err)
	}
	if tr.max > 3 {
		t.Errorf("BATCH: %d subtasks alive at once, want at most 3 (one stage)", tr.max)
	}
	sameMultiset(t, "batch result", col, "out", threeStagesFinal...)
}

func TestOnSubtaskEndsOnFailure(t *testing.T) {
	// A failing subtask still reports its end, so trackers balance.
	const job = `
steps:
  - name: nums
    source: {elements: [{"n": 1}, {"n": 3}]}
  - name: picky
    call: test-fail-on-3
  - name: out
    sink: {call: out}
`
	for _, mode := range modes {
		p := newPlan(t, job, mode)
		tr := &aliveTracker{total: 1}
		col := enginetest.NewCollect()
		err := local.Run(context.Background(), p, local.Options{OnSubtask: tr.hook, Env: connector.Env{CallSink: col.Sink}})
		if err == nil {
			t.Fatalf("%s: want an error", mode)
		}
		if tr.alive != 0 {
			t.Errorf("%s: %d subtasks still alive after the job failed (started %d, ended %d)", mode, tr.alive, tr.started, tr.ended)
		}
	}
}

func TestBackpressureSlowSinkExactlyOnce(t *testing.T) {
	// STREAMING with one batch per channel and a sink that takes 1ms per
	// record: the fast source is held back (it cannot run far ahead of the
	// sink) and every record arrives exactly once.
	const job = `
parallelism: 2
steps:
  - name: nums
    source:
      datagen: {value: "{'seq': seq}", count: 300}
  - name: produced
    call: test-count-produced
  - name: spread
    partitioning: REBALANCE
    map: "record"
  - name: out
    sink: {call: slow}
`
	produced.Store(0)
	var consumed, maxAhead atomic.Int64
	slow := &stampedSink{delay: time.Millisecond, onWrite: func(*value.Record) {
		c := consumed.Add(1)
		if ahead := produced.Load() - c; ahead > maxAhead.Load() {
			maxAhead.Store(ahead)
		}
	}}
	p := newPlan(t, job, spec.Streaming)
	opts := local.Options{ChannelCapacity: 1, BatchSize: 4, Env: connector.Env{CallSink: sinks(map[string]connector.Sink{"slow": slow})}}
	start := time.Now()
	if err := local.Run(context.Background(), p, opts); err != nil {
		t.Fatal(err)
	}
	seen := map[int64]int{}
	for _, r := range slow.records() {
		seen[r.Value.(map[string]any)["seq"].(int64)]++
	}
	for i := int64(0); i < 300; i++ {
		if seen[i] != 1 {
			t.Errorf("record %d arrived %d times", i, seen[i])
		}
	}
	if len(seen) != 300 {
		t.Errorf("%d distinct records, want 300", len(seen))
	}
	// In flight at most: per producer 2 targets x 4 buffered + 4 blocked in
	// Send; per consumer 4 in its inbox + 4 being written; about 40.
	if maxAhead.Load() > 100 {
		t.Errorf("the source ran %d records ahead of the slow sink: no backpressure", maxAhead.Load())
	}
	t.Logf("300 records through a 1ms/record sink in %v; source at most %d ahead", time.Since(start), maxAhead.Load())
}

var produced atomic.Int64

func init() {
	udf.Register("test-count-produced", func(v any, emit func(any)) error {
		produced.Add(1)
		emit(v)
		return nil
	})
}
