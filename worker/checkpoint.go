package worker

// Exactly-once STREAMING across worker processes (issue #7).
//
// Where the coordinator runs: in the worker of stage 0, subtask 0 (the
// "leader"), not in the operator's manager. A STREAMING failure restarts
// every worker anyway, so a coordinator inside the job shares the job's
// fate and needs no failover of its own: a new leader starts with the new
// workers and finds the last complete checkpoint in storage. The manager
// then never needs a network path to worker pods and carries no per-job
// coordination load (it manages hundreds of jobs); it talks to a job only
// through small JSON objects under the job's control URL
// (checkpoint-latest.json, savepoint-request.json, savepoint-<nonce>.json,
// savepoint-final.json).
//
// How the workers talk: the leader serves the control service (package
// exchange) on its gRPC server; every other worker subscribes to it at
// start. The leader streams barrier triggers to source subtasks and
// completion notifications to every subtask; workers acknowledge with
// unary calls after writing their snapshots straight to the checkpoint
// store (S3 in a cluster): only small acks reach the leader. Checkpoint
// state lives in storage, so nothing is lost with the leader but the
// checkpoint in flight.
//
// The leader also decides, once, which checkpoint the job restores from
// ("latest" resolved at its start) and tells every worker in the first
// message of its subscription, so all subtasks restore the same checkpoint
// even if an old worker is still finishing one while the new ones start.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flinkjob/flinkjob/engine/checkpoint"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/task"
	"github.com/flinkjob/flinkjob/worker/control"
	"github.com/flinkjob/flinkjob/worker/exchange"
)

// CheckpointConfig is a worker's checkpoint and savepoint settings (the
// FLINKJOB_CHECKPOINT_* environment of the contract between the operator
// and the workers).
type CheckpointConfig struct {
	// Interval between periodic checkpoints; 0 turns them off (savepoints
	// and the final savepoint still work when URL is set).
	Interval time.Duration
	// Retain is the number of complete checkpoints kept (default 3).
	Retain int
	// URL is the checkpoints URL (s3://bucket/prefix/ or a directory);
	// empty turns checkpointing off.
	URL string
	// SavepointURL is where savepoints go (sp-<id>-<nonce>/ directories).
	SavepointURL string
	// ControlURL holds the JSON objects shared with the manager.
	ControlURL string
	// RestoreFrom: "" (fresh start), "latest" (the newest complete
	// checkpoint under URL, or a fresh start), a checkpoint ID, or the URL
	// of a checkpoint or savepoint directory (which must be complete).
	RestoreFrom string
	// FinalSavepoint: a bounded job takes the savepoint "final" once every
	// source reached its end, before end-of-input.
	FinalSavepoint bool
	// ControlPoll is how often the leader reads savepoint-request.json
	// (default 1s).
	ControlPoll time.Duration
}

func (c CheckpointConfig) enabled() bool { return c.URL != "" }

func (c *CheckpointConfig) validate() error {
	switch {
	case c.URL == "" && c.Interval > 0:
		return errors.New("FLINKJOB_CHECKPOINT_INTERVAL needs FLINKJOB_CHECKPOINT_URL (--checkpoint-url)")
	case c.URL == "" && c.FinalSavepoint:
		return errors.New("FLINKJOB_FINAL_SAVEPOINT in STREAMING needs FLINKJOB_CHECKPOINT_URL (--checkpoint-url): the final savepoint is a checkpoint")
	case c.FinalSavepoint && c.SavepointURL == "":
		return errors.New("FLINKJOB_FINAL_SAVEPOINT needs FLINKJOB_SAVEPOINT_URL (--savepoint-url)")
	case c.Interval < 0:
		return fmt.Errorf("FLINKJOB_CHECKPOINT_INTERVAL %s: must not be negative", c.Interval)
	case c.Retain < 0:
		return fmt.Errorf("FLINKJOB_CHECKPOINT_RETAIN %d: must not be negative", c.Retain)
	}
	for _, u := range []*string{&c.URL, &c.SavepointURL, &c.ControlURL} {
		if *u != "" && !strings.HasSuffix(*u, "/") {
			*u += "/"
		}
	}
	if c.ControlPoll <= 0 {
		c.ControlPoll = time.Second
	}
	return nil
}

