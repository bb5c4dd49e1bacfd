package operator

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/expr"
	"github.com/flinkjob/flinkjob/engine/udf"
	"github.com/flinkjob/flinkjob/engine/value"
	"github.com/flinkjob/flinkjob/engine/watermark"
)

// Map evaluates a CEL expression per record.
type Map struct {
	base
	prog *expr.Program
	ev   *expr.Evaluator
	// What the expression's result is made of, from its AST (see
	// expr.Program.FreshMap and RecordPath): fresh, a new map whose
	// entries in freshCheck may hold the input's maps or lists; or picks,
	// a part of the input at that path.
	fresh      bool
	freshCheck []string
	picks      []string
	// consumed, when set, takes back the source's values this step is
	// done with (see Chain.RecycleSourceValues): all of them when
	// outputReleased, else those whose output provably shares no map or
	// list with them (fresh, and none in the entries freshCheck names), or
	// the rest of the input once the part it picks is cut out.
	consumed       func(v any)
	outputReleased bool
	// scratch, when set, is the map the output is built in, cleared after
	// every record (see Chain.reuseOutputs).
	scratch map[string]any
	// args passes the record to EvalInto: a variadic argument built per
	// call would escape to the heap (the evaluator keeps the slice while
	// it runs).
	args []any
}

func newMap(b base, prog *expr.Program) *Map {
	m := &Map{base: b, prog: prog}
	if m.freshCheck, m.fresh = prog.FreshMap(); !m.fresh {
		m.picks, _ = prog.RecordPath(expr.Record)
	}
	return m
}

func (m *Map) Open(ctx *Context, out Collector) error {
	m.base.Open(ctx, out)
	m.ev = m.prog.Evaluator()
	m.args = make([]any, 1)
	return nil
}

func (m *Map) Process(r *value.Record, _ int) error {
	var v any
	var err error
	if m.scratch != nil {
		m.args[0] = r.Value
		v, err = m.ev.EvalInto(m.scratch, m.args...)
		m.args[0] = nil
		// The sink is done with the output when emit returns.
		defer clear(m.scratch)
	} else {
		v, err = m.ev.Eval1(r.Value)
	}
	if err != nil {
		return m.fail(err)
	}
	in := r.Value
	err = m.emit(v, r.Ts)
	switch {
	case m.consumed == nil:
	case m.outputReleased:
		// The sink is done with the output, and whatever of the input
		// it holds, when emit returns.
		m.consumed(in)
	case m.picks != nil:
		if detach(in, m.picks) {
			m.consumed(in)
		}
	case m.fresh && !m.sharesInput(v):
		m.consumed(in)
	}
	return err
}

// Filter keeps records for which a CEL predicate holds.
type Filter struct {
	base
	prog *expr.Program
	ev   *expr.Evaluator
	// dropped, when set, takes the values this filter rejects (see
	// Chain.RecycleSourceValues).
	dropped func(v any)
}

func (f *Filter) Open(ctx *Context, out Collector) error {
	f.base.Open(ctx, out)
	f.ev = f.prog.Evaluator()
	return nil
}

func (f *Filter) Process(r *value.Record, _ int) error {
	ok, err := f.ev.EvalBool(r.Value)
	if err != nil {
		return f.fail(err)
	}
	if !ok {
		f.drop(r)
		return nil
	}
	return f.emit(r.Value, r.Ts)
}

// FlatMap emits each element of the list a CEL expression returns.
type FlatMap struct {
	base
	prog *expr.Program
	ev   *expr.Evaluator
}

func (f *FlatMap) Open(ctx *Context, out Collector) error {
	f.base.Open(ctx, out)
	f.ev = f.prog.Evaluator()
	return nil
}

