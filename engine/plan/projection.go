package plan

import (
	"github.com/flinkjob/flinkjob/engine/expr"
	"github.com/flinkjob/flinkjob/engine/projection"
	"github.com/flinkjob/flinkjob/engine/spec"
)

// pushProjections sets Node.Fields on every source whose records are read
// only in part (projection pushdown, see package projection): the fields
// its own timestamp expression reads, and for each consumer, what that
// consumer can observe of a record.
//
// Only steps whose use of the record is wholly in their expressions count
// as partial readers: filter (which passes the record on, so its own
// consumers count too), map, flatMap, and process (onElement sees the
// record only as `record`), plus the key expression of a keyBy edge.
// Everything else (sinks, Go calls, reduce, windows, aggregates, joins,
// unions, broadcast edges, side outputs) keeps or emits records whole, so
// the source then produces whole records, as it does when
// Options.ReadAllFields is set.
func pushProjections(g *Graph, opts Options) {
	if opts.ReadAllFields {
		return
	}
	consumers := map[*Node][]consumerEdge{}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			consumers[in.From] = append(consumers[in.From], consumerEdge{n, in})
		}
	}
	for _, n := range g.Nodes {
		if n.Kind != KindSource {
			continue
		}
		f := projection.None()
		f.Merge(n.Exprs.Timestamp.Reads(expr.Record))
		readers(n, consumers, f)
		if !f.IsAll() {
			n.Fields = f
		}
	}
}

type consumerEdge struct {
	to *Node
	in *Input
}

// readers adds to f what n's consumers read of the records n emits.
func readers(n *Node, consumers map[*Node][]consumerEdge, f *projection.Fields) {
	for _, c := range consumers[n] {
		if f.IsAll() {
			return
		}
		if c.in.Output != "" || c.in.Partitioning == spec.Broadcast {
			f.Merge(projection.All())
			return
		}
		f.Merge(c.in.Key.Reads(expr.Record))
		switch c.to.Kind {
		case KindFilter:
			f.Merge(c.to.Exprs.Main.Reads(expr.Record))
			readers(c.to, consumers, f)
		case KindMap, KindFlatMap:
			f.Merge(c.to.Exprs.Main.Reads(expr.Record))
		case KindProcess:
			f.Merge(c.to.Exprs.OnElement.Reads(expr.Record))
		default:
			f.Merge(projection.All())
		}
	}
}
