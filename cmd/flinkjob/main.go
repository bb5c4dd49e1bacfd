// Command flinkjob works with FlinkJob manifests without a cluster:
//
//	flinkjob run -f job.yaml [--mode BATCH] [--parallelism N] [--duration 10s]
//	flinkjob validate -f job.yaml [--cluster]
//	flinkjob plan -f job.yaml [--dot] [--mode BATCH]
//
// run executes the job on the in-process engine (the embedded default: no
// cluster, local paths wherever an s3:// path would go), showing progress
// per stage and a summary at the end. validate checks what run needs; with
// --cluster, exactly what the admission webhook checks (which adds
// spec.storage for multi-stage BATCH jobs and the checkpoint and savepoint
// fields). plan prints the stages the operator would launch.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/flinkjob/flinkjob/engine/gctune"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/udf"
	"github.com/flinkjob/flinkjob/internal/jobcheck"
	"github.com/flinkjob/flinkjob/internal/kafkadev"
	"github.com/flinkjob/flinkjob/worker"
)

const usage = `flinkjob runs, validates and plans FlinkJob manifests locally.

Usage:
  flinkjob run -f FILE [--mode STREAMING|BATCH|AUTOMATIC] [--parallelism N] [--duration D] [--quiet]
  flinkjob validate -f FILE [--mode M] [--cluster]
  flinkjob plan -f FILE [--mode M] [--dot]
  flinkjob kafka-broker [--listen 127.0.0.1:9092] [--topic NAME:PARTITIONS]...
                        (an in-memory Kafka-protocol broker for development)

FILE may be "-" for standard input. Exit codes: 0 ok (also an unbounded
job stopped by --duration), 1 the job failed or a bounded job did not
finish within --duration, 2 the manifest or the command line is invalid,
130 interrupted by Ctrl-C (128+signal: 143 for SIGTERM).
`

func main() {
	gctune.Apply() // GOGC 400 under the container's memory limit (see gctune)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// exitError carries an exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(args[1:], stdout, stderr)
	case "validate":
		err = cmdValidate(args[1:], stdout, stderr)
	case "plan":
		err = cmdPlan(args[1:], stdout, stderr)
	case "worker":
		// The CLI doubles as the worker binary, so `run --processes` needs
		// nothing else installed.
		return worker.Main(args[1:])
	case "kafka-broker":
		// A development Kafka-protocol broker for the Kafka samples (and
		// the e2e suite's Kafka pod).
		return kafkadev.Main(args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "flinkjob: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "flinkjob: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

type common struct {
	file        string
	mode        string
	parallelism int
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.file, "f", "", "the FlinkJob manifest (YAML or JSON; - for stdin)")
	fs.StringVar(&c.file, "filename", "", "same as -f")
	fs.StringVar(&c.mode, "mode", "", "override spec.runtimeMode: STREAMING, BATCH or AUTOMATIC")
	fs.IntVar(&c.parallelism, "parallelism", 0, "override spec.parallelism")
}

func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return &exitError{2, err}
	}
	if fs.NArg() > 0 {
		return &exitError{2, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))}
	}
	return nil
}

// load reads and validates a manifest, returning the job and its plan.
func (c *common) load() (*Manifest, *plan.Plan, error) {
	if c.file == "" {
		return nil, nil, &exitError{2, fmt.Errorf("-f FILE is required")}
	}
	m, err := ReadManifest(c.file)
	if err != nil {
		return nil, nil, &exitError{2, err}
	}
	mode := spec.RuntimeMode(strings.ToUpper(c.mode))
	switch mode {
	case "", spec.Streaming, spec.Batch, spec.Automatic:
	default:
		return nil, nil, &exitError{2, fmt.Errorf("--mode must be STREAMING, BATCH or AUTOMATIC, not %q", c.mode)}
	}
	if c.parallelism < 0 || c.parallelism > 1024 {
		return nil, nil, &exitError{2, fmt.Errorf("--parallelism must be between 1 and 1024")}
	}
	if c.parallelism > 0 {
		m.Spec.Parallelism = int32(c.parallelism)
	}
	p, err := plan.New(&m.Spec.Job, plan.Options{Mode: mode, KnownCalls: udf.Known})
	if err != nil {
		return m, nil, &exitError{2, fmt.Errorf("%s: %w", c.file, err)}
	}
	return m, p, nil
}

