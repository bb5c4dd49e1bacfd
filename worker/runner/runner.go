// Package runner runs a job as separate worker processes on this machine,
// the way the operator runs it as pods: in STREAMING every subtask of every
// stage starts at once and they exchange records over gRPC on loopback; in
// BATCH stages run one after another, each subtask reading and writing its
// materialized partitions in a shuffle store (S3 through MinIO, or a
// directory). Tests use it to prove the worker with real processes, and
// `flinkjob run --processes` uses it too.
package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/internal/freeport"
)

// Options configure a run.
type Options struct {
	// Worker is the worker binary; Prefix comes before the worker flags
	// (e.g. ["worker"] when Worker is the flinkjob CLI).
	Worker string
	Prefix []string
	// Mode overrides the job's runtime mode.
	Mode spec.RuntimeMode
	// ShuffleURL is where BATCH stages materialize output (s3://... or a dir).
	ShuffleURL string
	// Env is added to every worker's environment (S3 credentials, ...).
	Env []string
	// Dir holds the job file and peers file; default a temp dir.
	Dir string
	// Stdout receives the workers' standard output (print sinks).
	Stdout io.Writer
	// Stderr receives the workers' logs; default discarded (but kept for errors).
	Stderr io.Writer
	// Retries re-runs a failed BATCH subtask up to this many times.
	Retries int
	// MaxConcurrent bounds BATCH subtasks running at once (0: a whole stage).
	MaxConcurrent int
	// OnStart is called after each worker process starts (tests kill some).
	// BATCH stages start their subtasks from several goroutines, so it must
	// be safe for concurrent use.
	OnStart func(stage, index, attempt int, p *os.Process)
	// Args are extra worker flags, given to every worker.
	Args []string
	// ArgsFor, if set, gives extra flags for one worker (after Args), e.g.
	// a --http address of its own. It is not called for the finalize step.
	ArgsFor func(stage, index, attempt int) []string
}

// Runner runs one job.
type Runner struct {
	opts    Options
	plan    *plan.Plan
	jobFile string
	jobJSON []byte
	// ownDir: Dir is a temp dir of the runner's own, removed after Run.
	ownDir bool
	// stdout and stderr serialize the workers' output into Options.Stdout
	// and Options.Stderr, one whole line at a time.
	stdout, stderr *lockedWriter
}

// New plans the job and writes the job file workers read.
func New(job *spec.Job, opts Options) (*Runner, error) {
	p, err := plan.New(job, plan.Options{Mode: opts.Mode})
	if err != nil {
		return nil, err
	}
	ownDir := false
	if opts.Dir == "" {
		d, err := os.MkdirTemp("", "flinkjob-run-*")
		if err != nil {
			return nil, err
		}
		opts.Dir, ownDir = d, true
	}
	b, err := json.Marshal(job)
	if err != nil {
		return nil, err
	}
	r := &Runner{opts: opts, plan: p, jobFile: filepath.Join(opts.Dir, "job.json"), jobJSON: b, ownDir: ownDir}
	if err := r.prepare(); err != nil {
		return nil, err
	}
	if opts.Stdout != nil {
		r.stdout = &lockedWriter{w: opts.Stdout}
	}
	if opts.Stderr != nil {
		r.stderr = &lockedWriter{w: opts.Stderr}
	}
	return r, nil
}

// Plan is the job's plan.
func (r *Runner) Plan() *plan.Plan { return r.plan }

// prepare makes sure Dir exists (a fresh temp dir of its own after an
// earlier Run removed it) and writes the job file in it.
func (r *Runner) prepare() error {
	if _, err := os.Stat(r.opts.Dir); err != nil {
		if !r.ownDir {
			return err
		}
		d, err := os.MkdirTemp("", "flinkjob-run-*")
		if err != nil {
			return err
		}
		r.opts.Dir, r.jobFile = d, filepath.Join(d, "job.json")
	}
	return os.WriteFile(r.jobFile, r.jobJSON, 0o644)
}

