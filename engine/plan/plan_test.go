package plan

import (
	"errors"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/flinkjob/flinkjob/engine/spec"
)

// parseJob reads the spec part of a FlinkJob manifest (runtimeMode,
// parallelism, steps) the way the CLI and the API server do: YAML to JSON to
// spec.Job. Unknown fields fail the test so typos in test jobs do not pass
// silently.
func parseJob(t testing.TB, src string) *spec.Job {
	t.Helper()
	var job spec.Job
	if err := yaml.UnmarshalStrict([]byte(src), &job); err != nil {
		t.Fatalf("test job does not parse: %v\n%s", err, src)
	}
	return &job
}

// mustPlan plans a job that must be valid.
func mustPlan(t testing.TB, src string) *Plan {
	t.Helper()
	p, err := New(parseJob(t, src), Options{})
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	checkStageOrder(t, p)
	return p
}

// checkStageOrder checks the invariants every plan must hold: stage IDs are
// their positions, edges are numbered in order, every edge goes from a lower
// stage to a higher one and is listed on both of its stages, each stage's
// chain is linked by FORWARD edges of equal parallelism, and every operator is
// in exactly one stage.
func checkStageOrder(t testing.TB, p *Plan) {
	t.Helper()
	seen := map[*Node]int{}
	for i, s := range p.Stages {
		if s.ID != i {
			t.Errorf("stage %q has ID %d at position %d", s.Name, s.ID, i)
		}
		for j, n := range s.Chain {
			if k, dup := seen[n]; dup {
				t.Errorf("step %q is in stages %d and %d", n.Name, k, s.ID)
			}
			seen[n] = s.ID
			if n.Parallelism != s.Parallelism {
				t.Errorf("stage %d: step %q has parallelism %d, stage %d", s.ID, n.Name, n.Parallelism, s.Parallelism)
			}
			if j > 0 {
				if len(n.Inputs) != 1 || n.Inputs[0].From != s.Chain[j-1] || n.Inputs[0].Partitioning != spec.Forward {
					t.Errorf("stage %d: step %q is chained but does not read %q FORWARD", s.ID, n.Name, s.Chain[j-1].Name)
				}
			}
		}
		for _, e := range s.Inputs {
			if e.To != s {
				t.Errorf("stage %d lists input edge %d going to stage %d", s.ID, e.ID, e.To.ID)
			}
		}
		for _, e := range s.Outputs {
			if e.From != s {
				t.Errorf("stage %d lists output edge %d coming from stage %d", s.ID, e.ID, e.From.ID)
			}
		}
	}
	if len(seen) != len(p.Graph.Nodes) {
		t.Errorf("%d operators in stages, %d in the graph", len(seen), len(p.Graph.Nodes))
	}
	for i, e := range p.Edges {
		if e.ID != i {
			t.Errorf("edge %d at position %d", e.ID, i)
		}
		if e.From.ID >= e.To.ID {
			t.Errorf("edge %d goes from stage %d to stage %d: stages must be in topological order", e.ID, e.From.ID, e.To.ID)
		}
		if e.To.Head().Inputs[e.InputIndex] != e.Input {
			t.Errorf("edge %d: InputIndex %d is not the head's input it carries", e.ID, e.InputIndex)
		}
		if e.Input.From != e.FromNode || e.Input.Output != e.Output || e.Input.Partitioning != e.Partitioning {
			t.Errorf("edge %d disagrees with the input it carries", e.ID)
		}
		if seen[e.FromNode] != e.From.ID {
			t.Errorf("edge %d: producer %q is not in stage %d", e.ID, e.FromNode.Name, e.From.ID)
		}
	}
}

func stageNames(p *Plan) []string {
	var out []string
	for _, s := range p.Stages {
		out = append(out, s.Name)
	}
	return out
}

func equal(a, b []string) bool {
	return strings.Join(a, "|") == strings.Join(b, "|")
}

func wantStages(t *testing.T, p *Plan, want ...string) {
	t.Helper()
	if got := stageNames(p); !equal(got, want) {
		t.Fatalf("stages = %q, want %q\n%s", got, want, p)
	}
}

