// Package plan turns a job's steps into a validated graph and then into an
// execution plan: stages (chains of one-to-one operators cut at shuffles),
// their parallelism and the edges between them with their partitioning.
//
// Build is the one validation function shared by the CLI, the admission
// webhook and the controller: every problem is reported with the field path
// of the manifest (spec.steps[2].reduce) and what is wrong. Validation also
// compiles every CEL expression, and the compiled programs stay on the graph
// nodes so the operators never compile twice.
package plan

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/flinkjob/flinkjob/engine/expr"
	"github.com/flinkjob/flinkjob/engine/projection"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// Kind is what a step does.
type Kind string

const (
	KindSource    Kind = "source"
	KindMap       Kind = "map"
	KindFilter    Kind = "filter"
	KindFlatMap   Kind = "flatMap"
	KindCall      Kind = "call"
	KindKeyBy     Kind = "keyBy"     // virtual: keys the stream for its consumers
	KindPartition Kind = "partition" // virtual: rebalance/broadcast for its consumers
	KindReduce    Kind = "reduce"
	KindAggregate Kind = "aggregate"
	KindWindow    Kind = "window"
	KindUnion     Kind = "union"
	KindJoin      Kind = "join"
	KindProcess   Kind = "process"
	KindSink      Kind = "sink"
)

// Virtual reports whether the kind is only a partitioning instruction, not an operator.
func (k Kind) Virtual() bool { return k == KindKeyBy || k == KindPartition }

// Keyed reports whether the operator works on a keyed stream.
func (k Kind) Keyed() bool {
	switch k {
	case KindReduce, KindAggregate, KindWindow, KindJoin, KindProcess:
		return true
	}
	return false
}

// Node is one step of the validated graph.
type Node struct {
	Index       int // position in spec.steps
	Name        string
	Path        string // field path, e.g. spec.steps[3]
	Step        *spec.Step
	Kind        Kind
	Parallelism int
	// Inputs are the real (non-virtual) producers this node reads, with the
	// partitioning of each edge resolved.
	Inputs []*Input
	// Exprs holds the compiled CEL programs of this step.
	Exprs Exprs
	// Bounded is set on sources.
	Bounded bool
	// Consumers counts the edges leaving this node (main and side outputs).
	Consumers int
	// Fields, on a source, is the part of its records the job reads, when
	// that is not all of them (projection pushdown; see pushProjections).
	// Sources that can leave fields out do; nil means whole records.
	Fields *projection.Fields
	order  int // topological position
}

// Input is an edge into a node.
type Input struct {
	From *Node
	// Output is the side output read ("" for the main output).
	Output       string
	Partitioning spec.Partitioning
	// Key computes the key for HASH partitioning (the keyBy expression).
	Key    *expr.Program
	KeySrc string
	// Listed is the name as written in the consumer's inputs (a keyBy or
	// partitioning step, a side output, or the producer itself); process
	// steps see it as `input`.
	Listed string
}

// Exprs are a step's compiled expressions. Which are set depends on the kind.
type Exprs struct {
	Main      *expr.Program // map, filter, flatMap, reduce, window reduce
	Timestamp *expr.Program // source timestamp assigner
	Datagen   *expr.Program
	Select    *expr.Program // join output
	OnElement *expr.Program
	OnTimer   *expr.Program
	Agg       []AggField
}

// AggField is one compiled aggregation.
type AggField struct {
	Name string
	Kind string // count, sum, min, max, avg, accumulator
	Arg  *expr.Program
	// For accumulators:
	Init, Add, Merge, Result *expr.Program
}

// rawIn is an input as named in the manifest, before virtual steps are followed.
type rawIn struct {
	from   *Node
	output string
}

// Graph is a validated job.
type Graph struct {
	Job    *spec.Job
	Mode   spec.RuntimeMode // resolved: STREAMING or BATCH
	Nodes  []*Node          // real nodes in topological order
	byName map[string]*Node
}

// Node returns a real node by step name.
func (g *Graph) Node(name string) *Node { return g.byName[name] }

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Options tune validation.
type Options struct {
	// Mode overrides spec.runtimeMode (the CLI's --mode).
	Mode spec.RuntimeMode
	// KnownCalls, when set, lists the Go functions registered in this binary;
	// `call` steps naming others are refused.
	KnownCalls func(name string) bool
	// ReadAllFields turns projection pushdown off: sources produce whole
	// records even where the job reads only some of their fields (for
	// benchmarks that compare with engines whose sources do).
	ReadAllFields bool
}

// Validate checks a job and returns nil or a *ValidationError.
func Validate(job *spec.Job, opts Options) error {
	_, err := Build(job, opts)
	return err
}

// ResolveMode returns the mode a job runs in: AUTOMATIC becomes BATCH when
// every source is bounded, else STREAMING.
func ResolveMode(job *spec.Job, override spec.RuntimeMode) spec.RuntimeMode {
	mode := job.RuntimeMode
	if override != "" {
		mode = override
	}
	switch mode {
	case "", spec.Streaming:
		return spec.Streaming
	case spec.Batch:
		return spec.Batch
	}
	for i := range job.Steps {
		if s := job.Steps[i].Source; s != nil && !sourceBounded(s) {
			return spec.Streaming
		}
	}
	return spec.Batch
}

