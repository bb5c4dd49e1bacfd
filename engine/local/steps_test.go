package local_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/udf"
)

// Known-answer tests for the one-to-one and rolling steps, in both modes.
// Every expected output below is worked out by hand from the input.

func init() {
	// Go SDK functions used by `call` steps in these tests.
	udf.Register("test-split-evens", func(v any, emit func(any)) error {
		m := v.(map[string]any)
		n := m["n"].(int64)
		if n%2 != 0 {
			return nil // acts as a filter
		}
		for i := int64(0); i < n/2; i++ { // and as a flatMap
			emit(map[string]any{"n": n, "i": i})
		}
		return nil
	})
	udf.Map("test-label", func(v any) (any, error) {
		m := v.(map[string]any)
		return map[string]any{"label": fmt.Sprintf("n=%d", m["n"]), "n": m["n"]}, nil
	})
	udf.Register("test-fail-on-3", func(v any, emit func(any)) error {
		if v.(map[string]any)["n"].(int64) == 3 {
			return fmt.Errorf("three is not allowed")
		}
		emit(v)
		return nil
	})
}

const fiveNumbers = `
  - name: nums
    source:
      elements: [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}, {"n": 5}]
`

func TestOneToOneSteps(t *testing.T) {
	cases := []struct {
		name  string
		steps string
		want  []string
	}{
		{"map", `
  - name: sq
    map: "{'n': record.n, 'sq': record.n * record.n}"`,
			[]string{`{"n":1,"sq":1}`, `{"n":2,"sq":4}`, `{"n":3,"sq":9}`, `{"n":4,"sq":16}`, `{"n":5,"sq":25}`}},
		{"filter", `
  - name: odd
    filter: "record.n % 2 == 1"`,
			[]string{`{"n":1}`, `{"n":3}`, `{"n":5}`}},
		{"flatMap", `
  - name: rep
    flatMap: "record.n <= 2 ? [record, {'n': record.n * 10}] : []"`,
			[]string{`{"n":1}`, `{"n":10}`, `{"n":2}`, `{"n":20}`}},
		{"flatMap-null-is-empty", `
  - name: rep
    flatMap: "record.n == 4 ? [record] : dyn(null)"`,
			[]string{`{"n":4}`}},
		{"call-flatMap-and-filter", `
  - name: evens
    call: test-split-evens`,
			// 2 -> one record, 4 -> two records, odd numbers dropped.
			[]string{`{"n":2,"i":0}`, `{"n":4,"i":0}`, `{"n":4,"i":1}`}},
		{"call-map-after-cel-filter", `
  - name: big
    filter: "record.n >= 4"
  - name: label
    call: test-label`,
			[]string{`{"label":"n=4","n":4}`, `{"label":"n=5","n":5}`}},
		{"chain-of-all", `
  - name: a
    map: "{'n': record.n + 1}"
  - name: b
    filter: "record.n != 4"
  - name: c
    flatMap: "[record, record]"
  - name: d
    call: test-label`,
			// 2,3,4,5,6 -> drop 4 -> each twice
			[]string{`{"label":"n=2","n":2}`, `{"label":"n=2","n":2}`, `{"label":"n=3","n":3}`, `{"label":"n=3","n":3}`,
				`{"label":"n=5","n":5}`, `{"label":"n=5","n":5}`, `{"label":"n=6","n":6}`, `{"label":"n=6","n":6}`}},
	}
	for _, tc := range cases {
		for _, par := range []int{1, 3} {
			job := fmt.Sprintf("parallelism: %d\nsteps:%s%s\n  - name: out\n    sink: {call: out}\n", par, fiveNumbers, tc.steps)
			t.Run(fmt.Sprintf("%s/p%d", tc.name, par), func(t *testing.T) {
				forModes(t, func(t *testing.T, mode spec.RuntimeMode) {
					c := run(t, job, mode, local.Options{})
					sameMultiset(t, tc.name, c, "out", tc.want...)
				})
			})
		}
	}
}

func TestCallErrorNamesStep(t *testing.T) {
	job := "steps:" + fiveNumbers + `
  - name: picky
    call: test-fail-on-3
  - name: out
    sink: {call: out}
`
	forModes(t, func(t *testing.T, mode spec.RuntimeMode) {
		_, err := tryRun(t, job, mode, local.Options{})
		if err == nil || !strings.Contains(err.Error(), `"picky"`) || !strings.Contains(err.Error(), "three is not allowed") {
			t.Fatalf("want an error naming step picky, got %v", err)
		}
	})
}

func TestUnion(t *testing.T) {
	// Three inputs, one of them a mapped stream and one with another
	// parallelism; the union keeps every record exactly once.
	const job = `
parallelism: 2
steps:
  - name: a
    source: {elements: [{s: a, "n": 1}, {s: a, "n": 2}, {s: a, "n": 3}]}
  - name: b
    source: {elements: [{s: b, "n": 1}]}
    parallelism: 1
  - name: c
    source: {elements: [{s: c, "n": 1}, {s: c, "n": 2}]}
  - name: c2
    map: "{'s': record.s + '2', 'n': record.n * 100}"
  - name: all
    inputs: [a, b, c2]
    union: {}
  - name: out
    sink: {call: out}
`
	forModes(t, func(t *testing.T, mode spec.RuntimeMode) {
		c := run(t, job, mode, local.Options{})
		sameMultiset(t, "union", c, "out",
			`{"s":"a","n":1}`, `{"s":"a","n":2}`, `{"s":"a","n":3}`, `{"s":"b","n":1}`,
			`{"s":"c2","n":100}`, `{"s":"c2","n":200}`)
	})
}