// wantEdge finds the edge into stage `to` from step `from` and checks it.
func wantEdge(t *testing.T, p *Plan, from, to string, idx int, part spec.Partitioning, key string) *Edge {
	t.Helper()
	for _, e := range p.Edges {
		if e.FromNode.Name == from && e.To.Head().Name == to && e.InputIndex == idx {
			if e.Partitioning != part {
				t.Errorf("edge %s -> %s: partitioning %s, want %s", from, to, e.Partitioning, part)
			}
			if e.Input.KeySrc != key {
				t.Errorf("edge %s -> %s: key %q, want %q", from, to, e.Input.KeySrc, key)
			}
			if (part == spec.Hash) != (e.Input.Key != nil) {
				t.Errorf("edge %s -> %s: compiled key set = %v for %s", from, to, e.Input.Key != nil, part)
			}
			return e
		}
	}
	t.Fatalf("no edge %s -> %s (input %d)\n%s", from, to, idx, p)
	return nil
}

const wordcount = `
runtimeMode: BATCH
parallelism: 2
steps:
  - name: lines
    source:
      files: {path: in/, format: text}
  - name: words
    flatMap: "record.line.split(' ').map(w, {'word': w, 'n': 1})"
  - name: counts
    keyBy: record.word
    reduce: "{'word': acc.word, 'n': acc.n + record.n}"
  - name: out
    parallelism: 1
    sink:
      files: {path: out/, format: jsonl}
`

func TestChainOneToOne(t *testing.T) {
	p := mustPlan(t, `
parallelism: 3
steps:
  - name: src
    source: {datagen: {value: "{'n': seq}", count: 10}}
  - name: inc
    map: "{'n': record.n + 1}"
  - name: even
    filter: "record.n % 2 == 0"
  - name: twice
    flatMap: "[record, record]"
  - name: fn
    call: enrich
  - name: out
    sink: {print: {}}
`)
	wantStages(t, p, "src->inc->even->twice->fn->out")
	if len(p.Edges) != 0 {
		t.Errorf("a single chain has no shuffles, got %d edges", len(p.Edges))
	}
	s := p.Stages[0]
	if !s.IsSource() || s.Keyed() || s.Parallelism != 3 || s.Head().Name != "src" || s.Tail().Name != "out" {
		t.Errorf("stage = %+v", s)
	}
	if p.StageOf("twice") != s || p.StageOf("nope") != nil {
		t.Error("StageOf")
	}
	if p.Mode != spec.Streaming {
		t.Errorf("runtimeMode unset: mode %s, want STREAMING", p.Mode)
	}
}

func TestChainModeDefaultIsStreaming(t *testing.T) {
	p := mustPlan(t, `
steps:
  - name: src
    source: {elements: [1, 2]}
  - name: out
    sink: {discard: {}}
`)
	if p.Mode != spec.Streaming {
		t.Errorf("mode = %s, want STREAMING (the default, even with bounded sources)", p.Mode)
	}
}

func TestCutAtKeyByStep(t *testing.T) {
	p := mustPlan(t, `
parallelism: 2
steps:
  - name: lines
    source: {files: {path: in/}}
  - name: words
    flatMap: "record.line.split(' ').map(w, {'word': w, 'n': 1})"
  - name: by-word
    keyBy: record.word
  - name: counts
    reduce: "{'word': acc.word, 'n': acc.n + record.n}"
  - name: out
    sink: {print: {}}
`)
	// The keyBy step is virtual: it is no operator, only the edge's key.
	wantStages(t, p, "lines->words", "counts->out")
	if p.Graph.Node("by-word") != nil {
		t.Error("a keyBy step must not be an operator of the graph")
	}
	e := wantEdge(t, p, "words", "counts", 0, spec.Hash, "record.word")
	if !e.To.Keyed() || e.From.Keyed() {
		t.Errorf("keyed: from %v to %v", e.From.Keyed(), e.To.Keyed())
	}
	if len(p.Edges) != 1 {
		t.Errorf("%d edges, want 1\n%s", len(p.Edges), p)
	}
}

