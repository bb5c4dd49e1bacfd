package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/flinkjob/flinkjob/engine/operator"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/shuffle"
	"github.com/flinkjob/flinkjob/engine/value"
	"github.com/flinkjob/flinkjob/engine/watermark"
)

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// edgeWriter buffers one edge's output per target subtask and sends full
// batches; watermarks and statuses go to every target in-band.
type edgeWriter struct {
	edge    *plan.Edge
	part    *shuffle.Partitioner
	channel int
	bufs    [][]Element
	size    int
	send    Sender
	ctx     context.Context
}

func (w *edgeWriter) add(target int, el Element) error {
	buf := w.bufs[target]
	if buf == nil {
		buf = GetElems(w.size)
	}
	buf = append(buf, el)
	w.bufs[target] = buf
	if len(buf) >= w.size {
		return w.flushOne(target)
	}
	return nil
}

func (w *edgeWriter) flushOne(t int) error {
	if len(w.bufs[t]) == 0 {
		return nil
	}
	b := Batch{Channel: w.channel, Elems: w.bufs[t]}
	w.bufs[t] = nil // the next add takes a slice from the pool
	return w.send.Send(w.ctx, w.edge, t, b)
}

// elemsPool recycles the element slices of batches, one pool for every
// producer and consumer of batches in a process: a task's edge writers and
// the worker exchange's decoder take slices (GetElems), and whoever is done
// with a batch puts its slice back (PutElems): a task once it processed
// every element, a Sender that copies (the exchange client encodes) once
// it has. Both ends must share it: a source worker only sends and a sink
// worker only receives, and with a pool on each side the slices never went
// round there, so every flush allocated (and zeroed) a slice of
// BatchSize elements.
var elemsPool sync.Pool

// Pooled slices hold at least the default batch size, so that one made for
// a short decoded batch can later be an edge writer's buffer, and at most
// maxPooledElems (a slice that big is rare and would pin its memory).
const (
	minPooledElems = 512
	maxPooledElems = 1 << 16
)

// GetElems returns an empty slice with room for size elements. Its
// elements up to that capacity are zero: every slice is zero when made and
// cleared up to its length when recycled, and users only append.
func GetElems(size int) []Element {
	if p, ok := elemsPool.Get().(*[]Element); ok && cap(*p) >= size {
		return (*p)[:0]
	}
	return make([]Element, 0, max(size, minPooledElems))
}

// PutElems recycles a batch slice whose elements are no longer used. It
// clears them (only up to its length: past it a slice is still zero, and
// clearing a whole slice after each batch of a sparse output would cost
// more than the batch) so the pool keeps no record values alive.
func PutElems(elems []Element) {
	if cap(elems) < minPooledElems || cap(elems) > maxPooledElems {
		return
	}
	clear(elems)
	elems = elems[:0]
	elemsPool.Put(&elems)
}

func (w *edgeWriter) collect(r *value.Record) error {
	rec := value.Record{Value: r.Value, Ts: r.Ts}
	t, err := w.part.Route(&rec)
	if err != nil {
		return err
	}
	if t == shuffle.All {
		for i := range w.bufs {
			if err := w.addRecord(i, &rec); err != nil {
				return err
			}
		}
		return nil
	}
	return w.addRecord(t, &rec)
}

// addRecord is add of a record element, written in place.
func (w *edgeWriter) addRecord(target int, r *value.Record) error {
	buf := w.bufs[target]
	if buf == nil {
		buf = GetElems(w.size)
	}
	n := len(buf)
	if n == cap(buf) {
		buf = append(buf, Element{})
	} else {
		buf = buf[:n+1]
	}
	buf[n] = Element{Kind: KindRecord, Rec: *r}
	w.bufs[target] = buf
	if n+1 >= w.size {
		return w.flushOne(target)
	}
	return nil
}

func (w *edgeWriter) mark(el Element) error {
	for i := range w.bufs {
		if err := w.add(i, el); err != nil {
			return err
		}
	}
	return nil
}

func (w *edgeWriter) flush() error {
	for i := range w.bufs {
		if err := w.flushOne(i); err != nil {
			return err
		}
	}
	return nil
}

// tickEvery is how many records processBatch processes between checks of
// the buffer timeout (a clock read each).
const tickEvery = 64

