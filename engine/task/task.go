// Package task runs one subtask (stage S, index i of N) of a plan: it builds
// the stage's operator chain and drives it from the stage's inputs to its
// outputs, in either runtime mode:
//
//   - STREAMING (RunStreaming): records, watermarks and end-of-input arrive
//     in-band as batches on one inbox; the task keeps the minimum watermark
//     over its input channels and sends batches downstream through a Sender,
//     which blocks when the consumer is slow (backpressure).
//   - BATCH (RunBatch): inputs are read from a shuffle.Store after the
//     upstream stages finished; keyed inputs are merged sorted by key and fed
//     one key at a time (broadcast inputs first, then regular, then keyed);
//     the output is written, partitioned and sorted where the consumer is
//     keyed, back to the store with a manifest.
//
// The in-process executor and the worker process both use this package; they
// differ only in the Sender/inbox (channels vs gRPC) and the Store (local
// directory vs S3).
package task

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/flinkjob/flinkjob/engine/checkpoint"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/operator"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// Kind tells what an Element carries.
type Kind uint8

const (
	KindRecord Kind = iota
	KindWatermark
	// KindIdle and KindActive mark a channel idle or active again.
	KindIdle
	KindActive
	// KindEnd is the last element of a channel.
	KindEnd
	// KindBarrier is a checkpoint barrier (exactly-once STREAMING, issue
	// #7): everything before it on the channel belongs to the checkpoint,
	// everything after it does not. Its checkpoint ID travels in Wm, so
	// that Element does not grow a field.
	KindBarrier
)

// Element is one item of a channel: a record, a watermark or a status.
// Wm is the watermark of KindWatermark and the checkpoint ID of KindBarrier.
type Element struct {
	Kind Kind
	Wm   int64
	Rec  value.Record
}

// Batch is what travels between subtasks: elements of one channel, in order.
type Batch struct {
	// Channel is the input channel number at the receiver
	// (shuffle.ChannelBase(edge) + producer subtask).
	Channel int
	Elems   []Element
}

// Sender delivers a batch to subtask target of edge e's consumer stage. It
// blocks while the consumer is slow; it fails when ctx is done.
type Sender interface {
	Send(ctx context.Context, e *plan.Edge, target int, b Batch) error
}

// Counters are a subtask's live counts, read concurrently for progress.
type Counters struct {
	RecordsIn   atomic.Int64
	RecordsOut  atomic.Int64
	LateDropped atomic.Int64
	// Malformed counts the records the stage's source could not read and
	// routed to its source.malformedOutput.
	Malformed atomic.Int64
	Watermark atomic.Int64
	// SnapshotNanos is the time spent taking checkpoint snapshots (the
	// synchronous part, during which the subtask processes nothing), and
	// Snapshots how many were taken.
	SnapshotNanos atomic.Int64
	Snapshots     atomic.Int64
}

// Config describes the subtask to run.
type Config struct {
	Plan  *plan.Plan
	Stage *plan.Stage
	Index int
	// Sources and Sinks hold the job's connectors by step name.
	Sources map[string]connector.Source
	Sinks   map[string]connector.Sink
	// BatchSize is the number of elements per batch sent downstream (default 512).
	BatchSize int
	// BufferTimeout bounds how long a STREAMING subtask keeps a partly
	// filled output batch while its input stays busy (Flink's
	// execution.buffer-timeout; default the job's spec.bufferTimeout, else
	// DefaultBufferTimeout). Full batches go at once, and everything goes
	// when the input is quiet.
	BufferTimeout time.Duration
	// SortMemory is the BATCH sort budget in bytes for this subtask (default 64 MiB).
	SortMemory int64
	// TempDir holds BATCH sort spills (default os.TempDir()).
	TempDir string
	// Attempt numbers BATCH re-runs (recorded in the manifest).
	Attempt int
	// Counters, if set, receive live counts.
	Counters *Counters
	// Now returns processing time in ms (default wall clock).
	Now func() int64
	// Checkpoint, if set, takes part in checkpoints (STREAMING only).
	Checkpoint *Checkpointing
	// FinalSavepoint, if set (BATCH only), is the savepoint directory a
	// keyed subtask writes its final state to: every key's state after all
	// of the key's input, before its end-of-input timers fire (see
	// savingKeyed). The driver marks the directory complete once every
	// subtask of every stage succeeded (checkpoint.MarkComplete).
	FinalSavepoint checkpoint.Store
}

