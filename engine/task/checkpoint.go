package task

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"time"

	"github.com/flinkjob/flinkjob/engine/checkpoint"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/operator"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/shuffle"
	"github.com/flinkjob/flinkjob/engine/state"
	"github.com/flinkjob/flinkjob/engine/value"
)

// Checkpointing connects a STREAMING subtask to a checkpoint coordinator
// (package checkpoint). Every hook runs in the subtask's own goroutine, so
// nothing here needs locks; the driver (engine/local in process, the
// worker over gRPC) only feeds the channels and receives the Ack calls.
type Checkpointing struct {
	// Barriers delivers the checkpoints to start (source subtasks only):
	// the source takes its snapshot after its current read batch (its
	// position, and the committables of a sink chained to it), acks, and
	// injects the barrier downstream. Give it capacity for a few barriers
	// (checkpoint.Coordinator.SourceBarriers does).
	Barriers <-chan checkpoint.Barrier
	// Ack stores the subtask's snapshot of checkpoint id (names as in
	// checkpoint.Store's doc, relative to the checkpoint's directory) and
	// acknowledges the checkpoint. It is called when the barrier is aligned,
	// before the barrier goes downstream. An empty snapshot is still acked.
	Ack func(id int64, snap map[string][]byte) error
	// Complete delivers the IDs of completed checkpoints (deliver with
	// checkpoint.Notify on a channel of capacity 1). The subtask reads it
	// between batches and while waiting for input, and then calls
	// Commit(id) on its Transactional sink writers and CheckpointComplete(id)
	// on CheckpointListener readers and writers. A commit that fails fails
	// the subtask (the restart recovers the committables); a listener's
	// error is only logged. A source subtask blocked in a Read of an idle
	// unbounded source sees it after that Read returns.
	Complete <-chan int64
	// Restore, if set, is the checkpoint or savepoint directory to start
	// from: keyed state and timers (filtered to the key groups this subtask
	// owns, so the parallelism may differ), source positions (same source
	// parallelism), and committables handed to Transactional writers'
	// Recover before their first Write. Recover gets only the bytes
	// PreCommit returned for the restored checkpoint, so those must
	// describe every transaction not yet known to be committed (a
	// completion notification may have been lost in the failure).
	Restore checkpoint.Store
	// FinalSavepoint makes a source subtask that reached the end of its
	// bounded input call SourceEnded and wait for a Barrier with Final set
	// (taking checkpoints meanwhile) before it ends its output: the final
	// savepoint holds the state after all input and before the final
	// MaxWatermark fires the remaining event-time timers.
	FinalSavepoint bool
	SourceEnded    func()
	// OnFinish, if set, is called when the subtask ended normally, with
	// what stands for it in later checkpoints (checkpoints go on after
	// some subtasks finished, as Flink's FLIP-147): a source its end
	// position, other subtasks nothing (an empty map: a finished subtask
	// has emitted everything, and restored it ends again at once without
	// output). It gets nil when the subtask's end cannot be carried: a
	// Transactional writer staged its last transaction for the job's
	// Finisher, so checkpoints must stop. The driver hands it to
	// checkpoint.Coordinator.FinishedWith.
	OnFinish func(snap map[string][]byte)
}

// cpState is a subtask's checkpointing state: what to snapshot and whom to
// notify when a checkpoint completes.
type cpState struct {
	c  *Config
	cp *Checkpointing
	// writers are the sink writers of the chain, by step.
	writers []stepWriter
	// reader is the source reader (source subtasks).
	reader connector.Reader
	// sinkRestore holds the restored committables by sink step.
	sinkRestore map[string][]byte
	endPos      []byte // a source's position at the end of its input
	acked       int64  // the last checkpoint acknowledged
	committed   int64  // the last checkpoint committed
}

type stepWriter struct {
	step string
	w    connector.Writer
}

