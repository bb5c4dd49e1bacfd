package operator

import (
	"fmt"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/udf"
	"github.com/flinkjob/flinkjob/engine/watermark"
)

// Chain is a stage's operators, head first.
type Chain struct {
	Stage *plan.Stage
	Ops   []Operator
	// Source is the head when the stage reads a source.
	Source *Source
	// Keyed is the head when it keeps keyed state.
	Keyed Keyed
}

// Head is the operator records enter.
func (c *Chain) Head() Operator { return c.Ops[0] }

// NewChain builds the operators of a stage. sinks holds the job's sink
// connectors by step name (one instance per job, shared by its subtasks).
func NewChain(st *plan.Stage, mode spec.RuntimeMode, sinks map[string]connector.Sink) (*Chain, error) {
	c := &Chain{Stage: st}
	for _, n := range st.Chain {
		op, err := newOperator(n, mode, sinks)
		if err != nil {
			return nil, err
		}
		c.Ops = append(c.Ops, op)
	}
	if s, ok := c.Ops[0].(*Source); ok {
		c.Source = s
	}
	if k, ok := c.Ops[0].(Keyed); ok {
		c.Keyed = k
	}
	return c, nil
}

// Open opens the operators from tail to head, wiring each to the next;
// out receives the tail's output.
func (c *Chain) Open(ctx *Context, out Collector) error {
	tail := out
	for i := len(c.Ops) - 1; i >= 0; i-- {
		if err := c.Ops[i].Open(ctx, out); err != nil {
			return err
		}
		out = next{c.Ops[i]}
	}
	c.reuseOutputs(tail)
	return nil
}

// Finish finishes the operators head to tail, so each one's final output
// reaches the next before that one finishes.
func (c *Chain) Finish() error {
	for _, op := range c.Ops {
		if err := op.Finish(); err != nil {
			return err
		}
	}
	return nil
}

// Close releases every operator.
func (c *Chain) Close() {
	for _, op := range c.Ops {
		op.Close()
	}
}

func newOperator(n *plan.Node, mode spec.RuntimeMode, sinks map[string]connector.Sink) (Operator, error) {
	b := base{name: n.Name}
	st := n.Step
	switch n.Kind {
	case plan.KindSource:
		s := &Source{base: b, tsProg: n.Exprs.Timestamp, malformedName: st.Source.MalformedOutput}
		if mode == spec.Streaming && st.Source.Watermarks != nil {
			s.gen = watermark.NewGenerator(st.Source.Watermarks.MaxOutOfOrderness.Millis())
		} else if mode == spec.Streaming && n.Exprs.Timestamp != nil {
			// Timestamps without a strategy: no watermarks until the end of
			// input, as in Flink (WatermarkStrategy.noWatermarks()).
			s.gen = nil
		}
		return s, nil
	case plan.KindMap:
		return newMap(b, n.Exprs.Main), nil
	case plan.KindFilter:
		return &Filter{base: b, prog: n.Exprs.Main}, nil
	case plan.KindFlatMap:
		return &FlatMap{base: b, prog: n.Exprs.Main}, nil
	case plan.KindCall:
		fn, ok := udf.Lookup(st.Call)
		if !ok {
			return nil, fmt.Errorf("step %q: no Go function named %q is registered (registered: %v)", n.Name, st.Call, udf.Names())
		}
		return &Call{base: b, fn: fn, rows: udf.AcceptsRows(st.Call), peek: udf.LookupPeek(st.Call)}, nil
	case plan.KindUnion:
		return &Union{base: b}, nil
	case plan.KindReduce:
		return &Rolling{keyedBase: keyedBase{base: b}, agg: newReducer(n.Exprs.Main)}, nil
	case plan.KindAggregate:
		return &Rolling{keyedBase: keyedBase{base: b}, agg: newFields(n.Exprs.Agg), isAgg: true}, nil
	case plan.KindWindow:
		w := st.Window
		o := &Window{keyedBase: keyedBase{base: b}, step: n.Name, lateName: w.LateDataOutput,
			asg:      assigner{typ: w.Type, size: w.Size.Millis(), slide: w.Slide.Millis(), gap: w.Gap.Millis()},
			lateness: w.AllowedLateness.Millis()}
		if w.Aggregate != nil {
			o.agg, o.isAgg = newFields(n.Exprs.Agg), true
		} else {
			o.agg = newReducer(n.Exprs.Main)
		}
		return o, nil
	case plan.KindJoin:
		j := st.Join
		if j.Window != nil {
			return &WindowJoin{keyedBase: keyedBase{base: b}, j: newJoiner(n.Exprs.Select),
				asg: assigner{typ: j.Window.Type, size: j.Window.Size.Millis(), slide: j.Window.Slide.Millis()}}, nil
		}
		lo, _ := plan.ParseSignedDuration(j.Interval.LowerBound)
		hi, _ := plan.ParseSignedDuration(j.Interval.UpperBound)
		return &IntervalJoin{keyedBase: keyedBase{base: b}, lower: lo, upper: hi, j: newJoiner(n.Exprs.Select)}, nil
	case plan.KindProcess:
		p := &Process{keyedBase: keyedBase{base: b}, onElement: n.Exprs.OnElement, onTimerP: n.Exprs.OnTimer}
		for _, in := range n.Inputs {
			p.inputNames = append(p.inputNames, in.Listed)
			p.broadcastIn = append(p.broadcastIn, in.Partitioning == spec.Broadcast)
		}
		return p, nil
	case plan.KindSink:
		s, ok := sinks[n.Name]
		if !ok {
			return nil, fmt.Errorf("step %q: no sink connector was created for it", n.Name)
		}
		return &Sink{base: b, sink: s, goSink: st.Sink != nil && st.Sink.Call != ""}, nil
	}
	return nil, fmt.Errorf("step %q: kind %s cannot run as an operator", n.Name, n.Kind)
}
