package local_test

import (
	"testing"

	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/spec"
)

// Known-answer tests for window joins and interval joins, in both modes.
// Watermark bounds are large so no record is late: both modes must give
// the same pairs.

const windowJoinJob = `
parallelism: %d
steps:
  - name: left
    source:
      elements: [{k: a, ts: 1, l: L1}, {k: a, ts: 5, l: L2}, {k: b, ts: 3, l: L3}, {k: a, ts: 12, l: L4}]
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 1s}
  - name: right
    source:
      elements: [{k: a, ts: 8, r: R1}, {k: b, ts: 9, r: R2}, {k: b, ts: 11, r: R3}, {k: a, ts: 15, r: R4}, {k: c, ts: 2, r: R5}]
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 1s}
  - name: joined
    inputs: [left, right]
    join:
      leftKey: record.k
      rightKey: record.k
      window: {type: tumbling, size: 10ms}
      select: "{'k': key, 'l': left.l, 'r': right.r}"
  - name: out
    sink: {call: out}
`

func TestWindowJoinTumbling(t *testing.T) {
	// [0,10): a: L1,L2 x R1; b: L3 x R2.  [10,20): a: L4 x R4; b: R3 alone.
	// c has no left record.
	for _, par := range []int{1, 3} {
		forModes(t, func(t *testing.T, mode spec.RuntimeMode) {
			c := run(t, sprintf(windowJoinJob, par), mode, oneByOne)
			sameMultiset(t, "window join", c, "out",
				`{"k":"a","l":"L1","r":"R1"}`, `{"k":"a","l":"L2","r":"R1"}`,
				`{"k":"b","l":"L3","r":"R2"}`, `{"k":"a","l":"L4","r":"R4"}`)
			// Pairs carry their window's max timestamp.
			for _, r := range c.Records("out") {
				m := r.Value.(map[string]any)
				want := int64(9)
				if m["l"] == "L4" {
					want = 19
				}
				if r.Ts != want {
					t.Errorf("pair %v has timestamp %d, want %d", m, r.Ts, want)
				}
			}
		})
	}
}

func TestWindowJoinSlidingDefaultSelect(t *testing.T) {
	// Size 10, slide 5. Windows: 1 -> [-5,5) [0,10); 3 -> [-5,5) [0,10);
	// 7 -> [0,10) [5,15); 12 -> [5,15) [10,20).
	// (1,3) share two windows (two pairs), (7,3) share [0,10), (7,12)
	// share [5,15), (1,12) share none.
	const job = `
steps:
  - name: left
    source:
      elements: [{k: 1, ts: 1}, {k: 1, ts: 7}]
      timestamp: record.ts
  - name: right
    source:
      elements: [{k: 1, ts: 12}, {k: 1, ts: 3}]
      timestamp: record.ts
  - name: joined
    inputs: [left, right]
    join:
      leftKey: record.k
      rightKey: record.k
      window: {type: sliding, size: 10ms, slide: 5ms}
  - name: out
    sink: {call: out}
`
	forModes(t, func(t *testing.T, mode spec.RuntimeMode) {
		c := run(t, job, mode, local.Options{})
		sameMultiset(t, "sliding join", c, "out",
			`{"left":{"k":1,"ts":1},"right":{"k":1,"ts":3}}`,
			`{"left":{"k":1,"ts":1},"right":{"k":1,"ts":3}}`,
			`{"left":{"k":1,"ts":7},"right":{"k":1,"ts":3}}`,
			`{"left":{"k":1,"ts":7},"right":{"k":1,"ts":12}}`)
	})
}

