// Package worker is the runtime of one subtask process (stage S, index i of
// N): it loads the job, plans it, and runs its stage's chain with the engine,
// exchanging data the way the mode demands — records stream to downstream
// workers over gRPC in STREAMING (package exchange); in BATCH the stage reads
// the materialized output of the stages before it and writes its own to
// S3-compatible storage (LocationStore). It serves readiness, liveness and
// Prometheus metrics over HTTP, exits 0 only on success, and writes a
// termination message with its counts for the controller.
//
// # Checkpoints
//
// Exactly-once STREAMING (checkpoint.go): with FLINKJOB_CHECKPOINT_URL set,
// the worker of stage 0, subtask 0 (the leader) runs the job's checkpoint
// coordinator (engine/checkpoint) and serves a control gRPC service on its
// exchange server; every other worker subscribes to it. The coordinator
// lives in the leader rather than in the operator's manager because a
// STREAMING failure restarts every worker anyway: a coordinator inside the
// job shares its fate and needs no failover (a new leader finds the last
// complete checkpoint in storage), the manager needs no network path to
// the pods and carries no per-job coordination load, and talks to the job
// only through small JSON objects under FLINKJOB_CONTROL_URL. Snapshots go
// from each subtask straight to object storage (S3 through
// checkpoint.S3Store); only small acknowledgements go to the leader.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"sigs.k8s.io/yaml"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/shuffle"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/task"
	"github.com/flinkjob/flinkjob/engine/udf"
	"github.com/flinkjob/flinkjob/worker/exchange"
)

// Config is everything a worker needs to know. The controller passes it as
// flags and environment, with the job in a mounted file.
type Config struct {
	// JobFile holds the job's dataflow (spec.Job) as JSON or YAML.
	JobFile string
	// Mode is the resolved runtime mode; empty resolves it from the job.
	Mode spec.RuntimeMode
	// Stage and Index identify the subtask.
	Stage, Index int
	// Attempt counts re-runs of this subtask (BATCH manifests record it).
	Attempt int
	// Listen is the gRPC exchange address (STREAMING stages with inputs).
	Listen string
	// HTTP serves /healthz, /readyz and /metrics; empty disables it.
	HTTP string
	// Peers maps "stage/index" to host:port; PeerPattern is used for others,
	// with {stage} and {index} replaced (e.g. "job-s{stage}-{index}.job:7000").
	Peers       map[string]string
	PeerPattern string
	// ShuffleURL is where BATCH stages materialize their output
	// (s3://bucket/prefix/ or a local directory).
	ShuffleURL string
	// S3 configures s3:// paths (shuffle, files connectors).
	S3 connector.S3Config
	// TerminationLog receives a JSON summary at exit ("" to skip).
	TerminationLog string
	// Finalize runs the job's sink finishers (e.g. _SUCCESS markers) instead
	// of a subtask; run it once after every subtask succeeded.
	Finalize bool
	// InboxCapacity (batches) and BatchSize (elements) tune the exchange;
	// ExchangeLinger is how long a small outgoing batch may wait to be
	// coalesced with the next (exchange.Client.Linger; 0: not at all).
	InboxCapacity  int
	BatchSize      int
	ExchangeLinger time.Duration
	// SortMemory is the BATCH sort budget in bytes.
	SortMemory int64
	// TempDir holds sort spills.
	TempDir string
	// Checkpoints configures exactly-once STREAMING (checkpoint.go).
	Checkpoints CheckpointConfig
	Log         *slog.Logger
}

// Result is the termination message.
type Result struct {
	Stage      int    `json:"stage"`
	Subtask    int    `json:"subtask"`
	Attempt    int    `json:"attempt"`
	Mode       string `json:"mode"`
	RecordsIn  int64  `json:"recordsIn"`
	RecordsOut int64  `json:"recordsOut"`
	BytesIn    int64  `json:"bytesIn,omitempty"`
	BytesOut   int64  `json:"bytesOut,omitempty"`
	DurationMs int64  `json:"durationMs"`
	Error      string `json:"error,omitempty"`
}

// LoadJob reads a spec.Job from a JSON or YAML file. A whole FlinkJob
// manifest works too: its spec is taken.
func LoadJob(path string) (*spec.Job, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	js, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	var probe struct {
		Kind string          `json:"kind"`
		Spec json.RawMessage `json:"spec"`
	}
	if json.Unmarshal(js, &probe) == nil && probe.Kind != "" && len(probe.Spec) > 0 {
		js = probe.Spec
	}
	var job spec.Job
	if err := json.Unmarshal(js, &job); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return &job, nil
}

func (c *Config) resolver() exchange.Resolver {
	return func(stage, index int) (string, error) {
		if a, ok := c.Peers[fmt.Sprintf("%d/%d", stage, index)]; ok {
			return a, nil
		}
		if c.PeerPattern == "" {
			return "", fmt.Errorf("no address for stage %d subtask %d: give --peers or --peer-pattern", stage, index)
		}
		r := strings.NewReplacer("{stage}", strconv.Itoa(stage), "{index}", strconv.Itoa(index))
		return r.Replace(c.PeerPattern), nil
	}
}

