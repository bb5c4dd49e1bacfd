// Package checkpoint is exactly-once STREAMING (issue #7): Chandy-Lamport
// style aligned checkpoints, as in Apache Flink, and savepoints.
//
// A Coordinator triggers checkpoint N every interval by asking every source
// subtask to inject a barrier N after its current read batch; the source
// stores its read position first. Barriers flow with the records; a subtask
// with several input channels aligns them (a channel that delivered barrier
// N is held back until barrier N arrived on every open channel), snapshots
// its keyed state and timers, acknowledges, and forwards the barrier. Sinks
// snapshot at the barrier too (a Transactional writer's PreCommit). A
// checkpoint is complete when every subtask acknowledged it: the
// coordinator writes its _COMPLETED marker, prunes old checkpoints and
// notifies every subtask, which then commits its Transactional writers
// (two-phase commit). A job restarted from it restores every keyed
// operator's state and seeks every source to its position, so state and
// committed output reflect every record exactly once.
//
// # Driving a coordinator (in-process and remote)
//
// The Coordinator only talks through plain Go calls, so the same code runs
// with the in-process executor (engine/local: channels) and in the worker
// (one coordinator in the leader subtask's process, gRPC to the others):
//
//   - triggering: AddSource registers, per source subtask, a function the
//     coordinator calls (never blocking) to start barrier N there. In
//     process it is SourceBarriers' channel; remotely, a gRPC call to the
//     worker running that source, which puts the Barrier on its subtask's
//     task.Checkpointing.Barriers channel.
//   - acknowledging: a subtask writes its snapshot itself (WriteSnapshot
//     into Sub(checkpoints, DirName(id))) and then calls Acknowledge, in
//     process directly (Ack does both), remotely over gRPC to the leader.
//   - completion: Options.OnComplete runs once per completed checkpoint;
//     the driver delivers the ID to every subtask's
//     task.Checkpointing.Complete channel with Notify (remotely: one gRPC
//     call per worker, which calls Notify for its subtasks).
//   - a subtask's end: task.Checkpointing.OnFinish gives the small
//     snapshot that stands for the finished subtask (a source's end
//     position) or nil; pass it to FinishedWith (remotely: send it with
//     the "finished" message; Finished alone stops checkpoints).
//   - savepoints: SavepointTo (on demand, stop-with-savepoint); the final
//     savepoint of a bounded job: task.Checkpointing.FinalSavepoint and
//     SourceEnded, then FinalID once the job ended, and CopyAs.
//
// At most one checkpoint is in flight. Checkpoints go on after subtasks
// finished (FinishedWith, as Flink's FLIP-147), except after one whose end
// cannot be carried into later checkpoints (a Transactional sink's last
// transaction waits for the job's end): then they stop (Finished). The
// final savepoint of a bounded job is SourceEnded's.
//
// # Snapshot format and restore
//
// A checkpoint or savepoint directory (see Store) holds snapshots named by
// step, not by stage: keyed state and timers per keyed step, split by key
// group (engine/shuffle's 128), so a job restores at any keyed parallelism
// and even with another plan, as long as its keyed steps have the same
// names and state (a BATCH job's final state restored by a STREAMING job).
// Restore rules, per step of the restoring job:
//
//   - keyed step: takes the key groups it owns from every file of the
//     step; none = fresh state. Its event time restarts at the snapshot's
//     watermark (the minimum over the files read) and never goes back.
//   - source step: resumes at its position if the snapshot has positions
//     for a step of that name (same parallelism, else a clear error);
//     none = it starts from the beginning. A job bootstrapped from a
//     savepoint should name its sources differently unless it means to
//     resume them.
//   - Transactional sink: Recover gets its subtask's committables.
//   - process step with a broadcast input: its broadcast state.
//
// Savepoints are copies of a completed checkpoint's directory (SavepointTo,
// CopyAs), except the BATCH final savepoint, whose keyed subtasks write
// each key's final state straight into it (task.Config.FinalSavepoint):
// the state after the key's last record and before its end-of-input
// timers fire, with the timers still registered, watermark MinWatermark.
// A bounded STREAMING job's final savepoint is taken after every source
// ended and before the final MaxWatermark: where no event-time timer fired
// before the end (rolling reduce/aggregate, process state, windows without
// watermarks) the two hold the same keyed state.
//
// Snapshots are full and taken synchronously at the aligned barrier: about
// 160 ns per key with a small map accumulator per key (engine/state's
// BenchmarkGroupSnapshot, 50k keys); engine/local's
// BenchmarkCheckpointOverhead measures what that costs a whole job.
package checkpoint

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Barrier asks a source subtask to start a checkpoint.
type Barrier struct {
	// ID is the checkpoint's ID.
	ID int64
	// Final marks the final savepoint of a bounded STREAMING job: the
	// source, which reported its end with SourceEnded and waits, injects
	// the barrier and then ends its output.
	Final bool
}

