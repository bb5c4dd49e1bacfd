// Package local is the in-process executor: it runs a whole plan in one
// process, in either mode. STREAMING runs every subtask of every stage at
// once as a goroutine, with bounded channels between them (a slow consumer
// blocks its producers: backpressure). BATCH runs stage after stage; each
// stage's partitioned output goes to a shuffle.Store in a local directory,
// which the next stage reads, exactly as workers do through S3.
package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flinkjob/flinkjob/engine/checkpoint"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/shuffle"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/task"
	"github.com/flinkjob/flinkjob/engine/udf"
)

// Options tune the executor.
type Options struct {
	// Env configures connectors (S3, stdout).
	Env connector.Env
	// WorkDir holds BATCH shuffle data and sort spills; default a temporary
	// directory removed at the end.
	WorkDir string
	// MaxConcurrent bounds how many BATCH subtasks run at once (default:
	// all subtasks of a stage). 1 runs the job one subtask at a time.
	MaxConcurrent int
	// ChannelCapacity is the number of batches a STREAMING inbox buffers (default 4).
	ChannelCapacity int
	// BatchSize is the number of elements per batch (default 512).
	BatchSize int
	// SortMemory is each BATCH subtask's sort budget in bytes (default 64 MiB).
	SortMemory int64
	// OnSubtask, if set, is called when a subtask starts and ends (tests).
	OnSubtask func(stage, index int, running bool)

	// CheckpointInterval, if positive, takes a checkpoint of a STREAMING
	// job at this interval (exactly-once state, issue #7) into
	// CheckpointStore, or a checkpoint.LocalStore in CheckpointDir.
	CheckpointInterval time.Duration
	CheckpointStore    checkpoint.Store
	CheckpointDir      string
	// RetainCheckpoints is the number of complete checkpoints kept (default 3).
	RetainCheckpoints int
	// RestoreFrom, if set, starts a STREAMING job from a complete
	// checkpoint or savepoint: "latest" (the newest complete checkpoint of
	// the store, or a fresh start if there is none), a checkpoint ID of the
	// store, or the path of a checkpoint or savepoint directory. Keyed
	// operators get their state and timers back (by step name and key
	// group: keyed parallelism may differ), sources resume at their
	// positions (same source parallelism) and Transactional sinks recover
	// their committables.
	RestoreFrom string
	// OpenRestore opens a RestoreFrom directory URL (default
	// checkpoint.OpenLocal: local paths only); checkpoint.OpenURL also
	// restores from s3:// directories.
	OpenRestore checkpoint.Opener
	// OnCheckpoint, if set, is called when a checkpoint is complete.
	OnCheckpoint func(id int64)

	// SavepointDir is where savepoints go, as self-contained directories
	// sp-<checkpoint id>-<nonce>/ (restorable with RestoreFrom set to
	// their path, never pruned): Executor.TriggerSavepoint's and the
	// final savepoint.
	SavepointDir string
	// FinalSavepoint writes savepoint "final" into SavepointDir when a
	// bounded job ends (the bootstrap path of issue #7):
	//   - STREAMING: once every source reached the end of its input, a
	//     last checkpoint is taken before the final MaxWatermark fires the
	//     remaining event-time timers; its directory is copied to
	//     sp-<id>-final/. Every source must be bounded.
	//   - BATCH: every keyed step writes each key's final state, taken
	//     after all of the key's input and before its end-of-input timers
	//     fire (and before BATCH's once-per-key results are emitted),
	//     with the timers still registered then, to sp-0-final/ (BATCH
	//     takes no checkpoints: ID 0).
	// Both have the same form, so a STREAMING job whose keyed steps have
	// the same names (and state) restores from either. A STREAMING job
	// has fired the event-time timers its watermark passed, BATCH none: the
	// two agree where no timer fired before the end (rolling reduce and
	// aggregate, process state, windows without watermarks).
	FinalSavepoint bool
	// OnSavepoint, if set, is called after a savepoint is complete.
	OnSavepoint func(Savepoint)
}

// Savepoint describes a complete savepoint.
type Savepoint struct {
	Nonce string
	// Path is the savepoint's directory, ending in '/'.
	Path string
	// ID is the checkpoint it copies (0 for a BATCH final savepoint).
	ID int64
}

