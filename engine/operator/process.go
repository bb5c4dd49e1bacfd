package operator

import (
	"fmt"

	"github.com/flinkjob/flinkjob/engine/expr"
	"github.com/flinkjob/flinkjob/engine/state"
	"github.com/flinkjob/flinkjob/engine/value"
)

// Process is a keyed process function written in CEL, like Flink's
// KeyedProcessFunction (and KeyedBroadcastProcessFunction when one input is
// broadcast). onElement and onTimer return a map of actions:
//
//	emit:             list of records to emit
//	state:            the key's new state (null clears it)
//	timers:           event-time timers (ms) to register for the key
//	processingTimers: processing-time timers (ms) to register
//	broadcast:        new broadcast state (only from a broadcast input)
type Process struct {
	keyedBase
	onElement   *expr.Program
	onTimerP    *expr.Program
	inputNames  []string
	broadcastIn []bool
	elemEv      *expr.Evaluator
	timerEv     *expr.Evaluator // nil without onTimer
	val         state.ValueState
	// bstate is the subtask's broadcast state: the same on every subtask
	// because every subtask sees every broadcast record.
	bstate any
	// Reused per evaluation so that passing the variables allocates
	// nothing: the argument slice, the input names boxed once, and the
	// last boxed timestamp and watermark (records of a stream often share
	// a millisecond; the watermark changes once per batch at most).
	args      []any
	inputsAny []any
	lastTs    int64
	lastTsAny any
	lastWm    int64
	lastWmAny any
}

// box returns v as an interface, reusing the last one boxed for slot.
func box(v int64, last *int64, boxed *any) any {
	if *boxed == nil || *last != v {
		*last, *boxed = v, v
	}
	return *boxed
}

func (o *Process) Open(ctx *Context, out Collector) error {
	o.openKeyed(ctx, out)
	o.val = o.st.Value("state", state.Codec{})
	o.onTimer = o.timer
	o.elemEv = o.onElement.Evaluator()
	o.inputsAny = make([]any, len(o.inputNames))
	for i, n := range o.inputNames {
		o.inputsAny[i] = n
	}
	if o.onTimerP != nil {
		o.timerEv = o.onTimerP.Evaluator()
	}
	return nil
}

// BroadcastState returns the broadcast state and whether the step has a
// broadcast input, so checkpoints can store it (issue #7).
func (o *Process) BroadcastState() (any, bool) {
	for _, b := range o.broadcastIn {
		if b {
			return o.bstate, true
		}
	}
	return nil, false
}

// SetBroadcastState restores the broadcast state from a checkpoint.
func (o *Process) SetBroadcastState(v any) { o.bstate = v }

func (o *Process) Process(r *value.Record, input int) error {
	bc := input < len(o.broadcastIn) && o.broadcastIn[input]
	var key, st any
	if !bc {
		o.setKey(r)
		key, st = r.Key, o.val.Get()
	}
	ts := int64(0)
	if r.Ts != value.NoTimestamp {
		ts = r.Ts
	}
	o.args = append(o.args[:0], r.Value, key, st, box(ts, &o.lastTs, &o.lastTsAny), o.inputsAny[input],
		box(o.wm, &o.lastWm, &o.lastWmAny), o.bstate)
	res, err := o.elemEv.Eval(o.args...)
	clear(o.args)
	if err != nil {
		return o.fail(err)
	}
	return o.apply(res, r.Ts, bc)
}

func (o *Process) timer(t state.Timer) error {
	if o.onTimerP == nil {
		return nil
	}
	res, err := o.timerEv.Eval(t.Key, o.val.Get(), t.Ts, t.Domain.String(), o.wm, o.bstate)
	if err != nil {
		return err
	}
	ts := t.Ts
	if t.Domain == state.ProcessingTime {
		ts = value.NoTimestamp
	}
	return o.apply(res, ts, false)
}

func (o *Process) apply(res any, ts int64, broadcast bool) error {
	if res == nil {
		return nil
	}
	m, ok := res.(map[string]any)
	if !ok {
		return o.fail(fmt.Errorf("process expression returned %s, want a map of actions", value.TypeName(res)))
	}
	for k := range m {
		switch k {
		case "emit", "state", "timers", "processingTimers", "broadcast":
		default:
			return o.fail(fmt.Errorf("process expression returned unknown action %q (want emit, state, timers, processingTimers, broadcast)", k))
		}
	}
	if v, ok := m["broadcast"]; ok {
		if !broadcast {
			return o.fail(fmt.Errorf("only records of a broadcast input may update broadcast state"))
		}
		o.bstate = v
	}
	if v, ok := m["state"]; ok {
		if broadcast {
			return o.fail(fmt.Errorf("a broadcast record has no key, so it cannot set keyed state"))
		}
		o.val.Set(v)
	}
	for _, name := range []string{"timers", "processingTimers"} {
		list, err := intList(m[name])
		if err != nil {
			return o.fail(fmt.Errorf("%s: %v", name, err))
		}
		if len(list) > 0 && broadcast {
			return o.fail(fmt.Errorf("a broadcast record has no key, so it cannot register timers"))
		}
		for _, t := range list {
			if name == "timers" {
				o.timers.Register(state.EventTime, t)
			} else if err := o.registerProcessingTimer(t); err != nil {
				return o.fail(err)
			}
		}
	}
	if v, ok := m["emit"]; ok && v != nil {
		list, ok := v.([]any)
		if !ok {
			return o.fail(fmt.Errorf("emit must be a list, got %s", value.TypeName(v)))
		}
		for _, e := range list {
			if err := o.base.emit(e, ts); err != nil {
				return err
			}
		}
	}
	return nil
}

func intList(v any) ([]int64, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("want a list of int timestamps, got %s", value.TypeName(v))
	}
	out := make([]int64, len(list))
	for i, e := range list {
		t, err := expr.ToMillis(e)
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}