// Options configure a Coordinator.
type Options struct {
	// Interval between checkpoint triggers (Run); 0 triggers only on demand.
	Interval time.Duration
	// Retain is the number of complete checkpoints kept (default 3).
	Retain int
	// Timeout gives up a checkpoint that did not complete in this time
	// (default 10 minutes, as Flink), so a lost barrier or acknowledgement
	// does not stop checkpointing for good; the next one starts at the
	// next interval (subtasks still aligning the old one give it up when
	// the new barrier arrives).
	Timeout time.Duration
	// Subtasks is the number of subtasks that must acknowledge a checkpoint.
	Subtasks int
	// Sources is the number of source subtasks (for the final savepoint:
	// it is taken once that many called SourceEnded).
	Sources int
	// FirstID numbers the first checkpoint (default 1); a restored job
	// continues after the highest ID in the store (Highest).
	FirstID int64
	// OnComplete, if set, is called once per completed checkpoint, after
	// its marker is written, from the goroutine of the last Acknowledge.
	// It must not block for long: the driver delivers the ID to every
	// subtask (Notify) and may record it (e.g. checkpoint-latest.json).
	OnComplete func(id int64)
	// Logger receives one line per completed checkpoint (default slog.Default()).
	Logger *slog.Logger
}

// Subtask names one subtask of a plan.
type Subtask struct{ Stage, Index int }

// Coordinator triggers checkpoints and counts acknowledgements.
type Coordinator struct {
	store Store
	opts  Options

	mu       sync.Mutex
	sources  map[Subtask]func(Barrier)
	next     int64
	pending  int64 // the checkpoint in flight, 0 if none
	started  time.Time
	acked    map[Subtask]bool
	finished bool
	// gone are the subtasks that finished with a snapshot that stands
	// for them in later checkpoints (FinishedWith).
	gone     map[Subtask]goneSubtask
	ended    map[Subtask]bool
	final    bool // the final savepoint was triggered
	complete []int64
	// waiters are woken when the checkpoint in flight ends (completes or
	// is abandoned); see Await.
	waiters map[int64][]chan error
	stopped bool
}

// goneSubtask is a finished subtask's stand-in snapshot and the first
// checkpoint it stands in for: not one the subtask acknowledged itself
// before it finished, whose own snapshot (an earlier source position)
// must stay.
type goneSubtask struct {
	snap map[string][]byte
	from int64
}

// NewCoordinator returns a coordinator writing checkpoints into store
// (its chk-<id>/ directories).
func NewCoordinator(store Store, opts Options) *Coordinator {
	if opts.Retain <= 0 {
		opts.Retain = 3
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Minute
	}
	if opts.FirstID <= 0 {
		opts.FirstID = 1
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Coordinator{store: store, opts: opts, sources: map[Subtask]func(Barrier){},
		next: opts.FirstID, ended: map[Subtask]bool{}, waiters: map[int64][]chan error{}, gone: map[Subtask]goneSubtask{}}
}

// Store is the checkpoints store.
func (c *Coordinator) Store() Store { return c.store }

// AddSource registers a source subtask: trigger starts a barrier there. It
// is called with the coordinator's lock held and must not block (hand the
// barrier to a buffered channel or a goroutine).
func (c *Coordinator) AddSource(st Subtask, trigger func(Barrier)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sources[st] = trigger
}

// SourceBarriers registers a source subtask and returns the channel on
// which it receives the checkpoints to start (the in-process trigger).
func (c *Coordinator) SourceBarriers(stage, index int) <-chan Barrier {
	ch := make(chan Barrier, 4) // one in flight, plus the final one
	c.AddSource(Subtask{stage, index}, func(b Barrier) {
		select {
		case ch <- b:
		default: // cannot happen with one checkpoint in flight
		}
	})
	return ch
}

// Run triggers a checkpoint every interval until ctx is done.
func (c *Coordinator) Run(ctx context.Context) {
	if c.opts.Interval <= 0 {
		return
	}
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.expire()
			c.Trigger()
		}
	}
}