func cmdValidate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	var c common
	c.register(fs)
	cluster := fs.Bool("cluster", false, "also check what only matters on a cluster (spec.storage for multi-stage BATCH jobs, checkpoint and savepoint fields): exactly what the admission webhook checks")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	m, p, err := c.load()
	if err != nil {
		return err
	}
	if *cluster {
		// The job as overridden (load set the parallelism); the webhook
		// has no registry of Go functions, so unknown calls are load's
		// (this binary's registry) business only.
		if c.mode != "" {
			m.Spec.RuntimeMode = spec.RuntimeMode(strings.ToUpper(c.mode))
		}
		if p, err = jobcheck.Plan(m); err != nil {
			return &exitError{2, fmt.Errorf("%s: %w", c.file, err)}
		}
	}
	fmt.Fprintf(stdout, "%s: valid FlinkJob %q (mode %s, %d stages)\n", c.file, m.Name, p.Mode, len(p.Stages))
	return nil
}

func cmdPlan(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	var c common
	c.register(fs)
	dot := fs.Bool("dot", false, "print Graphviz DOT instead of text")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	_, p, err := c.load()
	if err != nil {
		return err
	}
	if *dot {
		fmt.Fprint(stdout, p.DOT())
	} else {
		fmt.Fprint(stdout, p.String())
	}
	return nil
}

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var c common
	c.register(fs)
	duration := fs.Duration("duration", 0, "stop the job after this long (0: run until it ends or is interrupted); exit 0 for an unbounded job, 1 for a bounded one that had not finished")
	quiet := fs.Bool("quiet", false, "no progress and no summary")
	workDir := fs.String("work-dir", "", "directory for BATCH shuffle data and sort spills (default: a temporary directory)")
	processes := fs.Bool("processes", false, "run every subtask as its own worker process (gRPC between them in STREAMING, the shuffle directory or --shuffle in BATCH)")
	shuffle := fs.String("shuffle", "", "with --processes: where BATCH stages materialize output (s3://bucket/prefix/ or a directory)")
	linger := fs.String("exchange-linger", "", "with --processes: how long a small batch between worker processes may wait to share a message with the next (Go duration; 0: at once; default: env FLINKJOB_EXCHANGE_LINGER, else 2ms)")
	var cp checkpointFlags
	cp.register(fs)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if err := cp.check(); err != nil {
		return err
	}
	lingerArgs, err := exchangeLingerArgs(*linger, *processes)
	if err != nil {
		return err
	}
	m, p, err := c.load()
	if err != nil {
		return err
	}
	// The manifest's spec.checkpointing (what the operator runs) is the
	// default of --checkpoint-interval and --checkpoint-retain once
	// --checkpoint-dir says where checkpoints go.
	if ck := m.Spec.Checkpointing; ck != nil && cp.dir != "" {
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		if d, err := ck.Interval.Get(); err == nil && !given["checkpoint-interval"] {
			cp.interval = d
		}
		if ck.Retain > 0 && !given["checkpoint-retain"] {
			cp.retain = int(ck.Retain)
		}
	}
	ctx, stop := runContext(*duration)
	defer stop()
	if *processes {
		if cp.stopSavepoint {
			return &exitError{2, errors.New("--stop-with-savepoint applies to the in-process run, not to --processes")}
		}
		return runProcesses(ctx, m, p, c.mode, *shuffle, *workDir, stdout, stderr, *quiet, cp, *duration, lingerArgs)
	}
	return runLocal(ctx, m, p, localRun{stdout: stdout, stderr: stderr, quiet: *quiet, workDir: *workDir, duration: *duration, start: time.Now(), cp: cp})
}

// exchangeLingerArgs passes run's --exchange-linger to every worker (their
// flag of the same name). Only worker processes exchange batches over the
// network: the in-process run refuses the flag rather than ignore it.
func exchangeLingerArgs(linger string, processes bool) ([]string, error) {
	if linger == "" {
		return nil, nil
	}
	if !processes {
		return nil, &exitError{2, errors.New("--exchange-linger applies to --processes (the exchange between worker processes), not to the in-process run")}
	}
	if d, err := time.ParseDuration(linger); err != nil || d < 0 {
		return nil, &exitError{2, fmt.Errorf("--exchange-linger %q: want a duration of 0 or more, such as 2ms", linger)}
	}
	return []string{"--exchange-linger", linger}, nil
}
