package operator

import (
	"fmt"
	"slices"

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
	// The same for onTimer: its arguments and the last timer time boxed.
	targs        []any
	lastTimer    int64
	lastTimerAny any
	// scratch is the action map the expressions may fill instead of
	// allocating one (expr.Evaluator.EvalInto): apply keeps none of it.
	scratch map[string]any
	// slots reads the rows of actions of the schemas seen last: an
	// expression's branches return actions of a few schemas, in turns.
	slots     [4]actionSlots
	nextSlots int
}

// The time domains as onTimer's timeDomain values, boxed once.
var (
	eventDomain      any = state.EventTime.String()
	processingDomain any = state.ProcessingTime.String()
)

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
	o.scratch = make(map[string]any, 4)
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
	res, err := o.elemEv.EvalInto(o.scratch, o.args...)
	clear(o.args)
	if err != nil {
		clear(o.scratch)
		return o.fail(err)
	}
	err = o.apply(res, r.Ts, bc)
	clear(o.scratch)
	return err
}

func (o *Process) timer(t state.Timer) error {
	if o.onTimerP == nil {
		return nil
	}
	// As in Process: a reused argument slice (a fresh one would escape
	// into the evaluator) and boxed values reused when they repeat.
	domain := eventDomain
	if t.Domain == state.ProcessingTime {
		domain = processingDomain
	}
	o.targs = append(o.targs[:0], t.Key, o.val.Get(), box(t.Ts, &o.lastTimer, &o.lastTimerAny), domain,
		box(o.wm, &o.lastWm, &o.lastWmAny), o.bstate)
	res, err := o.timerEv.EvalInto(o.scratch, o.targs...)
	clear(o.targs)
	if err != nil {
		clear(o.scratch)
		return err
	}
	ts := t.Ts
	if t.Domain == state.ProcessingTime {
		ts = value.NoTimestamp
	}
	err = o.apply(res, ts, false)
	clear(o.scratch)
	return err
}

// The actions a process expression may return, by index.
const (
	actEmit = iota
	actState
	actTimers
	actProcessingTimers
	actBroadcast
	nActions
)

var actionNames = [nActions]string{"emit", "state", "timers", "processingTimers", "broadcast"}

// actionSlots is where the rows of actions of one schema hold each action
// (-1 where they have none), and the first field that is no action: worked
// out once per schema, so reading a row of actions compares a pointer.
type actionSlots struct {
	schema  *value.Schema
	at      [nActions]int
	unknown string
}

func slotsOf(s *value.Schema) actionSlots {
	a := actionSlots{schema: s}
	for i, n := range actionNames {
		a.at[i] = s.Index(n)
	}
	for _, n := range s.Names() {
		if !isAction(n) {
			a.unknown = n
			break
		}
	}
	return a
}

// slotsFor returns the slots of schema s, worked out when it is not one of
// the last few seen.
func (o *Process) slotsFor(s *value.Schema) *actionSlots {
	for i := range o.slots {
		if o.slots[i].schema == s {
			return &o.slots[i]
		}
	}
	sl := &o.slots[o.nextSlots]
	o.nextSlots = (o.nextSlots + 1) % len(o.slots)
	*sl = slotsOf(s)
	return sl
}

// isAction runs once per new schema of actions, or for a map of actions
// with another key: a scan of the five names is cheap enough there.
func isAction(k string) bool { return slices.Contains(actionNames[:], k) }

func unknownAction(k string) error {
	return fmt.Errorf("process expression returned unknown action %q (want emit, state, timers, processingTimers, broadcast)", k)
}

func (o *Process) apply(res any, ts int64, broadcast bool) error {
	if res == nil {
		return nil
	}
	var acts [nActions]any
	var has [nActions]bool
	switch m := res.(type) {
	case *value.Row:
		sl := o.slotsFor(m.Schema())
		if sl.unknown != "" {
			return o.fail(unknownAction(sl.unknown))
		}
		for a, i := range sl.at {
			if i >= 0 {
				acts[a], has[a] = m.At(i), true
			}
		}
	case map[string]any:
		// Look the actions up instead of iterating over the map: the map
		// has another key exactly when fewer actions than entries are
		// found.
		n := 0
		for a, name := range actionNames {
			if acts[a], has[a] = m[name]; has[a] {
				n++
			}
		}
		if n != len(m) {
			for k := range m {
				if !isAction(k) {
					return o.fail(unknownAction(k))
				}
			}
		}
	default:
		return o.fail(fmt.Errorf("process expression returned %s, want a map of actions", value.TypeName(res)))
	}
	if has[actBroadcast] {
		if !broadcast {
			return o.fail(fmt.Errorf("only records of a broadcast input may update broadcast state"))
		}
		o.bstate = acts[actBroadcast]
	}
	if has[actState] {
		if broadcast {
			return o.fail(fmt.Errorf("a broadcast record has no key, so it cannot set keyed state"))
		}
		o.val.Set(acts[actState])
	}
	if err := o.registerTimers("timers", acts[actTimers], broadcast); err != nil {
		return err
	}
	if err := o.registerTimers("processingTimers", acts[actProcessingTimers], broadcast); err != nil {
		return err
	}
	if emit := acts[actEmit]; emit != nil {
		list, ok := emit.([]any)
		if !ok {
			return o.fail(fmt.Errorf("emit must be a list, got %s", value.TypeName(emit)))
		}
		for _, e := range list {
			if err := o.base.emit(e, ts); err != nil {
				return err
			}
		}
	}
	return nil
}

// registerTimers registers the timers of a timers or processingTimers
// action (a list of int timestamps), after checking all of them.
func (o *Process) registerTimers(name string, v any, broadcast bool) error {
	if v == nil {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		return o.fail(fmt.Errorf("%s: want a list of int timestamps, got %s", name, value.TypeName(v)))
	}
	for _, e := range list {
		if _, err := expr.ToMillis(e); err != nil {
			return o.fail(fmt.Errorf("%s: %v", name, err))
		}
	}
	if len(list) > 0 && broadcast {
		return o.fail(fmt.Errorf("a broadcast record has no key, so it cannot register timers"))
	}
	for _, e := range list {
		t, _ := expr.ToMillis(e)
		if name == "timers" {
			o.timers.Register(state.EventTime, t)
		} else if err := o.registerProcessingTimer(t); err != nil {
			return o.fail(err)
		}
	}
	return nil
}