func newCPState(ctx context.Context, c *Config) (*cpState, error) {
	s := &cpState{c: c, cp: c.Checkpoint, sinkRestore: map[string][]byte{}}
	if s.cp.Restore == nil {
		return s, nil
	}
	for _, n := range c.Stage.Chain {
		if n.Kind != plan.KindSink {
			continue
		}
		b, err := s.cp.Restore.Get(ctx, checkpoint.SinkName(n.Name, c.Index))
		if errors.Is(err, checkpoint.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: restore step %q: %w", c.name(), n.Name, err)
		}
		s.sinkRestore[n.Name] = b
	}
	return s, nil
}

// wrapSinks returns the sinks map with the chain's sinks wrapped so the
// writers they open are tracked (and recovered); the writers themselves
// are not wrapped, so records go straight to them.
func (s *cpState) wrapSinks(sinks map[string]connector.Sink) map[string]connector.Sink {
	out := make(map[string]connector.Sink, len(sinks))
	for k, v := range sinks {
		out[k] = v
	}
	for _, n := range s.c.Stage.Chain {
		if n.Kind == plan.KindSink && sinks[n.Name] != nil {
			out[n.Name] = trackedSink{Sink: sinks[n.Name], step: n.Name, s: s}
		}
	}
	return out
}

type trackedSink struct {
	connector.Sink
	step string
	s    *cpState
}

// Open opens the writer and, on restore, hands it its committables
// before anything is written.
func (t trackedSink) Open(ctx context.Context, index, parallelism int) (connector.Writer, error) {
	w, err := t.Sink.Open(ctx, index, parallelism)
	if err != nil {
		return nil, err
	}
	t.s.writers = append(t.s.writers, stepWriter{t.step, w})
	if b, ok := t.s.sinkRestore[t.step]; ok {
		tw, ok := w.(connector.Transactional)
		if !ok {
			w.Abort()
			return nil, fmt.Errorf("the restored snapshot holds committables for it, but its writer is not transactional")
		}
		if err := tw.Recover(ctx, b); err != nil {
			w.Abort()
			return nil, fmt.Errorf("recover committables: %w", err)
		}
	}
	return w, nil
}

// snapshot takes the subtask's snapshot of checkpoint id and acks it.
func (s *cpState) snapshot(ctx context.Context, id int64, chain *operator.Chain, wm int64) error {
	c := s.c
	start := time.Now()
	defer func() {
		c.Counters.SnapshotNanos.Add(int64(time.Since(start)))
		c.Counters.Snapshots.Add(1)
	}()
	snap := map[string][]byte{}
	head := c.Stage.Head()
	if s.reader != nil {
		p, ok := s.reader.(connector.Positioned)
		if !ok {
			return &operator.StepError{Step: head.Name, Err: fmt.Errorf("its reader cannot report a position for checkpoint %d", id)}
		}
		var pos []byte
		var err error
		if pf, ok := p.(connector.PositionedFor); ok {
			pos, err = pf.PositionFor(id)
		} else {
			pos, err = p.Position()
		}
		if err != nil {
			return &operator.StepError{Step: head.Name, Err: err}
		}
		snap[checkpoint.SourcePositionName(head.Name, c.Index, c.Stage.Parallelism)] = pos
	}
	if chain.Keyed != nil {
		b, err := snapshotKeyed(chain, wm)
		if err != nil {
			return fmt.Errorf("%s: checkpoint %d: %w", c.name(), id, err)
		}
		snap[checkpoint.KeyedName(head.Name, c.Index, c.Stage.Parallelism)] = b
	}
	if b, ok, err := snapshotBroadcast(chain); err != nil {
		return fmt.Errorf("%s: checkpoint %d: %w", c.name(), id, err)
	} else if ok && c.Index == 0 {
		// Every subtask holds the same broadcast state; one copy is enough.
		snap[checkpoint.BroadcastName(head.Name)] = b
	}
	for _, sw := range s.writers {
		if t, ok := sw.w.(connector.Transactional); ok {
			b, err := t.PreCommit(ctx, id)
			if err != nil {
				return &operator.StepError{Step: sw.step, Err: fmt.Errorf("pre-commit of checkpoint %d: %w", id, err)}
			}
			snap[checkpoint.SinkName(sw.step, c.Index)] = b
		}
	}
	if err := s.cp.Ack(id, snap); err != nil {
		return err
	}
	s.acked = id
	return nil
}