func sourceBounded(s *spec.Source) bool {
	switch {
	case s.Datagen != nil:
		return s.Datagen.Count != nil
	case s.Nexmark != nil:
		return s.Nexmark.Events != nil
	case s.Kafka != nil:
		return s.Kafka.StoppingOffsets != nil
	case s.Files != nil:
		return s.Files.MonitorInterval == ""
	}
	return true
}

// Build validates a job and returns its graph.
func Build(job *spec.Job, opts Options) (*Graph, error) {
	var el errList
	if job == nil {
		el.add("spec", "is empty")
		return nil, el.err()
	}
	switch job.RuntimeMode {
	case "", spec.Streaming, spec.Batch, spec.Automatic:
	default:
		el.add("spec.runtimeMode", "must be STREAMING, BATCH or AUTOMATIC, not %q", job.RuntimeMode)
	}
	mode := job.RuntimeMode
	if opts.Mode != "" {
		mode = opts.Mode
		switch mode {
		case spec.Streaming, spec.Batch, spec.Automatic:
		default:
			el.add("options.mode", "the mode override must be STREAMING, BATCH or AUTOMATIC, not %q", mode)
		}
	}
	switch job.BatchProcessingTime {
	case "", spec.ProcessingTimeFail, spec.ProcessingTimeIgnore:
	default:
		el.add("spec.batchProcessingTime", "must be FAIL or IGNORE, not %q", job.BatchProcessingTime)
	}
	if job.BufferTimeout != "" {
		if d, err := job.BufferTimeout.Get(); err != nil {
			el.add("spec.bufferTimeout", "%q is not a duration (use e.g. 1ms, 5ms, 100ms)", job.BufferTimeout)
		} else if d <= 0 {
			el.add("spec.bufferTimeout", "must be positive, not %q (a full batch goes at once; 1ms is about the least useful)", job.BufferTimeout)
		}
	}
	defPar := int(job.Parallelism)
	if job.Parallelism == 0 {
		defPar = 1
	} else if job.Parallelism < 0 || job.Parallelism > 1024 {
		el.add("spec.parallelism", "must be between 1 and 1024, not %d", job.Parallelism)
		defPar = 1
	}
	if len(job.Steps) == 0 {
		el.add("spec.steps", "a job needs at least one step (a source and a sink)")
		return nil, el.err()
	}

	g := &Graph{Job: job, byName: map[string]*Node{}}
	g.Mode = ResolveMode(job, opts.Mode)

	// Pass 1: names, kinds, per-step settings.
	all := make([]*Node, len(job.Steps))
	names := map[string]int{}
	sideOutputs := map[string]*Node{}
	var sideOrder []string // side output names in spec order, for deterministic errors
	for i := range job.Steps {
		st := &job.Steps[i]
		n := &Node{Index: i, Name: st.Name, Path: fmt.Sprintf("spec.steps[%d]", i), Step: st}
		all[i] = n
		switch {
		case st.Name == "":
			el.add(n.Path+".name", "is required")
		case !nameRE.MatchString(st.Name) || len(st.Name) > 63:
			el.add(n.Path+".name", "%q must be a lowercase DNS label (a-z, 0-9, '-'; at most 63 characters)", st.Name)
		}
		if j, dup := names[st.Name]; dup && st.Name != "" {
			el.add(n.Path+".name", "%q is already the name of spec.steps[%d]; step names must be unique", st.Name, j)
		} else {
			names[st.Name] = i
		}
		n.Kind = stepKind(st, n.Path, &el)
		n.Parallelism = defPar
		if st.Parallelism != nil {
			switch {
			case n.Kind.Virtual():
				el.add(n.Path+".parallelism", "a %s step runs no operator of its own, so it has no parallelism; set parallelism on the step that reads it", n.Kind)
			case *st.Parallelism < 1 || *st.Parallelism > 1024:
				el.add(n.Path+".parallelism", "must be between 1 and 1024, not %d", *st.Parallelism)
			default:
				n.Parallelism = int(*st.Parallelism)
			}
		}
		switch st.Partitioning {
		case "", spec.Forward, spec.Rebalance, spec.Broadcast:
		case spec.Hash:
			el.add(n.Path+".partitioning", "HASH is not written in manifests: set keyBy to partition by key")
		default:
			el.add(n.Path+".partitioning", "must be FORWARD, REBALANCE or BROADCAST, not %q", st.Partitioning)
		}
		so, soField, _ := sideOutputOf(st)
		if so != "" && st.Source != nil && st.Source.Files == nil && st.Source.Kafka == nil {
			el.add(n.Path+".source.malformedOutput", "only a files or kafka source reads outside data that can be malformed; "+
				"elements, datagen and nexmark records are built by the job itself, so there is nothing to route")
		}
		if so != "" {
			if !nameRE.MatchString(so) || len(so) > 63 {
				el.add(n.Path+"."+soField, "%q must be a lowercase DNS label (a-z, 0-9, '-'; at most 63 characters)", so)
			}
			if w, dup := sideOutputs[so]; dup {
				_, _, wField := sideOutputOf(w.Step)
				el.add(n.Path+"."+soField, "%q is already the %s of %s; side outputs need their own names", so, wField, w.Path)
			} else {
				sideOutputs[so] = n
				sideOrder = append(sideOrder, so)
			}
		}
	}
	for _, so := range sideOrder {
		n := sideOutputs[so]
		if j, clash := names[so]; clash {
			_, field, _ := sideOutputOf(n.Step)
			el.add(n.Path+"."+field, "%q is also the name of spec.steps[%d]; side outputs need their own names", so, j)
		}
	}
	if len(el.errs) > 0 {
		return nil, el.err()
	}

	// Pass 2: inputs (by name), counts.
	rawInputs := make([][]rawIn, len(all))
	for i, n := range all {
		st := n.Step
		ins := st.Inputs
		implicit := false
		if len(ins) == 0 && n.Kind != KindSource {
			if i == 0 {
				el.add(n.Path+".inputs", "the first step has no previous step to read; make it a source or name its inputs")
				continue
			}
			ins = []string{all[i-1].Name}
			implicit = true
		}
		if n.Kind == KindSource && len(st.Inputs) > 0 {
			el.add(n.Path+".inputs", "a source reads no inputs; remove inputs")
			continue
		}
		seen := map[string]bool{}
		for j, in := range ins {
			p := fmt.Sprintf("%s.inputs[%d]", n.Path, j)
			if seen[in] {
				el.add(p, "%q is listed twice", in)
				continue
			}
			seen[in] = true
			if k, ok := names[in]; ok {
				if all[k] == n {
					el.add(p, "step %q cannot read itself", in)
					continue
				}
				if all[k].Kind == KindSink {
					if implicit {
						el.add(n.Path+".inputs", "is empty, so step %q reads the previous step %q, but that is a sink with no output to read; list the step to read in inputs", n.Name, in)
					} else {
						el.add(p, "%q is a sink and has no output to read", in)
					}
					continue
				}
				rawInputs[i] = append(rawInputs[i], rawIn{from: all[k]})
			} else if w, ok := sideOutputs[in]; ok {
				if w == n {
					el.add(p, "step %q cannot read its own side output", n.Name)
					continue
				}
				rawInputs[i] = append(rawInputs[i], rawIn{from: w, output: in})
			} else {
				el.add(p, "no step or side output is named %q", in)
			}
		}
		want, hint := "", ""
		switch n.Kind {
		case KindJoin:
			if len(ins) != 2 {
				want, hint = "exactly 2 inputs (left, right)", "list them in inputs"
			}
		case KindUnion:
			if len(ins) < 2 {
				want, hint = "at least 2 inputs", "list them in inputs"
			}
		case KindProcess, KindSource:
		default:
			if len(ins) > 1 {
				want, hint = "exactly 1 input", "use a union step to merge streams"
			}
		}
		if want != "" {
			has := fmt.Sprint(len(ins))
			if implicit {
				has = "1 (the previous step, read because inputs is empty)"
			}
			el.add(n.Path+".inputs", "a %s step needs %s, has %s; %s", n.Kind, want, has, hint)
		}
	}
	if len(el.errs) > 0 {
		return nil, el.err()
	}

	// Cycles.
	if cyc := findCycle(all, func(n *Node) []*Node {
		var out []*Node
		for _, r := range rawInputs[n.Index] {
			out = append(out, r.from)
		}
		return out
	}); cyc != nil {
		var parts []string
		for _, c := range cyc {
			parts = append(parts, c.Name)
		}
		el.add(cyc[0].Path+".inputs", "the steps form a cycle: %s", strings.Join(parts, " -> "))
		return nil, el.err()
	}

	// Pass 3: compile expressions, resolve partitioning, check keyed inputs.
	for _, n := range all {
		compileStep(g, n, &el, opts)
	}
	for _, n := range all {
		if n.Kind.Virtual() {
			continue
		}
		keyed, bcast := 0, 0
		for j, r := range rawInputs[n.Index] {
			in := resolveInput(n, j, r.from, r.output, rawInputs, &el)
			if in != nil {
				in.Listed = r.from.Name
				if r.output != "" {
					in.Listed = r.output
				}
				n.Inputs = append(n.Inputs, in)
				in.From.Consumers++
				switch in.Partitioning {
				case spec.Hash:
					keyed++
				case spec.Broadcast:
					bcast++
				}
			}
		}
		if n.Kind == KindProcess && keyed == 0 && bcast > 0 && bcast == len(rawInputs[n.Index]) {
			el.add(n.Path+".process", "a process step is keyed: at least one input must be partitioned by key (set keyBy, or read a keyBy step); all its inputs are broadcast")
		}
		if keyed > 0 && n.Parallelism > MaxParallelism {
			path := "spec.parallelism"
			if n.Step.Parallelism != nil {
				path = n.Path + ".parallelism"
			}
			el.add(path, "step %q reads keyed input, and keys are spread over %d key groups, so its parallelism can be at most %d, not %d", n.Name, MaxParallelism, MaxParallelism, n.Parallelism)
		}
	}
	// A virtual step nobody reads is a dangling keyBy; say so.
	for _, n := range all {
		if n.Kind.Virtual() {
			used := false
			for _, m := range all {
				for _, r := range rawInputs[m.Index] {
					if r.from == n {
						used = true
					}
				}
			}
			if !used {
				el.add(n.Path, "step %q only partitions its input (%s) but no step reads it; name it in the inputs of the step that needs it, or remove it", n.Name, n.Kind)
			}
		}
	}
	if len(el.errs) > 0 {
		return nil, el.err()
	}

	// Boundedness and mode.
	for _, n := range all {
		if n.Kind == KindSource {
			n.Bounded = sourceBounded(n.Step.Source)
			if mode == spec.Batch && !n.Bounded {
				if n.Step.Source.Files != nil {
					el.add(n.Path+".source", "source %q is unbounded (files with monitorInterval), but the job runs in BATCH mode, which needs every source bounded: remove monitorInterval, or use STREAMING or AUTOMATIC", n.Name)
				} else if n.Step.Source.Kafka != nil {
					el.add(n.Path+".source", "source %q is unbounded (kafka without stoppingOffsets), but the job runs in BATCH mode, which needs every source bounded: set kafka.stoppingOffsets, or use STREAMING or AUTOMATIC", n.Name)
				} else if n.Step.Source.Nexmark != nil {
					el.add(n.Path+".source", "source %q is unbounded (nexmark without events), but the job runs in BATCH mode, which needs every source bounded: set nexmark.events, or use STREAMING or AUTOMATIC", n.Name)
				} else {
					el.add(n.Path+".source", "source %q is unbounded (datagen without count), but the job runs in BATCH mode, which needs every source bounded: set datagen.count, or use STREAMING or AUTOMATIC", n.Name)
				}
			}
		}
	}
	hasSink := false
	for _, n := range all {
		if n.Kind == KindSink {
			hasSink = true
		}
	}
	if !hasSink {
		el.add("spec.steps", "the job has no sink step; its results would go nowhere: end the dataflow in a sink")
	} else {
		// Every operator's main output must be read (a side output may go
		// unread: late data is then dropped, as in Flink). Without any sink
		// this would only repeat the error above for every last step.
		mainReaders := map[*Node]int{}
		for _, n := range all {
			for _, in := range n.Inputs {
				if in.Output == "" {
					mainReaders[in.From]++
				}
			}
		}
		for _, n := range all {
			if n.Kind.Virtual() || n.Kind == KindSink || mainReaders[n] > 0 {
				continue
			}
			if n.Consumers > 0 {
				el.add(n.Path, "only the side output of step %q is read; its main output is read by no step: end it in a sink (a discard sink drops it)", n.Name)
			} else {
				el.add(n.Path, "the output of step %q is not read by any step; end it in a sink", n.Name)
			}
		}
	}
	if len(el.errs) > 0 {
		return nil, el.err()
	}

	// Topological order of the real nodes (stable: spec order among ready nodes).
	var order []*Node
	done := map[*Node]bool{}
	for len(order) < countReal(all) {
		progressed := false
		for _, n := range all {
			if n.Kind.Virtual() || done[n] {
				continue
			}
			ready := true
			for _, in := range n.Inputs {
				if !done[in.From] {
					ready = false
				}
			}
			if ready {
				n.order = len(order)
				order = append(order, n)
				done[n] = true
				progressed = true
			}
		}
		if !progressed {
			break
		}
	}
	g.Nodes = order
	for _, n := range order {
		g.byName[n.Name] = n
	}
	pushProjections(g, opts)
	return g, nil
}

