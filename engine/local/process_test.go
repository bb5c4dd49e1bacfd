package local_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/udf"
)

// Known-answer tests for process steps: keyed state, event-time timers in
// both modes, processing-time timers in both modes, and the BATCH input
// order (broadcast first; all inputs of one key before the next key).

func init() {
	// stamps a record with a processing-time deadline 30ms from now.
	udf.Map("test-due-soon", func(v any) (any, error) {
		m := v.(map[string]any)
		return map[string]any{"k": m["k"], "due": time.Now().UnixMilli() + 30}, nil
	})
}

// Each record counts into its key's state and sets an event-time timer at
// ts + 10; the timer emits the key's count at that moment.
//
// STREAMING, bound 0, one record per batch (wm = maxTs - 1 after each):
//
//	a@1  a=1 timer 11   wm 0
//	a@5  a=2 timer 15   wm 4
//	b@7  b=1 timer 17   wm 6
//	a@14 a=3 timer 24   wm 13 -> a:11 fires (a=3)
//	b@30 b=2 timer 40   wm 29 -> a:15 (a=3), b:17 (b=2), a:24 (a=3)
//	a@40 a=4 timer 50   wm 39
//	end  MAX            -> b:40 (b=2), a:50 (a=4)
//
// BATCH: each key's records first, then its timers (at the end of the key,
// with the perfect watermark): a=4 at 11, 15, 24, 50; b=2 at 17, 40.
const eventTimerJob = `
parallelism: 1
steps:
  - name: src
    source:
      elements: [{k: a, ts: 1}, {k: a, ts: 5}, {k: b, ts: 7}, {k: a, ts: 14}, {k: b, ts: 30}, {k: a, ts: 40}]
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 0s}
  - name: counter
    keyBy: record.k
    process:
      onElement: "{'state': (state == null ? 0 : state) + 1, 'timers': [ts + 10]}"
      onTimer: "{'emit': [{'key': key, 'count': state, 'at': timer, 'domain': timeDomain}]}"
  - name: out
    sink: {call: out}
`

func TestProcessEventTimeTimers(t *testing.T) {
	c := run(t, eventTimerJob, spec.Streaming, oneByOne)
	sameSequence(t, "streaming", c, "out",
		`{"key":"a","count":3,"at":11,"domain":"event"}`,
		`{"key":"a","count":3,"at":15,"domain":"event"}`,
		`{"key":"b","count":2,"at":17,"domain":"event"}`,
		`{"key":"a","count":3,"at":24,"domain":"event"}`,
		`{"key":"b","count":2,"at":40,"domain":"event"}`,
		`{"key":"a","count":4,"at":50,"domain":"event"}`)
	// Timer output carries the timer's time as its timestamp.
	for _, r := range c.Records("out") {
		if at := r.Value.(map[string]any)["at"].(int64); r.Ts != at {
			t.Errorf("timer output %v has timestamp %d", r.Value, r.Ts)
		}
	}

	c = run(t, eventTimerJob, spec.Batch, oneByOne)
	// One subtask: keys are processed in key order, each key's timers in
	// time order at its end.
	sameSequence(t, "batch", c, "out",
		`{"key":"a","count":4,"at":11,"domain":"event"}`,
		`{"key":"a","count":4,"at":15,"domain":"event"}`,
		`{"key":"a","count":4,"at":24,"domain":"event"}`,
		`{"key":"a","count":4,"at":50,"domain":"event"}`,
		`{"key":"b","count":2,"at":17,"domain":"event"}`,
		`{"key":"b","count":2,"at":40,"domain":"event"}`)
}

// A timer registered twice for the same key and time fires once; state
// cleared in onTimer is gone for the next record; `watermark` is the
// current event time (the perfect watermark at the end of a key in BATCH).
func TestProcessTimerDedupAndStateClear(t *testing.T) {
	const job = `
parallelism: 2
steps:
  - name: src
    source:
      elements: [{k: x, ts: 3}, {k: x, ts: 7}, {k: "y", ts: 2}]
      timestamp: record.ts
  - name: p
    keyBy: record.k
    process:
      onElement: "{'state': (state == null ? 0 : state) + 1, 'timers': [10]}"
      onTimer: "{'emit': [{'key': key, 'n': state, 'atEnd': watermark == 9223372036854775807}], 'state': null}"
  - name: out
    sink: {call: out}
`
	// No watermark strategy: timers fire at the end of input (STREAMING)
	// or of the key (BATCH); either way the watermark is MAX then.
	forModes(t, func(t *testing.T, mode spec.RuntimeMode) {
		c := run(t, job, mode, local.Options{})
		sameMultiset(t, "dedup", c, "out", `{"key":"x","n":2,"atEnd":true}`, `{"key":"y","n":1,"atEnd":true}`)
	})
}

const procTimeJob = `
parallelism: 2
batchProcessingTime: %s
steps:
  - name: src
    source: {elements: [{k: a}, {k: b}, {k: a}]}
  - name: waiter
    keyBy: record.k
    process:
      onElement: "{'emit': [{'seen': key}], 'processingTimers': [1]}"
      onTimer: "{'emit': [{'fired': key, 'domain': timeDomain}]}"
  - name: out
    sink: {call: out}
`

