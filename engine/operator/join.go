package operator

import (
	"fmt"

	"github.com/flinkjob/flinkjob/engine/expr"
	"github.com/flinkjob/flinkjob/engine/state"
	"github.com/flinkjob/flinkjob/engine/value"
)

// side is a buffered record of one join input.
type side struct {
	v  any
	ts int64
}

func sidesToValue(l []side) any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = []any{s.v, s.ts}
	}
	return out
}

func sidesFromValue(v any) ([]side, error) {
	list, _ := v.([]any)
	out := make([]side, 0, len(list))
	for _, e := range list {
		p, ok := e.([]any)
		if !ok || len(p) != 2 {
			return nil, fmt.Errorf("join state: bad entry")
		}
		ts, _ := p[1].(int64)
		out = append(out, side{v: p[0], ts: ts})
	}
	return out, nil
}

// joinWin is one window of a window join: the buffered records of both sides.
type joinWin struct {
	start, end  int64
	left, right []side
}

type joinWins struct{ ws []*joinWin }

var joinWinsCodec = state.Codec{
	ToValue: func(v any) any {
		s := v.(*joinWins)
		out := make([]any, len(s.ws))
		for i, w := range s.ws {
			out[i] = []any{w.start, w.end, sidesToValue(w.left), sidesToValue(w.right)}
		}
		return out
	},
	FromValue: func(v any) (any, error) {
		list, _ := v.([]any)
		s := &joinWins{}
		for _, e := range list {
			t, ok := e.([]any)
			if !ok || len(t) != 4 {
				return nil, fmt.Errorf("join state: bad window")
			}
			w := &joinWin{}
			w.start, _ = t[0].(int64)
			w.end, _ = t[1].(int64)
			var err error
			if w.left, err = sidesFromValue(t[2]); err != nil {
				return nil, err
			}
			if w.right, err = sidesFromValue(t[3]); err != nil {
				return nil, err
			}
			s.ws = append(s.ws, w)
		}
		return s, nil
	},
}

// joiner builds join output from a pair.
type joiner struct {
	sel *expr.Evaluator // nil: {left, right}
	// pairs, without a select, is the schema of {left, right} rows while
	// rows are on (value.UseRows, read when the step is set up); nil:
	// maps.
	pairs *value.Schema
	// args passes a pair to the select expression, reused: a variadic
	// argument built per call would escape to the heap.
	args []any
}

// pairSchema is the schema of a join's {left, right} pairs.
var pairSchema = value.MustSchemaOf("left", "right")

func newJoiner(p *expr.Program) joiner {
	if p == nil {
		if value.UseRows {
			return joiner{pairs: pairSchema}
		}
		return joiner{}
	}
	return joiner{sel: p.Evaluator(), args: make([]any, 3)}
}

func (j joiner) pair(l, r, key any) (any, error) {
	if j.sel != nil {
		j.args[0], j.args[1], j.args[2] = l, r, key
		v, err := j.sel.Eval(j.args...)
		clear(j.args)
		return v, err
	}
	if j.pairs != nil {
		row := value.NewRow(j.pairs)
		row.Set(0, l) // left and right, sorted
		row.Set(1, r)
		return row, nil
	}
	return map[string]any{"left": l, "right": r}, nil
}

// WindowJoin joins two keyed inputs: every pair of a left and a right record
// with equal keys in the same window is emitted when the window fires (an
// inner join, like Flink's DataStream.join().where().equalTo().window()).
type WindowJoin struct {
	keyedBase
	asg  assigner
	j    joiner
	wins state.ValueState
}

func (o *WindowJoin) Open(ctx *Context, out Collector) error {
	o.openKeyed(ctx, out)
	o.wins = o.st.Value("windows", joinWinsCodec)
	o.onTimer = o.fire
	return nil
}

func (o *WindowJoin) Process(r *value.Record, input int) error {
	if r.Ts == value.NoTimestamp {
		return o.fail(fmt.Errorf("a window join needs event time, but the record has no timestamp: set source.timestamp"))
	}
	o.setKey(r)
	s, _ := o.wins.Get().(*joinWins)
	if s == nil {
		s = &joinWins{}
	}
	placed := false
	_ = o.asg.assign(r.Ts, func(start, end int64) error {
		if end-1 <= o.wm {
			return nil // late: the window has fired
		}
		placed = true
		var w *joinWin
		for _, x := range s.ws {
			if x.start == start {
				w = x
			}
		}
		if w == nil {
			w = &joinWin{start: start, end: end}
			s.ws = append(s.ws, w)
			o.timers.Register(state.EventTime, end-1)
		}
		if input == 0 {
			w.left = append(w.left, side{r.Value, r.Ts})
		} else {
			w.right = append(w.right, side{r.Value, r.Ts})
		}
		return nil
	})
	if len(s.ws) > 0 {
		o.wins.Set(s)
	}
	if !placed && o.ctx.LateDropped != nil {
		// Too late for every window: dropped, and counted like the
		// window and interval join operators' late records.
		*o.ctx.LateDropped++
	}
	return nil
}