func countReal(all []*Node) int {
	c := 0
	for _, n := range all {
		if !n.Kind.Virtual() {
			c++
		}
	}
	return c
}

func stepKind(st *spec.Step, path string, el *errList) Kind {
	var kinds []Kind
	add := func(set bool, k Kind) {
		if set {
			kinds = append(kinds, k)
		}
	}
	add(st.Source != nil, KindSource)
	add(st.Map != "", KindMap)
	add(st.Filter != "", KindFilter)
	add(st.FlatMap != "", KindFlatMap)
	add(st.Call != "", KindCall)
	add(st.Reduce != "", KindReduce)
	add(st.Aggregate != nil, KindAggregate)
	add(st.Window != nil, KindWindow)
	add(st.Union != nil, KindUnion)
	add(st.Join != nil, KindJoin)
	add(st.Process != nil, KindProcess)
	add(st.Sink != nil, KindSink)
	if len(kinds) > 1 {
		var s []string
		for _, k := range kinds {
			s = append(s, string(k))
		}
		el.add(path, "sets %s; a step does exactly one thing", strings.Join(s, " and "))
		return kinds[0]
	}
	if len(kinds) == 0 {
		switch {
		case st.KeyBy != "":
			if st.Partitioning != "" {
				el.add(path+".partitioning", "a keyBy step partitions by key; it cannot also set partitioning")
			}
			return KindKeyBy
		case st.Partitioning != "":
			return KindPartition
		}
		el.add(path, "step %q does nothing: set one of source, map, filter, flatMap, call, keyBy, reduce, aggregate, window, union, join, process, sink", st.Name)
		return KindMap
	}
	k := kinds[0]
	if st.KeyBy != "" {
		switch k {
		case KindReduce, KindAggregate, KindWindow, KindProcess:
			if st.Partitioning != "" {
				el.add(path+".partitioning", "a step with keyBy reads its input partitioned by key; remove partitioning")
			}
		case KindJoin:
			el.add(path+".keyBy", "a join keys its inputs with join.leftKey and join.rightKey; remove keyBy")
		default:
			el.add(path+".keyBy", "keyBy goes alone on its own step or with reduce, aggregate, window or process, not with %s", k)
		}
	}
	if st.Partitioning != "" {
		switch k {
		case KindSource:
			el.add(path+".partitioning", "a source reads no input, so it has no partitioning; set partitioning on the step that reads the source")
		case KindJoin:
			el.add(path+".partitioning", "a join partitions its inputs by join.leftKey and join.rightKey; remove partitioning")
		}
	}
	return k
}