func TestProcessingTimeTimersBatch(t *testing.T) {
	// FAIL (the default): a clear error naming the step and the setting.
	for _, setting := range []string{"FAIL", `""`} {
		_, err := tryRun(t, sprintf(procTimeJob, setting), spec.Batch, local.Options{})
		if err == nil {
			t.Fatalf("batchProcessingTime %s: want an error", setting)
		}
		for _, want := range []string{`"waiter"`, "processing-time timer", "batchProcessingTime"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("batchProcessingTime %s: error %q does not mention %s", setting, err, want)
			}
		}
	}
	// IGNORE: the timers are dropped; the rest of the job runs.
	c := run(t, sprintf(procTimeJob, "IGNORE"), spec.Batch, local.Options{})
	sameMultiset(t, "ignore", c, "out", `{"seen":"a"}`, `{"seen":"a"}`, `{"seen":"b"}`)
}

func TestProcessingTimeTimersStreamingDue(t *testing.T) {
	// A processing-time timer already due (time 1ms after the epoch) fires
	// in STREAMING as soon as the batch holding its record is processed,
	// even though the input then ends; one timer per key (a's second
	// registration of the same time is the same timer, unless it fired in
	// between, so a fires once or twice).
	c := run(t, sprintf(procTimeJob, "FAIL"), spec.Streaming, local.Options{})
	seen, fired := 0, map[string]int{}
	for _, v := range c.Values("out") {
		m := v.(map[string]any)
		if _, ok := m["seen"]; ok {
			seen++
			continue
		}
		if m["domain"] != "processing" {
			t.Errorf("timer output %v: want domain processing", m)
		}
		fired[m["fired"].(string)]++
	}
	if seen != 3 || fired["a"] < 1 || fired["a"] > 2 || fired["b"] != 1 {
		t.Errorf("seen %d, fired %v; want 3 seen, a fired once or twice, b once", seen, fired)
	}
}

func TestProcessingTimeTimersStreamingFuture(t *testing.T) {
	// An unbounded source keeps the job alive; each key's first record
	// sets a processing-time timer 30ms in the future (the wall clock is
	// read by a Go function). The test cancels the job once both keys'
	// timers have fired.
	const job = `
parallelism: 2
steps:
  - name: src
    source:
      datagen: {value: "{'k': seq % 2}", ratePerSecond: 200}
  - name: stamp
    call: test-due-soon
  - name: waiter
    keyBy: record.k
    process:
      onElement: "state == null ? {'state': record.due, 'processingTimers': [record.due]} : {}"
      onTimer: "{'emit': [{'key': key, 'timer': timer, 'due': state, 'domain': timeDomain}]}"
  - name: out
    sink: {call: out}
`
	out := &stampedSink{}
	p := newPlan(t, job, spec.Streaming)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- local.Run(ctx, p, local.Options{Env: connector.Env{CallSink: sinks(map[string]connector.Sink{"out": out})}})
	}()
	for len(out.records()) < 2 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil && err != context.Canceled {
		t.Fatalf("run: %v", err)
	}
	recs := out.records()
	if len(recs) < 2 {
		t.Fatalf("timers did not fire within 20s: %v", recs)
	}
	keys := map[int64]bool{}
	out.mu.Lock()
	defer out.mu.Unlock()
	for i, r := range recs[:2] {
		m := r.Value.(map[string]any)
		keys[m["key"].(int64)] = true
		if m["domain"] != "processing" || m["timer"] != m["due"] {
			t.Errorf("timer output %v: want domain processing and timer == due", m)
		}
		if arrived := out.at[i].UnixMilli(); arrived < m["timer"].(int64) {
			t.Errorf("timer %d fired at %d, before its time", m["timer"], arrived)
		}
		if r.Ts != int64(-1<<63) {
			t.Errorf("processing-time timer output has event timestamp %d, want none", r.Ts)
		}
	}
	if !keys[0] || !keys[1] {
		t.Errorf("want one timer per key 0 and 1, got %v", recs)
	}
}

// BATCH consumes a broadcast input before any keyed record, on every
// subtask, whatever the order of the inputs in the manifest.
func TestBatchBroadcastInputFirst(t *testing.T) {
	const job = `
parallelism: 2
steps:
  - name: data
    source:
      elements: [{k: a, v: 1}, {k: b, v: 2}, {k: a, v: 3}, {k: c, v: 4}, {k: d, v: 5}, {k: e, v: 6}]
  - name: rules
    parallelism: 1
    source: {elements: [{factor: 10}]}
  - name: bc
    inputs: [rules]
    partitioning: BROADCAST
  - name: apply
    inputs: [data, bc]
    keyBy: record.k
    process:
      onElement: >-
        has(record.factor) ? {'broadcast': record.factor} :
        {'emit': [{'k': key, 'v': broadcast == null ? -1 : record.v * broadcast}]}
  - name: out
    sink: {call: out}
`
	c := run(t, job, spec.Batch, local.Options{})
	sameMultiset(t, "broadcast first", c, "out",
		`{"k":"a","v":10}`, `{"k":"b","v":20}`, `{"k":"a","v":30}`, `{"k":"c","v":40}`, `{"k":"d","v":50}`, `{"k":"e","v":60}`)
}

