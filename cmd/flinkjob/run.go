package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/flinkjob/flinkjob/engine/checkpoint"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/worker/runner"
)

type localRun struct {
	stdout, stderr io.Writer
	quiet          bool
	workDir        string
	duration       time.Duration // --duration (0: none)
	start          time.Time
	cp             checkpointFlags
}

// checkpointFlags are run's checkpoint and savepoint flags (issue #7).
type checkpointFlags struct {
	dir, restore, savepoints string
	interval                 time.Duration
	retain                   int
	final, stopSavepoint     bool
}

// check refuses flag combinations that cannot work, naming the flags
// (before, the engine's or the worker's option names came out).
func (f *checkpointFlags) check() error {
	switch {
	case f.interval != 0 && f.dir == "":
		return &exitError{2, errors.New("--checkpoint-interval needs --checkpoint-dir (where the checkpoints go)")}
	case f.stopSavepoint && f.savepoints == "":
		return &exitError{2, errors.New("--stop-with-savepoint needs --savepoint-dir")}
	case f.final && f.savepoints == "":
		return &exitError{2, errors.New("--final-savepoint needs --savepoint-dir")}
	case f.dir == "" && f.restore != "" && (f.restore == "latest" || isNumber(f.restore)):
		return &exitError{2, fmt.Errorf("--restore-from %s needs --checkpoint-dir (the checkpoints it names)", f.restore)}
	}
	return nil
}

func isNumber(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

func (f *checkpointFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.dir, "checkpoint-dir", "", "STREAMING: directory of checkpoints (chk-<id>/)")
	fs.DurationVar(&f.interval, "checkpoint-interval", 0, "STREAMING: take a checkpoint this often into --checkpoint-dir (0: off)")
	fs.IntVar(&f.retain, "checkpoint-retain", 3, "complete checkpoints kept")
	fs.StringVar(&f.restore, "restore-from", "", "STREAMING: start from \"latest\" (newest checkpoint in --checkpoint-dir, or fresh), a checkpoint ID, or a checkpoint or savepoint directory")
	fs.StringVar(&f.savepoints, "savepoint-dir", "", "directory of savepoints (sp-<id>-<nonce>/)")
	fs.BoolVar(&f.final, "final-savepoint", false, "bounded job: write savepoint \"final\" into --savepoint-dir at the end (STREAMING: before the final watermark; BATCH: every keyed step's final state)")
	fs.BoolVar(&f.stopSavepoint, "stop-with-savepoint", false, "STREAMING: on interrupt or --duration, stop with a savepoint in --savepoint-dir instead of just stopping")
}

// workerArgs passes the flags to worker processes (the worker's flags of
// the same meaning; the leader worker coordinates checkpoints).
func (f *checkpointFlags) workerArgs() []string {
	var a []string
	if f.dir != "" {
		a = append(a, "--checkpoint-url", f.dir, "--checkpoint-retain", strconv.Itoa(f.retain))
	}
	if f.interval != 0 {
		a = append(a, "--checkpoint-interval", f.interval.String())
	}
	if f.restore != "" {
		a = append(a, "--restore-from", f.restore)
	}
	if f.savepoints != "" {
		a = append(a, "--savepoint-url", f.savepoints)
	}
	if f.final {
		a = append(a, "--final-savepoint")
	}
	return a
}

// options sets the in-process run's checkpoint options. An s3:// (or
// s3a://) --checkpoint-dir goes to an S3 checkpoint store reached with
// s3, and --restore-from may name an s3:// directory; the in-process
// savepoint code writes local directories only, so an s3://
// --savepoint-dir is refused (--processes writes it). No other URL is
// taken as a local path: that would put the checkpoints in a directory
// named "s3:" where the user believes they are in a bucket.
func (f *checkpointFlags) options(o *local.Options, s3 connector.S3Config) error {
	o.CheckpointDir, o.CheckpointInterval, o.RetainCheckpoints = f.dir, f.interval, f.retain
	o.RestoreFrom, o.SavepointDir, o.FinalSavepoint = f.restore, strings.TrimPrefix(f.savepoints, "file://"), f.final
	o.OpenRestore = checkpoint.OpenURL(s3)
	switch scheme := urlScheme(f.dir); scheme {
	case "":
	case "s3", "s3a":
		store, err := checkpoint.NewS3Store(f.dir, s3)
		if err != nil {
			return &exitError{2, fmt.Errorf("--checkpoint-dir: %w", err)}
		}
		o.CheckpointStore, o.CheckpointDir = store, ""
	default:
		return &exitError{2, fmt.Errorf("--checkpoint-dir %s: %s:// is not supported (a local directory or s3://bucket/prefix/)", f.dir, scheme)}
	}
	switch scheme := urlScheme(f.savepoints); scheme {
	case "":
	case "s3", "s3a":
		return &exitError{2, fmt.Errorf("--savepoint-dir %s: the in-process run writes savepoints to a local directory only; give one, or run with --processes, whose workers write savepoints to S3", f.savepoints)}
	default:
		return &exitError{2, fmt.Errorf("--savepoint-dir %s: %s:// is not supported (a local directory)", f.savepoints, scheme)}
	}
	switch scheme := urlScheme(f.restore); scheme {
	case "", "s3", "s3a":
	default:
		return &exitError{2, fmt.Errorf("--restore-from %s: %s:// is not supported (a local directory or s3://bucket/prefix/)", f.restore, scheme)}
	}
	return nil
}