func (f *FlatMap) Process(r *value.Record, _ int) error {
	v, err := f.ev.Eval1(r.Value)
	if err != nil {
		return f.fail(err)
	}
	list, ok := v.([]any)
	if !ok && v != nil {
		return f.fail(fmt.Errorf("flatMap expression %q returned %s, want a list", f.prog.Source(), value.TypeName(v)))
	}
	for _, e := range list {
		if err := f.emit(e, r.Ts); err != nil {
			return err
		}
	}
	return nil
}

// Call runs a Go function registered with package udf.
type Call struct {
	base
	fn   udf.Func
	ts   int64
	err  error
	emit func(any)
	// plain says the function gets value.Plain of each value: user code
	// asserts map[string]any and must not see the engine's rows, unless
	// it was registered to (rows: udf.AcceptsRows).
	plain, rows bool
	// peek is set for a function registered with udf.Peek: it only
	// observes, so the record goes on as it came (no Normalize) and
	// recycling looks through the step (RecycleSourceValues).
	peek func(any) error
}

func (c *Call) emit1(v any, ts int64) error { return c.base.emit(v, ts) }

func (c *Call) Open(ctx *Context, out Collector) error {
	c.base.Open(ctx, out)
	// Without rows nothing is converted: Plain would only walk the value.
	c.plain = value.UseRows && !c.rows
	c.emit = func(v any) {
		if c.err != nil {
			return
		}
		c.err = c.emit1(value.Normalize(v), c.ts)
	}
	return nil
}

func (c *Call) Process(r *value.Record, _ int) error {
	if c.peek != nil {
		if err := c.peek(r.Value); err != nil {
			return c.fail(err)
		}
		return c.emit1(r.Value, r.Ts)
	}
	c.ts = r.Ts
	v := r.Value
	if c.plain {
		v = value.Plain(v)
	}
	if err := c.fn(v, c.emit); err != nil {
		return c.fail(err)
	}
	err := c.err
	c.err = nil
	return err
}

// Union forwards records from all its inputs. Its watermark is already the
// minimum over the inputs (the task's valve computes it).
type Union struct{ base }

func (u *Union) Process(r *value.Record, _ int) error {
	return u.emit(r.Value, r.Ts)
}

// Source is the head of a source stage: it stamps each record with its
// event time and tracks the watermark the source's strategy implies.
// The task reads the connector and calls Process per value.
type Source struct {
	base
	tsProg *expr.Program
	tsEv   *expr.Evaluator
	gen    *watermark.Generator // nil when the job has no watermark strategy or in BATCH
	last   int64
	// splitWm is the watermark a reader tracking its splits reported with
	// its last connector.Timestamped value (hasSplitWm once it did).
	splitWm    int64
	hasSplitWm bool
	// malformedName is the step's source.malformedOutput ("" fails on a
	// malformed record, as the reader does without it); malformed is its
	// collector and counted its count.
	malformedName string
	malformed     Collector
	counted       *atomic.Int64
	rows          bool
	// Locate, set by the task when the reader is a connector.Locator,
	// says where the record being processed came from, for a record whose
	// timestamp expression fails.
	Locate func() ([]byte, string)
}

func (s *Source) Open(ctx *Context, out Collector) error {
	s.base.Open(ctx, out)
	s.last = value.MinWatermark
	if s.tsProg != nil {
		s.tsEv = s.tsProg.Evaluator()
	}
	if s.malformedName != "" && ctx.SideOutput != nil {
		s.malformed = ctx.SideOutput(s.name, s.malformedName)
		s.counted = ctx.Malformed
		s.rows = value.UseRows
	}
	return nil
}

// routeMalformed sends a record the source could not read (or stamp) to
// the malformed side output and counts it.
func (s *Source) routeMalformed(errMsg string, raw []byte, location string) error {
	if s.malformed == nil {
		// A chain run without side outputs: fail as the reader would.
		return s.fail(errors.New(errMsg))
	}
	if s.counted != nil {
		s.counted.Add(1)
	}
	r := value.Record{Value: connector.MalformedRecord(errMsg, raw, location, s.rows), Ts: value.NoTimestamp}
	return s.malformed.Collect(&r)
}

