package local_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/udf"
	"github.com/flinkjob/flinkjob/engine/value"
)

// A *value.Row is the map it stands for, to every step: each job below runs
// once with maps only (value.UseRows off, the source's values as they are)
// and once with rows everywhere (value.UseRows on, so the producers build
// rows, and a Go step right after the source turning every map of every
// event into a row), and every sink must get the same records. Between
// them the jobs use every operator and the CEL forms that look into
// records: selects, has, size, in, macros over keys, map equality, map
// literals, process actions, accumulators, joins' pairs.

// rowsSteps is the source and the step turning its values into rows (or
// leaving them) that every job starts with; the jobs read "ev".
const rowsSteps = `
  - name: src
    source:
      nexmark: {events: 1500, seed: 5}
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 50ms}
  - name: ev
    call: ROWSFN
`

var rowsJobs = map[string]string{
	"stateless": `
  - name: bids
    inputs: [ev]
    filter: "has(record.bid) && 'price' in record.bid && size(record.bid) > 3"
  - name: m
    map: "{'a': record.bid.auction, 'p': record.bid.price, 'keys': record.bid.map(k, k).sort(), 'same': record.bid == record.bid, 'b': record.bid}"
  - name: fm
    flatMap: "[record, {'only': record.p}]"
  - name: out
    sink: {call: out}
  - name: whole
    inputs: [ev]
    filter: "record.type != 'bid' && record == record && !(record == {'type': 'x'})"
  - name: out2
    sink: {call: out2}
`,
	"keyed": `
  - name: bids
    inputs: [ev]
    filter: "record.type == 'bid'"
  - name: r
    keyBy: record.bid.auction
    reduce: "acc.bid.price >= record.bid.price ? acc : record"
  - name: out
    sink: {call: out}
  - name: agg
    inputs: [bids]
    keyBy: record.bid.bidder % 7
    aggregate:
      fields:
        - {name: "n", count: true}
        - {name: s, sum: record.bid.price}
        - {name: lo, min: record.bid.price}
        - {name: hi, max: record.bid.dateTime}
        - {name: avg, avg: record.bid.price}
        - name: acc
          accumulator: {init: "{'n': 0, 'last': {}}", add: "{'n': acc.n + 1, 'last': record.bid}", merge: "a", result: "acc.last"}
  - name: out2
    sink: {call: out2}
`,
	"windows": `
  - name: bids
    inputs: [ev]
    filter: "record.type == 'bid'"
  - name: tw
    keyBy: record.bid.auction % 5
    window:
      type: tumbling
      size: 20ms
      allowedLateness: 10ms
      lateDataOutput: late
      reduce: "acc.bid.price > record.bid.price ? acc : record"
  - name: out
    inputs: [tw]
    sink: {call: out}
  - name: late-out
    inputs: [late]
    sink: {call: late}
  - name: sw
    inputs: [bids]
    keyBy: record.bid.channel
    window:
      type: sliding
      size: 40ms
      slide: 10ms
      aggregate: {fields: [{name: "n", count: true}, {name: top, max: record.bid.price}]}
  - name: out2
    sink: {call: out2}
  - name: ses
    inputs: [ev]
    keyBy: record.type
    window:
      type: session
      gap: 5ms
      aggregate:
        fields:
          - name: l
            accumulator: {init: "{'n': 0}", add: "{'n': acc.n + 1}", merge: "{'n': a.n + b.n}"}
  - name: out3
    sink: {call: out3}
`,
	"joins": `
  - name: persons
    inputs: [ev]
    filter: "record.type == 'person'"
  - name: auctions
    inputs: [ev]
    filter: "record.type == 'auction'"
  - name: wj
    inputs: [persons, auctions]
    join:
      leftKey: record.person.id
      rightKey: record.auction.seller
      window: {type: tumbling, size: 100ms}
      select: "{'p': left.person.name, 'a': right.auction, 'k': key}"
  - name: out
    inputs: [wj]
    sink: {call: out}
  - name: ij
    inputs: [persons, auctions]
    join:
      leftKey: record.person.id
      rightKey: record.auction.seller
      interval: {lowerBound: "-50ms", upperBound: "50ms"}
  - name: out2
    inputs: [ij]
    sink: {call: out2}
`,
	"process": `
  - name: p
    inputs: [ev]
    keyBy: record.type
    process:
      onElement: >-
        {'state': {'n': (state == null ? 0 : state.n) + 1, 'last': record},
         'emit': state == null ? [record] : [],
         'timers': [ts + 30]}
      onTimer: "{'emit': [{'at': timer, 'st': state}], 'state': null}"
  - name: out
    sink: {call: out}
  - name: q
    inputs: [ev]
    keyBy: record.type
    process:
      onElement: "record.type == 'bid' ? {'emit': [record.bid]} : {}"
  - name: out2
    sink: {call: out2}
`,
}

func init() {
	udf.Map("rows-test-maps", func(v any) (any, error) { return v, nil })
	udf.Map("rows-test-rows", func(v any) (any, error) { return value.Rows(v), nil })
}

func TestRowsLikeMaps(t *testing.T) {
	old := value.UseRows
	t.Cleanup(func() { value.UseRows = old })
	sinks := []string{"out", "out2", "out3", "late"}
	for name, steps := range rowsJobs {
		for _, mode := range modes {
			var outs [2][][]string
			for i, rows := range []bool{false, true} {
				value.UseRows = rows
				fn := "rows-test-maps"
				if rows {
					fn = "rows-test-rows"
				}
				// STREAMING at parallelism 1: one source subtask, so what is
				// late does not depend on timing.
				par := "2"
				if mode == spec.Streaming {
					par = "1"
				}
				src := "parallelism: " + par + "\nsteps:" + strings.Replace(rowsSteps, "ROWSFN", fn, 1) + steps
				c, err := tryRun(t, src, mode, local.Options{BatchSize: 16})
				if err != nil {
					t.Fatalf("%s %s rows=%v: %v", name, mode, rows, err)
				}
				for _, s := range sinks {
					outs[i] = append(outs[i], c.SortedJSON(s))
				}
			}
			value.UseRows = old
			if len(outs[0][0]) == 0 {
				t.Errorf("%s %s: no output", name, mode)
			}
			for j, s := range sinks {
				if !slices.Equal(outs[1][j], outs[0][j]) {
					t.Errorf("%s %s sink %s: %d records with rows, %d with maps; %s", name, mode, s,
						len(outs[1][j]), len(outs[0][j]), diffSorted(outs[1][j], outs[0][j]))
				}
			}
		}
	}
}