// BATCH feeds all records of one key, from every keyed input, before the
// next key: a two-input process sees each key's records as one contiguous
// run, with one state across both inputs, and its timer at the end of the
// key sees them all.
func TestBatchTwoKeyedInputsKeyByKey(t *testing.T) {
	const job = `
parallelism: 2
steps:
  - name: left
    source: {elements: [{k: a, v: 1}, {k: b, v: 2}, {k: c, v: 3}, {k: a, v: 4}, {k: b, v: 5}]}
  - name: right
    source: {elements: [{k: b, v: 10}, {k: a, v: 20}, {k: c, v: 30}, {k: c, v: 40}]}
  - name: both
    inputs: [left, right]
    parallelism: 1
    keyBy: record.k
    process:
      onElement: >-
        {'state': (state == null ? 0 : state) + record.v, 'timers': [0],
         'emit': [{'k': key, 'input': input}]}
      onTimer: "{'emit': [{'k': key, 'total': state}]}"
  - name: out
    parallelism: 1
    sink: {call: out}
`
	c := run(t, job, spec.Batch, local.Options{})
	// Group the output into runs of equal keys: each key must form one run
	// that ends with its total.
	var runs []string
	totals := map[string]int64{}
	inputs := map[string]map[string]int{}
	for _, v := range c.Values("out") {
		m := v.(map[string]any)
		k := m["k"].(string)
		if len(runs) == 0 || runs[len(runs)-1] != k {
			runs = append(runs, k)
		}
		if tot, ok := m["total"]; ok {
			totals[k] = tot.(int64)
			continue
		}
		if totals[k] != 0 {
			t.Errorf("record of key %s after its timer fired", k)
		}
		if inputs[k] == nil {
			inputs[k] = map[string]int{}
		}
		inputs[k][m["input"].(string)]++
	}
	if strings.Join(runs, ",") != "a,b,c" {
		t.Errorf("keys arrived as runs %v, want a,b,c each in one run", runs)
	}
	if totals["a"] != 25 || totals["b"] != 17 || totals["c"] != 73 {
		t.Errorf("totals %v, want a=25 b=17 c=73", totals)
	}
	want := map[string]map[string]int{"a": {"left": 2, "right": 1}, "b": {"left": 2, "right": 1}, "c": {"left": 1, "right": 2}}
	for k, w := range want {
		for in, n := range w {
			if inputs[k][in] != n {
				t.Errorf("key %s: %d records from %s, want %d", k, inputs[k][in], in, n)
			}
		}
	}
	// STREAMING: same totals (the timer fires at the end of input).
	c = run(t, job, spec.Streaming, local.Options{})
	got := map[string]int64{}
	for _, v := range c.Values("out") {
		m := v.(map[string]any)
		if tot, ok := m["total"]; ok {
			got[m["k"].(string)] = tot.(int64)
		}
	}
	if got["a"] != 25 || got["b"] != 17 || got["c"] != 73 || len(got) != 3 {
		t.Errorf("streaming totals %v, want a=25 b=17 c=73", got)
	}
}

// A BATCH window join emits each key's pairs together, key after key.
func TestBatchWindowJoinKeyByKey(t *testing.T) {
	const job = `
parallelism: 1
steps:
  - name: left
    parallelism: 2
    source:
      elements: [{k: a, ts: 1}, {k: b, ts: 2}, {k: a, ts: 11}, {k: c, ts: 3}, {k: b, ts: 4}]
      timestamp: record.ts
  - name: right
    parallelism: 2
    source:
      elements: [{k: c, ts: 5}, {k: a, ts: 6}, {k: b, ts: 7}, {k: a, ts: 12}, {k: b, ts: 8}]
      timestamp: record.ts
  - name: joined
    inputs: [left, right]
    join:
      leftKey: record.k
      rightKey: record.k
      window: {type: tumbling, size: 10ms}
      select: "{'k': key, 'l': left.ts, 'r': right.ts}"
  - name: out
    sink: {call: out}
`
	c := run(t, job, spec.Batch, local.Options{})
	sameMultiset(t, "batch join", c, "out",
		`{"k":"a","l":1,"r":6}`, `{"k":"a","l":11,"r":12}`,
		`{"k":"b","l":2,"r":7}`, `{"k":"b","l":2,"r":8}`, `{"k":"b","l":4,"r":7}`, `{"k":"b","l":4,"r":8}`,
		`{"k":"c","l":3,"r":5}`)
	var runs []string
	for _, v := range c.Values("out") {
		k := v.(map[string]any)["k"].(string)
		if len(runs) == 0 || runs[len(runs)-1] != k {
			runs = append(runs, k)
		}
	}
	if len(runs) != 3 {
		t.Errorf("keys arrived as runs %v, want one run per key", runs)
	}
}
