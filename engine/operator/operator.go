// Package operator holds the operators of a stage's chain and the wiring that
// calls them one after another. Operators in a chain pass records by pointer
// through direct calls: nothing is serialized inside a stage.
//
// Keyed operators (reduce, aggregate, window, join, process) keep their state
// and timers in package state, whose form depends on the runtime mode; the
// operator code is the same in both modes, except where Flink's semantics
// differ (a rolling reduce emits per record in STREAMING, once per key in
// BATCH).
package operator

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/state"
	"github.com/flinkjob/flinkjob/engine/value"
)

// Collector receives an operator's output.
type Collector interface {
	Collect(r *value.Record) error
	Watermark(wm int64) error
}

// Context is what the task gives the operators of one subtask.
type Context struct {
	// Ctx is cancelled when the job stops.
	Ctx         context.Context
	Mode        spec.RuntimeMode
	Subtask     int
	Parallelism int
	// BatchProcessingTime says what BATCH does with processing-time timers.
	BatchProcessingTime spec.ProcessingTimeBehavior
	// Now returns processing time in ms.
	Now func() int64
	// SideOutput returns the collector of a named side output of a step.
	SideOutput func(step, name string) Collector
	// ProcessingTimerSet tells the task that a processing-time timer is due
	// at ts, so it can wake up then (STREAMING).
	ProcessingTimerSet func(ts int64)
	// Counters, if set, count late records dropped without a side output.
	LateDropped *int64
	// Malformed, if set, counts the records a source routed to its
	// malformedOutput (read live, so atomic).
	Malformed *atomic.Int64
}

// Batch reports whether the job runs in BATCH mode.
func (c *Context) Batch() bool { return c.Mode == spec.Batch }

// Operator is one step of a chain.
type Operator interface {
	// Open prepares the operator; out receives its output.
	Open(ctx *Context, out Collector) error
	// Process handles one record arriving on input (0 for single-input operators).
	Process(r *value.Record, input int) error
	// Watermark advances event time; the operator fires due timers and forwards it.
	Watermark(wm int64) error
	// Finish is called once at the end of all input, after MaxWatermark.
	Finish() error
	// Close releases resources; after a failure it is called without Finish.
	Close()
}

// Keyed is implemented by operators with keyed state.
type Keyed interface {
	Operator
	// EndKey ends the current key in BATCH: its event-time timers fire as if
	// the watermark were MaxWatermark, final results are emitted, and the
	// key's state is dropped.
	EndKey() error
	// FireProcessingTimers fires processing-time timers due at now (STREAMING).
	FireProcessingTimers(now int64) error
	// State exposes the keyed state and timers (for snapshots).
	State() (*state.Keyed, *state.Timers)
}

// StepError wraps an operator failure with the step that failed.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return fmt.Sprintf("step %q: %v", e.Step, e.Err) }
func (e *StepError) Unwrap() error { return e.Err }

// next adapts an operator as the collector of the operator before it.
type next struct{ op Operator }

func (n next) Collect(r *value.Record) error { return n.op.Process(r, 0) }
func (n next) Watermark(wm int64) error      { return n.op.Watermark(wm) }

// Discard is a collector that drops everything and counts records.
type Discard struct{ N int64 }

func (d *Discard) Collect(*value.Record) error { d.N++; return nil }
func (d *Discard) Watermark(int64) error       { return nil }

// base holds what every operator has.
type base struct {
	name string
	ctx  *Context
	out  Collector
	// rec is the record emit hands downstream, reused for every record:
	// collectors copy what they keep (edge writers copy the fields, BATCH
	// writers encode, sinks own nothing after Write returns, operators
	// keep values, never the *Record), so one per operator is enough and
	// saves a heap allocation per record.
	rec value.Record
}

// emit sends a new record (value v at ts, no key) downstream.
func (b *base) emit(v any, ts int64) error {
	b.rec = value.Record{Value: v, Ts: ts}
	return b.out.Collect(&b.rec)
}

// emitTo is emit to another collector (a side output).
func (b *base) emitTo(c Collector, v any, ts int64) error {
	b.rec = value.Record{Value: v, Ts: ts}
	return c.Collect(&b.rec)
}

func (b *base) Open(ctx *Context, out Collector) error {
	b.ctx, b.out = ctx, out
	return nil
}
func (b *base) Watermark(wm int64) error { return b.out.Watermark(wm) }
func (b *base) Finish() error            { return nil }
func (b *base) Close()                   {}
func (b *base) fail(err error) error     { return &StepError{Step: b.name, Err: err} }

// keyedBase is the part shared by keyed operators: state, timers, the
// current watermark and the BATCH end-of-key protocol.
type keyedBase struct {
	base
	st     *state.Keyed
	timers *state.Timers
	wm     int64
	// onTimer handles a due timer; the timer's key is current.
	onTimer func(t state.Timer) error
	// endKey emits BATCH final results of the current key (optional).
	endKey func() error
}

func (k *keyedBase) openKeyed(ctx *Context, out Collector) {
	k.base.Open(ctx, out)
	if ctx.Batch() {
		k.st = state.NewSingleKey()
	} else {
		k.st = state.NewHash()
	}
	k.timers = state.NewTimers(k.st)
	k.wm = value.MinWatermark
}

func (k *keyedBase) State() (*state.Keyed, *state.Timers) { return k.st, k.timers }

func (k *keyedBase) setKey(r *value.Record) {
	k.st.SetCurrentKey(r.KeyID, r.Key)
}

func (k *keyedBase) Watermark(wm int64) error {
	k.wm = wm
	for {
		t, ok := k.timers.PopDue(state.EventTime, wm)
		if !ok {
			break
		}
		if err := k.onTimer(t); err != nil {
			return k.fail(err)
		}
	}
	return k.out.Watermark(wm)
}

func (k *keyedBase) EndKey() error {
	k.wm = value.MaxWatermark
	for {
		t, ok := k.timers.PopDue(state.EventTime, value.MaxWatermark)
		if !ok {
			break
		}
		if err := k.onTimer(t); err != nil {
			return k.fail(err)
		}
	}
	if k.endKey != nil {
		if err := k.endKey(); err != nil {
			return k.fail(err)
		}
	}
	k.timers.Reset()
	// The next key starts before any event time again.
	k.wm = value.MinWatermark
	return nil
}

func (k *keyedBase) FireProcessingTimers(now int64) error {
	for {
		t, ok := k.timers.PopDue(state.ProcessingTime, now)
		if !ok {
			break
		}
		if err := k.onTimer(t); err != nil {
			return k.fail(err)
		}
	}
	return nil
}

// registerProcessingTimer applies the mode's rule for processing-time timers.
func (k *keyedBase) registerProcessingTimer(ts int64) error {
	if k.ctx.Batch() {
		if k.ctx.BatchProcessingTime == spec.ProcessingTimeIgnore {
			return nil
		}
		return fmt.Errorf("registers a processing-time timer, which BATCH mode cannot honour on bounded, sorted input; set spec.batchProcessingTime: IGNORE to drop such timers, or run in STREAMING")
	}
	k.timers.Register(state.ProcessingTime, ts)
	if k.ctx.ProcessingTimerSet != nil {
		k.ctx.ProcessingTimerSet(ts)
	}
	return nil
}

func (k *keyedBase) Finish() error {
	if k.ctx.Batch() {
		return nil
	}
	// STREAMING at end of input: MaxWatermark has fired every event-time
	// timer; pending processing-time timers are dropped, as in Flink.
	return nil
}