// badTimestamp routes a record whose timestamp expression failed when the
// source routes malformed records, else fails the job with err.
func (s *Source) badTimestamp(err error) error {
	if s.malformed == nil {
		return s.fail(err)
	}
	var raw []byte
	loc := ""
	if s.Locate != nil {
		raw, loc = s.Locate()
	}
	return s.routeMalformed(err.Error(), raw, loc)
}

func (s *Source) Process(r *value.Record, _ int) error {
	if m, ok := r.Value.(*connector.Malformed); ok {
		// Only a reader told to route malformed records emits one.
		return s.routeMalformed(m.Err, m.Raw, m.Location)
	}
	if t, ok := r.Value.(*connector.Timestamped); ok {
		// The record carries its own event time (a Kafka timestamp); a
		// timestamp expression, if any, still has the last word.
		r.Value = t.Value
		if s.tsProg == nil {
			r.Ts = t.Ts
			if s.gen != nil {
				s.splitWm, s.hasSplitWm = t.Watermark, true
			}
			return s.out.Collect(r)
		}
	}
	if s.tsProg != nil {
		v, err := s.tsEv.Eval1(r.Value)
		if err != nil {
			return s.badTimestamp(err)
		}
		ts, err := expr.ToMillis(v)
		if err != nil {
			return s.badTimestamp(fmt.Errorf("source.timestamp: %v", err))
		}
		r.Ts = ts
		if s.gen != nil {
			s.gen.OnEvent(ts)
		}
	}
	return s.out.Collect(r)
}

// EmitWatermark sends the strategy's current watermark if it advanced. The
// task calls it after each batch read from the connector (STREAMING only).
func (s *Source) EmitWatermark() error {
	if s.gen == nil {
		return nil
	}
	wm := s.gen.Current()
	if s.hasSplitWm {
		wm = s.splitWm
	}
	if wm > s.last {
		s.last = wm
		return s.out.Watermark(wm)
	}
	return nil
}

// CurrentWatermark is the last watermark the source emitted.
func (s *Source) CurrentWatermark() int64 { return s.last }

// Sink writes records to a connector writer.
type Sink struct {
	base
	sink     connector.Sink
	w        connector.Writer
	finished bool
	// goSink says the writer is user code (`sink: {call: name}`); plain,
	// that it gets value.Plain of each value (see RowsAware).
	goSink, plain bool
}

// RowsAware is implemented by the writers of Go sinks (`sink: {call:
// name}`) that handle the engine's *value.Row values themselves, reading
// them with value.Field or by schema index. Any other Go sink is user code
// written against map[string]any, so while rows are on (value.UseRows) it
// is given value.Plain of each value: a row is never visible to it.
type RowsAware interface {
	AcceptsRows() bool
}

func (s *Sink) Open(ctx *Context, out Collector) error {
	s.base.Open(ctx, out)
	w, err := s.sink.Open(ctx.Ctx, ctx.Subtask, ctx.Parallelism)
	if err != nil {
		return s.fail(err)
	}
	s.w = w
	ra, ok := w.(RowsAware)
	s.plain = s.goSink && value.UseRows && !(ok && ra.AcceptsRows())
	return nil
}

func (s *Sink) Process(r *value.Record, _ int) error {
	if s.plain {
		p := *r
		p.Value = value.Plain(r.Value)
		r = &p
	}
	if err := s.w.Write(r); err != nil {
		return s.fail(err)
	}
	return nil
}

func (s *Sink) Watermark(int64) error { return nil }

func (s *Sink) Finish() error {
	s.finished = true
	if err := s.w.Close(); err != nil {
		return s.fail(err)
	}
	return nil
}

func (s *Sink) Close() {
	if !s.finished && s.w != nil {
		s.w.Abort()
	}
}