// completed handles the notification that checkpoint id is complete.
func (s *cpState) completed(ctx context.Context, id int64) error {
	if id <= s.committed || id > s.acked {
		// Old news, or a checkpoint this subtask has not snapshotted
		// (cannot happen: completion needs its ack).
		return nil
	}
	s.committed = id
	for _, sw := range s.writers {
		if t, ok := sw.w.(connector.Transactional); ok {
			if err := t.Commit(ctx, id); err != nil {
				return &operator.StepError{Step: sw.step, Err: fmt.Errorf("commit of checkpoint %d: %w", id, err)}
			}
		}
		if l, ok := sw.w.(connector.CheckpointListener); ok {
			if err := l.CheckpointComplete(ctx, id); err != nil {
				slog.Warn("checkpoint listener failed", "step", sw.step, "subtask", s.c.Index, "checkpoint", id, "err", err)
			}
		}
	}
	if l, ok := s.reader.(connector.CheckpointListener); ok {
		if err := l.CheckpointComplete(ctx, id); err != nil {
			slog.Warn("checkpoint listener failed", "step", s.c.Stage.Head().Name, "subtask", s.c.Index, "checkpoint", id, "err", err)
		}
	}
	return nil
}

// finished reports the subtask's normal end to OnFinish.
func (s *cpState) finished() {
	if s == nil || s.cp.OnFinish == nil {
		return
	}
	for _, sw := range s.writers {
		if _, ok := sw.w.(connector.Transactional); ok {
			s.cp.OnFinish(nil)
			return
		}
	}
	snap := map[string][]byte{}
	if s.reader != nil {
		if s.endPos == nil {
			s.cp.OnFinish(nil) // the reader has no position to resume from
			return
		}
		snap[checkpoint.SourcePositionName(s.c.Stage.Head().Name, s.c.Index, s.c.Stage.Parallelism)] = s.endPos
	}
	s.cp.OnFinish(snap)
}

// keepEndPosition records a source's position at the end of its input
// (before the reader closes), for OnFinish.
func (s *cpState) keepEndPosition() {
	if p, ok := s.reader.(connector.Positioned); ok {
		if pos, err := p.Position(); err == nil {
			s.endPos = pos
		}
	}
}

// pollComplete handles a waiting completion notification, if any.
func (s *cpState) pollComplete(ctx context.Context) error {
	if s == nil || s.cp.Complete == nil {
		return nil
	}
	select {
	case id := <-s.cp.Complete:
		return s.completed(ctx, id)
	default:
		return nil
	}
}

// complete is the subtask's completion channel (nil: never ready).
func (s *cpState) complete() <-chan int64 {
	if s == nil {
		return nil
	}
	return s.cp.Complete
}

