package plan

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/flinkjob/flinkjob/engine/spec"
)

// Building blocks for the invalid jobs below.
const (
	srcStep  = "  - name: src\n    source: {elements: [{k: a, n: 1, ts: 1}]}\n"
	src2Step = "  - name: src2\n    source: {elements: [{k: a, n: 2, ts: 2}]}\n"
	outStep  = "  - name: out\n    sink: {print: {}}\n"
)

func steps(s ...string) string { return "steps:\n" + strings.Join(s, "") }

type invalidCase struct {
	name   string
	yaml   string
	opts   Options
	mutate func(*spec.Job) // for what YAML cannot express
	path   string
	msg    string
	// more allows other errors besides the expected one; by default the
	// expected error must be the only one, so no check reports noise.
	more bool
}

var invalidJobs = []invalidCase{
	// Job-level settings.
	{name: "no steps", yaml: "steps: []", path: "spec.steps", msg: "at least one step"},
	{name: "bad runtimeMode", yaml: "runtimeMode: FAST\n" + steps(srcStep, outStep),
		path: "spec.runtimeMode", msg: `must be STREAMING, BATCH or AUTOMATIC, not "FAST"`},
	{name: "bad mode override", yaml: steps(srcStep, outStep), opts: Options{Mode: "LAZY"},
		path: "options.mode", msg: `not "LAZY"`},
	{name: "bad parallelism", yaml: "parallelism: 2000\n" + steps(srcStep, outStep),
		path: "spec.parallelism", msg: "between 1 and 1024, not 2000"},
	{name: "negative parallelism", yaml: "parallelism: -1\n" + steps(srcStep, outStep),
		path: "spec.parallelism", msg: "between 1 and 1024, not -1"},
	{name: "bad step parallelism", yaml: steps(srcStep, "  - name: m\n    parallelism: 0\n    map: record\n", outStep),
		path: "spec.steps[1].parallelism", msg: "between 1 and 1024, not 0"},
	{name: "bad batchProcessingTime", yaml: "batchProcessingTime: SKIP\n" + steps(srcStep, outStep),
		path: "spec.batchProcessingTime", msg: `must be FAIL or IGNORE, not "SKIP"`},
	{name: "bad bufferTimeout", yaml: "bufferTimeout: soon\n" + steps(srcStep, outStep),
		path: "spec.bufferTimeout", msg: `"soon" is not a duration`},
	{name: "zero bufferTimeout", yaml: "bufferTimeout: 0s\n" + steps(srcStep, outStep),
		path: "spec.bufferTimeout", msg: "must be positive"},

	// Names.
	{name: "duplicate names", yaml: steps(srcStep, "  - name: src\n    map: record\n", outStep),
		path: "spec.steps[1].name", msg: `"src" is already the name of spec.steps[0]`},
	{name: "bad name", yaml: steps(srcStep, "  - name: My_Step\n    map: record\n", outStep),
		path: "spec.steps[1].name", msg: `"My_Step" must be a lowercase DNS label`},
	{name: "name ends with dash", yaml: steps(srcStep, "  - name: m-\n    map: record\n", outStep),
		path: "spec.steps[1].name", msg: "lowercase DNS label"},
	{name: "name too long", yaml: steps(srcStep, "  - name: "+strings.Repeat("a", 64)+"\n    map: record\n", outStep),
		path: "spec.steps[1].name", msg: "at most 63 characters"},
	{name: "empty name", yaml: steps(srcStep, "  - name: \"\"\n    map: record\n", outStep),
		path: "spec.steps[1].name", msg: "is required"},

	// Inputs.
	{name: "unknown input", yaml: steps(srcStep, "  - name: m\n    inputs: [nope]\n    map: record\n", outStep),
		path: "spec.steps[1].inputs[0]", msg: `no step or side output is named "nope"`},
	{name: "self input", yaml: steps(srcStep, "  - name: m\n    inputs: [m]\n    map: record\n", outStep),
		path: "spec.steps[1].inputs[0]", msg: `step "m" cannot read itself`},
	{name: "input listed twice", yaml: steps(srcStep, "  - name: u\n    inputs: [src, src]\n    union: {}\n", outStep),
		path: "spec.steps[1].inputs[1]", msg: `"src" is listed twice`},
	{name: "reading a sink", yaml: steps(srcStep, outStep, "  - name: m\n    inputs: [out]\n    map: record\n", "  - name: out2\n    sink: {print: {}}\n"),
		path: "spec.steps[2].inputs[0]", msg: `"out" is a sink and has no output to read`},
	{name: "reading a sink implicitly", yaml: steps(srcStep, outStep, "  - name: m\n    map: record\n", "  - name: out2\n    sink: {print: {}}\n"),
		path: "spec.steps[2].inputs", msg: `reads the previous step "out", but that is a sink`},
	{name: "cycle", yaml: steps(srcStep,
		"  - name: a\n    inputs: [c]\n    map: record\n",
		"  - name: b\n    inputs: [a]\n    map: record\n",
		"  - name: c\n    inputs: [b]\n    map: record\n",
		"  - name: out\n    inputs: [c]\n    sink: {print: {}}\n"),
		path: "spec.steps[1].inputs", msg: "the steps form a cycle: a -> b -> c -> a"},
	{name: "first step not a source", yaml: steps("  - name: m\n    map: record\n", srcStep, outStep),
		path: "spec.steps[0].inputs", msg: "the first step has no previous step to read"},
	{name: "source with inputs", yaml: steps(srcStep, "  - name: s2\n    inputs: [src]\n    source: {elements: [1]}\n", outStep),
		path: "spec.steps[1].inputs", msg: "a source reads no inputs"},
	{name: "join with 1 input", yaml: steps(srcStep, "  - name: j\n    join: {leftKey: record.k, rightKey: record.k, window: {type: tumbling, size: 1s}}\n", outStep),
		path: "spec.steps[1].inputs", msg: "a join step needs exactly 2 inputs (left, right), has 1"},
	{name: "join with 3 inputs", yaml: steps(srcStep, src2Step, "  - name: src3\n    source: {elements: [1]}\n",
		"  - name: j\n    inputs: [src, src2, src3]\n    join: {leftKey: record.k, rightKey: record.k, window: {type: tumbling, size: 1s}}\n", outStep),
		path: "spec.steps[3].inputs", msg: "exactly 2 inputs (left, right), has 3"},
	{name: "union with 1 input", yaml: steps(srcStep, "  - name: u\n    inputs: [src]\n    union: {}\n", outStep),
		path: "spec.steps[1].inputs", msg: "a union step needs at least 2 inputs, has 1"},
	{name: "map with 2 inputs", yaml: steps(srcStep, src2Step, "  - name: m\n    inputs: [src, src2]\n    map: record\n", outStep),
		path: "spec.steps[2].inputs", msg: "a map step needs exactly 1 input, has 2; use a union step to merge streams"},
	{name: "reading own side output", yaml: steps(srcStep,
		"  - name: w\n    inputs: [late]\n    keyBy: record.k\n    window: {type: tumbling, size: 1s, lateDataOutput: late, reduce: record}\n", outStep),
		path: "spec.steps[1].inputs[0]", msg: `step "w" cannot read its own side output`},

	// Kinds.
	{name: "two kinds in one step", yaml: steps(srcStep, "  - name: m\n    map: record\n    filter: \"true\"\n", outStep),
		path: "spec.steps[1]", msg: "sets map and filter; a step does exactly one thing"},
	{name: "step with nothing", yaml: steps(srcStep, "  - name: m\n", outStep),
		path: "spec.steps[1]", msg: `step "m" does nothing: set one of source, map`},
	{name: "keyBy with join", yaml: steps(srcStep, src2Step,
		"  - name: j\n    inputs: [src, src2]\n    keyBy: record.k\n    join: {leftKey: record.k, rightKey: record.k, window: {type: tumbling, size: 1s}}\n", outStep),
		path: "spec.steps[2].keyBy", msg: "a join keys its inputs with join.leftKey and join.rightKey; remove keyBy"},
	{name: "keyBy with map", yaml: steps(srcStep, "  - name: m\n    keyBy: record.k\n    map: record\n", outStep),
		path: "spec.steps[1].keyBy", msg: "not with map"},
	{name: "keyBy step with partitioning", yaml: steps(srcStep, "  - name: by\n    keyBy: record.k\n    partitioning: REBALANCE\n", "  - name: r\n    reduce: record\n", outStep),
		path: "spec.steps[1].partitioning", msg: "partitions by key; it cannot also set partitioning"},
	{name: "keyBy and partitioning on reduce", yaml: steps(srcStep, "  - name: r\n    keyBy: record.k\n    partitioning: BROADCAST\n    reduce: record\n", outStep),
		path: "spec.steps[1].partitioning", msg: "a step with keyBy reads its input partitioned by key; remove partitioning"},
	{name: "partitioning on join", yaml: steps(srcStep, src2Step,
		"  - name: j\n    inputs: [src, src2]\n    partitioning: REBALANCE\n    join: {leftKey: record.k, rightKey: record.k, window: {type: tumbling, size: 1s}}\n", outStep),
		path: "spec.steps[2].partitioning", msg: "a join partitions its inputs by join.leftKey and join.rightKey"},
	{name: "partitioning on source", yaml: steps("  - name: src\n    partitioning: REBALANCE\n    source: {elements: [1]}\n", outStep),
		path: "spec.steps[0].partitioning", msg: "a source reads no input, so it has no partitioning"},
	{name: "bad partitioning", yaml: steps(srcStep, "  - name: m\n    partitioning: SHUFFLE\n    map: record\n", outStep),
		path: "spec.steps[1].partitioning", msg: `must be FORWARD, REBALANCE or BROADCAST, not "SHUFFLE"`},
	{name: "HASH partitioning", yaml: steps(srcStep, "  - name: m\n    partitioning: HASH\n    map: record\n", outStep),
		path: "spec.steps[1].partitioning", msg: "set keyBy to partition by key"},
	{name: "parallelism on keyBy step", yaml: steps(srcStep, "  - name: by\n    keyBy: record.k\n    parallelism: 2\n", "  - name: r\n    reduce: record\n", outStep),
		path: "spec.steps[1].parallelism", msg: "a keyBy step runs no operator of its own, so it has no parallelism"},
	{name: "FORWARD with different parallelism", yaml: steps(srcStep, "  - name: m\n    parallelism: 2\n    partitioning: FORWARD\n    map: record\n", outStep),
		path: "spec.steps[1].partitioning", msg: `FORWARD keeps each record in its subtask and needs equal parallelism, but "src" has 1 and "m" has 2; use REBALANCE`},
	{name: "FORWARD partition step with different parallelism", yaml: steps(srcStep, "  - name: fwd\n    partitioning: FORWARD\n", "  - name: m\n    parallelism: 2\n    map: record\n", "  - name: out\n    parallelism: 2\n    sink: {print: {}}\n"),
		path: "spec.steps[1].partitioning", msg: `but "src" has 1 and "m" has 2`},
	{name: "dangling keyBy", yaml: steps(srcStep, outStep, "  - name: by\n    inputs: [src]\n    keyBy: record.k\n"),
		path: "spec.steps[2]", msg: `step "by" only partitions its input (keyBy) but no step reads it`},

	// Expressions.
	{name: "CEL syntax error", yaml: steps(srcStep, "  - name: inc\n    map: \"record.n +\"\n", outStep),
		path: "spec.steps[1].map", msg: `step "inc": CEL expression "record.n +" does not compile`},
	{name: "CEL undeclared variable", yaml: steps(srcStep, "  - name: m\n    map: \"rec.n + 1\"\n", outStep),
		path: "spec.steps[1].map", msg: "undeclared reference to 'rec'"},
	{name: "acc outside reduce", yaml: steps(srcStep, "  - name: m\n    map: \"acc\"\n", outStep),
		path: "spec.steps[1].map", msg: "undeclared reference to 'acc'"},
	{name: "filter not bool", yaml: steps(srcStep, "  - name: f\n    filter: \"'yes'\"\n", outStep),
		path: "spec.steps[1].filter", msg: `CEL expression "'yes'" has type string, want bool`},
	{name: "flatMap not list", yaml: steps(srcStep, "  - name: fm\n    flatMap: \"{'a': 1}\"\n", outStep),
		path: "spec.steps[1].flatMap", msg: "want list"},
	{name: "process not map", yaml: steps(srcStep, "  - name: p\n    keyBy: record.k\n    process: {onElement: \"[record]\"}\n", outStep),
		path: "spec.steps[1].process.onElement", msg: "want map"},
	{name: "process without onElement", yaml: steps(srcStep, "  - name: p\n    keyBy: record.k\n    process: {onTimer: \"{}\"}\n", outStep),
		path: "spec.steps[1].process.onElement", msg: "is required"},
	{name: "bad keyBy expression", yaml: steps(srcStep, "  - name: by\n    keyBy: \"record.k +\"\n", "  - name: r\n    reduce: record\n", outStep),
		path: "spec.steps[1].keyBy", msg: `step "by": CEL expression "record.k +" does not compile`},
	{name: "bad timestamp expression", yaml: steps("  - name: src\n    source: {elements: [1], timestamp: \"ts\"}\n", outStep),
		path: "spec.steps[0].source.timestamp", msg: "undeclared reference to 'ts'"},
	{name: "datagen value uses record", yaml: steps("  - name: src\n    source: {datagen: {value: record, count: 1}}\n", outStep),
		path: "spec.steps[0].source.datagen.value", msg: "undeclared reference to 'record'"},
	{name: "join select uses record", yaml: steps(srcStep, src2Step,
		"  - name: j\n    inputs: [src, src2]\n    join: {leftKey: record.k, rightKey: record.k, window: {type: tumbling, size: 1s}, select: record}\n", outStep),
		path: "spec.steps[2].join.select", msg: "undeclared reference to 'record'"},
	{name: "unknown Go function", yaml: steps(srcStep, "  - name: c\n    call: enrich\n", outStep),
		opts: Options{KnownCalls: func(name string) bool { return name == "other" }},
		path: "spec.steps[1].call", msg: `no Go function named "enrich" is registered`},

	// Keyed operators.
	{name: "reduce without keyed input", yaml: steps(srcStep, "  - name: m\n    map: record\n", "  - name: r\n    reduce: \"{'n': acc.n + record.n}\"\n", outStep),
		path: "spec.steps[2].reduce", msg: `reduce needs a keyed input, but its input "m" arrives FORWARD, not partitioned by key: set keyBy on step "r"`},
	{name: "window without keyed input", yaml: steps(srcStep, "  - name: w\n    window: {type: tumbling, size: 1s, reduce: record}\n", outStep),
		path: "spec.steps[1].window", msg: "window needs a keyed input"},
	{name: "aggregate after rebalance", yaml: steps(srcStep, "  - name: a\n    partitioning: REBALANCE\n    aggregate: {fields: [{name: c, count: true}]}\n", outStep),
		path: "spec.steps[1].aggregate", msg: "arrives REBALANCE"},
	{name: "keyed after keyBy then map", yaml: steps(srcStep, "  - name: by\n    keyBy: record.k\n", "  - name: m\n    map: record\n", "  - name: r\n    reduce: record\n", outStep),
		path: "spec.steps[3].reduce", msg: `its input "m" arrives FORWARD`},
	{name: "process with only broadcast input", yaml: steps(srcStep, "  - name: p\n    partitioning: BROADCAST\n    process: {onElement: \"{}\"}\n", outStep),
		path: "spec.steps[1].process", msg: "at least one input must be partitioned by key"},
	{name: "keyed parallelism above key groups", yaml: "parallelism: 200\n" + steps(srcStep, "  - name: r\n    keyBy: record.k\n    reduce: record\n", outStep),
		path: "spec.parallelism", msg: `step "r" reads keyed input, and keys are spread over 128 key groups, so its parallelism can be at most 128, not 200`},

	// Windows and durations.
	{name: "bad duration", yaml: steps(srcStep, "  - name: w\n    keyBy: record.k\n    window: {type: tumbling, size: 10 seconds, reduce: record}\n", outStep),
		path: "spec.steps[1].window.size", msg: `"10 seconds" is not a duration (use e.g. 500ms, 5s, 1m)`},
	{name: "negative allowedLateness", yaml: steps(srcStep, "  - name: w\n    keyBy: record.k\n    window: {type: tumbling, size: 1s, allowedLateness: \"-1s\", reduce: record}\n", outStep),
		path: "spec.steps[1].window.allowedLateness", msg: `must not be negative, not "-1s"`},
	{name: "negative window size", yaml: steps(srcStep, "  - name: w\n    keyBy: record.k\n    window: {type: tumbling, size: \"-1s\", reduce: record}\n", outStep),
		path: "spec.steps[1].window.size", msg: "must not be negative"},
	{name: "window size below a millisecond", yaml: steps(srcStep, "  - name: w\n    keyBy: record.k\n    window: {type: tumbling, size: 500us, reduce: record}\n", outStep),
		path: "spec.steps[1].window.size", msg: `must be at least 1ms (event time counts milliseconds), not "500us"`},
	{name: "tumbling without size", yaml: steps(srcStep, "  - name: w\n    keyBy: record.k\n    window: {type: tumbling, reduce: record}\n", outStep),
		path: "spec.steps[1].window.size", msg: "is required"},
	{name: "tumbling with slide", yaml: steps(srcStep, "  - name: w\n    keyBy: record.k\n    window: {type: tumbling, size: 4s, slide: 2s, reduce: record}\n", outStep),
		path: "spec.steps[1].window.slide", msg: "is not used by tumbling windows"},
	{name: "sliding without slide", yaml: steps(srcStep, "  - name: w\n    keyBy: record.k\n    window: {type: sliding, size: 4s, reduce: record}\n", outStep),
		path: "spec.steps[1].window.slide", msg: "is required"},
	{name: "sliding size not multiple of slide", yaml: steps(srcStep, "  - name: w\n    keyBy: record.k\n    window: {type: sliding, size: 10s, slide: 3s, reduce: record}\n", outStep),
		path: "spec.steps[1].window.slide", msg: "a sliding window's size (10s) must be a multiple of its slide (3s)"},
	{name: "session without gap", yaml: steps(srcStep, "  - name: w\n    keyBy: record.k\n    window: {type: session, reduce: record}\n", outStep),
		path: "spec.steps[1].window.gap", msg: "is required"},
	{name: "session with size", yaml: steps(srcStep, "  - name: w\n    keyBy: record.k\n    window: {type: session, gap: 1s, size: 1s, reduce: record}\n", outStep),
		path: "spec.steps[1].window.size", msg: "is not used by session windows"},
	{name: "bad window type", yaml: steps(srcStep, "  - name: w\n    keyBy: record.k\n    window: {type: hopping, size: 1s, reduce: record}\n", outStep),
		path: "spec.steps[1].window.type", msg: `must be tumbling, sliding or session, not "hopping"`},
	{name: "window with aggregate and reduce", yaml: steps(srcStep, "  - name: w\n    keyBy: record.k\n    window: {type: tumbling, size: 1s, reduce: record, aggregate: {fields: [{name: c, count: true}]}}\n", outStep),
		path: "spec.steps[1].window", msg: "set exactly one of aggregate and reduce"},
	{name: "session with accumulator without merge", yaml: steps(srcStep,
		"  - name: w\n    keyBy: record.k\n    window:\n      type: session\n      gap: 1s\n      aggregate: {fields: [{name: s, accumulator: {init: \"0\", add: \"acc + record.n\"}}]}\n", outStep),
		path: "spec.steps[1].window.aggregate.fields[0].accumulator.merge", msg: "session windows merge accumulators: set merge"},
	{name: "accumulator without add", yaml: steps(srcStep,
		"  - name: a\n    keyBy: record.k\n    aggregate: {fields: [{name: s, accumulator: {init: \"0\", add: \"\"}}]}\n", outStep),
		path: "spec.steps[1].aggregate.fields[0].accumulator.add", msg: "is required"},
	{name: "side output clashes with a step", yaml: steps(srcStep,
		"  - name: w\n    keyBy: record.k\n    window: {type: tumbling, size: 1s, lateDataOutput: out, reduce: record}\n", outStep),
		path: "spec.steps[1].window.lateDataOutput", msg: `"out" is also the name of spec.steps[2]; side outputs need their own names`},
	{name: "side output used twice", yaml: steps(srcStep,
		"  - name: w1\n    inputs: [src]\n    keyBy: record.k\n    window: {type: tumbling, size: 1s, lateDataOutput: late, reduce: record}\n",
		"  - name: o1\n    sink: {print: {}}\n",
		"  - name: w2\n    inputs: [src]\n    keyBy: record.k\n    window: {type: tumbling, size: 2s, lateDataOutput: late, reduce: record}\n", outStep),
		path: "spec.steps[3].window.lateDataOutput", msg: `"late" is already the lateDataOutput of spec.steps[1]`},
	{name: "bad side output name", yaml: steps(srcStep,
		"  - name: w\n    keyBy: record.k\n    window: {type: tumbling, size: 1s, lateDataOutput: Late, reduce: record}\n", outStep),
		path: "spec.steps[1].window.lateDataOutput", msg: `"Late" must be a lowercase DNS label`},
	{name: "malformedOutput on elements", yaml: steps(
		"  - name: src\n    source: {elements: [{k: a}], malformedOutput: bad}\n", outStep),
		path: "spec.steps[0].source.malformedOutput", msg: "only a files or kafka source reads outside data that can be malformed"},
	{name: "malformedOutput on datagen", yaml: steps(
		"  - name: src\n    source: {datagen: {value: seq, count: 1}, malformedOutput: bad}\n", outStep),
		path: "spec.steps[0].source.malformedOutput", msg: "elements, datagen and nexmark records are built by the job itself, so there is nothing to route"},
	{name: "bad malformedOutput name", yaml: steps(
		"  - name: src\n    source: {files: {path: in/, format: jsonl}, malformedOutput: Bad_Lines}\n", outStep),
		path: "spec.steps[0].source.malformedOutput", msg: `"Bad_Lines" must be a lowercase DNS label`},
	{name: "malformedOutput clashes with a step", yaml: steps(
		"  - name: src\n    source: {files: {path: in/, format: jsonl}, malformedOutput: out}\n", outStep),
		path: "spec.steps[0].source.malformedOutput", msg: `"out" is also the name of spec.steps[1]; side outputs need their own names`},
	{name: "malformedOutput clashes with a lateDataOutput", yaml: steps(
		"  - name: src\n    source: {files: {path: in/, format: jsonl}, malformedOutput: late}\n",
		"  - name: w\n    keyBy: record.k\n    window: {type: tumbling, size: 1s, lateDataOutput: late, reduce: record}\n", outStep),
		path: "spec.steps[1].window.lateDataOutput", msg: `"late" is already the malformedOutput of spec.steps[0]`},

	// Joins.
	{name: "join without window or interval", yaml: steps(srcStep, src2Step, "  - name: j\n    inputs: [src, src2]\n    join: {leftKey: record.k, rightKey: record.k}\n", outStep),
		path: "spec.steps[2].join", msg: "set exactly one of window (a window join) and interval (an interval join)"},
	{name: "join with window and interval", yaml: steps(srcStep, src2Step,
		"  - name: j\n    inputs: [src, src2]\n    join: {leftKey: record.k, rightKey: record.k, window: {type: tumbling, size: 1s}, interval: {lowerBound: 0s, upperBound: 1s}}\n", outStep),
		path: "spec.steps[2].join", msg: "set exactly one of window"},
	{name: "join without leftKey", yaml: steps(srcStep, src2Step, "  - name: j\n    inputs: [src, src2]\n    join: {rightKey: record.k, window: {type: tumbling, size: 1s}}\n", outStep),
		path: "spec.steps[2].join.leftKey", msg: "is required: a CEL expression giving the key"},
	{name: "blank keyBy on reduce", yaml: steps(srcStep, "  - name: r\n    keyBy: \"  \"\n    reduce: record\n", outStep),
		path: "spec.steps[1].keyBy", msg: "is required"},
	{name: "blank keyBy step", yaml: steps(srcStep, "  - name: by\n    keyBy: \" \"\n", "  - name: r\n    reduce: record\n", outStep),
		path: "spec.steps[1].keyBy", msg: "is required"},
	{name: "bad join key", yaml: steps(srcStep, src2Step, "  - name: j\n    inputs: [src, src2]\n    join: {leftKey: record.k, rightKey: \"right.k\", window: {type: tumbling, size: 1s}}\n", outStep),
		path: "spec.steps[2].join.rightKey", msg: "undeclared reference to 'right'"},
	{name: "interval lower after upper", yaml: steps(srcStep, src2Step, "  - name: j\n    inputs: [src, src2]\n    join: {leftKey: record.k, rightKey: record.k, interval: {lowerBound: 10s, upperBound: \"-5s\"}}\n", outStep),
		path: "spec.steps[2].join.interval", msg: "lowerBound (10s) must not be after upperBound (-5s)"},
	{name: "interval bound not a duration", yaml: steps(srcStep, src2Step, "  - name: j\n    inputs: [src, src2]\n    join: {leftKey: record.k, rightKey: record.k, interval: {lowerBound: \"--5s\", upperBound: 5s}}\n", outStep),
		path: "spec.steps[2].join.interval.lowerBound", msg: `"--5s" is not a duration`},
	{name: "interval bound missing", yaml: steps(srcStep, src2Step, "  - name: j\n    inputs: [src, src2]\n    join: {leftKey: record.k, rightKey: record.k, interval: {lowerBound: 0s}}\n", outStep),
		path: "spec.steps[2].join.interval.upperBound", msg: "is required"},
	{name: "join window of type session", yaml: steps(srcStep, src2Step, "  - name: j\n    inputs: [src, src2]\n    join: {leftKey: record.k, rightKey: record.k, window: {type: session, size: 1s}}\n", outStep),
		path: "spec.steps[2].join.window.type", msg: `a window join supports tumbling or sliding windows, not "session"`},
	{name: "join sliding size not multiple", yaml: steps(srcStep, src2Step, "  - name: j\n    inputs: [src, src2]\n    join: {leftKey: record.k, rightKey: record.k, window: {type: sliding, size: 5s, slide: 2s}}\n", outStep),
		path: "spec.steps[2].join.window.slide", msg: "size (5s) must be a multiple of its slide (2s)"},

	// Aggregations.
	{name: "aggregate field set twice", yaml: steps(srcStep, "  - name: a\n    keyBy: record.k\n    aggregate: {fields: [{name: c, count: true, sum: record.n}]}\n", outStep),
		path: "spec.steps[1].aggregate.fields[0]", msg: "set exactly one of count, sum, min, max, avg, accumulator"},
	{name: "aggregate field set none", yaml: steps(srcStep, "  - name: a\n    keyBy: record.k\n    aggregate: {fields: [{name: c, count: true}, {name: d}]}\n", outStep),
		path: "spec.steps[1].aggregate.fields[1]", msg: "set exactly one of count, sum"},
	{name: "aggregate without fields", yaml: steps(srcStep, "  - name: a\n    keyBy: record.k\n    aggregate: {fields: []}\n", outStep),
		path: "spec.steps[1].aggregate.fields", msg: "needs at least one field"},
	{name: "aggregate duplicate names", yaml: steps(srcStep, "  - name: a\n    keyBy: record.k\n    aggregate: {fields: [{name: c, count: true}, {name: c, sum: record.n}]}\n", outStep),
		path: "spec.steps[1].aggregate.fields[1].name", msg: `"c" is used twice`},
	{name: "aggregate reserved name", yaml: steps(srcStep, "  - name: a\n    keyBy: record.k\n    aggregate: {fields: [{name: key, count: true}]}\n", outStep),
		path: "spec.steps[1].aggregate.fields[0].name", msg: `"key" is reserved for the output record`},
	{name: "window aggregate reserved name", yaml: steps(srcStep, "  - name: w\n    keyBy: record.k\n    window: {type: tumbling, size: 1s, aggregate: {fields: [{name: windowEnd, max: record.ts}]}}\n", outStep),
		path: "spec.steps[1].window.aggregate.fields[0].name", msg: `"windowEnd" is reserved`},

	// Sources and sinks.
	{name: "BATCH with unbounded datagen", yaml: "runtimeMode: BATCH\n" + steps("  - name: clicks\n    source: {datagen: {value: seq}}\n", outStep),
		path: "spec.steps[0].source", msg: `source "clicks" is unbounded (datagen without count), but the job runs in BATCH mode`},
	{name: "source with nothing", yaml: steps("  - name: src\n    source: {timestamp: record.ts}\n", outStep),
		path: "spec.steps[0].source", msg: "set exactly one of elements, datagen, files"},
	{name: "source with two kinds", yaml: steps("  - name: src\n    source: {elements: [1], files: {path: x}}\n", outStep),
		path: "spec.steps[0].source", msg: "set exactly one of elements, datagen, files"},
	{name: "negative datagen count", yaml: steps("  - name: src\n    source: {datagen: {value: seq, count: -1}}\n", outStep),
		path: "spec.steps[0].source.datagen.count", msg: "must not be negative"},
	{name: "watermarks without timestamp", yaml: steps("  - name: src\n    source: {elements: [1], watermarks: {maxOutOfOrderness: 1s}}\n", outStep),
		path: "spec.steps[0].source.watermarks", msg: "watermarks need event time: set source.timestamp"},
	{name: "bad idleness", yaml: steps("  - name: src\n    source: {elements: [1], timestamp: \"1\", watermarks: {idleness: soon}}\n", outStep),
		path: "spec.steps[0].source.watermarks.idleness", msg: `"soon" is not a duration`},
	{name: "invalid elements JSON", yaml: steps("  - name: src\n    source: {elements: [1, 2]}\n", outStep),
		mutate: func(j *spec.Job) { j.Steps[0].Source.Elements[1].Raw = []byte(`{"a": `) },
		path:   "spec.steps[0].source.elements[1]", msg: "is not valid JSON"},
	{name: "empty elements Value", yaml: steps("  - name: src\n    source: {elements: [1]}\n", outStep),
		mutate: func(j *spec.Job) { j.Steps[0].Source.Elements[0].Raw = nil },
		path:   "spec.steps[0].source.elements[0]", msg: "is empty; write a JSON value"},
	{name: "bad file format", yaml: steps("  - name: src\n    source: {files: {path: x, format: xml}}\n", outStep),
		path: "spec.steps[0].source.files.format", msg: `must be text, jsonl, csv or parquet, not "xml"`},
	{name: "csv sink without columns", yaml: steps(srcStep, "  - name: out\n    sink: {files: {path: out/, format: csv}}\n"),
		path: "spec.steps[1].sink.files.csv.columns", msg: "a csv sink needs the columns to write"},
	{name: "csv delimiter too long", yaml: steps(srcStep, "  - name: out\n    sink: {files: {path: out/, format: csv, csv: {columns: [a], delimiter: \";;\"}}}\n"),
		path: "spec.steps[1].sink.files.csv.delimiter", msg: "must be a single character"},
	{name: "sink with two kinds", yaml: steps(srcStep, "  - name: out\n    sink: {print: {}, discard: {}}\n"),
		path: "spec.steps[1].sink", msg: "set exactly one of print, files, discard, call"},
	{name: "no sink", yaml: steps(srcStep, "  - name: m\n    map: record\n"),
		path: "spec.steps", msg: "the job has no sink step"},
	{name: "step output not read", yaml: steps(srcStep, outStep, "  - name: extra\n    inputs: [src]\n    map: record\n"),
		path: "spec.steps[2]", msg: `the output of step "extra" is not read by any step; end it in a sink`},
	{name: "main output not read", yaml: steps(srcStep,
		"  - name: w\n    keyBy: record.k\n    window: {type: tumbling, size: 1s, lateDataOutput: late, reduce: record}\n",
		"  - name: late-out\n    inputs: [late]\n    sink: {print: {}}\n"),
		path: "spec.steps[1]", msg: `only the side output of step "w" is read`},
}