func TestCutAtKeyByOnReduce(t *testing.T) {
	p := mustPlan(t, wordcount)
	// counts (parallelism 2) -> out (parallelism 1): the parallelism change
	// cuts the chain with a REBALANCE.
	wantStages(t, p, "lines->words", "counts", "out")
	wantEdge(t, p, "words", "counts", 0, spec.Hash, "record.word")
	wantEdge(t, p, "counts", "out", 0, spec.Rebalance, "")
	if p.Stages[2].Parallelism != 1 || p.Stages[1].Parallelism != 2 {
		t.Errorf("parallelism: %d, %d", p.Stages[1].Parallelism, p.Stages[2].Parallelism)
	}
}

func TestCutAtKeyByThenOneToOneChainsAfterKeyedOperator(t *testing.T) {
	p := mustPlan(t, `
steps:
  - name: src
    source: {elements: [{k: a}]}
  - name: by
    keyBy: record.k
  - name: agg
    aggregate: {fields: [{name: n, count: true}]}
  - name: fmt
    map: "{'k': record.key, 'n': record.n}"
  - name: out
    sink: {print: {}}
`)
	wantStages(t, p, "src", "agg->fmt->out")
	wantEdge(t, p, "src", "agg", 0, spec.Hash, "record.k")
}

func TestCutAtRebalance(t *testing.T) {
	for name, src := range map[string]string{
		"on the step": `
steps:
  - name: src
    source: {elements: [1]}
  - name: m
    partitioning: REBALANCE
    map: record
  - name: out
    sink: {print: {}}
`,
		"partition step": `
steps:
  - name: src
    source: {elements: [1]}
  - name: spread
    partitioning: REBALANCE
  - name: m
    map: record
  - name: out
    sink: {print: {}}
`,
	} {
		t.Run(name, func(t *testing.T) {
			p := mustPlan(t, src)
			wantStages(t, p, "src", "m->out")
			wantEdge(t, p, "src", "m", 0, spec.Rebalance, "")
		})
	}
}

func TestCutAtBroadcast(t *testing.T) {
	p := mustPlan(t, `
parallelism: 4
steps:
  - name: src
    parallelism: 1
    source: {elements: [1]}
  - name: m
    partitioning: BROADCAST
    map: record
  - name: out
    sink: {print: {}}
`)
	wantStages(t, p, "src", "m->out")
	wantEdge(t, p, "src", "m", 0, spec.Broadcast, "")
}

func TestBroadcastIntoKeyedProcess(t *testing.T) {
	p := mustPlan(t, `
steps:
  - name: events
    source: {elements: [{u: a}]}
  - name: rules
    source: {elements: [{limit: 3}]}
  - name: by-user
    inputs: [events]
    keyBy: record.u
  - name: all-rules
    inputs: [rules]
    partitioning: BROADCAST
  - name: check
    inputs: [by-user, all-rules]
    process: {onElement: "{'emit': [record]}"}
  - name: out
    sink: {print: {}}
`)
	wantStages(t, p, "events", "rules", "check->out")
	wantEdge(t, p, "events", "check", 0, spec.Hash, "record.u")
	wantEdge(t, p, "rules", "check", 1, spec.Broadcast, "")
}

func TestParallelismChange(t *testing.T) {
	p := mustPlan(t, `
parallelism: 2
steps:
  - name: src
    source: {elements: [1]}
  - name: wide
    parallelism: 3
    map: record
  - name: out
    parallelism: 3
    sink: {print: {}}
`)
	// Parallelism differs and nothing is declared: REBALANCE, as Flink does.
	wantStages(t, p, "src", "wide->out")
	wantEdge(t, p, "src", "wide", 0, spec.Rebalance, "")

	// FORWARD declared across a parallelism change is refused.
	err := Validate(parseJob(t, `
parallelism: 2
steps:
  - name: src
    source: {elements: [1]}
  - name: wide
    parallelism: 3
    partitioning: FORWARD
    map: record
  - name: out
    sink: {print: {}}
`), Options{})
	wantFieldError(t, err, "spec.steps[1].partitioning", `FORWARD keeps each record in its subtask and needs equal parallelism, but "src" has 2 and "wide" has 3`)
}