// DefaultBufferTimeout is Config.BufferTimeout's default. Flink's is
// 100ms; a few ms keeps sparse outputs (a keyed join's matches, a timer's
// results) well under the latency target while the input stays busy, at
// the cost of a clock read per input batch, per tickEvery records and per
// watermark that advanced.
const DefaultBufferTimeout = 5 * time.Millisecond

// streamOutputs fans a chain's output out to the stage's edges.
type streamOutputs struct {
	main []*edgeWriter            // edges from the tail's main output
	side map[string][]*edgeWriter // side outputs by "step/name"
	all  []*edgeWriter
	// counted counts the main output; flush syncs its count.
	counted *countingCollector
}

func newStreamOutputs(ctx context.Context, c *Config, send Sender) *streamOutputs {
	o := &streamOutputs{side: map[string][]*edgeWriter{}}
	for _, e := range c.Stage.Outputs {
		w := &edgeWriter{edge: e, part: shuffle.NewPartitioner(e, c.Index), channel: shuffle.ChannelBase(e) + c.Index,
			bufs: make([][]Element, e.To.Parallelism), size: c.BatchSize, send: send, ctx: ctx}
		o.all = append(o.all, w)
		if e.Output == "" && e.FromNode == c.Stage.Tail() {
			o.main = append(o.main, w)
		} else {
			k := e.FromNode.Name + "/" + e.Output
			o.side[k] = append(o.side[k], w)
		}
	}
	return o
}

type writersCollector []*edgeWriter

func (ws writersCollector) Collect(r *value.Record) error {
	for _, w := range ws {
		if err := w.collect(r); err != nil {
			return err
		}
	}
	return nil
}

// Watermarks of side outputs travel with the main output's (every edge
// gets every watermark through outputs.mark), so side collectors ignore them.
func (ws writersCollector) Watermark(int64) error { return nil }

func (o *streamOutputs) mainCollector(counter *Counters) operator.Collector {
	o.counted = &countingCollector{next: mainWriters{o}, n: &counter.RecordsOut}
	return o.counted
}

type mainWriters struct{ o *streamOutputs }

func (m mainWriters) Collect(r *value.Record) error { return writersCollector(m.o.main).Collect(r) }
func (m mainWriters) Watermark(wm int64) error {
	return m.o.mark(Element{Kind: KindWatermark, Wm: wm})
}

func (o *streamOutputs) sideCollector(step, name string) operator.Collector {
	if ws := o.side[step+"/"+name]; len(ws) > 0 {
		return writersCollector(ws)
	}
	return &operator.Discard{}
}

func (o *streamOutputs) mark(el Element) error {
	for _, w := range o.all {
		if err := w.mark(el); err != nil {
			return err
		}
	}
	return nil
}

// status tells every downstream subtask, at once, that this one is idle
// (its watermark does not hold theirs back) or active again.
func (o *streamOutputs) status(idle bool) error {
	k := KindActive
	if idle {
		k = KindIdle
	}
	if err := o.mark(Element{Kind: k}); err != nil {
		return err
	}
	return o.flush()
}

func (o *streamOutputs) flush() error {
	if o.counted != nil {
		o.counted.sync()
	}
	for _, w := range o.all {
		if err := w.flush(); err != nil {
			return err
		}
	}
	return nil
}