const rollingInput = `
  - name: src
    parallelism: 1
    source:
      elements:
        - {k: a, v: 1}
        - {k: b, v: 10}
        - {k: a, v: 2}
        - {k: a, v: 3}
        - {k: b, v: 20}
`

func TestRollingReduce(t *testing.T) {
	for _, par := range []int{1, 2} {
		job := fmt.Sprintf(`
parallelism: %d
steps:%s
  - name: sum
    keyBy: record.k
    reduce: "{'k': acc.k, 'v': acc.v + record.v}"
  - name: out
    sink: {call: out}
`, par, rollingInput)
		// STREAMING: one update per record. The source has parallelism 1,
		// so each key's updates arrive in input order.
		c := run(t, job, spec.Streaming, local.Options{})
		if par == 1 {
			sameSequence(t, "streaming reduce", c, "out",
				`{"k":"a","v":1}`, `{"k":"b","v":10}`, `{"k":"a","v":3}`, `{"k":"a","v":6}`, `{"k":"b","v":30}`)
		} else {
			sameMultiset(t, "streaming reduce p2", c, "out",
				`{"k":"a","v":1}`, `{"k":"b","v":10}`, `{"k":"a","v":3}`, `{"k":"a","v":6}`, `{"k":"b","v":30}`)
		}
		// BATCH: only the final value per key.
		c = run(t, job, spec.Batch, local.Options{})
		sameMultiset(t, "batch reduce", c, "out", `{"k":"a","v":6}`, `{"k":"b","v":30}`)
	}
}

func TestRollingReduceSeparateKeyByStep(t *testing.T) {
	// keyBy alone on its own step keys the next step's input.
	const job = `
parallelism: 2
steps:
  - name: src
    source: {elements: [{w: x}, {w: "y"}, {w: x}, {w: x}]}
  - name: ones
    map: "{'w': record.w, 'n': 1}"
  - name: byword
    keyBy: record.w
  - name: count
    reduce: "{'w': acc.w, 'n': acc.n + record.n}"
  - name: out
    sink: {call: out}
`
	c := run(t, job, spec.Batch, local.Options{})
	sameMultiset(t, "batch", c, "out", `{"w":"x","n":3}`, `{"w":"y","n":1}`)
	c = run(t, job, spec.Streaming, local.Options{})
	// x's updates come from two source subtasks but one reduce subtask:
	// whatever the interleaving, they are 1, 2, 3.
	sameMultiset(t, "streaming", c, "out", `{"w":"x","n":1}`, `{"w":"x","n":2}`, `{"w":"x","n":3}`, `{"w":"y","n":1}`)
}

func TestRollingAggregate(t *testing.T) {
	const job = `
steps:` + rollingInput + `
  - name: agg
    keyBy: record.k
    aggregate:
      fields:
        - {name: cnt, count: true}
        - {name: total, sum: record.v}
        - {name: lo, min: record.v}
        - {name: hi, max: record.v}
        - {name: mean, avg: record.v}
        - name: msq
          accumulator:
            init: "{'n': 0, 'sq': 0}"
            add: "{'n': acc.n + 1, 'sq': acc.sq + record.v * record.v}"
            result: "acc.sq / acc.n"
  - name: out
    sink: {call: out}
`
	// a: 1, 2, 3 -> count 3, sum 6, min 1, max 3, avg 2.0, mean square (1+4+9)/3 = 4 (int division)
	// b: 10, 20 -> count 2, sum 30, min 10, max 20, avg 15.0, mean square (100+400)/2 = 250
	c := run(t, job, spec.Streaming, local.Options{})
	sameSequence(t, "streaming aggregate", c, "out",
		`{"key":"a","cnt":1,"total":1,"lo":1,"hi":1,"mean":1.0,"msq":1}`,
		`{"key":"b","cnt":1,"total":10,"lo":10,"hi":10,"mean":10.0,"msq":100}`,
		`{"key":"a","cnt":2,"total":3,"lo":1,"hi":2,"mean":1.5,"msq":2}`,
		`{"key":"a","cnt":3,"total":6,"lo":1,"hi":3,"mean":2.0,"msq":4}`,
		`{"key":"b","cnt":2,"total":30,"lo":10,"hi":20,"mean":15.0,"msq":250}`)
	c = run(t, job, spec.Batch, local.Options{})
	sameMultiset(t, "batch aggregate", c, "out",
		`{"key":"a","cnt":3,"total":6,"lo":1,"hi":3,"mean":2.0,"msq":4}`,
		`{"key":"b","cnt":2,"total":30,"lo":10,"hi":20,"mean":15.0,"msq":250}`)
}

func TestAggregateMixedNumbers(t *testing.T) {
	// sum stays an int while every value is, and becomes a double after a
	// double; min and max compare ints and doubles by value.
	const job = `
steps:
  - name: src
    source: {elements: [{k: 1, v: 2}, {k: 1, v: 0.5}, {k: 1, v: 7}, {k: 2, v: 4}]}
  - name: agg
    keyBy: record.k
    aggregate:
      fields:
        - {name: s, sum: record.v}
        - {name: lo, min: record.v}
        - {name: hi, max: record.v}
  - name: out
    sink: {call: out}
`
	c := run(t, job, spec.Batch, local.Options{})
	sameMultiset(t, "batch", c, "out", `{"key":1,"s":9.5,"lo":0.5,"hi":7}`, `{"key":2,"s":4,"lo":4,"hi":4}`)
	c = run(t, job, spec.Streaming, local.Options{})
	sameSequence(t, "streaming", c, "out",
		`{"key":1,"s":2,"lo":2,"hi":2}`, `{"key":1,"s":2.5,"lo":0.5,"hi":2}`, `{"key":1,"s":9.5,"lo":0.5,"hi":7}`,
		`{"key":2,"s":4,"lo":4,"hi":4}`)
}