func (c *Config) defaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 512
	}
	if c.BufferTimeout <= 0 && c.Plan != nil && c.Plan.Graph != nil && c.Plan.Graph.Job != nil {
		// Validated by plan.Build: a positive duration when set.
		c.BufferTimeout, _ = c.Plan.Graph.Job.BufferTimeout.Get()
	}
	if c.BufferTimeout <= 0 {
		c.BufferTimeout = DefaultBufferTimeout
	}
	if c.SortMemory <= 0 {
		c.SortMemory = 64 << 20
	}
	if c.Counters == nil {
		c.Counters = &Counters{}
	}
	if c.Now == nil {
		c.Now = func() int64 { return time.Now().UnixMilli() }
	}
}

func (c *Config) name() string {
	return fmt.Sprintf("stage %d (%s) subtask %d/%d", c.Stage.ID, c.Stage.Name, c.Index, c.Stage.Parallelism)
}

// opContext builds the operator context; side outputs route through out.
func (c *Config) opContext(ctx context.Context, side func(step, name string) operator.Collector) *operator.Context {
	return &operator.Context{
		Ctx:                 ctx,
		Mode:                c.Plan.Mode,
		Subtask:             c.Index,
		Parallelism:         c.Stage.Parallelism,
		BatchProcessingTime: c.Plan.Graph.Job.BatchProcessingTime,
		Now:                 c.Now,
		SideOutput:          side,
		Malformed:           &c.Counters.Malformed,
	}
}

// countingCollector counts records leaving the chain's tail. It adds to
// the shared counter in steps (an atomic add per record is measurable):
// every 256 records, at every watermark and when sync is called (the task
// syncs whenever it flushes its output and at its end).
type countingCollector struct {
	next    operator.Collector
	n       *atomic.Int64
	pending int64
}

func (c *countingCollector) Collect(r *value.Record) error {
	if c.pending++; c.pending >= 256 {
		c.sync()
	}
	return c.next.Collect(r)
}

// ReleasesValues answers for the collector it wraps
// (connector.ValueReleaser).
func (c *countingCollector) ReleasesValues() bool { return connector.ReleasesValues(c.next) }

func (c *countingCollector) Watermark(wm int64) error {
	c.sync()
	return c.next.Watermark(wm)
}

func (c *countingCollector) sync() {
	if c.pending != 0 {
		c.n.Add(c.pending)
		c.pending = 0
	}
}

// readSource drives a source stage: it reads the connector in batches and
// pushes each value through the chain. In STREAMING it emits the strategy's
// watermark after every batch and marks the output idle when the source
// produced nothing for the idleness timeout.
func readSource(ctx context.Context, c *Config, cps *cpState, chain *operator.Chain, flush func() error, setIdle func(bool) error, barrier func(id int64) error) error {
	node := c.Stage.Head()
	src, ok := c.Sources[node.Name]
	if !ok {
		return fmt.Errorf("step %q: no source connector was created for it", node.Name)
	}
	rd, err := src.Open(ctx, c.Index, c.Stage.Parallelism)
	if err != nil {
		return &operator.StepError{Step: node.Name, Err: err}
	}
	defer rd.Close()
	if rc, ok := rd.(connector.Recycler); ok {
		chain.RecycleSourceValues(rc.Recycle)
	}
	if l, ok := rd.(connector.Locator); ok && chain.Source != nil {
		chain.Source.Locate = l.Locate
	}
	streaming := c.Plan.Mode == spec.Streaming
	if cps != nil {
		if err := cps.restoreSource(ctx, rd); err != nil {
			return err
		}
	}
	var idleness time.Duration
	if w := node.Step.Source.Watermarks; streaming && w != nil {
		idleness, _ = w.Idleness.Get()
	}
	// A read blocks until a value arrives; with checkpoints a quiet source
	// must still start barriers (and commit), so reads time out at least
	// every barrierPoll. The source turns idle only after idleness
	// without data.
	timeout := idleness
	if cps != nil && (timeout <= 0 || timeout > barrierPoll) {
		timeout = barrierPoll
	}
	lastData := time.Now()
	var procErr error
	var n int64
	idle := false
	// One record for every value: the chain copies what it keeps.
	var r value.Record
	emit := func(v any) {
		if procErr != nil {
			return
		}
		if idle {
			// Active again: say so before the record, as Flink's
			// WatermarksWithIdleness does, so downstream valves count
			// this channel again before they see its data.
			idle = false
			if procErr = setIdle(false); procErr != nil {
				return
			}
		}
		n++
		r = value.Record{Value: v, Ts: value.NoTimestamp}
		procErr = chain.Source.Process(&r, 0)
		if streaming && procErr == nil && n%watermarkEvery == 0 {
			procErr = chain.Source.EmitWatermark()
		}
	}
	// between runs after every read batch: flush, start the checkpoints
	// asked for, handle completed ones.
	between := func() error {
		if err := flush(); err != nil {
			return err
		}
		if cps == nil {
			return nil
		}
		if err := sourceBarriers(ctx, cps, chain, barrier, false); err != nil {
			return err
		}
		return cps.pollComplete(ctx)
	}
	for {
		rctx := ctx
		var cancel context.CancelFunc
		if timeout > 0 {
			rctx, cancel = context.WithTimeout(ctx, timeout)
		}
		n = 0
		err := rd.Read(rctx, c.BatchSize, emit)
		if cancel != nil {
			cancel()
		}
		c.Counters.RecordsIn.Add(n)
		if procErr != nil {
			return procErr
		}
		if streaming {
			if err := chain.Source.EmitWatermark(); err != nil {
				return err
			}
			c.Counters.Watermark.Store(chain.Source.CurrentWatermark())
		}
		if err != nil {
			if isEOF(err) {
				if cps != nil && cps.cp.FinalSavepoint {
					if err := awaitFinal(ctx, cps, chain, flush, barrier); err != nil {
						return err
					}
				}
				if cps != nil {
					cps.keepEndPosition()
				}
				return nil
			}
			if timeout > 0 && ctx.Err() == nil && rctx.Err() != nil {
				if n > 0 {
					lastData = time.Now()
				} else if idleness > 0 && !idle && time.Since(lastData) >= idleness {
					idle = true
					if err := setIdle(true); err != nil {
						return err
					}
				}
				if err := between(); err != nil {
					return err
				}
				continue
			}
			return &operator.StepError{Step: node.Name, Err: err}
		}
		lastData = time.Now()
		if err := between(); err != nil {
			return err
		}
	}
}