func TestForwardDeclaredWithEqualParallelismChains(t *testing.T) {
	p := mustPlan(t, `
steps:
  - name: src
    source: {elements: [1]}
  - name: m
    partitioning: FORWARD
    map: record
  - name: out
    sink: {print: {}}
`)
	wantStages(t, p, "src->m->out")
}

func TestFanOutDoesNotChain(t *testing.T) {
	p := mustPlan(t, `
steps:
  - name: src
    source: {elements: [1, 2]}
  - name: a
    inputs: [src]
    map: "record + 1"
  - name: b
    inputs: [src]
    filter: "record > 1"
  - name: both
    inputs: [a, b]
    union: {}
  - name: out
    sink: {print: {}}
`)
	// src has two consumers: neither is chained to it; union has two inputs.
	wantStages(t, p, "src", "a", "b", "both->out")
	wantEdge(t, p, "src", "a", 0, spec.Forward, "")
	wantEdge(t, p, "src", "b", 0, spec.Forward, "")
	wantEdge(t, p, "a", "both", 0, spec.Forward, "")
	wantEdge(t, p, "b", "both", 1, spec.Forward, "")
	if src := p.Graph.Node("src"); src.Consumers != 2 {
		t.Errorf("src.Consumers = %d", src.Consumers)
	}
	if n := len(p.Stages[0].Outputs); n != 2 {
		t.Errorf("stage src has %d outputs", n)
	}
}

func TestFanOutThroughKeyBy(t *testing.T) {
	p := mustPlan(t, `
steps:
  - name: src
    source: {elements: [{k: 1, v: 2}]}
  - name: by
    keyBy: record.k
  - name: sum
    inputs: [by]
    aggregate: {fields: [{name: total, sum: record.v}]}
  - name: out1
    sink: {print: {}}
  - name: most
    inputs: [by]
    reduce: "record.v > acc.v ? record : acc"
  - name: out2
    sink: {print: {}}
`)
	wantStages(t, p, "src", "sum->out1", "most->out2")
	wantEdge(t, p, "src", "sum", 0, spec.Hash, "record.k")
	wantEdge(t, p, "src", "most", 0, spec.Hash, "record.k")
}

func TestSideOutput(t *testing.T) {
	p := mustPlan(t, `
steps:
  - name: readings
    source:
      elements: [{sensor: a, temp: 20, ts: 1000}]
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 5s}
  - name: per-sensor
    keyBy: record.sensor
    window:
      type: tumbling
      size: 10s
      lateDataOutput: late-readings
      aggregate: {fields: [{name: readings, count: true}]}
  - name: out
    sink: {print: {}}
  - name: late
    inputs: [late-readings]
    sink: {print: {prefix: "late: "}}
`)
	wantStages(t, p, "readings", "per-sensor", "out", "late")
	wantEdge(t, p, "readings", "per-sensor", 0, spec.Hash, "record.sensor")
	main := wantEdge(t, p, "per-sensor", "out", 0, spec.Forward, "")
	side := wantEdge(t, p, "per-sensor", "late", 0, spec.Forward, "")
	if main.Output != "" || side.Output != "late-readings" {
		t.Errorf("outputs: main %q, side %q", main.Output, side.Output)
	}
	if !strings.Contains(p.String(), "per-sensor[late-readings] -> FORWARD") {
		t.Errorf("String does not show the side output:\n%s", p)
	}
}

func TestSideOutputUnreadIsFine(t *testing.T) {
	mustPlan(t, `
steps:
  - name: src
    source: {elements: [{k: a, ts: 1}], timestamp: record.ts}
  - name: w
    keyBy: record.k
    window: {type: session, gap: 1s, lateDataOutput: late, reduce: record}
  - name: out
    sink: {print: {}}
`)
}