// nonces end up in object names: keep them to a safe alphabet.
var nonceRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// ckpt is one worker's part in checkpointing: the task hooks, and for the
// leader the coordinator and its control service.
type ckpt struct {
	cfg   CheckpointConfig
	log   *slog.Logger
	open  checkpoint.Opener
	store checkpoint.Store // the checkpoints; nil in a restore-only run
	self  checkpoint.Subtask
	cp    *task.Checkpointing

	// leader only
	leader *leader
	// followers only
	client *exchange.ControlClient
	// failed receives a follower's fatal control error (the leader is gone).
	failed chan error
	done   chan struct{} // closed once the subtask finished (no more events matter)
	acks   sync.WaitGroup

	// end is what stands for the finished subtask in later checkpoints
	// (task.Checkpointing.OnFinish; nil: its end cannot be carried, or it
	// did not report one), set in the task's goroutine before finish.
	endMu sync.Mutex
	end   map[string][]byte

	// For metrics: checkpoints this subtask acknowledged, and (leader)
	// checkpoints completed and the last one's ID.
	acked, completed, lastID atomic.Int64
}

// newCkpt prepares checkpointing for one subtask, or returns nil when the
// run has neither checkpoints nor a restore. The leader resolves what to
// restore from; followers learn it from the leader (start).
func newCkpt(ctx context.Context, cfg Config, p *plan.Plan, log *slog.Logger) (*ckpt, error) {
	cc := cfg.Checkpoints
	if err := cc.validate(); err != nil {
		return nil, err
	}
	if !cc.enabled() && cc.RestoreFrom == "" {
		return nil, nil
	}
	c := &ckpt{cfg: cc, log: log, open: checkpoint.OpenURL(cfg.S3), self: checkpoint.Subtask{Stage: cfg.Stage, Index: cfg.Index},
		cp: &task.Checkpointing{FinalSavepoint: cc.FinalSavepoint}, failed: make(chan error, 1), done: make(chan struct{})}
	// Checkpoints go on after a subtask finished, as in engine/local
	// (Flink's FLIP-147): a job with a bounded and an unbounded source
	// keeps checkpointing once the bounded one ended. finish hands this to
	// the coordinator (the leader's directly, a follower's with its
	// "finished" report).
	c.cp.OnFinish = func(snap map[string][]byte) {
		own := copySnapshot(snap)
		c.endMu.Lock()
		c.end = own
		c.endMu.Unlock()
	}
	if cc.enabled() {
		s, err := c.open(cc.URL)
		if err != nil {
			return nil, fmt.Errorf("checkpoint URL %s: %w", cc.URL, err)
		}
		c.store = s
	}
	if !cc.enabled() {
		// Restore only: no coordinator; the restore source is explicit,
		// so every subtask resolves it alike.
		dir, _, err := checkpoint.Resolve(ctx, nil, cc.RestoreFrom, c.open)
		if err != nil {
			return nil, err
		}
		c.cp.Restore = dir
		return c, nil
	}
	if cfg.Stage == 0 && cfg.Index == 0 {
		l, err := newLeader(ctx, c, p)
		if err != nil {
			return nil, err
		}
		c.leader = l
	}
	return c, nil
}

// resolveRestore turns RestoreFrom into a directory, its URL and meta.
func (c *ckpt) resolveRestore(ctx context.Context) (checkpoint.Store, string, checkpoint.Meta, error) {
	from := c.cfg.RestoreFrom
	dir, m, err := checkpoint.Resolve(ctx, c.store, from, c.open)
	if err != nil || dir == nil {
		return nil, "", m, err
	}
	url := from
	if _, nerr := strconv.ParseInt(from, 10, 64); from == "latest" || nerr == nil {
		url = c.cfg.URL + checkpoint.DirName(m.ID)
	} else if !strings.HasSuffix(url, "/") {
		url += "/"
	}
	return dir, url, m, nil
}