// Run runs the job to the end, then finalizes its sinks. A Dir the runner
// made itself (Options.Dir empty) is removed when Run returns.
func (r *Runner) Run(ctx context.Context) error {
	if err := r.prepare(); err != nil {
		return err
	}
	if r.ownDir {
		defer os.RemoveAll(r.opts.Dir)
	}
	var err error
	if r.plan.Mode == spec.Batch {
		err = r.runBatch(ctx)
	} else {
		err = r.runStreaming(ctx)
	}
	if err != nil {
		return err
	}
	return r.start(ctx, -1, 0, 0, []string{"--finalize"}).wait()
}

type proc struct {
	stage, index int
	attempt      int
	cmd          *exec.Cmd
	stderr       *bytes.Buffer
	lines        []*lineWriter // flushed once the process has ended
	err          error
}

func (p *proc) wait() error {
	if p.err != nil {
		return p.err
	}
	err := p.cmd.Wait()
	for _, l := range p.lines {
		l.flush()
	}
	if err != nil {
		msg := p.stderr.String()
		if len(msg) > 4000 {
			msg = "..." + msg[len(msg)-4000:]
		}
		return fmt.Errorf("worker stage %d subtask %d: %v\n%s", p.stage, p.index, err, msg)
	}
	return nil
}

func (r *Runner) start(ctx context.Context, stage, index, attempt int, extra []string) *proc {
	args := append(append([]string{}, r.opts.Prefix...), "--job", r.jobFile, "--mode", string(r.plan.Mode),
		"--stage", strconv.Itoa(max(stage, 0)), "--index", strconv.Itoa(index), "--attempt", strconv.Itoa(attempt),
		"--http", "", "--termination-log", r.termFile(stage, index, attempt))
	if r.opts.ShuffleURL != "" {
		args = append(args, "--shuffle", r.opts.ShuffleURL)
	}
	args = append(args, r.opts.Args...)
	if r.opts.ArgsFor != nil && stage >= 0 {
		args = append(args, r.opts.ArgsFor(stage, index, attempt)...)
	}
	args = append(args, extra...)
	// A message left by an earlier run in the same Dir must not pass for
	// this worker's.
	_ = os.Remove(r.termFile(stage, index, attempt))
	cmd := exec.CommandContext(ctx, r.opts.Worker, args...)
	cmd.Env = append(os.Environ(), r.opts.Env...)
	p := &proc{stage: stage, index: index, attempt: attempt, cmd: cmd, stderr: &bytes.Buffer{}}
	// Every worker writes into the same Stdout and Stderr from its own
	// copying goroutine: whole lines go through one lock per writer, so
	// workers neither race nor interleave within a line.
	cmd.Stdout = io.Discard
	if r.stdout != nil {
		l := &lineWriter{w: r.stdout}
		p.lines = append(p.lines, l)
		cmd.Stdout = l
	}
	var errw io.Writer = p.stderr
	if r.stderr != nil {
		l := &lineWriter{w: r.stderr}
		p.lines = append(p.lines, l)
		errw = io.MultiWriter(p.stderr, l)
	}
	cmd.Stderr = errw
	if err := cmd.Start(); err != nil {
		p.err = err
		return p
	}
	if r.opts.OnStart != nil && stage >= 0 {
		r.opts.OnStart(stage, index, attempt, cmd.Process)
	}
	return p
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// lineWriter passes whole lines on to w and keeps a partial last line
// until it is completed or flushed (when the process has ended).
type lineWriter struct {
	w   io.Writer
	buf []byte
}

func (l *lineWriter) Write(b []byte) (int, error) {
	l.buf = append(l.buf, b...)
	if i := bytes.LastIndexByte(l.buf, '\n'); i >= 0 {
		_, err := l.w.Write(l.buf[:i+1])
		l.buf = append(l.buf[:0], l.buf[i+1:]...)
		if err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

func (l *lineWriter) flush() {
	if len(l.buf) > 0 {
		_, _ = l.w.Write(l.buf)
		l.buf = l.buf[:0]
	}
}

func (r *Runner) runStreaming(ctx context.Context) error {
	peers := map[string]string{}
	listen := map[string]string{}
	for _, s := range r.plan.Stages {
		for i := 0; i < s.Parallelism; i++ {
			// Stages with inputs serve the exchange; the first subtask
			// of stage 0 serves the checkpoint control service when
			// checkpointing is on. Others ignore their address.
			if len(s.Inputs) == 0 && (s.ID != 0 || i != 0) {
				continue
			}
			// Free now, bound by the worker later (see package freeport).
			port, err := freeport.Port()
			if err != nil {
				return err
			}
			k := fmt.Sprintf("%d/%d", s.ID, i)
			peers[k] = fmt.Sprintf("127.0.0.1:%d", port)
			listen[k] = peers[k]
		}
	}
	b, _ := json.Marshal(peers)
	pf := filepath.Join(r.opts.Dir, "peers.json")
	if err := os.WriteFile(pf, b, 0o644); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var procs []*proc
	for _, s := range r.plan.Stages {
		for i := 0; i < s.Parallelism; i++ {
			extra := []string{"--peers", pf}
			if a, ok := listen[fmt.Sprintf("%d/%d", s.ID, i)]; ok {
				extra = append(extra, "--listen", a)
			}
			procs = append(procs, r.start(ctx, s.ID, i, 0, extra))
		}
	}
	// Any failure stops the whole job, as STREAMING restarts all stages.
	type result struct {
		p   *proc
		err error
	}
	results := make(chan result, len(procs))
	for _, p := range procs {
		go func(p *proc) { results <- result{p, p.wait()} }(p)
	}
	var failed []result
	for range procs {
		if res := <-results; res.err != nil {
			failed = append(failed, res)
			cancel()
		}
	}
	if len(failed) == 0 {
		return ctx.Err()
	}
	// A worker failing makes its peers fail on their streams to it within
	// milliseconds, so the first error to arrive may be a consequence.
	// Report the first worker that failed for a reason of its own.
	for _, f := range failed {
		if msg, ok := r.terminationError(f.p); ok && !isExchangeError(msg) {
			return f.err
		}
	}
	return failed[0].err
}

// termFile is where a worker writes its termination message.
func (r *Runner) termFile(stage, index, attempt int) string {
	return filepath.Join(r.opts.Dir, fmt.Sprintf("term-%d-%d-%d.json", stage, index, attempt))
}

// terminationError reads the error a worker reported in its termination
// message; ok is false when it wrote none (e.g. it was killed).
func (r *Runner) terminationError(p *proc) (string, bool) {
	b, err := os.ReadFile(r.termFile(p.stage, p.index, p.attempt))
	if err != nil {
		return "", false
	}
	var res struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &res) != nil || res.Error == "" {
		return "", false
	}
	return res.Error, true
}

// isExchangeError reports whether a worker's error is a failure of its
// streams to a peer (package exchange's messages) rather than its own.
func isExchangeError(msg string) bool {
	for _, p := range []string{"sending to stage ", "connecting to stage ", "closing the channel to stage ", "send on the finished channel"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

func (r *Runner) runBatch(ctx context.Context) error {
	for _, s := range r.plan.Stages {
		if err := r.RunStage(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// RunStage runs every subtask of a BATCH stage, re-running failed ones
// (alone, from the materialized inputs) up to Retries times. A subtask
// that fails for good stops the rest of the stage, and its error is
// returned.
func (r *Runner) RunStage(ctx context.Context, s *plan.Stage) error {
	limit := r.opts.MaxConcurrent
	if limit <= 0 || limit > s.Parallelism {
		limit = s.Parallelism
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var first error // the first subtask to fail for good
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
			for attempt := 0; ; attempt++ {
				err := r.start(ctx, s.ID, i, attempt, nil).wait()
				if err == nil {
					return
				}
				if attempt >= r.opts.Retries || ctx.Err() != nil {
					mu.Lock()
					if first == nil && ctx.Err() == nil {
						first = err
					}
					mu.Unlock()
					cancel()
					return
				}
			}
		}(i)
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return parent.Err()
}