func (o *WindowJoin) fire(t state.Timer) error {
	s, _ := o.wins.Get().(*joinWins)
	if s == nil {
		return nil
	}
	var keep []*joinWin
	for _, w := range s.ws {
		if w.end-1 != t.Ts {
			keep = append(keep, w)
			continue
		}
		for _, l := range w.left {
			for _, r := range w.right {
				v, err := o.j.pair(l.v, r.v, t.Key)
				if err != nil {
					return err
				}
				if err := o.base.emit(v, w.end-1); err != nil {
					return err
				}
			}
		}
	}
	if len(keep) == 0 {
		o.wins.Clear()
	} else {
		s.ws = keep
		o.wins.Set(s)
	}
	return nil
}

// IntervalJoin joins two keyed inputs: a left record at time l and a right
// record at time r with equal keys join when l+lower <= r <= l+upper. Pairs
// are emitted as soon as both are present, with the larger timestamp.
// Records older than the watermark are dropped as late, as in Flink.
type IntervalJoin struct {
	keyedBase
	lower, upper int64
	j            joiner
	left, right  state.ValueState
}

var sidesCodec = state.Codec{
	ToValue:   func(v any) any { return sidesToValue(v.([]side)) },
	FromValue: func(v any) (any, error) { return sidesFromValue(v) },
}

func (o *IntervalJoin) Open(ctx *Context, out Collector) error {
	o.openKeyed(ctx, out)
	o.left = o.st.Value("left", sidesCodec)
	o.right = o.st.Value("right", sidesCodec)
	o.onTimer = o.cleanup
	return nil
}

func (o *IntervalJoin) Process(r *value.Record, input int) error {
	if r.Ts == value.NoTimestamp {
		return o.fail(fmt.Errorf("an interval join needs event time, but the record has no timestamp: set source.timestamp"))
	}
	if r.Ts < o.wm {
		if o.ctx.LateDropped != nil {
			*o.ctx.LateDropped++
		}
		return nil
	}
	o.setKey(r)
	mine, other := o.left, o.right
	lo, hi := r.Ts+o.lower, r.Ts+o.upper // range of right timestamps
	cleanupAt := r.Ts
	if o.upper > 0 {
		cleanupAt = r.Ts + o.upper
	}
	if input == 1 {
		mine, other = o.right, o.left
		lo, hi = r.Ts-o.upper, r.Ts-o.lower // range of left timestamps
		cleanupAt = r.Ts
		if -o.lower > 0 {
			cleanupAt = r.Ts - o.lower
		}
	}
	buf, _ := mine.Get().([]side)
	mine.Set(append(buf, side{r.Value, r.Ts}))
	others, _ := other.Get().([]side)
	for _, x := range others {
		if x.ts < lo || x.ts > hi {
			continue
		}
		l, rr := r.Value, x.v
		if input == 1 {
			l, rr = x.v, r.Value
		}
		v, err := o.j.pair(l, rr, r.Key)
		if err != nil {
			return o.fail(err)
		}
		if err := o.base.emit(v, max(r.Ts, x.ts)); err != nil {
			return err
		}
	}
	o.timers.Register(state.EventTime, cleanupAt)
	return nil
}

// cleanup drops buffered records that can no longer join anything.
func (o *IntervalJoin) cleanup(t state.Timer) error {
	prune := func(s state.ValueState, horizon func(ts int64) int64) {
		buf, _ := s.Get().([]side)
		keep := buf[:0]
		for _, x := range buf {
			if horizon(x.ts) > t.Ts {
				keep = append(keep, x)
			}
		}
		if len(keep) == 0 {
			s.Clear()
		} else {
			s.Set(keep)
		}
	}
	prune(o.left, func(ts int64) int64 {
		if o.upper > 0 {
			return ts + o.upper
		}
		return ts
	})
	prune(o.right, func(ts int64) int64 {
		if o.lower < 0 {
			return ts - o.lower
		}
		return ts
	})
	return nil
}