// leader runs the coordinator of the job.
type leader struct {
	c        *ckpt
	coord    *checkpoint.Coordinator
	control  checkpoint.Store // nil without a control URL
	restore  string           // URL every subtask restores from ("" fresh)
	total    int
	complete chan int64 // the leader's own subtask's completions

	mu        sync.Mutex
	subs      map[checkpoint.Subtask]*outbox
	subbed    map[checkpoint.Subtask]bool
	finished  map[checkpoint.Subtask]bool
	allSubbed chan struct{}
	allDone   chan struct{}

	stoppedAt atomic.Pointer[string] // the path of a stop-with-savepoint

	latestMu   sync.Mutex // serializes checkpoint-latest.json writes
	lastLatest int64

	bg sync.WaitGroup // control objects being written
}

// outbox holds the events waiting for one subscriber.
type outbox struct {
	mu     sync.Mutex
	events []exchange.ControlEvent
	wake   chan struct{}
}

func newOutbox() *outbox { return &outbox{wake: make(chan struct{}, 1)} }

func (o *outbox) push(ev exchange.ControlEvent) {
	o.mu.Lock()
	// A completion replaces one still waiting: committing N commits
	// everything staged up to N.
	if n := len(o.events); ev.Complete != 0 && n > 0 && o.events[n-1].Complete != 0 && o.events[n-1].Trigger == 0 {
		o.events[n-1].Complete = max(o.events[n-1].Complete, ev.Complete)
	} else {
		o.events = append(o.events, ev)
	}
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *outbox) take() []exchange.ControlEvent {
	o.mu.Lock()
	defer o.mu.Unlock()
	evs := o.events
	o.events = nil
	return evs
}

func newLeader(ctx context.Context, c *ckpt, p *plan.Plan) (*leader, error) {
	l := &leader{c: c, subs: map[checkpoint.Subtask]*outbox{}, subbed: map[checkpoint.Subtask]bool{}, finished: map[checkpoint.Subtask]bool{},
		allSubbed: make(chan struct{}), allDone: make(chan struct{}), complete: make(chan int64, 1)}
	if c.cfg.ControlURL != "" {
		s, err := c.open(c.cfg.ControlURL)
		if err != nil {
			return nil, fmt.Errorf("control URL %s: %w", c.cfg.ControlURL, err)
		}
		l.control = s
	}
	dir, url, m, err := c.resolveRestore(ctx)
	if err != nil {
		return nil, err
	}
	c.cp.Restore, l.restore = dir, url
	highest, err := checkpoint.Highest(ctx, c.store)
	if err != nil {
		return nil, err
	}
	sources := 0
	for _, s := range p.Stages {
		l.total += s.Parallelism
		if s.Head().Kind == plan.KindSource {
			sources += s.Parallelism
		}
	}
	// IDs keep growing across restores (from a savepoint too), so a sink
	// recovering committables never sees a new checkpoint with an old ID.
	l.coord = checkpoint.NewCoordinator(c.store, checkpoint.Options{Interval: c.cfg.Interval, Retain: c.cfg.Retain,
		Subtasks: l.total, Sources: sources, FirstID: max(highest, m.ID) + 1, OnComplete: l.onComplete, Logger: c.log})
	for _, s := range p.Stages {
		for i := 0; i < s.Parallelism; i++ {
			st := checkpoint.Subtask{Stage: s.ID, Index: i}
			if st == c.self {
				continue
			}
			o := newOutbox()
			l.subs[st] = o
			if s.Head().Kind == plan.KindSource {
				l.coord.AddSource(st, func(b checkpoint.Barrier) {
					o.push(exchange.ControlEvent{Trigger: b.ID, Final: b.Final})
				})
			}
		}
	}
	if len(l.subs) == 0 {
		close(l.allSubbed)
		close(l.allDone)
	}
	self := c.self
	if p.Stages[0].Head().Kind == plan.KindSource {
		c.cp.Barriers = l.coord.SourceBarriers(self.Stage, self.Index)
	}
	c.cp.Complete = l.complete
	c.cp.Ack = c.async(func(id int64, snap map[string][]byte) error {
		return l.coord.Ack(ctx, self, id, snap)
	})
	c.cp.SourceEnded = func() { l.coord.SourceEnded(self) }
	c.log.Info("checkpoint leader", "subtasks", l.total, "sources", sources, "interval", c.cfg.Interval,
		"checkpoints", c.cfg.URL, "restore", url, "firstCheckpoint", max(highest, m.ID)+1)
	return l, nil
}