// Run runs the subtask to completion.
func Run(ctx context.Context, cfg Config) (res Result, err error) {
	start := time.Now()
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	res = Result{Stage: cfg.Stage, Subtask: cfg.Index, Attempt: cfg.Attempt}
	defer func() {
		res.DurationMs = time.Since(start).Milliseconds()
		if err != nil {
			res.Error = err.Error()
		}
		writeTermination(cfg.TerminationLog, res)
	}()

	job, err := LoadJob(cfg.JobFile)
	if err != nil {
		return res, err
	}
	p, err := plan.New(job, plan.Options{Mode: cfg.Mode, KnownCalls: udf.Known})
	if err != nil {
		return res, err
	}
	res.Mode = string(p.Mode)
	env := connector.Env{S3: cfg.S3, Stdout: os.Stdout, CallSink: udf.LookupSink}
	if cfg.Finalize {
		if err := finalize(ctx, p, env); err != nil {
			return res, err
		}
		return res, finishBatchSavepoint(ctx, cfg, p, log)
	}
	if cfg.Stage < 0 || cfg.Stage >= len(p.Stages) {
		return res, fmt.Errorf("stage %d does not exist: the plan has %d stages", cfg.Stage, len(p.Stages))
	}
	st := p.Stages[cfg.Stage]
	if cfg.Index < 0 || cfg.Index >= st.Parallelism {
		return res, fmt.Errorf("stage %d has %d subtasks; index %d is out of range", cfg.Stage, st.Parallelism, cfg.Index)
	}
	tc := task.Config{Plan: p, Stage: st, Index: cfg.Index, Attempt: cfg.Attempt,
		Sources: map[string]connector.Source{}, Sinks: map[string]connector.Sink{},
		BatchSize: cfg.BatchSize, SortMemory: cfg.SortMemory, TempDir: cfg.TempDir, Counters: &task.Counters{}}
	for _, n := range st.Chain {
		switch n.Kind {
		case plan.KindSource:
			s, err := connector.NewSource(n.Step.Source, n.Exprs.Datagen, n.Fields, env)
			if err != nil {
				return res, fmt.Errorf("step %q: %w", n.Name, err)
			}
			tc.Sources[n.Name] = s
		case plan.KindSink:
			s, err := connector.NewSink(n.Step.Sink, env)
			if err != nil {
				return res, fmt.Errorf("step %q: %w", n.Name, err)
			}
			tc.Sinks[n.Name] = s
		}
	}

	m := newMetrics(tc.Counters)
	m.registry.MustRegister(newSourceLag(tc.Sources))
	var ready atomic.Bool
	if cfg.HTTP != "" {
		srv, err := serveHTTP(cfg.HTTP, m.registry, &ready)
		if err != nil {
			return res, err
		}
		defer srv.Close()
	}
	log.Info("subtask starting", "stage", st.ID, "steps", st.Name, "subtask", cfg.Index, "parallelism", st.Parallelism, "mode", p.Mode, "attempt", cfg.Attempt)
	defer func() {
		res.RecordsIn, res.RecordsOut = tc.Counters.RecordsIn.Load(), tc.Counters.RecordsOut.Load()
		log.Info("subtask finished", "stage", st.ID, "subtask", cfg.Index, "recordsIn", res.RecordsIn, "recordsOut", res.RecordsOut, "error", err)
	}()

	if p.Mode == spec.Batch {
		if cfg.ShuffleURL == "" && (len(st.Inputs) > 0 || len(st.Outputs) > 0) {
			return res, fmt.Errorf("a BATCH stage with shuffles needs --shuffle (s3://bucket/prefix/ or a directory)")
		}
		if tc.FinalSavepoint, err = batchSavepointDir(cfg); err != nil {
			return res, err
		}
		var store shuffle.Store = noStore{}
		if cfg.ShuffleURL != "" {
			ls, err := NewLocationStore(cfg.ShuffleURL, cfg.S3)
			if err != nil {
				return res, err
			}
			store = ls
		}
		ready.Store(true)
		_, err = task.RunBatch(ctx, tc, store)
		return res, err
	}

	cps, err := newCkpt(ctx, cfg, p, log)
	if err != nil {
		return res, err
	}
	if cps != nil {
		cps.register(m.registry)
	}
	var inbox <-chan task.Batch
	// Stages with inputs receive them on the exchange server; the
	// checkpoint leader serves the control service on it as well.
	if len(st.Inputs) > 0 || (cps != nil && cps.leader != nil) {
		capacity := cfg.InboxCapacity
		if capacity <= 0 {
			capacity = 8
		}
		srv := exchange.NewServer(st.ID, cfg.Index, capacity)
		srv.Channels = shuffle.Channels(st)
		if cps != nil && cps.leader != nil {
			srv.ServeControl(cps.leader)
		}
		l, lerr := net.Listen("tcp", cfg.Listen)
		if lerr != nil {
			return res, fmt.Errorf("exchange listen on %q: %w", cfg.Listen, lerr)
		}
		go srv.Serve(l)
		defer func() {
			// After a success every stream has ended; after a failure
			// upstream handlers may be blocked on the inbox nobody reads,
			// and waiting for them would only delay the exit.
			grace := 10 * time.Second
			if err != nil {
				grace = 0
			}
			srv.Stop(grace)
		}()
		if len(st.Inputs) > 0 {
			inbox = srv.Inbox()
		}
		m.bytesIn.Store(&srv.BytesIn)
	}
	client := exchange.NewClient(cfg.resolver())
	client.Linger = cfg.ExchangeLinger
	defer client.Close()
	m.client.Store(client)
	tctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if cps != nil {
		defer cps.close()
		if err := cps.start(tctx, cfg.resolver(), st.Head().Kind == plan.KindSource); err != nil {
			return res, err
		}
		tc.Checkpoint = cps.cp
		go func() {
			select {
			case ferr := <-cps.failed:
				cancel(ferr)
			case <-tctx.Done():
			}
		}()
	}
	ready.Store(true)
	if err := client.Connect(tctx, st, cfg.Index); err != nil {
		return res, fmt.Errorf("connecting to the next stages: %w", err)
	}
	err = task.RunStreaming(tctx, tc, inbox, client)
	if cause := context.Cause(tctx); err != nil && cause != nil && ctx.Err() == nil {
		// The task saw its context cancelled: say why.
		err = cause
	}
	if err == nil && cps != nil {
		err = cps.finish(tctx)
	}
	res.BytesOut = client.BytesOut.Load()
	if b := m.bytesIn.Load(); b != nil {
		res.BytesIn = b.Load()
	}
	return res, err
}

