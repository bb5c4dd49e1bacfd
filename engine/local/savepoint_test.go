package local_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/checkpoint"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/enginetest"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// The bootstrap job: bounded history into two keyed steps, a rolling sum
// and a process function counting records per key with an event-time
// timer far ahead (no watermarks: it fires only at the end of input).
const bootstrapJob = `
parallelism: 2
steps:
  - name: history
    source:
      datagen: {value: "{'k': seq % 7, 'v': seq}", count: 5000}
  - name: sums
    parallelism: 3
    keyBy: record.k
    reduce: "{'k': acc.k, 'v': acc.v + record.v}"
  - name: counts
    inputs: [history]
    keyBy: record.k
    process:
      onElement: "{'state': (state == null ? 0 : state) + 1, 'timers': [1000000]}"
      onTimer: "{'emit': [{'k': key, 'n': state}]}"
  - name: sums-out
    inputs: [sums]
    sink: {discard: {}}
  - name: counts-out
    inputs: [counts]
    sink: {discard: {}}
`

// The job that continues from a bootstrap savepoint: other source, the
// same keyed step names (sums at another parallelism).
const continueJob = `
parallelism: 2
steps:
  - name: live
    source:
      datagen: {value: "{'k': seq % 7, 'v': 1}", count: 70}
  - name: sums
    keyBy: record.k
    reduce: "{'k': acc.k, 'v': acc.v + record.v}"
  - name: counts
    inputs: [live]
    keyBy: record.k
    process:
      onElement: "{'state': (state == null ? 0 : state) + 1, 'timers': [1000000]}"
      onTimer: "{'emit': [{'k': key, 'n': state}]}"
  - name: sums-out
    inputs: [sums]
    sink: {call: sums}
  - name: counts-out
    inputs: [counts]
    sink: {call: counts}
`