// urlScheme is the scheme of a URL-like flag value ("" for a local path;
// file:// is a local path too, as checkpoint.OpenLocal reads it).
func urlScheme(v string) string {
	scheme, _, ok := strings.Cut(v, "://")
	if !ok || scheme == "file" {
		return ""
	}
	return scheme
}

// localS3 is the S3 configuration of a local run: the environment's
// (FLINKJOB_S3_*), or, without FLINKJOB_S3_ENDPOINT, the job's
// spec.storage.s3 read as the operator reads it for its pods: a bare
// host[:port] is HTTPS, an http:// or https:// endpoint says itself.
// workerEnv is that configuration as worker process environment (for
// --processes; empty when the environment already has it).
func localS3(m *Manifest) (cfg connector.S3Config, workerEnv []string) {
	cfg = connector.S3ConfigFromEnv()
	st := m.Spec.Storage
	if cfg.Endpoint != "" || st == nil || st.S3 == nil || st.S3.Endpoint == "" {
		return cfg, nil
	}
	vars := st.S3.WorkerEnv()
	for _, kv := range vars {
		workerEnv = append(workerEnv, kv[0]+"="+kv[1])
	}
	return connector.S3ConfigFrom(connector.EnvOf(vars, os.Getenv)), workerEnv
}

func runLocal(ctx context.Context, m *Manifest, p *plan.Plan, o localRun) error {
	s3, _ := localS3(m)
	env := connector.Env{S3: s3, Stdout: o.stdout}
	opts := local.Options{Env: env, WorkDir: o.workDir}
	if err := o.cp.options(&opts, s3); err != nil {
		return err
	}
	opts.OnSavepoint = func(sp local.Savepoint) {
		fmt.Fprintf(o.stderr, "savepoint %s (checkpoint %d): %s\n", sp.Nonce, sp.ID, sp.Path)
	}
	ex, err := local.New(p, opts)
	if err != nil {
		return err
	}
	runCtx := ctx
	if o.cp.stopSavepoint {
		// The interrupt (or --duration) takes a savepoint and stops the
		// job after it, instead of cancelling the run.
		var cancel context.CancelFunc
		runCtx, cancel = context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		stopped := make(chan struct{})
		defer close(stopped)
		go func() {
			select {
			case <-ctx.Done():
			case <-stopped:
				return
			}
			sctx, scancel := context.WithTimeout(runCtx, time.Minute)
			defer scancel()
			if _, err := ex.TriggerSavepoint(sctx, fmt.Sprintf("stop%d", time.Now().Unix()), true); err != nil {
				fmt.Fprintf(o.stderr, "stop with savepoint: %v\n", err)
				cancel()
			}
		}()
	}
	for name, s := range ex.Sinks() {
		if o.cp.restore != "" {
			// A restored run continues the output of the run it restores:
			// the exactly-once file sink's published parts up to the
			// checkpoint are part of it, and clearing them would lose them.
			break
		}
		if c, ok := s.(connector.OutputClearer); ok {
			if err := c.ClearOutput(ctx); err != nil {
				return fmt.Errorf("step %q: clearing old output: %w", name, err)
			}
		}
	}
	if !o.quiet {
		fmt.Fprintf(o.stderr, "running %q in %s mode: %d stages, %d subtasks\n", m.Name, p.Mode, len(p.Stages), subtasks(p))
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	if !o.quiet {
		wg.Add(1)
		go func() {
			defer wg.Done()
			showProgress(ex, o.stderr, done)
		}()
	}
	err = ex.Run(runCtx)
	close(done)
	wg.Wait()
	var status string
	switch {
	case errors.Is(err, local.ErrStopped):
		status, err = "stopped with a savepoint", nil // as asked
	case o.cp.stopSavepoint && err != nil:
		status = "failed" // the savepoint that was to stop it failed
	default:
		status, err = endState(ctx, p, o.duration, err)
	}
	if !o.quiet {
		summary(ex, o.stderr, status, time.Since(o.start))
	}
	return err
}

func subtasks(p *plan.Plan) int {
	n := 0
	for _, s := range p.Stages {
		n += s.Parallelism
	}
	return n
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// showProgress prints records in/out per stage twice a second: as a
// redrawn bar on a terminal, as a plain line every 5 s otherwise (logs).
func showProgress(ex *local.Executor, w io.Writer, done <-chan struct{}) {
	tty := isTerminal(w)
	every := 5 * time.Second
	if tty {
		every = 500 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			if tty {
				fmt.Fprint(w, "\r\033[K")
			}
			return
		case <-t.C:
			line := progressLine(ex.Progress())
			if tty {
				fmt.Fprintf(w, "\r\033[K%s", line)
			} else {
				fmt.Fprintln(w, line)
			}
		}
	}
}

func progressLine(ps []local.StageProgress) string {
	var parts []string
	for _, p := range ps {
		const width = 10
		filled := p.Done * width / max(p.Stage.Parallelism, 1)
		bar := strings.Repeat("#", filled) + strings.Repeat("-", width-filled)
		parts = append(parts, fmt.Sprintf("s%d [%s] in %s out %s", p.Stage.ID, bar, human(p.RecordsIn), human(p.RecordsOut)))
	}
	return strings.Join(parts, " | ")
}

func human(n int64) string {
	switch {
	case n >= 10_000_000:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 10_000:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

func summary(ex *local.Executor, w io.Writer, status string, elapsed time.Duration) {
	fmt.Fprintf(w, "job %s in %s\n", status, elapsed.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	// MALFORMED: records a source could not read and routed to its
	// source.malformedOutput (a worker's flinkjob_worker_malformed_records_total).
	fmt.Fprintln(tw, "STAGE\tSTEPS\tPARALLELISM\tDONE\tRECORDS IN\tRECORDS OUT\tLATE DROPPED\tMALFORMED")
	for _, p := range ex.Progress() {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d/%d\t%d\t%d\t%d\t%d\n", p.Stage.ID, p.Stage.Name, p.Stage.Parallelism, p.Done, p.Stage.Parallelism, p.RecordsIn, p.RecordsOut, p.LateDropped, p.Malformed)
	}
	tw.Flush()
}

// runProcesses runs the job with one worker process per subtask (this
// binary's `worker` command), as the operator runs pods.
func runProcesses(ctx context.Context, m *Manifest, p *plan.Plan, mode, shuffleURL, workDir string, stdout, stderr io.Writer, quiet bool, cp checkpointFlags, duration time.Duration, workerArgs []string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if shuffleURL == "" {
		d, err := os.MkdirTemp(workDir, "flinkjob-shuffle-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		shuffleURL = d
	}
	s3, workerEnv := localS3(m)
	env := connector.Env{S3: s3}
	for _, n := range p.Graph.Nodes {
		if n.Kind == plan.KindSink {
			s, err := connector.NewSink(n.Step.Sink, env)
			if err != nil {
				return err
			}
			// A restored run continues the output it restores (see runLocal).
			if c, ok := s.(connector.OutputClearer); ok && cp.restore == "" {
				if err := c.ClearOutput(ctx); err != nil {
					return err
				}
			}
		}
	}
	r, err := runner.New(&m.Spec.Job, runner.Options{Worker: exe, Prefix: []string{"worker"}, Mode: p.Mode,
		ShuffleURL: shuffleURL, Stdout: stdout, Retries: 2, Args: append(cp.workerArgs(), workerArgs...), Env: workerEnv})
	if err != nil {
		return err
	}
	start := time.Now()
	if !quiet {
		fmt.Fprintf(stderr, "running %q in %s mode as %d worker processes\n", m.Name, p.Mode, subtasks(p))
	}
	// The workers are killed when ctx is done (--duration, an
	// interrupt), which ends the run as the in-process run ends:
	// endState reads the stop, not the workers' "signal: killed".
	err = r.Run(ctx)
	status, err := endState(ctx, p, duration, err)
	if !quiet && status != "failed" {
		fmt.Fprintf(stderr, "job %s in %s\n", status, time.Since(start).Round(time.Millisecond))
	}
	return err
}
