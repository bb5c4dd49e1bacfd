package plan

import (
	"fmt"
	"sort"
	"strings"

	"github.com/flinkjob/flinkjob/engine/spec"
)

// Plan is how a job runs: stages and the edges between them. The controller
// creates one worker per subtask of each stage; the executors run them.
type Plan struct {
	Graph  *Graph
	Mode   spec.RuntimeMode
	Stages []*Stage
	Edges  []*Edge
}

// Stage is a chain of operators run by one task per subtask. Operators in a
// chain call each other directly: nothing is serialized inside a stage.
type Stage struct {
	ID          int
	Name        string
	Chain       []*Node // head first
	Parallelism int
	Inputs      []*Edge // edges into the head, in the head's input order
	Outputs     []*Edge // edges leaving the stage
}

// Head is the first operator of the chain.
func (s *Stage) Head() *Node { return s.Chain[0] }

// Tail is the last operator of the chain.
func (s *Stage) Tail() *Node { return s.Chain[len(s.Chain)-1] }

// Keyed reports whether the head reads keyed input (its state is per key).
func (s *Stage) Keyed() bool { return s.Head().Kind.Keyed() }

// IsSource reports whether the stage starts with a source.
func (s *Stage) IsSource() bool { return s.Head().Kind == KindSource }

// Edge is a shuffle between two stages.
type Edge struct {
	ID   int
	From *Stage
	// FromNode is the producing operator (in From's chain) and Output its
	// side output ("" for the main output).
	FromNode *Node
	Output   string
	To       *Stage
	// InputIndex is which input of To's head this edge feeds (0 = first).
	InputIndex   int
	Partitioning spec.Partitioning
	// Input is the head's input this edge carries; its Key is set for HASH
	// edges and the producer evaluates it per record.
	Input *Input
}

// MaxParallelism is the number of key groups: keys hash to a key group and
// key groups map to subtasks in contiguous ranges, as in Flink, so keyed
// state can later be redistributed when parallelism changes.
const MaxParallelism = 128

// New validates a job and plans it.
func New(job *spec.Job, opts Options) (*Plan, error) {
	g, err := Build(job, opts)
	if err != nil {
		return nil, err
	}
	return FromGraph(g), nil
}

// FromGraph chains the graph's operators into stages. A node joins its
// input's stage when it has exactly one input, that input is FORWARD from
// the main output of a node read by nobody else, and parallelism is equal.
func FromGraph(g *Graph) *Plan {
	p := &Plan{Graph: g, Mode: g.Mode}
	stageOf := map[*Node]*Stage{}
	for _, n := range g.Nodes {
		if len(n.Inputs) == 1 {
			in := n.Inputs[0]
			if in.Partitioning == spec.Forward && in.Output == "" && in.From.Consumers == 1 &&
				in.From.Parallelism == n.Parallelism && in.From.Kind != KindSink {
				s := stageOf[in.From]
				if s.Tail() == in.From {
					s.Chain = append(s.Chain, n)
					stageOf[n] = s
					continue
				}
			}
		}
		s := &Stage{ID: len(p.Stages), Chain: []*Node{n}, Parallelism: n.Parallelism}
		p.Stages = append(p.Stages, s)
		stageOf[n] = s
	}
	for _, s := range p.Stages {
		var names []string
		for _, n := range s.Chain {
			names = append(names, n.Name)
		}
		s.Name = strings.Join(names, "->")
		for i, in := range s.Head().Inputs {
			if stageOf[in.From] == s {
				continue // chained
			}
			e := &Edge{ID: len(p.Edges), From: stageOf[in.From], FromNode: in.From, Output: in.Output,
				To: s, InputIndex: i, Partitioning: in.Partitioning, Input: in}
			p.Edges = append(p.Edges, e)
			s.Inputs = append(s.Inputs, e)
			e.From.Outputs = append(e.From.Outputs, e)
		}
	}
	return p
}

// StageOf returns the stage whose chain holds the named step.
func (p *Plan) StageOf(step string) *Stage {
	for _, s := range p.Stages {
		for _, n := range s.Chain {
			if n.Name == step {
				return s
			}
		}
	}
	return nil
}

func (e *Edge) describe() string {
	d := string(e.Partitioning)
	if e.Partitioning == spec.Hash {
		d += "(" + e.Input.KeySrc + ")"
	}
	from := e.FromNode.Name
	if e.Output != "" {
		from += "[" + e.Output + "]"
	}
	return fmt.Sprintf("%s -> %s", from, d)
}

// String prints the plan as text, one stage per paragraph.
func (p *Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mode: %s\nstages: %d\n", p.Mode, len(p.Stages))
	for _, s := range p.Stages {
		fmt.Fprintf(&b, "\nstage %d %q parallelism=%d", s.ID, s.Name, s.Parallelism)
		if s.Keyed() {
			b.WriteString(" keyed")
		}
		b.WriteString("\n")
		for _, n := range s.Chain {
			fmt.Fprintf(&b, "  %-10s %s\n", n.Kind, n.Name)
			if n.Fields != nil {
				// Projection pushdown: what the job reads of the records.
				fmt.Fprintf(&b, "  %-10s %s\n", "reads", n.Fields)
			}
		}
		for _, e := range s.Inputs {
			fmt.Fprintf(&b, "  in  edge %d from stage %d: %s (input %d)\n", e.ID, e.From.ID, e.describe(), e.InputIndex)
		}
		for _, e := range s.Outputs {
			fmt.Fprintf(&b, "  out edge %d to stage %d: %s\n", e.ID, e.To.ID, e.describe())
		}
	}
	return b.String()
}

// DOT prints the plan as a Graphviz digraph: a cluster per stage, operators
// as nodes, chained calls as plain arrows and shuffles as labelled dashed arrows.
func (p *Plan) DOT() string {
	var b strings.Builder
	b.WriteString("digraph plan {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n")
	fmt.Fprintf(&b, "  label=%q;\n", "mode "+string(p.Mode))
	for _, s := range p.Stages {
		fmt.Fprintf(&b, "  subgraph cluster_%d {\n    label=%q;\n", s.ID, fmt.Sprintf("stage %d (parallelism %d)", s.ID, s.Parallelism))
		for _, n := range s.Chain {
			fmt.Fprintf(&b, "    %q [label=%q];\n", n.Name, fmt.Sprintf("%s\n%s", n.Name, n.Kind))
		}
		for i := 1; i < len(s.Chain); i++ {
			fmt.Fprintf(&b, "    %q -> %q;\n", s.Chain[i-1].Name, s.Chain[i].Name)
		}
		b.WriteString("  }\n")
	}
	edges := append([]*Edge{}, p.Edges...)
	sort.Slice(edges, func(i, j int) bool { return edges[i].ID < edges[j].ID })
	for _, e := range edges {
		label := string(e.Partitioning)
		if e.Partitioning == spec.Hash {
			label += "\n" + e.Input.KeySrc
		}
		if e.Output != "" {
			label = e.Output + "\n" + label
		}
		fmt.Fprintf(&b, "  %q -> %q [style=dashed, label=%q];\n", e.FromNode.Name, e.To.Head().Name, label)
	}
	b.WriteString("}\n")
	return b.String()
}