func bootstrap(t *testing.T, mode spec.RuntimeMode, interval time.Duration) local.Savepoint {
	t.Helper()
	var got []local.Savepoint
	var checkpoints atomic.Int64
	opts := local.Options{SavepointDir: t.TempDir(), FinalSavepoint: true,
		OnSavepoint: func(sp local.Savepoint) { got = append(got, sp) }}
	job := bootstrapJob
	if interval > 0 {
		// Periodic checkpoints while the bounded input lasts: the final
		// savepoint follows them.
		opts.CheckpointInterval, opts.CheckpointDir = interval, t.TempDir()
		opts.OnCheckpoint = func(int64) { checkpoints.Add(1) }
		job = strings.Replace(job, "count: 5000", "count: 5000, ratePerSecond: 40000", 1)
	}
	ex, err := local.New(newPlan(t, job, mode), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Run(context.Background()); err != nil {
		t.Fatalf("%s bootstrap: %v", mode, err)
	}
	sp, ok := ex.FinalSavepoint()
	if !ok || len(got) != 1 || got[0] != sp || sp.Nonce != "final" {
		t.Fatalf("%s bootstrap: final savepoint %v %v, OnSavepoint %v", mode, sp, ok, got)
	}
	if _, err := os.Stat(filepath.Join(sp.Path, checkpoint.CompletedMarker)); err != nil {
		t.Fatalf("%s bootstrap: %v", mode, err)
	}
	if interval > 0 && (checkpoints.Load() < 2 || sp.ID != checkpoints.Load()) {
		t.Fatalf("%d checkpoints, the final one %d: want periodic ones, then the final one last", checkpoints.Load(), sp.ID)
	}
	return sp
}

// keyedDump decodes every keyed snapshot of a savepoint directory into
// canonical lines (key group, key, state values, timers), whatever the
// file split: the state a restore can see.
func keyedDump(t *testing.T, dir string) []string {
	t.Helper()
	s := checkpoint.LocalStore{Dir: dir}
	names, err := s.List(context.Background(), "keyed/")
	if err != nil || len(names) == 0 {
		t.Fatalf("%s: keyed snapshots %v %v", dir, names, err)
	}
	var out []string
	for _, n := range names {
		data, _ := s.Get(context.Background(), n)
		v, _, err := value.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		f := v.([]any)
		inner, _, err := value.Decode(f[2].([]byte))
		if err != nil {
			t.Fatal(err)
		}
		step := strings.Split(n, "/")[1]
		top := inner.([]any)
		for _, g := range top[1].([]any) {
			gr := g.([]any)
			for _, e := range gr[1].([]any) {
				p := e.([]any)
				out = append(out, fmt.Sprintf("%s kg %d key %s state %s", step, gr[0], hex.EncodeToString(p[0].([]byte)), value.ToJSON(p[1])))
			}
			for _, tm := range gr[2].([]any) {
				p := tm.([]any)
				out = append(out, fmt.Sprintf("%s kg %d timer %d@%d key %s", step, gr[0], p[0], p[1], hex.EncodeToString(p[2].([]byte))))
			}
		}
	}
	sort.Strings(out)
	return out
}

// A BATCH job's final keyed state and a bounded STREAMING job's final
// savepoint (taken before the final MaxWatermark) of the same input hold
// the same keyed state and timers, and a STREAMING job with the same
// keyed step names continues from either with the same output, which
// counts the history exactly once.
func TestBootstrapSavepointBatchEqualsStreaming(t *testing.T) {
	batch := bootstrap(t, spec.Batch, 0)
	stream := bootstrap(t, spec.Streaming, 0)
	streamCkpt := bootstrap(t, spec.Streaming, 10*time.Millisecond)
	if batch.ID != 0 || stream.ID == 0 {
		t.Errorf("savepoint IDs: BATCH %d (want 0), STREAMING %d (want a checkpoint ID)", batch.ID, stream.ID)
	}
	bd, sd := keyedDump(t, batch.Path), keyedDump(t, stream.Path)
	if len(bd) != 2*7+7 {
		t.Errorf("BATCH savepoint has %d keyed items, want 21 (7 sums, 7 counts, 7 timers):\n%s", len(bd), strings.Join(bd, "\n"))
	}
	if !reflect.DeepEqual(bd, sd) {
		t.Fatalf("keyed state differs\nBATCH:\n%s\nSTREAMING:\n%s", strings.Join(bd, "\n"), strings.Join(sd, "\n"))
	}
	if cd := keyedDump(t, streamCkpt.Path); !reflect.DeepEqual(bd, cd) {
		t.Fatalf("keyed state differs\nBATCH:\n%s\nSTREAMING with checkpoints:\n%s", strings.Join(bd, "\n"), strings.Join(cd, "\n"))
	}

	// What continuing must give: history plus 10 records of v=1 per key.
	wantSums, wantCounts := map[string]string{}, map[string]string{}
	for k := int64(0); k < 7; k++ {
		var sum int64
		for seq := int64(0); seq < 5000; seq++ {
			if seq%7 == k {
				sum += seq
			}
		}
		n := (5000-k+6)/7 + 10
		wantSums[fmt.Sprint(k)] = fmt.Sprint(sum + 10)
		wantCounts[fmt.Sprint(k)] = fmt.Sprint(n)
	}
	for _, sp := range []local.Savepoint{batch, stream} {
		c := enginetest.NewCollect()
		opts := local.Options{RestoreFrom: sp.Path}
		opts.Env.CallSink = c.Sink
		if err := local.Run(context.Background(), newPlan(t, continueJob, spec.Streaming), opts); err != nil {
			t.Fatalf("restore from %s: %v", sp.Path, err)
		}
		sums, counts := map[string]string{}, map[string]string{}
		for _, v := range c.Values("sums") {
			m := v.(map[string]any)
			sums[string(value.ToJSON(m["k"]))] = string(value.ToJSON(m["v"]))
		}
		for _, v := range c.Values("counts") {
			m := v.(map[string]any)
			counts[string(value.ToJSON(m["k"]))] = string(value.ToJSON(m["n"]))
		}
		if !reflect.DeepEqual(sums, wantSums) || !reflect.DeepEqual(counts, wantCounts) {
			t.Errorf("continued from %s:\nsums   %v\nwant   %v\ncounts %v\nwant   %v", sp.Path, sums, wantSums, counts, wantCounts)
		}
	}
}

// A final savepoint needs every source bounded.
func TestFinalSavepointNeedsBoundedSources(t *testing.T) {
	job := strings.Replace(bootstrapJob, ", count: 5000", "", 1)
	err := local.Run(context.Background(), newPlan(t, job, spec.Streaming), local.Options{SavepointDir: t.TempDir(), FinalSavepoint: true})
	if err == nil || !strings.Contains(err.Error(), `"history"`) {
		t.Fatalf("final savepoint of an unbounded job: %v", err)
	}
}

// Stop with a savepoint, restore from it: the Transactional sink ends
// with exactly the output of a run that was never stopped.
func TestStopWithSavepointRoundTrip(t *testing.T) {
	job := strings.Replace(txJob, "ratePerSecond: 150000", "ratePerSecond: 40000", 1)
	start := func(sink *txSink, opts local.Options) *local.Executor {
		opts.Env.CallSink = func(name string) (connector.Sink, bool) { return sink, name == "out" }
		e, err := local.New(newPlan(t, job, spec.Streaming), opts)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	run := func(sink *txSink, opts local.Options) error { return start(sink, opts).Run(context.Background()) }
	ref := newTxStore()
	if err := run(&txSink{st: ref}, local.Options{}); err != nil {
		t.Fatal(err)
	}
	want := ref.sorted()
	for _, at := range []time.Duration{30 * time.Millisecond, 150 * time.Millisecond} {
		st := newTxStore()
		spDir := t.TempDir()
		done := make(chan error, 1)
		opts := local.Options{SavepointDir: spDir, CheckpointInterval: 20 * time.Millisecond, CheckpointDir: t.TempDir(), BatchSize: 64}
		ex := start(&txSink{st: st, attempt: 1}, opts)
		go func() { done <- ex.Run(context.Background()) }()
		time.Sleep(at)
		var sp local.Savepoint
		var err error
		for i := 0; i < 100; i++ {
			if sp, err = ex.TriggerSavepoint(context.Background(), "n1", true); err == nil || !strings.Contains(err.Error(), "not a running") {
				break
			}
			time.Sleep(time.Millisecond) // not started yet
		}
		if err != nil {
			t.Fatalf("stop with savepoint at %v: %v", at, err)
		}
		if err := <-done; !errors.Is(err, local.ErrStopped) {
			t.Fatalf("run stopped with a savepoint returned %v, want ErrStopped", err)
		}
		if !strings.HasPrefix(sp.Path, filepath.Join(spDir, fmt.Sprintf("sp-%d-n1", sp.ID))) {
			t.Errorf("savepoint path %s", sp.Path)
		}
		stopped := len(st.sorted())
		if stopped >= len(want) {
			t.Fatalf("at %v: the whole output was visible at the stop; the test stopped too late", at)
		}
		if err := run(&txSink{st: st, attempt: 2}, local.Options{RestoreFrom: sp.Path, BatchSize: 64}); err != nil {
			t.Fatalf("restore from %s: %v", sp.Path, err)
		}
		if got := st.sorted(); !reflect.DeepEqual(got, want) {
			t.Log(diffSorted(got, want))
			t.Fatalf("stopped at %v (savepoint %d, %d visible at the stop): %d records after the restore, want %d", at, sp.ID, stopped, len(got), len(want))
		}
	}
}

// A process step's broadcast state is part of checkpoints and savepoints:
// a job restored from one sees the rule broadcast before, without the
// rule being sent again.
func TestBroadcastStateRestored(t *testing.T) {
	const job = `
parallelism: 2
steps:
  - name: DNAME
    source:
      elements: DATA
  - name: rules
    parallelism: 1
    source: {elements: RULES}
  - name: bc
    inputs: [rules]
    partitioning: BROADCAST
  - name: apply
    inputs: [DNAME, bc]
    keyBy: record.k
    process:
      onElement: >-
        has(record.factor) ? {'broadcast': record.factor} : has(record.noop) ? {} :
        {'emit': [{'k': key, 'v': broadcast == null ? -1 : record.v * broadcast}]}
  - name: out
    sink: {call: out}
`
	first := strings.NewReplacer("DNAME", "history", "DATA", "[{k: a, v: 1}]", "RULES", "[{factor: 10}]").Replace(job)
	var sp local.Savepoint
	opts := local.Options{SavepointDir: t.TempDir(), FinalSavepoint: true, OnSavepoint: func(s local.Savepoint) { sp = s }}
	opts.Env.CallSink = enginetest.NewCollect().Sink
	if err := local.Run(context.Background(), newPlan(t, first, spec.Streaming), opts); err != nil {
		t.Fatal(err)
	}
	// Another data source (a source with the same name would resume at
	// its position in the savepoint, past these elements).
	second := strings.NewReplacer("DNAME", "live", "DATA", "[{k: a, v: 2}, {k: b, v: 3}, {k: c, v: 4}]", "RULES", "[{noop: 1}]").Replace(job)
	c := run(t, second, spec.Streaming, local.Options{RestoreFrom: sp.Path})
	sameMultiset(t, "restored broadcast state", c, "out", `{"k":"a","v":20}`, `{"k":"b","v":30}`, `{"k":"c","v":40}`)
	c = run(t, second, spec.Streaming, local.Options{})
	sameMultiset(t, "without restore", c, "out", `{"k":"a","v":-1}`, `{"k":"b","v":-1}`, `{"k":"c","v":-1}`)
}