// ErrStopped is returned by Run after TriggerSavepoint with stop: the job
// did not finish, it stopped right after the savepoint (its sinks'
// Finishers do not run; Transactional sinks commit the savepoint's
// transactions when notified, or in Recover when the job is restored).
var ErrStopped = errors.New("job stopped with a savepoint")

// StageProgress is a stage's live counts.
type StageProgress struct {
	Stage       *plan.Stage
	RecordsIn   int64
	RecordsOut  int64
	Done        int // subtasks finished
	LateDropped int64
	// Malformed counts the records the stage's source could not read and
	// routed to its source.malformedOutput.
	Malformed int64
	// SnapshotTime is the time the stage's subtasks spent taking
	// checkpoint snapshots (summed), over Snapshots snapshots.
	SnapshotTime time.Duration
	Snapshots    int64
}

// Executor runs one plan.
type Executor struct {
	plan     *plan.Plan
	opts     Options
	counters [][]*task.Counters
	done     []int
	mu       sync.Mutex
	sinks    map[string]connector.Sink
	sources  map[string]connector.Source
	coord    *checkpoint.Coordinator // STREAMING with checkpoints, while running
	cpStore  checkpoint.Store
	stop     context.CancelCauseFunc
	final    *Savepoint
	// batchSP is the BATCH final savepoint's directory while it is written.
	batchSP checkpoint.Store
}

// New prepares an executor and creates the job's connectors.
func New(p *plan.Plan, opts Options) (*Executor, error) {
	if opts.Env.CallSink == nil {
		opts.Env.CallSink = udf.LookupSink
	}
	e := &Executor{plan: p, opts: opts, sinks: map[string]connector.Sink{}, sources: map[string]connector.Source{}}
	for _, n := range p.Graph.Nodes {
		switch n.Kind {
		case plan.KindSource:
			s, err := connector.NewSource(n.Step.Source, n.Exprs.Datagen, n.Fields, opts.Env)
			if err != nil {
				return nil, fmt.Errorf("step %q: %w", n.Name, err)
			}
			e.sources[n.Name] = s
		case plan.KindSink:
			s, err := connector.NewSink(n.Step.Sink, opts.Env)
			if err != nil {
				return nil, fmt.Errorf("step %q: %w", n.Name, err)
			}
			e.sinks[n.Name] = s
		}
	}
	e.counters = make([][]*task.Counters, len(p.Stages))
	e.done = make([]int, len(p.Stages))
	for i, s := range p.Stages {
		for j := 0; j < s.Parallelism; j++ {
			e.counters[i] = append(e.counters[i], &task.Counters{})
		}
	}
	return e, nil
}

// Sinks returns the job's sink connectors by step name.
func (e *Executor) Sinks() map[string]connector.Sink { return e.sinks }

// Progress returns every stage's live counts.
func (e *Executor) Progress() []StageProgress {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]StageProgress, len(e.plan.Stages))
	for i, s := range e.plan.Stages {
		out[i].Stage = s
		out[i].Done = e.done[i]
		for _, c := range e.counters[i] {
			out[i].RecordsIn += c.RecordsIn.Load()
			out[i].RecordsOut += c.RecordsOut.Load()
			out[i].LateDropped += c.LateDropped.Load()
			out[i].Malformed += c.Malformed.Load()
			out[i].SnapshotTime += time.Duration(c.SnapshotNanos.Load())
			out[i].Snapshots += c.Snapshots.Load()
		}
	}
	return out
}

func (e *Executor) config(s *plan.Stage, i int) task.Config {
	return task.Config{Plan: e.plan, Stage: s, Index: i, Sources: e.sources, Sinks: e.sinks,
		BatchSize: e.opts.BatchSize, SortMemory: e.opts.SortMemory, TempDir: e.opts.WorkDir,
		Counters: e.counters[s.ID][i], FinalSavepoint: e.batchSP}
}

func (e *Executor) started(s, i int) {
	if e.opts.OnSubtask != nil {
		e.opts.OnSubtask(s, i, true)
	}
}

// finished reports a subtask's end, failed or not: OnSubtask sees every
// start matched by an end. Only successes count as done.
func (e *Executor) finished(s, i int, ok bool) {
	if ok {
		e.mu.Lock()
		e.done[s]++
		e.mu.Unlock()
	}
	if e.opts.OnSubtask != nil {
		e.opts.OnSubtask(s, i, false)
	}
}