func TestJoinInputs(t *testing.T) {
	p := mustPlan(t, `
parallelism: 2
steps:
  - name: orders
    source: {elements: [{id: 1, ts: 1}], timestamp: record.ts}
  - name: payments
    source: {elements: [{order: 1, ts: 2}], timestamp: record.ts}
  - name: paid
    inputs: [orders, payments]
    join:
      leftKey: record.id
      rightKey: record.order
      interval: {lowerBound: "-1s", upperBound: 30s}
      select: "{'id': key, 'l': left, 'r': right}"
  - name: out
    parallelism: 1
    sink: {print: {}}
`)
	wantStages(t, p, "orders", "payments", "paid", "out")
	wantEdge(t, p, "orders", "paid", 0, spec.Hash, "record.id")
	wantEdge(t, p, "payments", "paid", 1, spec.Hash, "record.order")
	wantEdge(t, p, "paid", "out", 0, spec.Rebalance, "")
	paid := p.StageOf("paid")
	if !paid.Keyed() || len(paid.Inputs) != 2 || paid.Inputs[0].InputIndex != 0 || paid.Inputs[1].InputIndex != 1 {
		t.Errorf("join stage inputs: %+v", paid.Inputs)
	}
	if p.Graph.Node("paid").Exprs.Select == nil {
		t.Error("join select not compiled")
	}
}

func TestJoinInputOrderFollowsManifestNotSpecOrder(t *testing.T) {
	// The right input is declared first in steps: InputIndex follows inputs.
	p := mustPlan(t, `
steps:
  - name: right
    source: {elements: [{k: 1}]}
  - name: left
    source: {elements: [{k: 1}]}
  - name: j
    inputs: [left, right]
    join: {leftKey: record.k, rightKey: "record.k + 0", window: {type: tumbling, size: 1s}}
  - name: out
    sink: {print: {}}
`)
	wantEdge(t, p, "left", "j", 0, spec.Hash, "record.k")
	wantEdge(t, p, "right", "j", 1, spec.Hash, "record.k + 0")
	if in := p.StageOf("j").Inputs; in[0].FromNode.Name != "left" || in[1].FromNode.Name != "right" {
		t.Errorf("stage inputs are not in the head's input order: %s, %s", in[0].FromNode.Name, in[1].FromNode.Name)
	}
}

func TestUnionInputs(t *testing.T) {
	p := mustPlan(t, `
parallelism: 2
steps:
  - name: a
    source: {elements: [1]}
  - name: b
    parallelism: 1
    source: {elements: [2]}
  - name: c
    source: {elements: [3]}
  - name: by
    inputs: [c]
    keyBy: record
  - name: all
    inputs: [a, b, by]
    union: {}
  - name: out
    sink: {print: {}}
`)
	wantStages(t, p, "a", "b", "c", "all->out")
	wantEdge(t, p, "a", "all", 0, spec.Forward, "")
	wantEdge(t, p, "b", "all", 1, spec.Rebalance, "")
	wantEdge(t, p, "c", "all", 2, spec.Hash, "record")
	if p.StageOf("all").Keyed() {
		t.Error("a union is not a keyed operator")
	}
}

func TestStageOrderWithStepsOutOfOrder(t *testing.T) {
	// Steps may be listed in any order as long as inputs are named.
	p := mustPlan(t, `
steps:
  - name: out
    inputs: [counts]
    sink: {print: {}}
  - name: counts
    inputs: [src]
    keyBy: record.k
    reduce: record
  - name: src
    source: {elements: [{k: 1}]}
`)
	wantStages(t, p, "src", "counts->out")
	var order []string
	for _, n := range p.Graph.Nodes {
		order = append(order, n.Name)
	}
	if !equal(order, []string{"src", "counts", "out"}) {
		t.Errorf("topological order = %v", order)
	}
}