func TestInvalidJobs(t *testing.T) {
	if len(invalidJobs) < 35 {
		t.Fatalf("only %d invalid jobs", len(invalidJobs))
	}
	names := map[string]bool{}
	for _, c := range invalidJobs {
		if names[c.name] {
			t.Fatalf("case %q twice", c.name)
		}
		names[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			job := parseJob(t, c.yaml)
			if c.mutate != nil {
				c.mutate(job)
			}
			g, err := Build(job, c.opts)
			if err == nil {
				t.Fatalf("accepted; plan:\n%s", FromGraph(g))
			}
			if g != nil {
				t.Error("Build returned a graph with an error")
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Errors) == 0 {
				t.Fatalf("error is %T %v, want a *ValidationError", err, err)
			}
			found := false
			for _, e := range ve.Errors {
				if e.Path == c.path && strings.Contains(e.Msg, c.msg) {
					found = true
				}
				if !strings.HasPrefix(e.Path, "spec") && !strings.HasPrefix(e.Path, "options.") {
					t.Errorf("path %q is not a field path", e.Path)
				}
				if e.Msg == "" {
					t.Errorf("empty message at %s", e.Path)
				}
			}
			if !found {
				t.Errorf("want an error at %s containing %q, got:\n%v", c.path, c.msg, err)
			} else if len(ve.Errors) > 1 && !c.more {
				t.Errorf("want only the error at %s, got:\n%v", c.path, err)
			}
			if !strings.HasPrefix(err.Error(), "invalid job: ") || !strings.Contains(err.Error(), c.path+": ") {
				t.Errorf("Error() = %q", err.Error())
			}
			// Validate and New agree with Build.
			if err2 := Validate(job, c.opts); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("Validate = %v", err2)
			}
			if p, err3 := New(job, c.opts); p != nil || err3 == nil || err3.Error() != err.Error() {
				t.Errorf("New = %v, %v", p, err3)
			}
		})
	}
}