// Subscribe streams a subtask's events: the hello first, then triggers and
// completions. Periodic checkpoints start once every subtask subscribed (a
// barrier would only wait for the others).
func (l *leader) Subscribe(ctx context.Context, stage, subtask int, send func(exchange.ControlEvent) error) error {
	st := checkpoint.Subtask{Stage: stage, Index: subtask}
	l.mu.Lock()
	o, ok := l.subs[st]
	l.mu.Unlock()
	if !ok {
		return fmt.Errorf("stage %d subtask %d is not a subtask of this job's plan (or is the leader)", stage, subtask)
	}
	// One subscription per subtask for the life of the job: a second one
	// would split the subtask's events between two streams.
	l.mu.Lock()
	dup := l.subbed[st]
	if !dup {
		l.subbed[st] = true
		if len(l.subbed) == len(l.subs) {
			close(l.allSubbed)
		}
	}
	l.mu.Unlock()
	if dup {
		return fmt.Errorf("stage %d subtask %d is already subscribed", stage, subtask)
	}
	if err := send(exchange.ControlEvent{Hello: true, Restore: l.restore}); err != nil {
		l.gone(st)
		return err
	}
	for {
		for _, ev := range o.take() {
			if err := send(ev); err != nil {
				l.gone(st)
				return err
			}
		}
		select {
		case <-o.wake:
		case <-ctx.Done():
			l.gone(st)
			return nil
		}
	}
}

// gone handles the end of a subscription: a subtask that went away
// without reporting that it finished has failed (its process died), and no
// checkpoint can complete without it, so the leader fails too, rather than
// wait (a follower reports finished before it closes its subscription).
func (l *leader) gone(st checkpoint.Subtask) {
	l.mu.Lock()
	finished := l.finished[st]
	l.mu.Unlock()
	if !finished {
		l.c.fail(fmt.Errorf("checkpoint leader: stage %d subtask %d went away before it finished (its control subscription ended)", st.Stage, st.Index))
	}
}

// Call handles acknowledgements and life-cycle reports of other subtasks.
func (l *leader) Call(ctx context.Context, r exchange.ControlRequest) error {
	st := checkpoint.Subtask{Stage: r.Stage, Index: r.Subtask}
	l.mu.Lock()
	_, ok := l.subs[st]
	l.mu.Unlock()
	if !ok {
		return fmt.Errorf("stage %d subtask %d is not a subtask of this job's plan", r.Stage, r.Subtask)
	}
	switch r.Op {
	case exchange.OpAck:
		// The ack that completes a checkpoint writes its marker and
		// prunes old ones: that must not stop halfway because the caller
		// gave up waiting (it retries, and a retry of an ack is a no-op).
		return l.coord.Acknowledge(context.WithoutCancel(ctx), st, r.ID)
	case exchange.OpSourceEnded:
		l.coord.SourceEnded(st)
	case exchange.OpFinished:
		var snap map[string][]byte
		if r.Carry {
			snap = r.Snapshot
			if snap == nil {
				snap = map[string][]byte{}
			}
		}
		// Like an ack, it may complete the checkpoint in flight.
		return l.finish(context.WithoutCancel(ctx), st, snap)
	default:
		return fmt.Errorf("unknown control operation %q", r.Op)
	}
	return nil
}