func TestStageOrderComplex(t *testing.T) {
	p := mustPlan(t, `
parallelism: 2
steps:
  - name: s1
    source: {elements: [{k: 1, ts: 1}], timestamp: record.ts}
  - name: s2
    source: {elements: [{k: 1, ts: 1}], timestamp: record.ts}
  - name: u
    inputs: [s1, s2]
    union: {}
  - name: w
    keyBy: record.k
    window: {type: sliding, size: 4s, slide: 2s, lateDataOutput: too-late, aggregate: {fields: [{name: n, count: true}]}}
  - name: j
    inputs: [w, s2]
    join: {leftKey: record.key, rightKey: record.k, window: {type: tumbling, size: 4s}}
  - name: late-count
    inputs: [too-late]
    keyBy: record.k
    reduce: acc
  - name: all
    inputs: [j, late-count]
    union: {}
  - name: out
    parallelism: 1
    sink: {print: {}}
`)
	if len(p.Edges) < 8 {
		t.Errorf("expected many shuffles, got\n%s", p)
	}
	// checkStageOrder (in mustPlan) verified that every edge goes forward.
}

func TestPlanStringGolden(t *testing.T) {
	p := mustPlan(t, wordcount)
	want := `mode: BATCH
stages: 3

stage 0 "lines->words" parallelism=2
  source     lines
  reads      {line}
  flatMap    words
  out edge 0 to stage 1: words -> HASH(record.word)

stage 1 "counts" parallelism=2 keyed
  reduce     counts
  in  edge 0 from stage 0: words -> HASH(record.word) (input 0)
  out edge 1 to stage 2: counts -> REBALANCE

stage 2 "out" parallelism=1
  sink       out
  in  edge 1 from stage 1: counts -> REBALANCE (input 0)
`
	if got := p.String(); got != want {
		t.Errorf("Plan.String():\n%s\nwant:\n%s", got, want)
	}
}

func TestPlanDOT(t *testing.T) {
	p := mustPlan(t, wordcount)
	dot := p.DOT()
	if !strings.HasPrefix(dot, "digraph plan {\n") || !strings.HasSuffix(dot, "}\n") {
		t.Errorf("not a digraph:\n%s", dot)
	}
	if strings.Count(dot, "{") != strings.Count(dot, "}") {
		t.Errorf("unbalanced braces:\n%s", dot)
	}
	if strings.Count(dot, "\"")%2 != 0 {
		t.Errorf("unbalanced quotes:\n%s", dot)
	}
	for i := range p.Stages {
		if c := strings.Count(dot, "subgraph cluster_"+string(rune('0'+i))+" {"); c != 1 {
			t.Errorf("cluster_%d appears %d times", i, c)
		}
	}
	if c := strings.Count(dot, "subgraph cluster_"); c != len(p.Stages) {
		t.Errorf("%d clusters for %d stages", c, len(p.Stages))
	}
	if c := strings.Count(dot, "style=dashed"); c != len(p.Edges) {
		t.Errorf("%d dashed edges for %d shuffles:\n%s", c, len(p.Edges), dot)
	}
	for _, want := range []string{
		`"lines" -> "words";`, // chained call: plain arrow inside the cluster
		`"words" -> "counts" [style=dashed, label="HASH\nrecord.word"];`,
		`"counts" -> "out" [style=dashed, label="REBALANCE"];`,
		`label="stage 1 (parallelism 2)";`,
		`label="mode BATCH";`,
	} {
		if !strings.Contains(dot, want) {
			t.Errorf("DOT lacks %s:\n%s", want, dot)
		}
	}
	// Every arrow's ends are declared nodes.
	for _, line := range strings.Split(dot, "\n") {
		line = strings.TrimSpace(line)
		if !strings.Contains(line, "->") {
			continue
		}
		for _, end := range strings.SplitN(strings.SplitN(line, " [", 2)[0], " -> ", 2) {
			end = strings.TrimSuffix(end, ";")
			if !strings.Contains(dot, end+" [label=") {
				t.Errorf("arrow end %s is not a declared node", end)
			}
		}
	}
}

func TestPlanDOTSideOutputLabel(t *testing.T) {
	p := mustPlan(t, `
steps:
  - name: src
    source: {elements: [{k: a, ts: 1}], timestamp: record.ts}
  - name: w
    keyBy: record.k
    window: {type: tumbling, size: 1s, lateDataOutput: late, reduce: record}
  - name: out
    sink: {print: {}}
  - name: late-out
    inputs: [late]
    sink: {print: {}}
`)
	if dot := p.DOT(); !strings.Contains(dot, `"w" -> "late-out" [style=dashed, label="late\nFORWARD"];`) {
		t.Errorf("side output edge not labelled:\n%s", dot)
	}
}