// The CEL error names the step and quotes the expression, so a user with
// many steps finds the one to fix.
func TestCELErrorNamesStepAndExpression(t *testing.T) {
	err := Validate(parseJob(t, steps(srcStep, "  - name: parse\n    map: \"{'n': int(record.x) +}\"\n", outStep)), Options{})
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Errors) != 1 {
		t.Fatalf("err = %v", err)
	}
	e := ve.Errors[0]
	if e.Path != "spec.steps[1].map" || !strings.Contains(e.Msg, `step "parse"`) || !strings.Contains(e.Msg, `"{'n': int(record.x) +}"`) {
		t.Errorf("error = %v", e)
	}
	if strings.Contains(e.Msg, "\n") {
		t.Errorf("message spans lines: %q", e.Msg)
	}
}

// Validation goes on after the first problem wherever the later checks do not
// depend on the earlier ones, so a user fixes a manifest in one round.
func TestMultipleErrorsReported(t *testing.T) {
	t.Run("settings and names", func(t *testing.T) {
		err := Validate(parseJob(t, `
runtimeMode: SOMETIMES
parallelism: 5000
batchProcessingTime: MAYBE
steps:
  - name: Src
    source: {elements: [1]}
  - name: m
    parallelism: 0
    map: record
  - name: m
    partitioning: EVERYWHERE
    filter: "true"
  - name: w
    keyBy: record
    window: {type: tumbling, size: 1s, lateDataOutput: m, reduce: record}
  - name: out
    sink: {print: {}}
`), Options{})
		wantErrors(t, err,
			"spec.runtimeMode", "spec.batchProcessingTime", "spec.parallelism",
			"spec.steps[0].name", "spec.steps[1].parallelism",
			"spec.steps[2].name", "spec.steps[2].partitioning",
			"spec.steps[3].window.lateDataOutput")
		if !strings.HasPrefix(err.Error(), "invalid job: 8 problems:\n  - spec.runtimeMode: ") {
			t.Errorf("Error() = %s", err)
		}
	})
	t.Run("inputs", func(t *testing.T) {
		err := Validate(parseJob(t, steps(srcStep,
			"  - name: a\n    inputs: [nope]\n    map: record\n",
			"  - name: b\n    inputs: [b]\n    map: record\n",
			"  - name: j\n    join: {leftKey: record, rightKey: record, window: {type: tumbling, size: 1s}}\n",
			outStep)), Options{})
		wantErrors(t, err, "spec.steps[1].inputs[0]", "spec.steps[2].inputs[0]", "spec.steps[3].inputs")
	})
	t.Run("expressions and options", func(t *testing.T) {
		err := Validate(parseJob(t, `
runtimeMode: BATCH
steps:
  - name: src
    source: {datagen: {value: "seq +"}, watermarks: {idleness: 1s}}
  - name: f
    filter: "1"
  - name: w
    keyBy: record.k
    window: {type: sliding, size: 10s, slide: 4s, aggregate: {fields: [{name: key, count: true}, {name: s}]}}
  - name: r
    reduce: record
  - name: out
    sink: {files: {path: out/, format: csv}}
`), Options{})
		wantErrors(t, err,
			"spec.steps[0].source.datagen.value", "spec.steps[0].source.watermarks",
			"spec.steps[1].filter",
			"spec.steps[2].window.slide", "spec.steps[2].window.aggregate.fields[0].name", "spec.steps[2].window.aggregate.fields[1]",
			"spec.steps[4].sink.files.csv.columns",
			"spec.steps[3].reduce")
	})
	t.Run("end of the dataflow", func(t *testing.T) {
		err := Validate(parseJob(t, `
runtimeMode: BATCH
steps:
  - name: gen
    source: {datagen: {value: seq}}
  - name: out
    sink: {print: {}}
  - name: side
    inputs: [gen]
    map: record
  - name: side2
    inputs: [gen]
    filter: "true"
`), Options{})
		wantErrors(t, err, "spec.steps[0].source", "spec.steps[2]", "spec.steps[3]")
	})
}

