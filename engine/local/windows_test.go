package local_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/enginetest"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// Known-answer tests for event-time windows. STREAMING runs with
// parallelism 1 and BatchSize 1, so the source emits its watermark
// (maxTimestamp - maxOutOfOrderness - 1) after every record and what is
// late is exact. BATCH ignores watermarks: nothing is ever late there and
// every window fires once, at the end of its key.

var oneByOne = local.Options{BatchSize: 1}

// Tumbling windows of 10ms, 5ms out of orderness. Arrival order and the
// watermark after each record:
//
//	a@1  -> wm -5
//	a@12 -> wm 6
//	a@7  -> wm 6    (out of order but 7 > 6: on time, joins [0,10))
//	b@3  -> wm 6
//	a@25 -> wm 19   fires a[0,10)={1,7}, b[0,10)={3}, a[10,20)={12}
//	a@9  -> wm 19   late: [0,10) ended at 9 <= 19 -> side output
//	a@21 -> wm 19
//	end  -> MAX     fires a[20,30)={25,21}
const tumblingJob = `
parallelism: 1
steps:
  - name: src
    source:
      elements: [{k: a, ts: 1}, {k: a, ts: 12}, {k: a, ts: 7}, {k: b, ts: 3}, {k: a, ts: 25}, {k: a, ts: 9}, {k: a, ts: 21}]
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 5ms}
  - name: win
    keyBy: record.k
    window:
      type: tumbling
      size: 10ms
      lateDataOutput: late
      aggregate:
        fields:
          - {name: "n", count: true}
          - {name: s, sum: record.ts}
  - name: out
    inputs: [win]
    sink: {call: out}
  - name: late-out
    inputs: [late]
    sink: {call: late}
`

func TestTumblingWindowOutOfOrderAndLate(t *testing.T) {
	c := run(t, tumblingJob, spec.Streaming, oneByOne)
	sameSequence(t, "streaming", c, "out",
		`{"key":"a","windowStart":0,"windowEnd":10,"n":2,"s":8}`,
		`{"key":"b","windowStart":0,"windowEnd":10,"n":1,"s":3}`,
		`{"key":"a","windowStart":10,"windowEnd":20,"n":1,"s":12}`,
		`{"key":"a","windowStart":20,"windowEnd":30,"n":2,"s":46}`)
	sameSequence(t, "streaming late", c, "late", `{"k":"a","ts":9}`)
	// Window results carry the window's max timestamp (end - 1); late
	// records keep their own.
	wantTs := []int64{9, 9, 19, 29}
	for i, r := range c.Records("out") {
		if i < len(wantTs) && r.Ts != wantTs[i] {
			t.Errorf("result %d has timestamp %d, want %d", i, r.Ts, wantTs[i])
		}
	}
	if l := c.Records("late"); len(l) == 1 && l[0].Ts != 9 {
		t.Errorf("late record has timestamp %d, want 9", l[0].Ts)
	}

	c = run(t, tumblingJob, spec.Batch, oneByOne)
	sameMultiset(t, "batch", c, "out",
		`{"key":"a","windowStart":0,"windowEnd":10,"n":3,"s":17}`,
		`{"key":"b","windowStart":0,"windowEnd":10,"n":1,"s":3}`,
		`{"key":"a","windowStart":10,"windowEnd":20,"n":1,"s":12}`,
		`{"key":"a","windowStart":20,"windowEnd":30,"n":2,"s":46}`)
	sameMultiset(t, "batch late", c, "late")
}