// finish records that a subtask ended successfully, with what stands for
// it in later checkpoints (nil: checkpoints stop; see FinishedWith).
func (l *leader) finish(ctx context.Context, st checkpoint.Subtask, snap map[string][]byte) error {
	if err := l.coord.FinishedWith(ctx, st, snap); err != nil {
		return fmt.Errorf("checkpoint leader: stage %d subtask %d finished: %w", st.Stage, st.Index, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.finished[st] {
		return nil
	}
	l.finished[st] = true
	if len(l.finished) == len(l.subs) {
		close(l.allDone)
	}
	return nil
}

// onComplete is the coordinator's completion callback: notify every
// subtask, record checkpoint-latest.json, and write the final savepoint.
func (l *leader) onComplete(id int64) {
	l.c.completed.Add(1)
	l.c.lastID.Store(id)
	checkpoint.Notify(l.complete, id)
	l.mu.Lock()
	for _, o := range l.subs {
		o.push(exchange.ControlEvent{Complete: id})
	}
	l.mu.Unlock()
	if l.control != nil {
		l.bg.Add(1)
		go func() {
			defer l.bg.Done()
			l.writeLatest(id)
		}()
	}
	if fid, ok := l.coord.FinalID(); ok && fid == id {
		l.bg.Add(1)
		go func() {
			defer l.bg.Done()
			res := l.copySavepoint(context.Background(), id, control.FinalNonce)
			if res.Error != "" {
				l.c.log.Error("final savepoint failed", "checkpoint", id, "err", res.Error)
			} else {
				l.c.log.Info("final savepoint complete", "checkpoint", id, "path", res.Path)
			}
			l.writeControl(control.SavepointFinalObject, res)
		}()
	}
}

func (l *leader) writeLatest(id int64) {
	// Serialized and monotonic: completions may race to get here.
	l.latestMu.Lock()
	defer l.latestMu.Unlock()
	if id <= l.lastLatest {
		return
	}
	l.lastLatest = id
	l.writeControl(control.LatestObject, control.LatestCheckpoint{ID: id, Path: l.c.cfg.URL + checkpoint.DirName(id), TimeMs: time.Now().UnixMilli()})
}

func (l *leader) writeControl(name string, v any) {
	if l.control == nil {
		return
	}
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.control.Put(ctx, name, b); err != nil {
		l.c.log.Error("writing a control object", "object", l.c.cfg.ControlURL+name, "err", err)
	}
}

// copySavepoint copies complete checkpoint id to sp-<id>-<nonce>/ under
// the savepoint URL.
func (l *leader) copySavepoint(ctx context.Context, id int64, nonce string) control.SavepointResult {
	res := control.SavepointResult{Nonce: nonce, CheckpointID: id}
	if l.c.cfg.SavepointURL == "" {
		res.Error = "no savepoint URL configured (FLINKJOB_SAVEPOINT_URL)"
		return res
	}
	path := l.savepointPath(id, nonce)
	dir, err := l.c.open(path)
	if err == nil {
		err = checkpoint.CopyAs(ctx, checkpoint.Sub(l.c.store, checkpoint.DirName(id)), dir, checkpoint.Meta{ID: id, Kind: "savepoint"})
	}
	if err != nil {
		res.Error = fmt.Sprintf("savepoint of checkpoint %d to %s: %v", id, path, err)
		return res
	}
	res.Path, res.TimeMs = path, time.Now().UnixMilli()
	return res
}

// savepointPath is the URL of savepoint sp-<id>-<nonce>/.
func (l *leader) savepointPath(id int64, nonce string) string {
	return fmt.Sprintf("%ssp-%d-%s/", l.c.cfg.SavepointURL, id, nonce)
}

// run starts periodic checkpoints once every subtask subscribed and polls
// savepoint requests, until ctx ends.
func (l *leader) run(ctx context.Context) {
	select {
	case <-l.allSubbed:
	case <-ctx.Done():
		return
	}
	go l.coord.Run(ctx)
	if l.control == nil {
		return
	}
	handled := map[string]bool{}
	t := time.NewTicker(l.c.cfg.ControlPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.pollSavepoint(ctx, handled)
	}
}

// pollSavepoint acts on savepoint-request.json once per nonce.
func (l *leader) pollSavepoint(ctx context.Context, handled map[string]bool) {
	b, err := l.control.Get(ctx, control.SavepointRequestObject)
	if errors.Is(err, checkpoint.ErrNotFound) {
		return
	}
	if err != nil {
		l.c.log.Warn("reading the savepoint request", "err", err)
		return
	}
	var req control.SavepointRequest
	if err := json.Unmarshal(b, &req); err != nil || req.Nonce == "" {
		l.c.log.Warn("ignoring a malformed savepoint request", "object", l.c.cfg.ControlURL+control.SavepointRequestObject, "err", err)
		return
	}
	if handled[req.Nonce] {
		return
	}
	handled[req.Nonce] = true
	name := control.SavepointResultObject(req.Nonce)
	if !nonceRE.MatchString(req.Nonce) || req.Nonce == control.FinalNonce {
		l.c.log.Warn("ignoring a savepoint request with a bad nonce", "nonce", req.Nonce)
		return
	}
	// A result from an earlier run of the job (before a restart) stands.
	if _, err := l.control.Get(ctx, name); err == nil {
		return
	}
	l.c.log.Info("savepoint requested", "nonce", req.Nonce, "stop", req.Stop)
	res := control.SavepointResult{Nonce: req.Nonce}
	if l.c.cfg.SavepointURL == "" {
		res.Error = "no savepoint URL configured (FLINKJOB_SAVEPOINT_URL)"
	} else {
		// With stop, the coordinator starts no checkpoint after this one
		// (set as it triggers): a transactional sink must not commit
		// output the savepoint does not cover.
		var path string
		id, err := l.coord.SavepointTo(ctx, func(id int64) (checkpoint.Store, error) {
			path = l.savepointPath(id, req.Nonce)
			return l.c.open(path)
		}, req.Stop)
		if err != nil {
			res.Error = fmt.Sprintf("savepoint: %v", err)
		} else {
			res.Path, res.CheckpointID, res.TimeMs = path, id, time.Now().UnixMilli()
			if req.Stop {
				l.stoppedAt.Store(&path)
			}
		}
	}
	if res.Error != "" {
		l.c.log.Error("savepoint failed", "nonce", req.Nonce, "err", res.Error)
	} else {
		l.c.log.Info("savepoint complete", "nonce", req.Nonce, "checkpoint", res.CheckpointID, "path", res.Path)
	}
	l.writeControl(name, res)
}

// start connects the subtask to checkpointing before its task runs: the
// leader starts its background work; a follower subscribes to the leader,
// learns what to restore from, and wires its task hooks to the leader.
func (c *ckpt) start(ctx context.Context, resolve exchange.Resolver, isSource bool) error {
	if c.leader != nil {
		go c.leader.run(ctx)
		return nil
	}
	if !c.cfg.enabled() {
		return nil // restore only
	}
	addr, err := resolve(0, 0)
	if err != nil {
		return fmt.Errorf("checkpoint leader (stage 0 subtask 0): %w", err)
	}
	client, err := exchange.DialControl(addr)
	if err != nil {
		return err
	}
	c.client = client
	recv, err := client.Subscribe(ctx, c.self.Stage, c.self.Index)
	if err != nil {
		return err
	}
	hello, err := recv()
	if err != nil {
		return err
	}
	if !hello.Hello {
		return fmt.Errorf("control: the checkpoint leader at %s did not open with a hello", addr)
	}
	if hello.Restore != "" {
		dir, err := c.open(hello.Restore)
		if err != nil {
			return fmt.Errorf("restore from %s: %w", hello.Restore, err)
		}
		c.cp.Restore = dir
		c.log.Info("restoring", "from", hello.Restore)
	}
	barriers := make(chan checkpoint.Barrier, 4) // one in flight, plus the final one
	complete := make(chan int64, 1)
	if isSource {
		c.cp.Barriers = barriers
	}
	c.cp.Complete = complete
	self := c.self
	c.cp.Ack = c.async(func(id int64, snap map[string][]byte) error {
		if err := checkpoint.WriteSnapshot(ctx, c.store, id, snap); err != nil {
			return err
		}
		return client.Call(ctx, exchange.ControlRequest{Op: exchange.OpAck, Stage: self.Stage, Subtask: self.Index, ID: id})
	})
	c.cp.SourceEnded = func() {
		if err := client.Call(ctx, exchange.ControlRequest{Op: exchange.OpSourceEnded, Stage: self.Stage, Subtask: self.Index}); err != nil {
			c.fail(err)
		}
	}
	go func() {
		for {
			ev, err := recv()
			if err != nil {
				select {
				case <-c.done:
				default:
					if ctx.Err() == nil {
						c.fail(err)
					}
				}
				return
			}
			if ev.Trigger != 0 {
				select {
				case barriers <- checkpoint.Barrier{ID: ev.Trigger, Final: ev.Final}:
				case <-ctx.Done():
					return
				}
			}
			if ev.Complete != 0 {
				checkpoint.Notify(complete, ev.Complete)
			}
		}
	}()
	return nil
}

// async makes a snapshot's upload and acknowledgement asynchronous, as
// Flink's asynchronous snapshot phase: the task has taken its snapshot
// (copied here: the task may reuse its buffers) and goes on processing
// while the snapshot is written to the store and acknowledged. The checkpoint completes only
// once every acknowledgement arrived, which comes after the write, so
// nothing changes for correctness; a failure fails the subtask. finish
// waits for the acknowledgements in flight before reporting the subtask
// finished, which would otherwise abandon the checkpoint.
func (c *ckpt) async(ack func(id int64, snap map[string][]byte) error) func(int64, map[string][]byte) error {
	return func(id int64, snap map[string][]byte) error {
		// The task may reuse its buffers once Ack returns: keep a copy.
		snap = copySnapshot(snap)
		c.acks.Add(1)
		go func() {
			defer c.acks.Done()
			if err := ack(id, snap); err != nil {
				c.fail(err)
				return
			}
			c.acked.Add(1)
		}()
		return nil
	}
}

// copySnapshot deep-copies a snapshot the task may reuse the buffers of
// (nil stays nil: OnFinish's "no end to carry").
func copySnapshot(snap map[string][]byte) map[string][]byte {
	if snap == nil {
		return nil
	}
	own := make(map[string][]byte, len(snap))
	for name, b := range snap {
		own[name] = append([]byte(nil), b...)
	}
	return own
}

// fail reports a fatal control error; the worker ends its task with it.
func (c *ckpt) fail(err error) {
	select {
	case c.failed <- err:
	default:
	}
}

// finish runs after the subtask's task succeeded: a follower tells the
// leader, with what stands for it in later checkpoints (its end position
// for a source), so checkpoints go on without it; the leader hands its
// own to the coordinator likewise, then waits until every subtask
// finished (it serves the control service until then) and its control
// objects are written.
func (c *ckpt) finish(ctx context.Context) error {
	c.acks.Wait()
	select {
	case err := <-c.failed:
		return err
	default:
	}
	close(c.done)
	c.endMu.Lock()
	end := c.end
	c.endMu.Unlock()
	if l := c.leader; l != nil {
		if err := l.coord.FinishedWith(ctx, c.self, end); err != nil {
			return fmt.Errorf("checkpoint leader: its own subtask finished: %w", err)
		}
		select {
		case <-l.allDone:
		case err := <-c.failed:
			return err
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		l.bg.Wait()
		if p := l.stoppedAt.Load(); p != nil {
			// The job was stopped with a savepoint but reached its end
			// before it was deleted. It must not succeed: the finalize
			// step would publish output the savepoint does not cover,
			// which a job restored from it writes again.
			return fmt.Errorf("checkpoint leader: the job was stopped with savepoint %s; it ends without publishing the output after it", *p)
		}
		return nil
	}
	if c.client == nil {
		return nil
	}
	return c.client.Call(ctx, exchange.ControlRequest{Op: exchange.OpFinished, Stage: c.self.Stage, Subtask: c.self.Index,
		Carry: end != nil, Snapshot: end})
}

// close releases the connection to the leader.
func (c *ckpt) close() {
	if c.client != nil {
		c.client.Close()
	}
}

// batchFinalName is the directory of a BATCH job's final savepoint: it
// copies no checkpoint, hence ID 0.
const batchFinalName = "sp-0-final/"

// batchSavepointDir is where a BATCH keyed subtask writes its final state
// when FINAL_SAVEPOINT is set (nil otherwise).
func batchSavepointDir(cfg Config) (checkpoint.Store, error) {
	cc := cfg.Checkpoints
	if !cc.FinalSavepoint {
		return nil, nil
	}
	if cc.SavepointURL == "" {
		return nil, errors.New("FLINKJOB_FINAL_SAVEPOINT needs FLINKJOB_SAVEPOINT_URL (--savepoint-url)")
	}
	if !strings.HasSuffix(cc.SavepointURL, "/") {
		cc.SavepointURL += "/"
	}
	return checkpoint.OpenURL(cfg.S3)(cc.SavepointURL + batchFinalName)
}

// finishBatchSavepoint completes a BATCH job's final savepoint in the
// finalize step, which runs once every subtask of every stage succeeded:
// it writes the directory's marker and control/savepoint-final.json.
func finishBatchSavepoint(ctx context.Context, cfg Config, p *plan.Plan, log *slog.Logger) error {
	if p.Mode != spec.Batch || !cfg.Checkpoints.FinalSavepoint {
		return nil
	}
	dir, err := batchSavepointDir(cfg)
	if err != nil {
		return err
	}
	if err := checkpoint.MarkComplete(ctx, dir, checkpoint.Meta{ID: 0, Kind: "savepoint"}); err != nil {
		return fmt.Errorf("final savepoint: %w", err)
	}
	cc := cfg.Checkpoints
	path := strings.TrimSuffix(cc.SavepointURL, "/") + "/" + batchFinalName
	log.Info("final savepoint complete", "path", path)
	if cc.ControlURL == "" {
		return nil
	}
	ctl, err := checkpoint.OpenURL(cfg.S3)(cc.ControlURL)
	if err != nil {
		return fmt.Errorf("control URL %s: %w", cc.ControlURL, err)
	}
	b, _ := json.Marshal(control.SavepointResult{Nonce: control.FinalNonce, Path: path, CheckpointID: 0, TimeMs: time.Now().UnixMilli()})
	if err := ctl.Put(ctx, control.SavepointFinalObject, b); err != nil {
		return fmt.Errorf("final savepoint: writing %s: %w", control.SavepointFinalObject, err)
	}
	return nil
}

// register adds the checkpoint metrics to the worker's registry.
func (c *ckpt) register(reg *prometheus.Registry) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flinkjob_worker_checkpoint_acks_total", Help: "Checkpoints this subtask wrote its snapshot for and acknowledged."},
			func() float64 { return float64(c.acked.Load()) }))
	if c.leader != nil {
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flinkjob_worker_checkpoints_completed_total", Help: "Checkpoints completed by the job's coordinator (leader worker only)."},
				func() float64 { return float64(c.completed.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flinkjob_worker_last_checkpoint_id", Help: "ID of the last completed checkpoint (leader worker only)."},
				func() float64 { return float64(c.lastID.Load()) }))
	}
}