// wantErrorAt fails t unless err is a *ValidationError with an error at
// path whose message contains msg; with only, it must be the only error.
func wantErrorAt(t *testing.T, err error, path, msg string, only bool) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want a validation error at %s", err, path)
	}
	for _, e := range ve.Errors {
		if e.Path == path && strings.Contains(e.Msg, msg) {
			if only && len(ve.Errors) > 1 {
				t.Fatalf("errors %v, want only %s: ...%s...", ve.Errors, path, msg)
			}
			return
		}
	}
	t.Fatalf("errors %v, want %s: ...%s...", ve.Errors, path, msg)
}

func wantErrors(t *testing.T, err error, paths ...string) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v", err)
	}
	var got []string
	for _, e := range ve.Errors {
		got = append(got, e.Path)
	}
	if !reflect.DeepEqual(got, paths) {
		t.Errorf("error paths:\n got %q\nwant %q\n%v", got, paths, err)
	}
}

// Error order must not depend on map iteration: the same job gives the same
// error text every time.
func TestErrorOrderDeterministic(t *testing.T) {
	var b strings.Builder
	b.WriteString("steps:\n" + srcStep)
	for i := 0; i < 12; i++ {
		fmt.Fprintf(&b, "  - name: w%d\n    inputs: [src]\n    keyBy: record.k\n    window: {type: tumbling, size: 1s, lateDataOutput: s%d, reduce: record}\n", i, i)
		fmt.Fprintf(&b, "  - name: s%d\n    sink: {print: {}}\n", i)
	}
	job := parseJob(t, b.String())
	first := Validate(job, Options{})
	if first == nil {
		t.Fatal("accepted")
	}
	var ve *ValidationError
	errors.As(first, &ve)
	if len(ve.Errors) != 12 {
		t.Fatalf("%d errors, want 12:\n%v", len(ve.Errors), first)
	}
	for i, e := range ve.Errors {
		if want := fmt.Sprintf("spec.steps[%d].window.lateDataOutput", 1+2*i); e.Path != want {
			t.Errorf("error %d at %s, want %s", i, e.Path, want)
		}
	}
	for i := 0; i < 20; i++ {
		if again := Validate(job, Options{}); again.Error() != first.Error() {
			t.Fatalf("run %d differs:\n%v\nvs\n%v", i, again, first)
		}
	}
}

