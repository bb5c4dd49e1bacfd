// Package checkpoint is the first slice of exactly-once STREAMING (issue
// #7): Chandy-Lamport style aligned checkpoints, as in Apache Flink.
//
// A Coordinator triggers checkpoint N every interval by asking every source
// subtask to inject a barrier N after its current read batch; the source
// stores its read position first. Barriers flow with the records; a subtask
// with several input channels aligns them (a channel that delivered barrier
// N is held back until barrier N arrived on every open channel), snapshots
// its keyed state and timers, acknowledges, and forwards the barrier. Sinks
// acknowledge at the barrier too. A checkpoint is complete when every
// subtask acknowledged it; its snapshots are in a Store, and a job restarted
// from it restores every keyed operator's state and seeks every source to
// its position, so state reflects every record exactly once.
//
// Here the coordinator lives with the in-process executor (engine/local):
// it talks to subtasks through Go channels and callbacks. On Kubernetes it
// will live in the operator (manager), which will reach workers over gRPC;
// the Store will then be S3. Until then, at most one checkpoint is in
// flight, and checkpoints stop once any subtask has finished (checkpoints
// after tasks finished, FLIP-147, are left for later).
package checkpoint

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Options configure a Coordinator.
type Options struct {
	// Interval between checkpoint triggers.
	Interval time.Duration
	// Retain is the number of complete checkpoints kept (default 3).
	Retain int
	// Subtasks is the number of subtasks that must acknowledge a checkpoint.
	Subtasks int
	// FirstID numbers the first checkpoint (default 1); a restored job
	// continues after the highest ID in the store.
	FirstID int64
	// OnComplete, if set, is called after a checkpoint is complete.
	OnComplete func(id int64)
}

// Subtask names one subtask of a plan.
type Subtask struct{ Stage, Index int }

// Coordinator triggers checkpoints and counts acknowledgements.
type Coordinator struct {
	store Store
	opts  Options

	mu       sync.Mutex
	sources  map[Subtask]chan int64
	next     int64
	pending  int64 // the checkpoint in flight, 0 if none
	acked    map[Subtask]bool
	finished bool
	complete []int64
}

// NewCoordinator returns a coordinator writing to store.
func NewCoordinator(store Store, opts Options) *Coordinator {
	if opts.Retain <= 0 {
		opts.Retain = 3
	}
	if opts.FirstID <= 0 {
		opts.FirstID = 1
	}
	return &Coordinator{store: store, opts: opts, sources: map[Subtask]chan int64{}, next: opts.FirstID}
}

// SourceBarriers registers a source subtask and returns the channel on
// which it receives the checkpoints to start.
func (c *Coordinator) SourceBarriers(stage, index int) <-chan int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan int64, 1)
	c.sources[Subtask{stage, index}] = ch
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
			c.Trigger()
		}
	}
}

// Trigger starts the next checkpoint unless one is in flight or a subtask
// finished; it returns the checkpoint's ID, or 0.
func (c *Coordinator) Trigger() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending != 0 || c.finished {
		return 0
	}
	id := c.next
	c.next++
	c.pending = id
	c.acked = map[Subtask]bool{}
	for _, ch := range c.sources {
		select {
		case ch <- id:
		default: // cannot happen with one checkpoint in flight
		}
	}
	return id
}

// Ack stores a subtask's snapshot of checkpoint id and acknowledges it. The
// acknowledgement that completes the checkpoint marks it complete in the
// store and prunes old checkpoints.
func (c *Coordinator) Ack(ctx context.Context, stage, index int, id int64, snap map[string][]byte) error {
	for name, data := range snap {
		if err := c.store.Put(ctx, id, stage, index, name, data); err != nil {
			return fmt.Errorf("checkpoint %d: %w", id, err)
		}
	}
	c.mu.Lock()
	if id != c.pending {
		c.mu.Unlock()
		return nil // abandoned
	}
	c.acked[Subtask{stage, index}] = true
	if len(c.acked) < c.opts.Subtasks {
		c.mu.Unlock()
		return nil
	}
	c.pending = 0
	c.mu.Unlock()
	if err := c.store.Complete(ctx, id); err != nil {
		return fmt.Errorf("checkpoint %d: %w", id, err)
	}
	if err := c.store.Retain(ctx, c.opts.Retain); err != nil {
		return fmt.Errorf("checkpoint %d: %w", id, err)
	}
	c.mu.Lock()
	c.complete = append(c.complete, id)
	c.mu.Unlock()
	if c.opts.OnComplete != nil {
		c.opts.OnComplete(id)
	}
	return nil
}

// Finished tells the coordinator a subtask ended: no checkpoint starts any
// more, and the one in flight is abandoned unless the subtask acknowledged it.
func (c *Coordinator) Finished(stage, index int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finished = true
	if c.pending != 0 && !c.acked[Subtask{stage, index}] {
		c.pending = 0
	}
}

// Completed returns the checkpoints this coordinator completed.
func (c *Coordinator) Completed() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int64(nil), c.complete...)
}

// Load reads the snapshots of one subtask in checkpoint id (the names a
// task writes; missing ones are left out).
func Load(ctx context.Context, store Store, id int64, stage, index int, names ...string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, n := range names {
		b, err := store.Get(ctx, id, stage, index, n)
		if err == ErrNotFound {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[n] = b
	}
	return out, nil
}