func TestLateRecordsDroppedAndCounted(t *testing.T) {
	// Without a late-data output, the late record is dropped and counted.
	const job = `
parallelism: 1
steps:
  - name: src
    source:
      elements: [{k: a, ts: 1}, {k: a, ts: 25}, {k: a, ts: 2}, {k: a, ts: 3}]
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 0s}
  - name: win
    keyBy: record.k
    window: {type: tumbling, size: 10ms, aggregate: {fields: [{name: "n", count: true}]}}
  - name: out
    sink: {call: out}
`
	p := newPlan(t, job, spec.Streaming)
	col := enginetest.NewCollect()
	e, err := local.New(p, local.Options{BatchSize: 1, Env: connector.Env{CallSink: col.Sink}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	// wm after 25 is 24: [0,10) fired with {1}; 2 and 3 are late.
	sameMultiset(t, "streaming", col, "out",
		`{"key":"a","windowStart":0,"windowEnd":10,"n":1}`,
		`{"key":"a","windowStart":20,"windowEnd":30,"n":1}`)
	var dropped int64
	for _, sp := range e.Progress() {
		dropped += sp.LateDropped
	}
	if dropped != 2 {
		t.Errorf("LateDropped = %d, want 2", dropped)
	}
}

// Allowed lateness 10ms, monotonous watermarks (wm = maxTs - 1):
//
//	a@1  -> wm 0
//	a@5  -> wm 4
//	a@12 -> wm 11   fires a[0,10)={1,5}                         (n2 s6)
//	a@3  -> wm 11   [0,10) fired but 9+10=19 > 11: re-fires       (n3 s9)
//	a@25 -> wm 24   fires a[10,20)={12}; [0,10) cleaned up at 19  (n1 s12)
//	b@17 -> wm 24   new window b[10,20): 19 <= 24 < 29: fires now (n1 s17), once
//	a@8  -> wm 24   [0,10) is gone (19 <= 24): late -> side output
//	a@15 -> wm 24   [10,20) still kept (29 > 24): re-fires        (n2 s27)
//	a@40 -> wm 39   fires a[20,30)={25}                           (n1 s25)
//	a@28 -> wm 39   [20,30): 29+10 = 39 <= 39: late -> side output
//	end  -> MAX     fires a[40,50)={40}                           (n1 s40)
const latenessJob = `
parallelism: 1
steps:
  - name: src
    source:
      elements:
        - {k: a, ts: 1}
        - {k: a, ts: 5}
        - {k: a, ts: 12}
        - {k: a, ts: 3}
        - {k: a, ts: 25}
        - {k: b, ts: 17}
        - {k: a, ts: 8}
        - {k: a, ts: 15}
        - {k: a, ts: 40}
        - {k: a, ts: 28}
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 0s}
  - name: win
    keyBy: record.k
    window:
      type: tumbling
      size: 10ms
      allowedLateness: 10ms
      lateDataOutput: too-late
      aggregate:
        fields:
          - {name: "n", count: true}
          - {name: s, sum: record.ts}
  - name: out
    inputs: [win]
    sink: {call: out}
  - name: late-out
    inputs: [too-late]
    sink: {call: late}
`

func TestAllowedLatenessRefires(t *testing.T) {
	c := run(t, latenessJob, spec.Streaming, oneByOne)
	sameSequence(t, "streaming", c, "out",
		`{"key":"a","windowStart":0,"windowEnd":10,"n":2,"s":6}`,
		`{"key":"a","windowStart":0,"windowEnd":10,"n":3,"s":9}`,
		`{"key":"a","windowStart":10,"windowEnd":20,"n":1,"s":12}`,
		`{"key":"b","windowStart":10,"windowEnd":20,"n":1,"s":17}`,
		`{"key":"a","windowStart":10,"windowEnd":20,"n":2,"s":27}`,
		`{"key":"a","windowStart":20,"windowEnd":30,"n":1,"s":25}`,
		`{"key":"a","windowStart":40,"windowEnd":50,"n":1,"s":40}`)
	sameSequence(t, "streaming late", c, "late", `{"k":"a","ts":8}`, `{"k":"a","ts":28}`)

	// BATCH: nothing is late, every window fires exactly once.
	c = run(t, latenessJob, spec.Batch, oneByOne)
	sameMultiset(t, "batch", c, "out",
		`{"key":"a","windowStart":0,"windowEnd":10,"n":4,"s":17}`,
		`{"key":"a","windowStart":10,"windowEnd":20,"n":2,"s":27}`,
		`{"key":"b","windowStart":10,"windowEnd":20,"n":1,"s":17}`,
		`{"key":"a","windowStart":20,"windowEnd":30,"n":2,"s":53}`,
		`{"key":"a","windowStart":40,"windowEnd":50,"n":1,"s":40}`)
	sameMultiset(t, "batch late", c, "late")
}

// Sliding windows of 10ms every 5ms. Every record is on time (the
// out-of-orderness bound is 5ms), so both modes agree. Record -> windows:
//
//	2  -> [-5,5) [0,10)
//	8  -> [0,10) [5,15)
//	4  -> [-5,5) [0,10)     wm 2
//	13 -> [5,15) [10,20)    wm 7
//	6  -> [0,10) [5,15)     wm 7; 6 is out of order but both windows end after 7
//	30 -> [25,35) [30,40)   wm 24
func TestSlidingWindow(t *testing.T) {
	const job = `
parallelism: 1
steps:
  - name: src
    source:
      elements: [{k: a, ts: 2}, {k: a, ts: 8}, {k: a, ts: 4}, {k: a, ts: 13}, {k: a, ts: 6}, {k: a, ts: 30}, {k: b, ts: 9}]
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 5ms}
  - name: win
    keyBy: record.k
    window:
      type: sliding
      size: 10ms
      slide: 5ms
      lateDataOutput: late
      aggregate:
        fields:
          - {name: "n", count: true}
          - {name: s, sum: record.ts}
          - {name: first, min: record.ts}
          - {name: last, max: record.ts}
  - name: out
    inputs: [win]
    sink: {call: out}
  - name: late-out
    inputs: [late]
    sink: {call: late}
`
	want := []string{
		`{"key":"a","windowStart":-5,"windowEnd":5,"n":2,"s":6,"first":2,"last":4}`,
		`{"key":"a","windowStart":0,"windowEnd":10,"n":4,"s":20,"first":2,"last":8}`,
		`{"key":"a","windowStart":5,"windowEnd":15,"n":3,"s":27,"first":6,"last":13}`,
		`{"key":"a","windowStart":10,"windowEnd":20,"n":1,"s":13,"first":13,"last":13}`,
		`{"key":"a","windowStart":25,"windowEnd":35,"n":1,"s":30,"first":30,"last":30}`,
		`{"key":"a","windowStart":30,"windowEnd":40,"n":1,"s":30,"first":30,"last":30}`,
		// b@9 arrives with wm 24: both its windows ([0,10), [5,15)) are late.
	}
	c := run(t, job, spec.Streaming, oneByOne)
	sameMultiset(t, "streaming", c, "out", want...)
	sameMultiset(t, "streaming late", c, "late", `{"k":"b","ts":9}`)
	c = run(t, job, spec.Batch, oneByOne)
	sameMultiset(t, "batch", c, "out", append(want,
		`{"key":"b","windowStart":0,"windowEnd":10,"n":1,"s":9,"first":9,"last":9}`,
		`{"key":"b","windowStart":5,"windowEnd":15,"n":1,"s":9,"first":9,"last":9}`)...)
	sameMultiset(t, "batch late", c, "late")
}

// A window reduce emits the reduced record itself (no window fields).
func TestTumblingWindowReduce(t *testing.T) {
	const job = `
parallelism: 2
steps:
  - name: src
    source:
      elements: [{k: a, ts: 1, v: 1}, {k: a, ts: 3, v: 2}, {k: a, ts: 11, v: 4}, {k: b, ts: 2, v: 8}, {k: b, ts: 19, v: 16}, {k: b, ts: 15, v: 32}]
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 100ms}
  - name: win
    keyBy: record.k
    window:
      type: tumbling
      size: 10ms
      reduce: "{'k': acc.k, 'ts': acc.ts, 'v': acc.v + record.v}"
  - name: out
    sink: {call: out}
`
	forModes(t, func(t *testing.T, mode spec.RuntimeMode) {
		c := run(t, job, mode, oneByOne)
		// a[0,10) = 1+2, a[10,20) = 4, b[0,10) = 8, b[10,20) = 16+32. The
		// reduced record keeps the first record's ts field, which depends
		// on arrival order for b[10,20), so only v is checked there.
		got := map[string]int64{}
		for _, r := range c.Records("out") {
			m := r.Value.(map[string]any)
			got[m["k"].(string)+"@"+string(rune('0'+r.Ts/10))] += m["v"].(int64)
		}
		want := map[string]int64{"a@0": 3, "a@1": 4, "b@0": 8, "b@1": 48}
		if len(got) != len(want) || len(c.Records("out")) != 4 {
			t.Fatalf("got %v (%d records), want %v", got, len(c.Records("out")), want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("window %s = %d, want %d", k, got[k], v)
			}
		}
	})
}

// Session windows with a 10ms gap. Sessions that touch merge, as Flink's
// TimeWindow.intersects says ([20,30) and [30,40) -> [20,40)), and a record
// can bridge two sessions into one. The bound is large so every record is
// on time and the result is the same in both modes.
//
//	a: 0 -> [0,10); 5 -> [0,15); 30 -> [30,40) (apart);
//	   20 -> [20,30) touches [30,40) -> [20,40);
//	   12 -> [12,22) overlaps [0,15) and [20,40): bridge -> [0,40), 5 records
//	b: 50 -> [50,60); 60 -> [60,70) touches -> [50,70); 81 -> [81,91) apart
//	   (70 < 81); 72 -> [72,82) overlaps [81,91) only ([50,70) ends at 70 < 72)
const sessionJob = `
parallelism: %d
steps:
  - name: src
    source:
      elements:
        - {k: a, ts: 0, v: 1}
        - {k: a, ts: 5, v: 2}
        - {k: b, ts: 50, v: 100}
        - {k: a, ts: 30, v: 4}
        - {k: b, ts: 60, v: 200}
        - {k: a, ts: 20, v: 8}
        - {k: b, ts: 81, v: 400}
        - {k: a, ts: 12, v: 16}
        - {k: b, ts: 72, v: 800}
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 1s}
  - name: sessions
    keyBy: record.k
    window:
      type: session
      gap: 10ms
      aggregate:
        fields:
          - {name: "n", count: true}
          - {name: s, sum: record.v}
          - name: vs
            accumulator:
              init: "0"
              add: "acc + record.v"
              merge: "a + b"
              result: "acc * 10"
  - name: out
    sink: {call: out}
`

func TestSessionWindowsMergeAndBridge(t *testing.T) {
	for _, par := range []int{1, 2} {
		forModes(t, func(t *testing.T, mode spec.RuntimeMode) {
			c := run(t, sprintf(sessionJob, par), mode, oneByOne)
			sameMultiset(t, "sessions", c, "out",
				`{"key":"a","windowStart":0,"windowEnd":40,"n":5,"s":31,"vs":310}`,
				`{"key":"b","windowStart":50,"windowEnd":70,"n":2,"s":300,"vs":3000}`,
				`{"key":"b","windowStart":72,"windowEnd":91,"n":2,"s":1200,"vs":12000}`)
		})
	}
}

// Sessions in STREAMING fire as soon as the watermark passes their end;
// a record arriving after that (and too late) goes to the side output,
// while one that is still on time starts a new session.
//
//	bound 0: a@0 -> wm -1; a@4 -> [0,14) wm 3; a@30 -> wm 29 fires [0,14);
//	a@12 -> [12,22) late (21 <= 29) -> side output; a@31 -> [30,41); end.
func TestSessionWindowLate(t *testing.T) {
	const job = `
parallelism: 1
steps:
  - name: src
    source:
      elements: [{k: a, ts: 0}, {k: a, ts: 4}, {k: a, ts: 30}, {k: a, ts: 12}, {k: a, ts: 31}]
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 0s}
  - name: sessions
    keyBy: record.k
    window:
      type: session
      gap: 10ms
      lateDataOutput: late
      aggregate: {fields: [{name: "n", count: true}]}
  - name: out
    inputs: [sessions]
    sink: {call: out}
  - name: late-out
    inputs: [late]
    sink: {call: late}
`
	c := run(t, job, spec.Streaming, oneByOne)
	sameSequence(t, "streaming", c, "out",
		`{"key":"a","windowStart":0,"windowEnd":14,"n":2}`,
		`{"key":"a","windowStart":30,"windowEnd":41,"n":2}`)
	sameSequence(t, "streaming late", c, "late", `{"k":"a","ts":12}`)
	// BATCH: nothing is late; 12 extends [0,14) to [0,22); 30,31 -> [30,41).
	c = run(t, job, spec.Batch, oneByOne)
	sameMultiset(t, "batch", c, "out",
		`{"key":"a","windowStart":0,"windowEnd":22,"n":3}`,
		`{"key":"a","windowStart":30,"windowEnd":41,"n":2}`)
	sameMultiset(t, "batch late", c, "late")
}

// Allowed lateness on sessions: a late record within the lateness that
// extends a fired session re-fires the merged session once.
//
//	bound 0, lateness 20ms, gap 10ms:
//	a@0 -> [0,10); a@25 -> wm 24 fires [0,10) (n1);
//	a@5 -> [5,15) merges with [0,10) -> [0,15): 14 <= 24 fires now (n2),
//	       cleanup at 14+20 = 34 > 24 so it is kept;
//	a@40 -> wm 39: fires [25,35) (n1); [0,15) cleaned at 34;
//	a@3 -> [3,13): late (12+20 = 32 <= 39) -> dropped (no side output);
//	end: fires [40,50) (n1).
func TestSessionAllowedLateness(t *testing.T) {
	const job = `
parallelism: 1
steps:
  - name: src
    source:
      elements: [{k: a, ts: 0}, {k: a, ts: 25}, {k: a, ts: 5}, {k: a, ts: 40}, {k: a, ts: 3}]
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 0s}
  - name: sessions
    keyBy: record.k
    window:
      type: session
      gap: 10ms
      allowedLateness: 20ms
      aggregate: {fields: [{name: "n", count: true}]}
  - name: out
    sink: {call: out}
`
	c := run(t, job, spec.Streaming, oneByOne)
	sameSequence(t, "streaming", c, "out",
		`{"key":"a","windowStart":0,"windowEnd":10,"n":1}`,
		`{"key":"a","windowStart":0,"windowEnd":15,"n":2}`,
		`{"key":"a","windowStart":25,"windowEnd":35,"n":1}`,
		`{"key":"a","windowStart":40,"windowEnd":50,"n":1}`)
	// BATCH: 0,3,5 -> [0,15); 25 -> [25,35); 40 -> [40,50).
	c = run(t, job, spec.Batch, oneByOne)
	sameMultiset(t, "batch", c, "out",
		`{"key":"a","windowStart":0,"windowEnd":15,"n":3}`,
		`{"key":"a","windowStart":25,"windowEnd":35,"n":1}`,
		`{"key":"a","windowStart":40,"windowEnd":50,"n":1}`)
}

// Idleness: a source that stops producing is marked idle after the
// configured time and no longer holds back the watermark, so windows fire
// while the job runs. Without idleness the quiet source's watermark (-1)
// holds every window back until the end of input, which an unbounded job
// never reaches.
func TestIdleSourceDoesNotHoldBackWatermark(t *testing.T) {
	const job = `
parallelism: 1
steps:
  - name: quiet
    source:
      datagen: {value: "{'src': 'quiet', 'ts': 0}", ratePerSecond: 1}
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 0s%s}
  - name: busy
    source:
      datagen: {value: "{'src': 'busy', 'ts': seq * 10}", ratePerSecond: 1000}
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 0s}
  - name: both
    inputs: [quiet, busy]
    union: {}
  - name: win
    keyBy: record.src
    window: {type: tumbling, size: 100ms, aggregate: {fields: [{name: "n", count: true}]}}
  - name: out
    sink: {call: out}
`
	runFor := func(idleness string, until func([]value.Record) bool, max time.Duration) []value.Record {
		out := &stampedSink{}
		p := newPlan(t, sprintf(job, idleness), spec.Streaming)
		ctx, cancel := context.WithTimeout(context.Background(), max)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			done <- local.Run(ctx, p, local.Options{Env: connector.Env{CallSink: sinks(map[string]connector.Sink{"out": out})}})
		}()
		for ctx.Err() == nil && !until(out.records()) {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("run: %v", err)
		}
		return out.records()
	}
	// Without idleness: nothing fires within 300ms (the busy source is at
	// event time ~3000 by then).
	if recs := runFor("", func([]value.Record) bool { return false }, 300*time.Millisecond); len(recs) != 0 {
		t.Errorf("without idleness, windows fired: %v", recs)
	}
	// With idleness 50ms: busy windows fire, and the quiet source's one
	// record (ts 0) is counted in its [0,100) window.
	recs := runFor(", idleness: 50ms", func(r []value.Record) bool {
		busy, quiet := false, false
		for _, x := range r {
			m := x.Value.(map[string]any)
			busy = busy || m["key"] == "busy"
			quiet = quiet || m["key"] == "quiet"
		}
		return busy && quiet
	}, 10*time.Second)
	got := map[string]map[string]any{}
	for _, r := range recs {
		m := r.Value.(map[string]any)
		if m["windowStart"] == int64(0) {
			got[m["key"].(string)] = m
		}
	}
	if got["busy"] == nil || got["busy"]["n"] != int64(10) {
		t.Errorf("busy [0,100): %v, want n=10 (ts 0..90)", got["busy"])
	}
	if got["quiet"] == nil || got["quiet"]["n"].(int64) < 1 {
		t.Errorf("quiet [0,100): %v, want at least its first record", got["quiet"])
	}
}

// Timers are per key and time, so two windows of a key can share one: here
// the cleanup time of session [0,15) (14 + 20) is the trigger time of
// session [25,35) (34). Merging [0,15) away must not cancel [25,35)'s
// firing.
//
//	gap 10ms, lateness 20ms, bound 0:
//	a@0  -> [0,10)                     wm -1
//	a@25 -> [25,35)                    wm 24: fires [0,10) (n1)
//	a@5  -> [0,15): 14 <= 24, fires now (n2); cleanup at 34
//	a@6  -> [0,16): fires now (n3); cleanup at 35 (the one at 34 is now [0,15)'s, gone)
//	a@40 -> [40,50)                    wm 39: fires [25,35) (n1) at 34; [0,16) cleaned at 35
//	end                                fires [40,50) (n1)
func TestSessionMergeKeepsSharedTimer(t *testing.T) {
	const job = `
parallelism: 1
steps:
  - name: src
    source:
      elements: [{k: a, ts: 0}, {k: a, ts: 25}, {k: a, ts: 5}, {k: a, ts: 6}, {k: a, ts: 40}]
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 0s}
  - name: sessions
    keyBy: record.k
    window:
      type: session
      gap: 10ms
      allowedLateness: 20ms
      aggregate: {fields: [{name: "n", count: true}]}
  - name: out
    sink: {call: out}
`
	c := run(t, job, spec.Streaming, oneByOne)
	sameSequence(t, "streaming", c, "out",
		`{"key":"a","windowStart":0,"windowEnd":10,"n":1}`,
		`{"key":"a","windowStart":0,"windowEnd":15,"n":2}`,
		`{"key":"a","windowStart":0,"windowEnd":16,"n":3}`,
		`{"key":"a","windowStart":25,"windowEnd":35,"n":1}`,
		`{"key":"a","windowStart":40,"windowEnd":50,"n":1}`)
	c = run(t, job, spec.Batch, oneByOne)
	sameMultiset(t, "batch", c, "out",
		`{"key":"a","windowStart":0,"windowEnd":16,"n":3}`,
		`{"key":"a","windowStart":25,"windowEnd":35,"n":1}`,
		`{"key":"a","windowStart":40,"windowEnd":50,"n":1}`)
}