func TestGraphCompilesOnce(t *testing.T) {
	p := mustPlan(t, wordcount)
	g := p.Graph
	if g.Node("words").Exprs.Main == nil || g.Node("counts").Exprs.Main == nil {
		t.Error("expressions not compiled onto the nodes")
	}
	if g.Node("lines").Bounded != true {
		t.Error("files source not bounded")
	}
	if got := g.SortedNames(); !equal(got, []string{"counts", "lines", "out", "words"}) {
		t.Errorf("SortedNames = %v", got)
	}
}

func TestResolveMode(t *testing.T) {
	bounded := `
steps:
  - name: a
    source: {elements: [1]}
  - name: b
    source: {files: {path: x}}
  - name: c
    source: {datagen: {value: seq, count: 5}}
  - name: u
    inputs: [a, b, c]
    union: {}
  - name: out
    sink: {discard: {}}
`
	unbounded := `
steps:
  - name: a
    source: {elements: [1]}
  - name: gen
    source: {datagen: {value: seq}}
  - name: u
    inputs: [a, gen]
    union: {}
  - name: out
    sink: {discard: {}}
`
	withMode := func(src, mode string) *spec.Job {
		j := parseJob(t, src)
		j.RuntimeMode = spec.RuntimeMode(mode)
		return j
	}
	for _, c := range []struct {
		name     string
		job      *spec.Job
		override spec.RuntimeMode
		want     spec.RuntimeMode
	}{
		{"automatic, all bounded", withMode(bounded, "AUTOMATIC"), "", spec.Batch},
		{"automatic, unbounded datagen", withMode(unbounded, "AUTOMATIC"), "", spec.Streaming},
		{"unset means streaming", withMode(bounded, ""), "", spec.Streaming},
		{"streaming stays", withMode(bounded, "STREAMING"), "", spec.Streaming},
		{"batch stays", withMode(bounded, "BATCH"), "", spec.Batch},
		{"override automatic", withMode(bounded, "STREAMING"), spec.Automatic, spec.Batch},
		{"override automatic, unbounded", withMode(unbounded, "BATCH"), spec.Automatic, spec.Streaming},
		{"override batch", withMode(bounded, "AUTOMATIC"), spec.Batch, spec.Batch},
		{"override streaming", withMode(bounded, "BATCH"), spec.Streaming, spec.Streaming},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := ResolveMode(c.job, c.override); got != c.want {
				t.Errorf("ResolveMode = %s, want %s", got, c.want)
			}
			p, err := New(c.job, Options{Mode: c.override})
			if err != nil {
				if c.want == spec.Batch {
					t.Fatal(err)
				}
				return
			}
			if p.Mode != c.want || p.Graph.Mode != c.want {
				t.Errorf("plan mode = %s, graph mode %s, want %s", p.Mode, p.Graph.Mode, c.want)
			}
		})
	}

	// The override wins over spec.runtimeMode for the BATCH check too.
	err := Validate(withMode(unbounded, "STREAMING"), Options{Mode: spec.Batch})
	wantFieldError(t, err, "spec.steps[1].source", `source "gen" is unbounded`)
	if err := Validate(withMode(unbounded, "BATCH"), Options{Mode: spec.Streaming}); err != nil {
		t.Errorf("STREAMING override of a BATCH job with an unbounded source: %v", err)
	}
}

// wantFieldError checks that err is a *ValidationError holding an error at
// path whose message contains msg.
func wantFieldError(t testing.TB, err error, path, msg string) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want a *ValidationError at %s, got %v", path, err)
	}
	for _, e := range ve.Errors {
		if e.Path == path && strings.Contains(e.Msg, msg) {
			return
		}
	}
	t.Errorf("no error at %s containing %q; got:\n%v", path, msg, err)
}