// Interval join with a negative lower bound: left.ts - 2 <= right.ts <= left.ts + 3,
// both bounds inclusive.
//
//	L1 a@10 joins right a@8..13: R1@8 (lower edge), R2@13 (upper edge); not R3@7.
//	L2 a@20 joins right a@18..23: R4@23 (upper edge); not R5@17.
//	L3 b@10 joins right b@8..13: R7@11; not R6@14.
const intervalJoinJob = `
parallelism: %d
steps:
  - name: left
    source:
      elements: [{k: a, ts: 10, l: L1}, {k: a, ts: 20, l: L2}, {k: b, ts: 10, l: L3}]
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 1s}
  - name: right
    source:
      elements:
        - {k: a, ts: 8, r: R1}
        - {k: a, ts: 13, r: R2}
        - {k: a, ts: 7, r: R3}
        - {k: a, ts: 23, r: R4}
        - {k: a, ts: 17, r: R5}
        - {k: b, ts: 14, r: R6}
        - {k: b, ts: 11, r: R7}
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 1s}
  - name: joined
    inputs: [left, right]
    join:
      leftKey: record.k
      rightKey: record.k
      interval: {lowerBound: -2ms, upperBound: 3ms}
      select: "{'k': key, 'l': left.l, 'r': right.r}"
  - name: out
    sink: {call: out}
`

func TestIntervalJoinNegativeLowerBound(t *testing.T) {
	for _, par := range []int{1, 2} {
		forModes(t, func(t *testing.T, mode spec.RuntimeMode) {
			c := run(t, sprintf(intervalJoinJob, par), mode, oneByOne)
			sameMultiset(t, "interval join", c, "out",
				`{"k":"a","l":"L1","r":"R1"}`, `{"k":"a","l":"L1","r":"R2"}`,
				`{"k":"a","l":"L2","r":"R4"}`, `{"k":"b","l":"L3","r":"R7"}`)
			// A pair carries the larger of its two timestamps.
			want := map[string]int64{"L1R1": 10, "L1R2": 13, "L2R4": 23, "L3R7": 11}
			for _, r := range c.Records("out") {
				m := r.Value.(map[string]any)
				id := m["l"].(string) + m["r"].(string)
				if r.Ts != want[id] {
					t.Errorf("pair %s has timestamp %d, want %d", id, r.Ts, want[id])
				}
			}
		})
	}
}

func TestIntervalJoinBothBoundsNegative(t *testing.T) {
	// right.ts in [left.ts - 5, left.ts - 1]: the right record must come
	// strictly before the left one.
	const job = `
steps:
  - name: left
    source: {elements: [{k: 1, ts: 10}, {k: 1, ts: 30}], timestamp: record.ts}
  - name: right
    source: {elements: [{k: 1, ts: 5}, {k: 1, ts: 9}, {k: 1, ts: 10}, {k: 1, ts: 4}, {k: 1, ts: 26}], timestamp: record.ts}
  - name: joined
    inputs: [left, right]
    join:
      leftKey: record.k
      rightKey: record.k
      interval: {lowerBound: -5ms, upperBound: -1ms}
      select: "[left.ts, right.ts]"
  - name: out
    sink: {call: out}
`
	forModes(t, func(t *testing.T, mode spec.RuntimeMode) {
		c := run(t, job, mode, local.Options{})
		sameMultiset(t, "negative interval", c, "out", `[10,5]`, `[10,9]`, `[30,26]`)
	})
}

// In STREAMING with tight watermarks, records at the very edge of the
// interval are still on time: the join's watermark is the minimum of both
// inputs', so whatever the interleaving of the two sources, left@100 and
// right@100/101 arrive before the watermark passes 100 (a record is late
// only when its timestamp is below the watermark, as in Flink).
func TestIntervalJoinStreamingTightWatermarks(t *testing.T) {
	const job = `
steps:
  - name: left
    source:
      elements: [{k: 1, ts: 100}]
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 0s}
  - name: right
    source:
      elements: [{k: 1, ts: 100}, {k: 1, ts: 101}, {k: 1, ts: 500}]
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 0s}
  - name: joined
    inputs: [left, right]
    join:
      leftKey: record.k
      rightKey: record.k
      interval: {lowerBound: 0ms, upperBound: 1ms}
      select: "[left.ts, right.ts]"
  - name: out
    sink: {call: out}
`
	for i := 0; i < 5; i++ {
		c := run(t, job, spec.Streaming, oneByOne)
		sameMultiset(t, "tight interval join", c, "out", `[100,100]`, `[100,101]`)
	}
}