// restoreSource seeks a source reader to its restored position. A source
// step with no position in the snapshot starts fresh (the snapshot came
// from a job without that step, e.g. a bootstrap savepoint); one whose
// positions were written at another parallelism is restored from all of
// them if its reader is connector.Rescalable (Kafka: partitions are
// reassigned as Flink's enumerator does), else cannot be.
func (s *cpState) restoreSource(ctx context.Context, rd connector.Reader) error {
	s.reader = rd
	if s.cp.Restore == nil {
		return nil
	}
	c := s.c
	head := c.Stage.Head()
	pos, err := s.cp.Restore.Get(ctx, checkpoint.SourcePositionName(head.Name, c.Index, c.Stage.Parallelism))
	if errors.Is(err, checkpoint.ErrNotFound) {
		others, lerr := s.cp.Restore.List(ctx, "source/"+head.Name+"/")
		if lerr != nil {
			return lerr
		}
		if len(others) == 0 {
			return nil
		}
		rs, ok := rd.(connector.Rescalable)
		if !ok {
			return &operator.StepError{Step: head.Name, Err: fmt.Errorf(
				"the snapshot has its positions at another parallelism (%s), not for subtask %d of %d: a source must be restored at the parallelism it was checkpointed with",
				path.Base(others[0]), c.Index, c.Stage.Parallelism)}
		}
		all := make([][]byte, len(others)) // by old subtask
		seen := make([]bool, len(others))
		for _, name := range others {
			// One position per old subtask, each once: j-of-n with n the
			// number of positions.
			var j, n int
			if _, err := fmt.Sscanf(path.Base(name), "%d-of-%d", &j, &n); err != nil || n != len(others) || j < 0 || j >= n || seen[j] {
				return &operator.StepError{Step: head.Name, Err: fmt.Errorf("the snapshot's positions are not one complete set (%s among %d)", path.Base(name), len(others))}
			}
			seen[j] = true
			b, err := s.cp.Restore.Get(ctx, name)
			if err != nil {
				return &operator.StepError{Step: head.Name, Err: err}
			}
			all[j] = b
		}
		if err := rs.SeekAll(all); err != nil {
			return &operator.StepError{Step: head.Name, Err: err}
		}
		return nil
	}
	if err != nil {
		return &operator.StepError{Step: head.Name, Err: err}
	}
	p, ok := rd.(connector.Positioned)
	if !ok {
		return &operator.StepError{Step: head.Name, Err: fmt.Errorf("its reader cannot seek to a checkpointed position")}
	}
	if err := p.Seek(pos); err != nil {
		return &operator.StepError{Step: head.Name, Err: err}
	}
	return nil
}

// The keyed snapshot of a subtask: [version, watermark, state], state a
// state.GroupWriter snapshot (by key group). The watermark is the
// subtask's event time when the snapshot was taken; a restore resumes from
// it (the minimum over the files it reads) so event time never goes back.
const keyedSnapVersion = 2

func snapshotKeyed(chain *operator.Chain, wm int64) ([]byte, error) {
	st, timers := chain.Keyed.State()
	w := state.NewGroupWriter(st, shuffle.KeyGroup)
	w.AddAll(st, timers)
	return encodeKeyed(w, wm), nil
}

func encodeKeyed(w *state.GroupWriter, wm int64) []byte {
	return value.Append(nil, []any{int64(keyedSnapVersion), wm, w.Bytes()})
}

// ownsGroup reports whether subtask i of n owns key group g (as
// shuffle.SubtaskForKey routes keys).
func ownsGroup(g, i, n int) bool { return g*n/plan.MaxParallelism == i }

// restoreKeyed restores the keyed head's state and timers: it reads every
// snapshot file of the step whose subtask owned a key group this subtask
// owns now, and keeps only those key groups. It returns the minimum
// watermark of the files read (ok false: nothing to restore).
func (s *cpState) restoreKeyed(ctx context.Context, chain *operator.Chain) (int64, bool, error) {
	c := s.c
	head := c.Stage.Head()
	names, err := s.cp.Restore.List(ctx, checkpoint.KeyedPrefix(head.Name))
	if err != nil {
		return 0, false, err
	}
	st, timers := chain.Keyed.State()
	keep := func(g int) bool { return ownsGroup(g, c.Index, c.Stage.Parallelism) }
	wm, found := int64(0), false
	for _, name := range names {
		var j, n int
		if _, err := fmt.Sscanf(path.Base(name), "%d-of-%d", &j, &n); err != nil || n <= 0 || j < 0 || j >= n {
			return 0, false, &operator.StepError{Step: head.Name, Err: fmt.Errorf("snapshot %s: not a keyed snapshot name", name)}
		}
		overlap := false
		for g := 0; g < plan.MaxParallelism && !overlap; g++ {
			overlap = ownsGroup(g, j, n) && keep(g)
		}
		if !overlap {
			continue
		}
		data, err := s.cp.Restore.Get(ctx, name)
		if err != nil {
			return 0, false, err
		}
		v, rest, err := value.Decode(data)
		f, ok := v.([]any)
		if err != nil || len(rest) != 0 || !ok || len(f) != 3 {
			return 0, false, &operator.StepError{Step: head.Name, Err: fmt.Errorf("snapshot %s: %w", name, value.ErrCorrupt)}
		}
		if ver, _ := f[0].(int64); ver != keyedSnapVersion {
			return 0, false, &operator.StepError{Step: head.Name, Err: fmt.Errorf("snapshot %s has format %d, want %d", name, ver, keyedSnapVersion)}
		}
		w, _ := f[1].(int64)
		b, _ := f[2].([]byte)
		if err := state.RestoreGroups(st, timers, b, keep); err != nil {
			return 0, false, &operator.StepError{Step: head.Name, Err: fmt.Errorf("snapshot %s: %w", name, err)}
		}
		if !found || w < wm {
			wm = w
		}
		found = true
	}
	return wm, found, nil
}

