package worker

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/worker/exchange"
)

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envBool(key string) bool {
	b, _ := strconv.ParseBool(os.Getenv(key))
	return b
}

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

// Main is the worker's command line: parse flags (FLINKJOB_* environment
// variables are the defaults), run the subtask, and return the exit code.
// A custom worker image that registers Go functions (package udf) calls it
// from its own main:
//
//	func main() {
//		udf.Map("enrich", enrich)
//		os.Exit(worker.Main(os.Args[1:]))
//	}
func Main(args []string) int {
	var cfg Config
	flag := flag.NewFlagSet("worker", flag.ContinueOnError)
	var mode, peersFile string
	flag.StringVar(&cfg.JobFile, "job", env("FLINKJOB_JOB_FILE", "/etc/flinkjob/job.json"), "the job's dataflow (spec) as JSON or YAML")
	flag.StringVar(&mode, "mode", env("FLINKJOB_MODE", ""), "resolved runtime mode: STREAMING or BATCH")
	flag.IntVar(&cfg.Stage, "stage", envInt("FLINKJOB_STAGE", 0), "stage of this subtask")
	flag.IntVar(&cfg.Index, "index", envInt("FLINKJOB_INDEX", 0), "index of this subtask in its stage")
	flag.IntVar(&cfg.Attempt, "attempt", envInt("FLINKJOB_ATTEMPT", 0), "attempt number of this subtask")
	flag.StringVar(&cfg.Listen, "listen", env("FLINKJOB_LISTEN", ":7000"), "gRPC exchange address (STREAMING)")
	flag.StringVar(&cfg.HTTP, "http", env("FLINKJOB_HTTP", ":8080"), "health and metrics address (empty: off)")
	flag.StringVar(&peersFile, "peers", env("FLINKJOB_PEERS_FILE", ""), `JSON file mapping "stage/index" to host:port`)
	flag.StringVar(&cfg.PeerPattern, "peer-pattern", env("FLINKJOB_PEER_PATTERN", ""), "address of other subtasks, with {stage} and {index}")
	flag.StringVar(&cfg.ShuffleURL, "shuffle", env("FLINKJOB_SHUFFLE_URL", ""), "where BATCH stages materialize output (s3://bucket/prefix/ or a directory)")
	flag.StringVar(&cfg.TerminationLog, "termination-log", env("FLINKJOB_TERMINATION_LOG", "/dev/termination-log"), "file for the JSON termination message")
	flag.BoolVar(&cfg.Finalize, "finalize", false, "run the sinks' job-wide finish step (e.g. _SUCCESS) and exit")
	flag.IntVar(&cfg.BatchSize, "batch-size", envInt("FLINKJOB_BATCH_SIZE", 0), "elements per exchange batch")
	flag.StringVar(&cfg.TempDir, "temp-dir", env("FLINKJOB_TEMP_DIR", ""), "directory for sort spills")
	cp := &cfg.Checkpoints
	var interval, poll, linger string
	flag.StringVar(&linger, "exchange-linger", env("FLINKJOB_EXCHANGE_LINGER", exchange.DefaultLinger.String()), "how long a small outgoing batch may wait to be sent with the next ones (Go duration; 0: at once)")
	flag.StringVar(&interval, "checkpoint-interval", env("FLINKJOB_CHECKPOINT_INTERVAL", ""), "STREAMING checkpoint interval (Go duration; empty or 0: periodic checkpoints off)")
	flag.IntVar(&cp.Retain, "checkpoint-retain", envInt("FLINKJOB_CHECKPOINT_RETAIN", 3), "complete checkpoints kept")
	flag.StringVar(&cp.URL, "checkpoint-url", env("FLINKJOB_CHECKPOINT_URL", ""), "checkpoints URL (s3://bucket/prefix/ or a directory; empty: checkpointing off)")
	flag.StringVar(&cp.SavepointURL, "savepoint-url", env("FLINKJOB_SAVEPOINT_URL", ""), "savepoints URL")
	flag.StringVar(&cp.ControlURL, "control-url", env("FLINKJOB_CONTROL_URL", ""), "URL of the JSON objects shared with the manager (savepoint requests, latest checkpoint)")
	flag.StringVar(&cp.RestoreFrom, "restore-from", env("FLINKJOB_RESTORE_FROM", ""), `"latest", a checkpoint ID, or the URL of a checkpoint or savepoint directory`)
	flag.BoolVar(&cp.FinalSavepoint, "final-savepoint", envBool("FLINKJOB_FINAL_SAVEPOINT"), "take the savepoint \"final\" when a bounded job's input ends")
	flag.StringVar(&poll, "control-poll", env("FLINKJOB_CONTROL_POLL", "1s"), "how often the leader reads savepoint requests")
	if err := flag.Parse(args); err != nil {
		return 2
	}
	for _, d := range []struct {
		name, v string
		to      *time.Duration
	}{{"checkpoint-interval", interval, &cp.Interval}, {"control-poll", poll, &cp.ControlPoll}, {"exchange-linger", linger, &cfg.ExchangeLinger}} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "worker: --%s: %v\n", d.name, err)
			return 2
		}
		*d.to = v
	}
	cfg.Mode = spec.RuntimeMode(mode)
	cfg.S3 = connector.S3ConfigFromEnv()
	cfg.Log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if peersFile != "" {
		b, err := os.ReadFile(peersFile)
		if err == nil {
			err = json.Unmarshal(b, &cfg.Peers)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "worker: reading --peers: %v\n", err)
			return 2
		}
	}
	// The termination log only exists in pods; elsewhere skip it quietly.
	if cfg.TerminationLog == "/dev/termination-log" {
		if _, err := os.Stat(cfg.TerminationLog); err != nil {
			cfg.TerminationLog = ""
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// FLINKJOB_CPU_PROFILE=<prefix> writes a CPU profile of this worker to
	// <prefix>-<stage>-<index>.pprof (profiling multi-process runs).
	if prefix := os.Getenv("FLINKJOB_CPU_PROFILE"); prefix != "" && !cfg.Finalize {
		f, err := os.Create(fmt.Sprintf("%s-%d-%d.pprof", prefix, cfg.Stage, cfg.Index))
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	if _, err := Run(ctx, cfg); err != nil {
		cfg.Log.Error("subtask failed", "stage", cfg.Stage, "subtask", cfg.Index, "err", err)
		return 1
	}
	return 0
}