// Trigger starts the next checkpoint unless one is in flight, a subtask
// finished or triggering stopped; it returns the checkpoint's ID, or 0.
func (c *Coordinator) Trigger() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.triggerLocked(false)
}

func (c *Coordinator) triggerLocked(final bool) int64 {
	if c.pending != 0 || ((c.finished || c.stopped) && !final) || c.final {
		return 0
	}
	if c.opts.Sources > 0 && len(c.sources) == 0 && len(c.gone) > 0 {
		// Every source finished (FinishedWith): no barrier would start
		// this checkpoint, which would only wait for its timeout.
		return 0
	}
	id := c.next
	c.next++
	c.pending = id
	c.started = time.Now()
	c.acked = map[Subtask]bool{}
	for st := range c.gone {
		c.acked[st] = true
	}
	c.final = final
	for _, trigger := range c.sources { // FinishedWith removed the gone ones
		trigger(Barrier{ID: id, Final: final})
	}
	return id
}

// expire gives up the checkpoint in flight once it is older than Timeout.
func (c *Coordinator) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending != 0 && !c.final && time.Since(c.started) > c.opts.Timeout {
		c.abandonLocked(fmt.Errorf("checkpoint %d timed out after %v (%d of %d subtasks acknowledged)", c.pending, c.opts.Timeout, len(c.acked), c.opts.Subtasks))
	}
}

// Stop stops periodic checkpoints (the one in flight goes on): after a
// stop-with-savepoint, nothing may follow the savepoint.
func (c *Coordinator) Stop() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
}

// WriteSnapshot writes a subtask's snapshot of checkpoint id (names as
// in the Store doc) into its directory in checkpoints.
func WriteSnapshot(ctx context.Context, checkpoints Store, id int64, snap map[string][]byte) error {
	dir := Sub(checkpoints, DirName(id))
	for name, data := range snap {
		if err := dir.Put(ctx, name, data); err != nil {
			return fmt.Errorf("checkpoint %d: %w", id, err)
		}
	}
	return nil
}

// Ack writes a subtask's snapshot of checkpoint id and acknowledges it
// (the in-process path: WriteSnapshot + Acknowledge).
func (c *Coordinator) Ack(ctx context.Context, st Subtask, id int64, snap map[string][]byte) error {
	if err := WriteSnapshot(ctx, c.store, id, snap); err != nil {
		return err
	}
	return c.Acknowledge(ctx, st, id)
}

// Acknowledge records that subtask st wrote its snapshot of checkpoint id.
// The acknowledgement that completes the checkpoint writes its marker,
// prunes old checkpoints and calls OnComplete. An acknowledgement of an
// abandoned checkpoint is ignored.
func (c *Coordinator) Acknowledge(ctx context.Context, st Subtask, id int64) error {
	c.mu.Lock()
	if id != c.pending {
		c.mu.Unlock()
		return nil // abandoned
	}
	c.acked[st] = true
	if len(c.acked) < c.opts.Subtasks {
		c.mu.Unlock()
		return nil
	}
	c.pending = 0
	took := time.Since(c.started)
	c.mu.Unlock()
	err := c.completeCheckpoint(ctx, id)
	c.mu.Lock()
	if err == nil {
		c.complete = append(c.complete, id)
	}
	ws := c.waiters[id]
	delete(c.waiters, id)
	// Every source may have ended while this checkpoint was in flight.
	c.maybeFinalLocked()
	c.mu.Unlock()
	if err == nil {
		c.opts.Logger.Info("checkpoint complete", "checkpoint", id, "duration", took)
		if c.opts.OnComplete != nil {
			c.opts.OnComplete(id)
		}
	}
	// Waiters (savepoints) wake after the subtasks were notified.
	for _, w := range ws {
		w <- err
	}
	return err
}