// RunStreaming runs the subtask in STREAMING mode until its input ends (or
// ctx is cancelled). inbox delivers the batches of every input channel;
// source stages have no inbox.
func RunStreaming(ctx context.Context, c Config, inbox <-chan Batch, send Sender) (err error) {
	c.defaults()
	var cps *cpState
	sinks := c.Sinks
	if c.Checkpoint != nil {
		if cps, err = newCPState(ctx, &c); err != nil {
			return err
		}
		sinks = cps.wrapSinks(sinks)
	}
	chain, err := operator.NewChain(c.Stage, c.Plan.Mode, sinks)
	if err != nil {
		return err
	}
	outs := newStreamOutputs(ctx, &c, send)
	octx := c.opContext(ctx, outs.sideCollector)
	var late int64
	octx.LateDropped = &late
	var procDeadline int64
	octx.ProcessingTimerSet = func(ts int64) {
		if procDeadline == 0 || ts < procDeadline {
			procDeadline = ts
		}
	}
	defer chain.Close()
	defer func() { c.Counters.LateDropped.Add(late) }()
	if err := chain.Open(octx, outs.mainCollector(c.Counters)); err != nil {
		return err
	}
	defer outs.counted.sync()
	head := chain.Head()
	// floor is the watermark restored from a snapshot: the valve starts
	// from scratch, and the operators must not see event time go back.
	floor := int64(value.MinWatermark)
	if cps != nil && c.Checkpoint.Restore != nil {
		if err := cps.restoreBroadcast(ctx, chain); err != nil {
			return fmt.Errorf("%s: restore: %w", c.name(), err)
		}
	}
	if cps != nil && c.Checkpoint.Restore != nil && chain.Keyed != nil {
		wm, ok, err := cps.restoreKeyed(ctx, chain)
		if err != nil {
			return fmt.Errorf("%s: restore: %w", c.name(), err)
		}
		if t, ok := nextProcTimer(chain); ok {
			procDeadline = t
		}
		if ok && wm > floor {
			// No timer is due at wm (they fired before the snapshot):
			// this sets the operator's event time and tells downstream.
			floor = wm
			c.Counters.Watermark.Store(wm)
			if err := head.Watermark(wm); err != nil {
				return err
			}
		}
	}

	if chain.Source != nil {
		err := readSource(ctx, &c, cps, chain, outs.flush, outs.status, func(id int64) error {
			if err := outs.mark(Element{Kind: KindBarrier, Wm: id}); err != nil {
				return err
			}
			return outs.flush()
		})
		if err != nil {
			return err
		}
		if err := finishStreaming(&c, chain, outs); err != nil {
			return err
		}
		cps.finished()
		return nil
	}

	nch := shuffle.Channels(c.Stage)
	inputOf := make([]int, nch)
	for _, e := range c.Stage.Inputs {
		base := shuffle.ChannelBase(e)
		for i := 0; i < e.From.Parallelism; i++ {
			inputOf[base+i] = e.InputIndex
		}
	}
	valve := watermark.NewValve(nch)
	open := nch
	// lastFlush is when the outputs were last flushed: a busy input never
	// takes the quiet branch of the loop below, so buffered output is
	// flushed once it may have waited BufferTimeout. tick checks that
	// within a batch too: one batch can hold hundreds of records and a
	// watermark that fires many timers, and what they emitted early would
	// otherwise wait for the whole batch.
	lastFlush := time.Now()
	tick := func() error {
		if now := time.Now(); now.Sub(lastFlush) >= c.BufferTimeout {
			lastFlush = now
			return outs.flush()
		}
		return nil
	}
	// idle is whether this subtask told the next stages it is idle: it is
	// once every input channel is (Flink's StatusWatermarkValve), so they
	// leave it out of their watermark as they would an idle source, and
	// an idle source does not hold back event time two stages further.
	// It is active again, said before anything else goes out, as soon as
	// one of its channels is.
	idle := false
	idleChanged := func() error {
		all := valve.AllIdle()
		if all == idle {
			return nil
		}
		idle = all
		return outs.status(all)
	}
	al := newAligner(nch)
	// handle feeds one batch to the chain, or buffers it while its
	// channel is blocked by a barrier (alignment).
	var handle func(b Batch) error
	// A batch that waits for alignment is kept in a slice of its own
	// length and its pooled slice goes back at once: a pooled slice holds
	// at least minPooledElems elements (36 KB) however few it carries, and
	// a sparse channel (a watermark per message) aligning behind a slow
	// one would otherwise pin one per message it sends meanwhile.
	wait := func(elems []Element) []Element {
		kept := slices.Clone(elems)
		PutElems(elems)
		return kept
	}
	handle = func(b Batch) error {
		if al.blocked[b.Channel] {
			al.buf[b.Channel] = append(al.buf[b.Channel], Batch{Channel: b.Channel, Elems: wait(b.Elems)})
			return nil
		}
		input := inputOf[b.Channel]
		elems := b.Elems
		for i := range elems {
			if elems[i].Kind != KindBarrier {
				continue
			}
			// Everything before the barrier belongs to the checkpoint;
			// the rest of the batch waits until the barrier is aligned.
			id := elems[i].Wm
			if err := processBatch(&c, head, valve, Batch{Channel: b.Channel, Elems: elems[:i]}, input, &open, al.ended, &floor, tick, idleChanged); err != nil {
				return err
			}
			al.barrier(b.Channel, id)
			if rest := elems[i+1:]; len(rest) > 0 {
				// Front of the queue: it came before anything buffered.
				al.buf[b.Channel] = append([]Batch{{Channel: b.Channel, Elems: slices.Clone(rest)}}, al.buf[b.Channel]...)
			}
			// Processed up to the barrier, the rest copied: the slice is
			// done with.
			PutElems(elems)
			return nil
		}
		if err := processBatch(&c, head, valve, b, input, &open, al.ended, &floor, tick, idleChanged); err != nil {
			return err
		}
		// Every element has been processed, and operators keep no
		// pointers into the batch: its slice can be reused.
		PutElems(b.Elems)
		return nil
	}
	// settle completes an aligned checkpoint and replays what its barrier
	// held back, until nothing more can go on.
	settle := func() error {
		for {
			if al.aligned() {
				if err := checkpointAligned(ctx, &c, cps, chain, outs, al.id, max(valve.Current(), floor)); err != nil {
					return err
				}
				al.release()
			}
			b, ok := al.next()
			if !ok {
				return nil
			}
			if err := handle(b); err != nil {
				return err
			}
		}
	}
	var timer *time.Timer
	var timerC <-chan time.Time
	for open > 0 {
		// Flush what is buffered before waiting: batches fill under load
		// and go out at once when the input is quiet (low latency).
		var b Batch
		var ok bool
		select {
		case b, ok = <-inbox:
		case id := <-cps.complete():
			if err := cps.completed(ctx, id); err != nil {
				return err
			}
			continue
		default:
			if err := outs.flush(); err != nil {
				return err
			}
			lastFlush = time.Now()
			if procDeadline != 0 && chain.Keyed != nil {
				d := time.Duration(procDeadline-c.Now()) * time.Millisecond
				if timer == nil {
					timer = time.NewTimer(d)
				} else {
					timer.Reset(d)
				}
				timerC = timer.C
			}
			select {
			case b, ok = <-inbox:
			case id := <-cps.complete():
				if err := cps.completed(ctx, id); err != nil {
					return err
				}
				continue
			case <-timerC:
				timerC = nil
				now := c.Now()
				procDeadline = 0
				if err := chain.Keyed.FireProcessingTimers(now); err != nil {
					return err
				}
				if t, ok := nextProcTimer(chain); ok {
					procDeadline = t
				}
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if !ok {
			return fmt.Errorf("%s: inbox closed before every input ended", c.name())
		}
		if err := handle(b); err != nil {
			return err
		}
		if err := settle(); err != nil {
			return err
		}
		if err := tick(); err != nil {
			return err
		}
		if procDeadline != 0 && procDeadline <= c.Now() && chain.Keyed != nil {
			procDeadline = 0
			if err := chain.Keyed.FireProcessingTimers(c.Now()); err != nil {
				return err
			}
			if t, ok := nextProcTimer(chain); ok {
				procDeadline = t
			}
		}
	}
	if timer != nil {
		timer.Stop()
	}
	if err := finishStreaming(&c, chain, outs); err != nil {
		return err
	}
	cps.finished()
	return nil
}

// processBatch feeds one batch's elements to the chain's head; open counts
// the input channels that have not ended.
//
// tick runs every tickEvery records and after every watermark
// that advanced (the task flushes its outputs there once they waited
// BufferTimeout; see RunStreaming); idleChanged after every idle or active
// status.
func processBatch(c *Config, head operator.Operator, valve *watermark.Valve, b Batch, input int, open *int, ended []bool, floor *int64, tick, idleChanged func() error) error {
	var n int64 // records, added to the counter once per batch
	defer func() { c.Counters.RecordsIn.Add(n) }()
	for i := range b.Elems {
		el := &b.Elems[i]
		switch el.Kind {
		case KindRecord:
			n++
			if err := head.Process(&el.Rec, input); err != nil {
				return err
			}
			if n%tickEvery == 0 {
				if err := tick(); err != nil {
					return err
				}
			}
		case KindWatermark:
			if wm, adv := valve.Update(b.Channel, el.Wm); adv && wm > *floor {
				c.Counters.Watermark.Store(wm)
				if err := head.Watermark(wm); err != nil {
					return err
				}
				if err := tick(); err != nil {
					return err
				}
			}
		case KindIdle, KindActive:
			wm, adv := valve.SetIdle(b.Channel, el.Kind == KindIdle)
			// An active subtask says so before the watermark its channel
			// moves and what that fires; an idle one after them.
			if el.Kind == KindActive {
				if err := idleChanged(); err != nil {
					return err
				}
			}
			if adv && wm > *floor {
				c.Counters.Watermark.Store(wm)
				if err := head.Watermark(wm); err != nil {
					return err
				}
			}
			if el.Kind == KindIdle {
				if err := idleChanged(); err != nil {
					return err
				}
			}
		case KindEnd:
			*open--
			ended[b.Channel] = true
			if wm, adv := valve.Update(b.Channel, value.MaxWatermark); adv && wm > *floor {
				c.Counters.Watermark.Store(wm)
				if err := head.Watermark(wm); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// aligner tracks barrier alignment over a subtask's input channels: after
// barrier N on a channel, the channel is blocked (its batches are buffered,
// in order) until barrier N arrived on every channel that has not ended.
type aligner struct {
	id      int64 // the checkpoint being aligned; 0 when none
	done    int64 // the last checkpoint taken or given up
	blocked []bool
	ended   []bool
	buf     [][]Batch
}

func newAligner(n int) *aligner {
	return &aligner{blocked: make([]bool, n), ended: make([]bool, n), buf: make([][]Batch, n)}
}

func (a *aligner) barrier(ch int, id int64) {
	switch {
	case id <= a.done || (a.id != 0 && id < a.id):
		// A late barrier of a checkpoint given up (or already taken):
		// nothing to align, the channel goes on.
		return
	case a.id != 0 && id > a.id:
		// A newer checkpoint started before the current one aligned
		// (the coordinator gave it up, e.g. after its timeout): give up
		// the current alignment, as Flink does, and align the new one.
		a.done = a.id
		a.id = 0
		clear(a.blocked)
	}
	a.id = id
	a.blocked[ch] = true
}

// aligned reports whether the current barrier arrived on every open channel.
func (a *aligner) aligned() bool {
	if a.id == 0 {
		return false
	}
	for ch, b := range a.blocked {
		if !b && !a.ended[ch] {
			return false
		}
	}
	return true
}

// release unblocks every channel once the checkpoint is taken.
func (a *aligner) release() {
	a.done = a.id
	a.id = 0
	clear(a.blocked)
}

// next pops the first buffered batch of an unblocked channel.
func (a *aligner) next() (Batch, bool) {
	for ch, q := range a.buf {
		if len(q) > 0 && !a.blocked[ch] {
			b := q[0]
			q[0] = Batch{}
			a.buf[ch] = q[1:]
			if len(a.buf[ch]) == 0 {
				a.buf[ch] = nil
			}
			return b, true
		}
	}
	return Batch{}, false
}

// checkpointAligned takes the subtask's snapshot of checkpoint id once its
// barrier is aligned, acknowledges it, and forwards the barrier on every
// output after what the subtask emitted before it. wm is the subtask's
// event time, stored with keyed state.
func checkpointAligned(ctx context.Context, c *Config, cps *cpState, chain *operator.Chain, outs *streamOutputs, id int64, wm int64) error {
	if cps != nil {
		if err := cps.snapshot(ctx, id, chain, wm); err != nil {
			return err
		}
	}
	if err := outs.flush(); err != nil {
		return err
	}
	if err := outs.mark(Element{Kind: KindBarrier, Wm: id}); err != nil {
		return err
	}
	return outs.flush()
}

func nextProcTimer(chain *operator.Chain) (int64, bool) {
	_, timers := chain.Keyed.State()
	t, ok := timers.Next(1)
	return t.Ts, ok
}

// finishStreaming ends a subtask whose input is exhausted: MaxWatermark
// (fires every event-time timer), operators finish, and End goes downstream.
func finishStreaming(c *Config, chain *operator.Chain, outs *streamOutputs) error {
	c.Counters.Watermark.Store(value.MaxWatermark)
	if err := chain.Head().Watermark(value.MaxWatermark); err != nil {
		return err
	}
	if err := chain.Finish(); err != nil {
		return err
	}
	if err := outs.mark(Element{Kind: KindEnd}); err != nil {
		return err
	}
	return outs.flush()
}