// watermarkEvery is how many records a STREAMING source reads between
// watermarks within one read batch (it also emits one after every batch).
// A source that fell behind (a paced generator after a pause, a Kafka
// backlog) reads up to BatchSize records at once; with one watermark per
// batch, event time downstream would jump by the whole batch, every timer
// and window in it would fire in one burst after all of its records, and
// state held until the watermark (pending join rows, open windows) would
// grow with the batch. A watermark every 64 records keeps event time moving
// in small steps; it costs one in-band element per 64 records per target.
const watermarkEvery = 64

// barrierPoll bounds how long a checkpointed source's read may block, so
// a quiet source still starts the barriers asked for.
const barrierPoll = 100 * time.Millisecond

// sourceBarriers starts the checkpoints the coordinator asked for since the
// last read batch: the source takes its snapshot (position, chained sink),
// acknowledges, and sends the barrier downstream. It reports whether the
// final savepoint's barrier went out.
func sourceBarriers(ctx context.Context, cps *cpState, chain *operator.Chain, barrier func(id int64) error, block bool) error {
	for {
		var b checkpoint.Barrier
		if block {
			select {
			case b = <-cps.cp.Barriers:
			case id := <-cps.cp.Complete:
				if err := cps.completed(ctx, id); err != nil {
					return err
				}
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		} else {
			select {
			case b = <-cps.cp.Barriers:
			default:
				return nil
			}
		}
		if err := cps.snapshot(ctx, b.ID, chain, chain.Source.CurrentWatermark()); err != nil {
			return err
		}
		if err := barrier(b.ID); err != nil {
			return err
		}
		if b.Final {
			return errFinalSent
		}
	}
}

var errFinalSent = errors.New("final savepoint barrier sent")

// awaitFinal keeps a source that reached the end of its bounded input
// taking checkpoints until the final savepoint's barrier, which goes out
// before the source's End (and so before the final MaxWatermark).
func awaitFinal(ctx context.Context, cps *cpState, chain *operator.Chain, flush func() error, barrier func(id int64) error) error {
	if err := flush(); err != nil {
		return err
	}
	if cps.cp.SourceEnded != nil {
		cps.cp.SourceEnded()
	}
	err := sourceBarriers(ctx, cps, chain, barrier, true)
	if errors.Is(err, errFinalSent) {
		return nil
	}
	if err == nil {
		err = fmt.Errorf("final savepoint: the barrier channel closed")
	}
	return err
}