// A bad keyBy expression read by several steps is reported once.
func TestNoDuplicateErrors(t *testing.T) {
	err := Validate(parseJob(t, steps(srcStep,
		"  - name: by\n    keyBy: \"record.k +\"\n",
		"  - name: r1\n    inputs: [by]\n    reduce: record\n",
		"  - name: o1\n    sink: {print: {}}\n",
		"  - name: r2\n    inputs: [by]\n    reduce: record\n",
		outStep)), Options{})
	wantErrors(t, err, "spec.steps[1].keyBy")
}

func TestValidJobsPass(t *testing.T) {
	for name, src := range map[string]string{
		"negative interval bounds": steps(srcStep, src2Step,
			"  - name: j\n    inputs: [src, src2]\n    join: {leftKey: record.k, rightKey: record.k, interval: {lowerBound: \"-5s\", upperBound: \"-1s\"}}\n", outStep),
		"sliding join": steps(srcStep, src2Step,
			"  - name: j\n    inputs: [src, src2]\n    join: {leftKey: record.k, rightKey: record.k, window: {type: sliding, size: 4s, slide: 2s}}\n", outStep),
		"session with merge": steps(srcStep,
			"  - name: w\n    keyBy: record.k\n    window:\n      type: session\n      gap: 1s\n      aggregate: {fields: [{name: s, accumulator: {init: \"0\", add: \"acc + record.n\", merge: \"a + b\", result: \"acc * 2\"}}]}\n", outStep),
		"keyed parallelism 128":    "parallelism: 128\n" + steps(srcStep, "  - name: r\n    keyBy: record.k\n    reduce: record\n", outStep),
		"unkeyed parallelism 1024": "parallelism: 1024\n" + steps(srcStep, "  - name: m\n    map: record\n", outStep),
		"known Go function":        steps(srcStep, "  - name: c\n    call: enrich\n", "  - name: out\n    sink: {call: mine}\n"),
		"csv sink with columns":    steps(srcStep, "  - name: out\n    sink: {files: {path: out/, format: csv, csv: {columns: [k, n], delimiter: \";\"}}}\n"),
		"batch with bounded datagen and ignore": "runtimeMode: BATCH\nbatchProcessingTime: IGNORE\n" + steps("  - name: src\n    source: {datagen: {value: \"{'k': seq}\", count: 0, ratePerSecond: 10}}\n",
			"  - name: p\n    keyBy: record.k\n    process: {onElement: \"{'emit': [record], 'processingTimers': [1]}\", onTimer: \"{'emit': [{'k': key, 't': timer, 'd': timeDomain}]}\"}\n", outStep),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(parseJob(t, src), Options{KnownCalls: func(n string) bool { return n == "enrich" }})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNilJob(t *testing.T) {
	err := Validate(nil, Options{})
	wantFieldError(t, err, "spec", "is empty")
}

// FuzzBuild feeds arbitrary manifests to the planner: it must refuse or plan,
// never panic, and a plan it returns must hold the stage invariants.
func FuzzBuild(f *testing.F) {
	for _, c := range invalidJobs {
		f.Add(c.yaml)
	}
	f.Add(wordcount)
	f.Fuzz(func(t *testing.T, src string) {
		job, ok := fuzzJob(src)
		if !ok {
			return
		}
		p, err := New(job, Options{})
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Errors) == 0 {
				t.Fatalf("error %T %v is not a ValidationError", err, err)
			}
			return
		}
		checkStageOrder(t, p)
		_ = p.String()
		_ = p.DOT()
	})
}

func fuzzJob(src string) (*spec.Job, bool) {
	var job spec.Job
	if err := yaml.Unmarshal([]byte(src), &job); err != nil {
		return nil, false
	}
	return &job, true
}