func (c *Coordinator) completeCheckpoint(ctx context.Context, id int64) error {
	c.mu.Lock()
	var carried []map[string][]byte
	for _, g := range c.gone {
		if id >= g.from {
			carried = append(carried, g.snap)
		}
	}
	c.mu.Unlock()
	for _, snap := range carried {
		if err := WriteSnapshot(ctx, c.store, id, snap); err != nil {
			return err
		}
	}
	if err := MarkComplete(ctx, Sub(c.store, DirName(id)), Meta{ID: id, Kind: "checkpoint"}); err != nil {
		return fmt.Errorf("checkpoint %d: %w", id, err)
	}
	if err := Retain(ctx, c.store, c.opts.Retain); err != nil {
		return fmt.Errorf("checkpoint %d: %w", id, err)
	}
	return nil
}

// FinishedWith tells the coordinator a subtask ended normally, with the
// snapshot that stands for it in every later checkpoint (see
// task.Checkpointing.OnFinish): checkpoints go on without it, as Flink's
// FLIP-147 (a job with a bounded and an unbounded source keeps
// checkpointing). The checkpoint in flight counts it as acknowledged: its
// output all precedes its End, which downstream alignment counts as the
// barrier. A nil snapshot is Finished.
func (c *Coordinator) FinishedWith(ctx context.Context, st Subtask, snap map[string][]byte) error {
	if snap == nil {
		c.Finished(st)
		return nil
	}
	c.mu.Lock()
	if _, ok := c.gone[st]; ok {
		c.mu.Unlock()
		return nil // a retried report
	}
	delete(c.sources, st)
	id := c.pending
	if id == 0 || c.acked[st] {
		// A checkpoint the subtask acknowledged itself keeps its own
		// snapshot: a source's records after that barrier are not in it,
		// so its end position must not replace the barrier's position.
		c.gone[st] = goneSubtask{snap: snap, from: c.next}
		c.mu.Unlock()
		return nil
	}
	c.gone[st] = goneSubtask{snap: snap, from: id}
	c.mu.Unlock()
	return c.Acknowledge(ctx, st, id)
}

// Finished tells the coordinator a subtask ended: no checkpoint starts any
// more, and the one in flight is abandoned unless the subtask acknowledged it.
func (c *Coordinator) Finished(st Subtask) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.finished && !c.final {
		// Say it once: the job keeps running without checkpoints, and
		// Transactional sinks then publish nothing more until it ends.
		c.opts.Logger.Warn("a subtask finished in a way later checkpoints cannot carry (a Transactional sink's last transaction pending, or a source with no end position): no more checkpoints in this run",
			"stage", st.Stage, "subtask", st.Index)
	}
	c.finished = true
	if c.pending != 0 && !c.acked[st] {
		c.abandonLocked(fmt.Errorf("checkpoint %d abandoned: stage %d subtask %d finished before acknowledging it", c.pending, st.Stage, st.Index))
	}
}

func (c *Coordinator) abandonLocked(err error) {
	for _, w := range c.waiters[c.pending] {
		w <- err
	}
	delete(c.waiters, c.pending)
	c.pending = 0
	c.opts.Logger.Warn("checkpoint abandoned", "err", err)
}

// Completed returns the checkpoints this coordinator completed.
func (c *Coordinator) Completed() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int64(nil), c.complete...)
}

// Notify delivers completed checkpoint id to a subtask's Complete channel
// (capacity 1) without blocking: a notification still waiting there is
// replaced by the newer one, since committing id commits everything staged
// up to id. It is safe to call from several goroutines.
func Notify(ch chan int64, id int64) {
	for {
		select {
		case ch <- id:
			return
		default:
		}
		select {
		case old := <-ch:
			if old > id {
				id = old
			}
		default:
		}
	}
}