// broadcaster is a head with broadcast state (a process step with a
// broadcast input).
type broadcaster interface {
	BroadcastState() (any, bool)
	SetBroadcastState(v any)
}

// snapshotBroadcast returns a process step's broadcast state, if the head
// keeps one.
func snapshotBroadcast(chain *operator.Chain) ([]byte, bool, error) {
	b, ok := chain.Head().(broadcaster)
	if !ok {
		return nil, false, nil
	}
	v, ok := b.BroadcastState()
	if !ok {
		return nil, false, nil
	}
	return value.Append(nil, v), true, nil
}

// restoreBroadcast restores a process step's broadcast state.
func (s *cpState) restoreBroadcast(ctx context.Context, chain *operator.Chain) error {
	b, ok := chain.Head().(broadcaster)
	if !ok {
		return nil
	}
	if _, ok := b.BroadcastState(); !ok {
		return nil
	}
	head := s.c.Stage.Head()
	data, err := s.cp.Restore.Get(ctx, checkpoint.BroadcastName(head.Name))
	if errors.Is(err, checkpoint.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	v, rest, err := value.Decode(data)
	if err != nil || len(rest) != 0 {
		return &operator.StepError{Step: head.Name, Err: fmt.Errorf("broadcast state snapshot: %w", value.ErrCorrupt)}
	}
	b.SetBroadcastState(v)
	return nil
}

// savingKeyed wraps a BATCH keyed head to collect each key's final state
// for a savepoint: the state after the key's last record and before
// EndKey fires its event-time timers (as if at MaxWatermark) and emits
// its BATCH results, together with the timers still registered then.
type savingKeyed struct {
	operator.Keyed
	w *state.GroupWriter
}

func (k *savingKeyed) EndKey() error {
	st, timers := k.Keyed.State()
	if k.w == nil {
		k.w = state.NewGroupWriter(st, shuffle.KeyGroup)
	}
	k.w.AddCurrent(st, timers)
	return k.Keyed.EndKey()
}

// writeFinalState writes a BATCH keyed subtask's final state (collected
// by savingKeyed) and broadcast state into the savepoint directory dir.
// The watermark stored is MinWatermark: BATCH has no event-time progress
// before the end of input.
func writeFinalState(ctx context.Context, c *Config, chain *operator.Chain, sk *savingKeyed, dir checkpoint.Store) error {
	head := c.Stage.Head()
	w := sk.w
	if w == nil {
		st, _ := sk.Keyed.State()
		w = state.NewGroupWriter(st, shuffle.KeyGroup) // no keys: an empty snapshot
	}
	if err := dir.Put(ctx, checkpoint.KeyedName(head.Name, c.Index, c.Stage.Parallelism), encodeKeyed(w, value.MinWatermark)); err != nil {
		return fmt.Errorf("%s: final savepoint: %w", c.name(), err)
	}
	if b, ok, err := snapshotBroadcast(chain); err != nil {
		return err
	} else if ok && c.Index == 0 {
		if err := dir.Put(ctx, checkpoint.BroadcastName(head.Name), b); err != nil {
			return fmt.Errorf("%s: final savepoint: %w", c.name(), err)
		}
	}
	return nil
}