// Run runs the job to the end (bounded) or until ctx is cancelled.
func (e *Executor) Run(ctx context.Context) error {
	var err error
	if e.plan.Mode == spec.Batch {
		err = e.runBatch(ctx)
	} else {
		err = e.runStreaming(ctx)
	}
	if err != nil {
		return err
	}
	if e.plan.Mode == spec.Batch && e.batchSP != nil {
		if err := checkpoint.MarkComplete(ctx, e.batchSP, checkpoint.Meta{ID: 0, Kind: "savepoint"}); err != nil {
			return fmt.Errorf("final savepoint: %w", err)
		}
		e.savepointDone(Savepoint{Nonce: "final", Path: e.spPath(0, "final"), ID: 0})
	}
	for name, s := range e.sinks {
		if f, ok := s.(connector.Finisher); ok {
			if err := f.Finish(ctx); err != nil {
				return fmt.Errorf("step %q: %w", name, err)
			}
		}
	}
	return nil
}

// chanSender delivers batches to in-process inboxes.
type chanSender struct{ inboxes [][]chan task.Batch }

func (c chanSender) Send(ctx context.Context, e *plan.Edge, target int, b task.Batch) error {
	select {
	case c.inboxes[e.To.ID][target] <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Executor) runStreaming(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	e.mu.Lock()
	e.stop = cancel
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.stop = nil
		e.mu.Unlock()
	}()
	capacity := e.opts.ChannelCapacity
	if capacity <= 0 {
		capacity = 4
	}
	send := chanSender{inboxes: make([][]chan task.Batch, len(e.plan.Stages))}
	for _, s := range e.plan.Stages {
		for i := 0; i < s.Parallelism; i++ {
			send.inboxes[s.ID] = append(send.inboxes[s.ID], make(chan task.Batch, capacity))
		}
	}
	cps, coord, err := e.checkpointing(ctx)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	if coord != nil {
		cctx, stop := context.WithCancel(ctx)
		defer stop()
		go coord.Run(cctx)
		e.mu.Lock()
		e.coord = coord
		e.mu.Unlock()
		defer func() {
			e.mu.Lock()
			e.coord = nil
			e.mu.Unlock()
		}()
	}
	for _, s := range e.plan.Stages {
		for i := 0; i < s.Parallelism; i++ {
			wg.Add(1)
			go func(s *plan.Stage, i int) {
				defer wg.Done()
				e.started(s.ID, i)
				cfg := e.config(s, i)
				if cps != nil {
					cfg.Checkpoint = cps[s.ID][i]
				}
				err := task.RunStreaming(ctx, cfg, send.inboxes[s.ID][i], send)
				e.finished(s.ID, i, err == nil)
				if err != nil {
					cancel(err)
				}
			}(s, i)
		}
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if e.opts.FinalSavepoint && coord != nil {
		return e.copyFinal(ctx, coord)
	}
	return nil
}

// copyFinal copies a bounded STREAMING job's final checkpoint to its
// savepoint directory.
func (e *Executor) copyFinal(ctx context.Context, coord *checkpoint.Coordinator) error {
	id, ok := coord.FinalID()
	if !ok || !slices.Contains(coord.Completed(), id) {
		return fmt.Errorf("final savepoint: the final checkpoint did not complete")
	}
	to, path, err := e.spDir(id, "final")
	if err != nil {
		return err
	}
	if err := checkpoint.CopyAs(ctx, checkpoint.Sub(coord.Store(), checkpoint.DirName(id)), to, checkpoint.Meta{ID: id, Kind: "savepoint"}); err != nil {
		return fmt.Errorf("final savepoint: %w", err)
	}
	e.savepointDone(Savepoint{Nonce: "final", Path: path, ID: id})
	return nil
}

func (e *Executor) spPath(id int64, nonce string) string {
	return filepath.Join(e.opts.SavepointDir, fmt.Sprintf("sp-%d-%s", id, nonce)) + string(filepath.Separator)
}

// spDir returns savepoint (id, nonce)'s directory, emptied.
func (e *Executor) spDir(id int64, nonce string) (checkpoint.Store, string, error) {
	if e.opts.SavepointDir == "" {
		return nil, "", fmt.Errorf("savepoints need a SavepointDir")
	}
	path := e.spPath(id, nonce)
	s := checkpoint.LocalStore{Dir: path}
	if err := os.RemoveAll(path); err != nil {
		return nil, "", err
	}
	return s, path, nil
}

func (e *Executor) savepointDone(sp Savepoint) {
	e.mu.Lock()
	if sp.Nonce == "final" {
		e.final = &sp
	}
	e.mu.Unlock()
	if e.opts.OnSavepoint != nil {
		e.opts.OnSavepoint(sp)
	}
}

// stopWith fails the running STREAMING job with err.
func (e *Executor) stopWith(err error) {
	e.mu.Lock()
	stop := e.stop
	e.mu.Unlock()
	if stop != nil {
		stop(err)
	}
}

// FinalSavepoint returns the final savepoint, once Run wrote it.
func (e *Executor) FinalSavepoint() (Savepoint, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.final == nil {
		return Savepoint{}, false
	}
	return *e.final, true
}

// TriggerSavepoint takes a savepoint of the running STREAMING job: a
// checkpoint (after the one in flight, if any) copied to
// SavepointDir/sp-<id>-<nonce>/. With stop the job stops right after it
// (Run returns ErrStopped) and nothing after the savepoint is committed.
func (e *Executor) TriggerSavepoint(ctx context.Context, nonce string, stop bool) (Savepoint, error) {
	e.mu.Lock()
	coord, cancel := e.coord, e.stop
	e.mu.Unlock()
	if coord == nil {
		return Savepoint{}, fmt.Errorf("savepoint: the job is not a running STREAMING job with a checkpoint coordinator (set SavepointDir or CheckpointInterval)")
	}
	if nonce == "" || strings.ContainsAny(nonce, "/\\") {
		return Savepoint{}, fmt.Errorf("savepoint: bad nonce %q", nonce)
	}
	if e.opts.SavepointDir == "" {
		return Savepoint{}, fmt.Errorf("savepoints need a SavepointDir")
	}
	var sp Savepoint
	_, err := coord.SavepointTo(ctx, func(id int64) (checkpoint.Store, error) {
		to, path, err := e.spDir(id, nonce)
		sp = Savepoint{Nonce: nonce, Path: path, ID: id}
		return to, err
	}, stop)
	if err != nil {
		return Savepoint{}, err
	}
	e.savepointDone(sp)
	if stop && cancel != nil {
		cancel(ErrStopped)
	}
	return sp, nil
}

// checkpointing prepares the STREAMING checkpoint coordinator and every
// subtask's hooks (nil, nil when checkpoints are off and nothing is
// restored). The coordinator completes a checkpoint when every subtask
// acknowledged it and then notifies every subtask through its Complete
// channel, which the subtask reads in its own goroutine.
func (e *Executor) checkpointing(ctx context.Context) ([][]*task.Checkpointing, *checkpoint.Coordinator, error) {
	o := e.opts
	final := o.FinalSavepoint
	if final {
		for name, src := range e.sources {
			if !src.Bounded() {
				return nil, nil, fmt.Errorf("final savepoint: step %q is an unbounded source; a final savepoint needs every source bounded", name)
			}
		}
		if o.SavepointDir == "" {
			return nil, nil, fmt.Errorf("final savepoint: needs a SavepointDir")
		}
	}
	needCoord := o.CheckpointInterval > 0 || o.SavepointDir != "" || final
	if !needCoord && o.RestoreFrom == "" {
		return nil, nil, nil
	}
	// A URL here (s3://...) would become a local directory named like it,
	// and the checkpoints would not be where the caller believes: the
	// checkpoint directory is opened as checkpoint.OpenLocal opens any
	// local store (file:// or a path; an S3 store goes in CheckpointStore).
	// Savepoint paths are joined onto SavepointDir as it is, so it must be
	// a plain path.
	if strings.Contains(o.SavepointDir, "://") {
		return nil, nil, fmt.Errorf("savepoint directory %q: a URL, not a local path (savepoints in process are local only)", o.SavepointDir)
	}
	store := o.CheckpointStore
	if store == nil && o.CheckpointDir != "" {
		var err error
		if store, err = checkpoint.OpenLocal(o.CheckpointDir); err != nil {
			return nil, nil, err
		}
	}
	if store == nil && o.CheckpointInterval > 0 {
		return nil, nil, fmt.Errorf("checkpoints need a CheckpointStore or a CheckpointDir")
	}
	open := o.OpenRestore
	if open == nil {
		open = checkpoint.OpenLocal
	}
	restore, _, err := checkpoint.Resolve(ctx, store, o.RestoreFrom, open)
	if err != nil {
		return nil, nil, err
	}
	if store == nil && needCoord {
		// Savepoints without periodic checkpoints: the checkpoints they
		// copy live in a temporary directory.
		d, err := os.MkdirTemp(o.WorkDir, "flinkjob-checkpoints-*")
		if err != nil {
			return nil, nil, err
		}
		context.AfterFunc(ctx, func() { os.RemoveAll(d) })
		store = checkpoint.LocalStore{Dir: d}
	}
	var highest int64
	if store != nil {
		if highest, err = checkpoint.Highest(ctx, store); err != nil {
			return nil, nil, err
		}
	}
	subtasks, sources := 0, 0
	for _, s := range e.plan.Stages {
		subtasks += s.Parallelism
		if s.Head().Kind == plan.KindSource {
			sources += s.Parallelism
		}
	}
	var completes []chan int64
	coord := checkpoint.NewCoordinator(store, checkpoint.Options{Interval: o.CheckpointInterval,
		Retain: o.RetainCheckpoints, Subtasks: subtasks, Sources: sources, FirstID: highest + 1,
		OnComplete: func(id int64) {
			for _, ch := range completes {
				checkpoint.Notify(ch, id)
			}
			if o.OnCheckpoint != nil {
				o.OnCheckpoint(id)
			}
		}})
	cps := make([][]*task.Checkpointing, len(e.plan.Stages))
	for _, s := range e.plan.Stages {
		for i := 0; i < s.Parallelism; i++ {
			st := checkpoint.Subtask{Stage: s.ID, Index: i}
			complete := make(chan int64, 1)
			completes = append(completes, complete)
			cp := &task.Checkpointing{Restore: restore, Complete: complete}
			cp.OnFinish = func(snap map[string][]byte) {
				if err := coord.FinishedWith(ctx, st, snap); err != nil {
					e.stopWith(err)
				}
			}
			cp.Ack = func(id int64, snap map[string][]byte) error {
				return coord.Ack(ctx, st, id, snap)
			}
			if s.Head().Kind == plan.KindSource {
				cp.Barriers = coord.SourceBarriers(s.ID, i)
				if final {
					cp.FinalSavepoint = true
					cp.SourceEnded = func() { coord.SourceEnded(st) }
				}
			}
			cps[s.ID] = append(cps[s.ID], cp)
		}
	}
	if !needCoord {
		return cps, nil, nil
	}
	return cps, coord, nil
}

func (e *Executor) runBatch(ctx context.Context) error {
	if e.opts.FinalSavepoint {
		sp, _, err := e.spDir(0, "final")
		if err != nil {
			return fmt.Errorf("final savepoint: %w", err)
		}
		e.batchSP = sp
	}
	dir := e.opts.WorkDir
	if dir == "" {
		d, err := os.MkdirTemp("", "flinkjob-batch-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
		e.opts.WorkDir = d
	}
	store := shuffle.LocalStore{Dir: dir}
	for _, s := range e.plan.Stages {
		if err := e.RunStage(ctx, s, store); err != nil {
			return err
		}
	}
	return nil
}

// RunStage runs every subtask of one BATCH stage (at most MaxConcurrent at
// once) and returns the first failure.
func (e *Executor) RunStage(ctx context.Context, s *plan.Stage, store shuffle.Store) error {
	limit := e.opts.MaxConcurrent
	if limit <= 0 || limit > s.Parallelism {
		limit = s.Parallelism
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := 0; i < s.Parallelism; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			e.started(s.ID, i)
			_, err := task.RunBatch(ctx, e.config(s, i), store)
			e.finished(s.ID, i, err == nil)
			if err != nil {
				cancel(err)
			}
		}(i)
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// Run plans nothing: it executes p in-process with opts and returns when done.
func Run(ctx context.Context, p *plan.Plan, opts Options) error {
	e, err := New(p, opts)
	if err != nil {
		return err
	}
	return e.Run(ctx)
}