// SourceEnded tells the coordinator that source subtask st reached the end
// of its input and waits for the final savepoint's barrier (a bounded
// STREAMING job with a final savepoint). Once every source subtask ended,
// the coordinator triggers the final checkpoint, right away or when the
// one in flight ends; its ID is returned by AwaitFinal.
func (c *Coordinator) SourceEnded(st Subtask) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ended[st] = true
	c.maybeFinalLocked()
}

func (c *Coordinator) maybeFinalLocked() {
	if c.final || c.pending != 0 || c.opts.Sources == 0 || len(c.ended) < c.opts.Sources {
		return
	}
	c.triggerLocked(true)
}

// FinalID returns the ID of the final checkpoint once it was triggered.
func (c *Coordinator) FinalID() (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.final {
		return 0, false
	}
	if c.pending != 0 {
		return c.pending, true
	}
	return c.next - 1, true
}

// TriggerAndWait starts a checkpoint as soon as none is in flight and
// waits until it completes; it returns its ID. It fails when ctx ends or
// the checkpoint is abandoned, or when checkpoints cannot start any more
// (a subtask finished).
func (c *Coordinator) TriggerAndWait(ctx context.Context) (int64, error) {
	return c.triggerAndWait(ctx, false)
}

// triggerAndWait is TriggerAndWait; with stop, no checkpoint starts after
// this one (set when it is triggered, so no periodic one slips in).
func (c *Coordinator) triggerAndWait(ctx context.Context, stop bool) (int64, error) {
	for {
		c.mu.Lock()
		if c.finished || c.final {
			c.mu.Unlock()
			return 0, fmt.Errorf("checkpoint: the job is finishing, no checkpoint can start")
		}
		if c.stopped {
			c.mu.Unlock()
			return 0, fmt.Errorf("checkpoint: the job is stopping after a savepoint, no checkpoint can start")
		}
		if c.pending == 0 {
			id := c.triggerLocked(false)
			c.stopped = stop
			w := make(chan error, 1)
			c.waiters[id] = append(c.waiters[id], w)
			c.mu.Unlock()
			select {
			case err := <-w:
				return id, err
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		// Wait for the one in flight to end.
		w := make(chan error, 1)
		c.waiters[c.pending] = append(c.waiters[c.pending], w)
		c.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// SavepointTo takes a checkpoint on demand and copies its directory to
// dirFor(its ID), a savepoint: never pruned, restorable from its URL.
// With stop, no checkpoint starts after it (stop-with-savepoint: the
// caller then stops the job). The worker's leader uses it for
// savepoint-request.json; the in-process executor for TriggerSavepoint.
func (c *Coordinator) SavepointTo(ctx context.Context, dirFor func(id int64) (Store, error), stop bool) (int64, error) {
	id, err := c.triggerAndWait(ctx, stop)
	if err != nil {
		return 0, err
	}
	dir, err := dirFor(id)
	if err != nil {
		return 0, err
	}
	// Retention prunes a checkpoint only once Retain newer ones complete:
	// with stop there are none; without, that takes Retain intervals,
	// far longer than a copy.
	if err := CopyAs(ctx, Sub(c.store, DirName(id)), dir, Meta{ID: id, Kind: "savepoint"}); err != nil {
		return 0, fmt.Errorf("savepoint of checkpoint %d: %w", id, err)
	}
	c.opts.Logger.Info("savepoint complete", "checkpoint", id, "stop", stop)
	return id, nil
}

// CopyAs copies a complete directory to dir with marker m (written last).
func CopyAs(ctx context.Context, from, to Store, m Meta) error {
	names, err := from.List(ctx, "")
	if err != nil {
		return err
	}
	for _, n := range names {
		if n == CompletedMarker {
			continue
		}
		b, err := from.Get(ctx, n)
		if err != nil {
			return fmt.Errorf("copy %s: %w", n, err)
		}
		if err := to.Put(ctx, n, b); err != nil {
			return fmt.Errorf("copy %s: %w", n, err)
		}
	}
	return MarkComplete(ctx, to, m)
}