func findCycle(all []*Node, deps func(*Node) []*Node) []*Node {
	const (
		white = iota
		grey
		black
	)
	color := map[*Node]int{}
	var stack []*Node
	var cycle []*Node
	var visit func(n *Node) bool
	visit = func(n *Node) bool {
		color[n] = grey
		stack = append(stack, n)
		for _, d := range deps(n) {
			if color[d] == grey {
				// cycle: from d to n along the stack
				for i, s := range stack {
					if s == d {
						cycle = append(append([]*Node{}, stack[i:]...), d)
					}
				}
				return true
			}
			if color[d] == white && visit(d) {
				return true
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return false
	}
	for _, n := range all {
		if color[n] == white && visit(n) {
			// Report the cycle in data-flow order.
			for i, j := 0, len(cycle)-1; i < j; i, j = i+1, j-1 {
				cycle[i], cycle[j] = cycle[j], cycle[i]
			}
			return cycle
		}
	}
	return nil
}

// resolveInput follows virtual steps to the real producer and decides the
// edge's partitioning: the consumer's own key (keyBy or join keys) wins, then
// the nearest virtual step, then the consumer's partitioning, then FORWARD
// (or REBALANCE when parallelism differs), as Flink does.
func resolveInput(n *Node, idx int, from *Node, output string, raw [][]rawIn, el *errList) *Input {
	in := &Input{}
	// Walk virtual steps.
	var viaKey *Node
	var viaPart spec.Partitioning
	var viaPartNode *Node
	cur, curOut := from, output
	for cur.Kind.Virtual() {
		if cur.Kind == KindKeyBy && viaKey == nil && viaPart == "" {
			viaKey = cur
		}
		if cur.Kind == KindPartition && viaKey == nil && viaPart == "" {
			viaPart, viaPartNode = cur.Step.Partitioning, cur
		}
		r := raw[cur.Index]
		if len(r) != 1 {
			el.add(cur.Path+".inputs", "a %s step reads exactly one input", cur.Kind)
			return nil
		}
		cur, curOut = r[0].from, r[0].output
	}
	in.From, in.Output = cur, curOut

	switch {
	case viaPart == spec.Broadcast || (viaPart == "" && viaKey == nil && n.Step.Partitioning == spec.Broadcast):
		in.Partitioning = spec.Broadcast
	case n.Kind == KindJoin:
		in.Partitioning = spec.Hash
		if idx == 0 {
			in.Key, in.KeySrc = compileKey(n.Step.Join.LeftKey, n.Path+".join.leftKey", n.Name, el)
		} else {
			in.Key, in.KeySrc = compileKey(n.Step.Join.RightKey, n.Path+".join.rightKey", n.Name, el)
		}
	case n.Step.KeyBy != "":
		in.Partitioning = spec.Hash
		in.Key, in.KeySrc = compileKey(n.Step.KeyBy, n.Path+".keyBy", n.Name, el)
	case viaKey != nil:
		in.Partitioning = spec.Hash
		in.Key, in.KeySrc = compileKey(viaKey.Step.KeyBy, viaKey.Path+".keyBy", viaKey.Name, el)
	case viaPart != "":
		in.Partitioning = viaPart
	case n.Step.Partitioning != "":
		in.Partitioning = n.Step.Partitioning
	default:
		in.Partitioning = spec.Forward
		if cur.Parallelism != n.Parallelism {
			in.Partitioning = spec.Rebalance
		}
	}
	if in.Partitioning == spec.Forward && cur.Parallelism != n.Parallelism {
		// FORWARD was declared (the default turns into REBALANCE): point at the declaration.
		decl := n.Path + ".partitioning"
		if viaPartNode != nil {
			decl = viaPartNode.Path + ".partitioning"
		}
		el.add(decl, "FORWARD keeps each record in its subtask and needs equal parallelism, but %q has %d and %q has %d; use REBALANCE or make the parallelism equal", cur.Name, cur.Parallelism, n.Name, n.Parallelism)
	}
	if n.Kind.Keyed() && in.Partitioning != spec.Hash && !(n.Kind == KindProcess && in.Partitioning == spec.Broadcast) {
		el.add(n.Path+"."+string(n.Kind), "%s needs a keyed input, but its input %q arrives %s, not partitioned by key: set keyBy on step %q or read from a keyBy step", n.Kind, from.Name, in.Partitioning, n.Name)
	}
	return in
}

func compileKey(src, path, step string, el *errList) (*expr.Program, string) {
	if strings.TrimSpace(src) == "" {
		el.add(path, "is required: a CEL expression giving the key of `record`")
		return nil, src
	}
	p, err := expr.Compile(src, expr.Any, expr.Record)
	if err != nil {
		el.add(path, "step %q: %v", step, err)
		return nil, src
	}
	return p, src
}

func compileStep(g *Graph, n *Node, el *errList, opts Options) {
	st := n.Step
	c := func(path, src string, want expr.Want, vars ...string) *expr.Program {
		if strings.TrimSpace(src) == "" {
			el.add(path, "is required: a CEL expression")
			return nil
		}
		p, err := expr.Compile(src, want, vars...)
		if err != nil {
			el.add(path, "step %q: %v", n.Name, err)
		}
		return p
	}
	// dur checks a duration; positive marks a required one (a window size, a gap).
	dur := func(path string, d spec.Duration, positive bool) int64 {
		if positive && d == "" {
			el.add(path, "is required (a duration such as 500ms, 5s, 1m)")
			return 0
		}
		v, err := d.Get()
		if err != nil {
			el.add(path, "%q is not a duration (use e.g. 500ms, 5s, 1m)", d)
			return 0
		}
		switch {
		case v < 0:
			el.add(path, "must not be negative, not %q", d)
		case positive && v < time.Millisecond:
			el.add(path, "must be at least 1ms (event time counts milliseconds), not %q", d)
		}
		return v.Milliseconds()
	}
	// unused reports a duration field that the chosen window type does not use.
	unused := func(path string, d spec.Duration, typ spec.WindowType) {
		if d != "" {
			el.add(path, "is not used by %s windows; remove it (or change the window type)", typ)
		}
	}
	switch n.Kind {
	case KindKeyBy:
		// Compiled here too so a keyBy step nobody reads is still checked;
		// resolveInput reports the same error once (errList drops repeats).
		compileKey(st.KeyBy, n.Path+".keyBy", n.Name, el)
	case KindSource:
		compileSource(n, el, c, dur)
	case KindMap:
		n.Exprs.Main = c(n.Path+".map", st.Map, expr.Any, expr.Record)
	case KindFilter:
		n.Exprs.Main = c(n.Path+".filter", st.Filter, expr.Bool, expr.Record)
	case KindFlatMap:
		n.Exprs.Main = c(n.Path+".flatMap", st.FlatMap, expr.List, expr.Record)
	case KindCall:
		if opts.KnownCalls != nil && !opts.KnownCalls(st.Call) {
			el.add(n.Path+".call", "no Go function named %q is registered in this binary", st.Call)
		}
	case KindReduce:
		n.Exprs.Main = c(n.Path+".reduce", st.Reduce, expr.Any, expr.Acc, expr.Record)
	case KindAggregate:
		n.Exprs.Agg = compileAggregate(n, n.Path+".aggregate", st.Aggregate, false, el, c)
	case KindWindow:
		w := st.Window
		wp := n.Path + ".window"
		switch w.Type {
		case spec.Tumbling:
			dur(wp+".size", w.Size, true)
			unused(wp+".slide", w.Slide, w.Type)
			unused(wp+".gap", w.Gap, w.Type)
		case spec.Sliding:
			size := dur(wp+".size", w.Size, true)
			slide := dur(wp+".slide", w.Slide, true)
			if slide > 0 && size > 0 && size%slide != 0 {
				el.add(wp+".slide", "a sliding window's size (%s) must be a multiple of its slide (%s)", w.Size, w.Slide)
			}
			unused(wp+".gap", w.Gap, w.Type)
		case spec.Session:
			dur(wp+".gap", w.Gap, true)
			unused(wp+".size", w.Size, w.Type)
			unused(wp+".slide", w.Slide, w.Type)
		default:
			el.add(wp+".type", "must be tumbling, sliding or session, not %q", w.Type)
		}
		dur(wp+".allowedLateness", w.AllowedLateness, false)
		switch {
		case (w.Aggregate == nil) == (w.Reduce == ""):
			el.add(wp, "set exactly one of aggregate and reduce")
		case w.Aggregate != nil:
			n.Exprs.Agg = compileAggregate(n, wp+".aggregate", w.Aggregate, w.Type == spec.Session, el, c)
		default:
			n.Exprs.Main = c(wp+".reduce", w.Reduce, expr.Any, expr.Acc, expr.Record)
		}
	case KindJoin:
		j := st.Join
		jp := n.Path + ".join"
		// leftKey and rightKey are compiled (or reported missing) with the
		// join's input edges, in resolveInput.
		switch {
		case (j.Window == nil) == (j.Interval == nil):
			el.add(jp, "set exactly one of window (a window join) and interval (an interval join)")
		case j.Window != nil:
			switch j.Window.Type {
			case spec.Tumbling:
				dur(jp+".window.size", j.Window.Size, true)
				unused(jp+".window.slide", j.Window.Slide, j.Window.Type)
			case spec.Sliding:
				size := dur(jp+".window.size", j.Window.Size, true)
				slide := dur(jp+".window.slide", j.Window.Slide, true)
				if slide > 0 && size > 0 && size%slide != 0 {
					el.add(jp+".window.slide", "a sliding window's size (%s) must be a multiple of its slide (%s)", j.Window.Size, j.Window.Slide)
				}
			default:
				el.add(jp+".window.type", "a window join supports tumbling or sliding windows, not %q", j.Window.Type)
			}
		default:
			lo, err1 := ParseSignedDuration(j.Interval.LowerBound)
			hi, err2 := ParseSignedDuration(j.Interval.UpperBound)
			for _, b := range []struct {
				field, src string
				err        error
			}{{"lowerBound", j.Interval.LowerBound, err1}, {"upperBound", j.Interval.UpperBound, err2}} {
				switch {
				case b.src == "":
					el.add(jp+".interval."+b.field, "is required (a duration that may be negative, e.g. -5s, 0s, 10s)")
				case b.err != nil:
					el.add(jp+".interval."+b.field, "%v", b.err)
				}
			}
			if err1 == nil && err2 == nil && lo > hi {
				el.add(jp+".interval", "lowerBound (%s) must not be after upperBound (%s)", j.Interval.LowerBound, j.Interval.UpperBound)
			}
		}
		if j.Select != "" {
			n.Exprs.Select = c(jp+".select", j.Select, expr.Any, expr.Left, expr.Right, expr.Key)
		}
	case KindProcess:
		pp := n.Path + ".process"
		n.Exprs.OnElement = c(pp+".onElement", st.Process.OnElement, expr.Map, ProcessElementVars...)
		if st.Process.OnTimer != "" {
			n.Exprs.OnTimer = c(pp+".onTimer", st.Process.OnTimer, expr.Map, ProcessTimerVars...)
		}
	case KindSink:
		compileSink(n, el)
	}
}

// ProcessElementVars are the variables of process.onElement, in order.
var ProcessElementVars = []string{expr.Record, expr.Key, expr.State, expr.Ts, expr.Input, expr.Watermark, "broadcast"}

// ProcessTimerVars are the variables of process.onTimer, in order.
var ProcessTimerVars = []string{expr.Key, expr.State, expr.Timer, expr.TimeDomain, expr.Watermark, "broadcast"}

func compileSource(n *Node, el *errList, c func(string, string, expr.Want, ...string) *expr.Program, dur func(string, spec.Duration, bool) int64) {
	s := n.Step.Source
	sp := n.Path + ".source"
	kinds := 0
	if s.Elements != nil {
		kinds++
		for i, e := range s.Elements {
			if len(bytes.TrimSpace(e.Raw)) == 0 {
				el.add(fmt.Sprintf("%s.elements[%d]", sp, i), "is empty; write a JSON value (null for no value)")
			} else if _, err := value.FromJSON(e.Raw); err != nil {
				el.add(fmt.Sprintf("%s.elements[%d]", sp, i), "is not valid JSON: %v", err)
			}
		}
	}
	if s.Datagen != nil {
		kinds++
		n.Exprs.Datagen = c(sp+".datagen.value", s.Datagen.Value, expr.Any, expr.Seq)
		if s.Datagen.Count != nil && *s.Datagen.Count < 0 {
			el.add(sp+".datagen.count", "must not be negative")
		}
		if s.Datagen.RatePerSecond < 0 {
			el.add(sp+".datagen.ratePerSecond", "must not be negative")
		}
	}
	if s.Files != nil {
		kinds++
		checkFileSource(sp+".files", s.Files, el)
	}
	if x := s.Nexmark; x != nil {
		kinds++
		if x.Events != nil && *x.Events < 0 {
			el.add(sp+".nexmark.events", "must not be negative")
		}
		if x.RatePerSecond < 0 {
			el.add(sp+".nexmark.ratePerSecond", "must not be negative")
		}
		for _, k := range []struct {
			name string
			v    int64
		}{
			{"firstEventRate", x.FirstEventRate},
			{"hotAuctionRatio", x.HotAuctionRatio},
			{"hotSellerRatio", x.HotSellerRatio},
			{"hotBidderRatio", x.HotBidderRatio},
			{"activePeople", x.ActivePeople},
			{"inFlightAuctions", x.InFlightAuctions},
		} {
			if k.v < 0 {
				el.add(sp+".nexmark."+k.name, "must be at least 1 (0 or absent means the default), not %d", k.v)
			}
		}
	}
	if s.Kafka != nil {
		kinds++
		checkKafkaSource(sp+".kafka", s.Kafka, el)
	}
	if kinds != 1 {
		el.add(sp, "set exactly one of elements, datagen, files, nexmark, kafka")
	}
	if s.Timestamp != "" {
		n.Exprs.Timestamp = c(sp+".timestamp", s.Timestamp, expr.Any, expr.Record)
	}
	if w := s.Watermarks; w != nil {
		dur(sp+".watermarks.maxOutOfOrderness", w.MaxOutOfOrderness, false)
		dur(sp+".watermarks.idleness", w.Idleness, false)
		if s.Timestamp == "" && s.Kafka == nil { // a Kafka record's own timestamp is its event time
			el.add(sp+".watermarks", "watermarks need event time: set source.timestamp")
		}
	}
}

func compileSink(n *Node, el *errList) {
	s := n.Step.Sink
	sp := n.Path + ".sink"
	kinds := 0
	for _, set := range []bool{s.Print != nil, s.Files != nil, s.Discard != nil, s.Call != "", s.Kafka != nil} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		el.add(sp, "set exactly one of print, files, discard, call, kafka")
	}
	if s.Kafka != nil {
		checkKafkaSink(sp+".kafka", n.Name, s.Kafka, el)
	}
	if s.Files != nil {
		checkFileSink(sp+".files", s.Files, el)
	}
}

func compileAggregate(n *Node, path string, a *spec.Aggregate, merging bool, el *errList, c func(string, string, expr.Want, ...string) *expr.Program) []AggField {
	if len(a.Fields) == 0 {
		el.add(path+".fields", "needs at least one field")
	}
	var out []AggField
	seen := map[string]bool{}
	for i, f := range a.Fields {
		fp := fmt.Sprintf("%s.fields[%d]", path, i)
		if f.Name == "" {
			el.add(fp+".name", "is required")
		} else if f.Name == "key" || f.Name == "windowStart" || f.Name == "windowEnd" {
			el.add(fp+".name", "%q is reserved for the output record", f.Name)
		} else if seen[f.Name] {
			el.add(fp+".name", "%q is used twice", f.Name)
		}
		seen[f.Name] = true
		af := AggField{Name: f.Name}
		set := 0
		if f.Count {
			set++
			af.Kind = "count"
		}
		for _, o := range []struct {
			kind, src string
		}{{"sum", f.Sum}, {"min", f.Min}, {"max", f.Max}, {"avg", f.Avg}} {
			if o.src != "" {
				set++
				af.Kind = o.kind
				af.Arg = c(fp+"."+o.kind, o.src, expr.Any, expr.Record)
			}
		}
		if acc := f.Accumulator; acc != nil {
			set++
			af.Kind = "accumulator"
			ap := fp + ".accumulator"
			af.Init = c(ap+".init", acc.Init, expr.Any)
			af.Add = c(ap+".add", acc.Add, expr.Any, expr.Acc, expr.Record)
			if acc.Merge != "" {
				af.Merge = c(ap+".merge", acc.Merge, expr.Any, expr.A, expr.B)
			} else if merging {
				el.add(ap+".merge", "session windows merge accumulators: set merge (combining `a` and `b`)")
			}
			if acc.Result != "" {
				af.Result = c(ap+".result", acc.Result, expr.Any, expr.Acc)
			}
		}
		if set != 1 {
			el.add(fp, "set exactly one of count, sum, min, max, avg, accumulator")
		}
		out = append(out, af)
	}
	return out
}

// ParseSignedDuration parses a duration that may be negative, in ms.
func ParseSignedDuration(s string) (int64, error) {
	neg := strings.HasPrefix(s, "-")
	rest := strings.TrimPrefix(s, "-")
	d, err := spec.Duration(rest).Get()
	if err != nil || rest == "" || strings.HasPrefix(rest, "-") || strings.HasPrefix(rest, "+") {
		return 0, fmt.Errorf("%q is not a duration (use e.g. -5s, 0s, 10s)", s)
	}
	ms := d.Milliseconds()
	if neg {
		ms = -ms
	}
	return ms, nil
}

// SortedNames lists node names (for stable messages in tests).
func (g *Graph) SortedNames() []string {
	var out []string
	for _, n := range g.Nodes {
		out = append(out, n.Name)
	}
	sort.Strings(out)
	return out
}

// sideOutputOf is a step's side output, the field that names it and that
// field's own name (a step has at most one: a source is never a window;
// stepKind reports a step that is both); name is "" without one.
func sideOutputOf(st *spec.Step) (name, field, short string) {
	switch {
	case st.Source != nil && st.Source.MalformedOutput != "":
		return st.Source.MalformedOutput, "source.malformedOutput", "malformedOutput"
	case st.Window != nil && st.Window.LateDataOutput != "":
		return st.Window.LateDataOutput, "window.lateDataOutput", "lateDataOutput"
	}
	return "", "", ""
}