// finalize runs the sinks' job-wide finish step (e.g. _SUCCESS markers).
func finalize(ctx context.Context, p *plan.Plan, env connector.Env) error {
	for _, n := range p.Graph.Nodes {
		if n.Kind != plan.KindSink {
			continue
		}
		s, err := connector.NewSink(n.Step.Sink, env)
		if err != nil {
			return fmt.Errorf("step %q: %w", n.Name, err)
		}
		if f, ok := s.(connector.Finisher); ok {
			if err := f.Finish(ctx); err != nil {
				return fmt.Errorf("step %q: %w", n.Name, err)
			}
		}
	}
	return nil
}

func writeTermination(path string, r Result) {
	if path == "" {
		return
	}
	// Kubernetes keeps at most 4 KiB of a termination message. The cut is
	// made on the encoded size: escaping can make the JSON of an error
	// several times its length (a control byte takes six).
	msg := r.Error
	b, _ := json.Marshal(r)
	for n := min(len(msg), 3000); len(b) > 4000 && n > 0; n /= 2 {
		r.Error = strings.ToValidUTF8(msg[:n], "") + "..."
		b, _ = json.Marshal(r)
	}
	_ = os.WriteFile(path, b, 0o644)
}

type metrics struct {
	registry *prometheus.Registry
	// client and bytesIn appear once the exchange is set up, while
	// /metrics may already be scraped.
	client  atomic.Pointer[exchange.Client]
	bytesIn atomic.Pointer[atomic.Int64]
}

func newMetrics(c *task.Counters) *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	m.registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flinkjob_worker_records_in_total", Help: "Records read by this subtask."},
			func() float64 { return float64(c.RecordsIn.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flinkjob_worker_records_out_total", Help: "Records emitted by this subtask's chain."},
			func() float64 { return float64(c.RecordsOut.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flinkjob_worker_late_records_dropped_total", Help: "Late records dropped without a side output."},
			func() float64 { return float64(c.LateDropped.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flinkjob_worker_malformed_records_total", Help: "Records this subtask's source could not read and routed to its source.malformedOutput."},
			func() float64 { return float64(c.Malformed.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flinkjob_worker_watermark_milliseconds", Help: "Current event-time watermark of this subtask."},
			func() float64 { return float64(c.Watermark.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flinkjob_worker_bytes_in_total", Help: "Bytes received over the exchange."},
			func() float64 {
				if b := m.bytesIn.Load(); b != nil {
					return float64(b.Load())
				}
				return 0
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flinkjob_worker_bytes_out_total", Help: "Bytes sent over the exchange."},
			func() float64 {
				if c := m.client.Load(); c != nil {
					return float64(c.BytesOut.Load())
				}
				return 0
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flinkjob_worker_backpressured_seconds_total", Help: "Time spent blocked sending downstream (backpressure)."},
			func() float64 {
				if c := m.client.Load(); c != nil {
					return time.Duration(c.Blocked.Load()).Seconds()
				}
				return 0
			}),
	)
	return m
}

func serveHTTP(addr string, reg *prometheus.Registry, ready *atomic.Bool) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http listen on %q: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("http server", "err", err)
		}
	}()
	return srv, nil
}
