// Command bench runs the Nexmark queries of config/samples/nexmark/ and
// measures flinkjob against Flink's published per-core figures (GitHub
// issue #8):
//
//	go run ./hack/bench [-events 3000000] [-queries q0,q1] [-out bin/bench]
//
// Each query runs in BATCH and in STREAMING, in process (engine/local) and
// as separate worker processes exchanging over gRPC (worker/runner), for a
// fixed number of events. Throughput is events per CPU second: the CPU
// time (user + system, getrusage) of this process and of the worker
// processes it waited for, over the run, not the wall time. That is the
// figure Flink's are given in (events/s per core). STREAMING runs take
// checkpoints, as Flink's figures are with checkpoints on (every 180 s
// there, incremental RocksDB, over runs of minutes, so a few per run): by
// default (-checkpoint-interval auto) every third of the wall time the same
// query took in BATCH with the same runner, so each STREAMING run takes a
// few checkpoints whatever its length (at least every 100ms; 1s when no
// BATCH run came first); the table shows the interval and the newest
// complete checkpoint. Then, for each query and each of -latency-runners
// (in process, and worker processes over gRPC running the bench worker
// hack/bench/benchworker, built into -out), a STREAMING run at half of the
// latency job's measured peak wall-clock rate (a rate-limited source; event
// n still has event time base + n ms, so event time runs faster than wall
// time) measures the latency from when an output became determinable to
// the sink (see latency.go for the method).
//
// The results go to the terminal and, under -out, to results.csv,
// latency.csv and ratio.svg (the ratio to Flink per query and run).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flinkjob/flinkjob/engine/bench"
	"github.com/flinkjob/flinkjob/engine/checkpoint"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/gctune"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/worker/runner"
)

type config struct {
	events         int64
	queries        []string
	modes          []spec.RuntimeMode
	runners        []string
	parallelism    int
	firstEventRate int64
	samples        string
	out            string
	worker         string
	checkpoint     time.Duration // fixed interval; 0 with checkpointAuto unset: off
	checkpointAuto bool
	latency        bool
	latencyRunners []string
	latencyWorker  string
	latencySeconds float64
	latencyWarmup  time.Duration
	latencyRate    int64
	latencyTrace   time.Duration
	bufferTimeout  string
	cpuProfile     string
	readAllFields  bool
}

const (
	inProcess = "in-process"
	processes = "processes"
)

func main() {
	var c config
	var queries, modes, runners, latencyRunners string
	flag.Int64Var(&c.events, "events", 3_000_000, "events per run (3M: long enough that worker start-up is a small share of a run, and STREAMING runs take a few checkpoints)")
	flag.StringVar(&queries, "queries", strings.Join(bench.NexmarkQueries, ","), "queries to run")
	flag.StringVar(&modes, "modes", "BATCH,STREAMING", "runtime modes to run")
	flag.StringVar(&runners, "runners", inProcess+","+processes, "in-process (engine/local) and/or processes (workers over gRPC)")
	flag.IntVar(&c.parallelism, "parallelism", 2, "parallelism of every query")
	flag.Int64Var(&c.firstEventRate, "first-event-rate", 10_000_000, "event-time rate of the generator in events/s (Flink's benchmark: 10M, its TPS)")
	flag.StringVar(&c.samples, "samples", "config/samples/nexmark", "directory of the query manifests")
	flag.StringVar(&c.out, "out", "bin/bench", "output directory for results.csv, latency.csv and ratio.svg")
	flag.StringVar(&c.worker, "worker", "", "worker binary (default: build ./cmd/worker into -out)")
	var checkpointInterval string
	flag.StringVar(&checkpointInterval, "checkpoint-interval", "auto", "STREAMING checkpoint interval, in process and in the workers: a duration, 0 (off) or auto (a third of the query's BATCH wall time, so every run takes a few)")
	flag.BoolVar(&c.latency, "latency", true, "measure STREAMING latency at half of the peak rate")
	flag.StringVar(&latencyRunners, "latency-runners", inProcess+","+processes, "runners of the latency runs: in-process and/or processes (workers over gRPC)")
	flag.StringVar(&c.latencyWorker, "latency-worker", "", "worker binary of the latency runs with processes, with the stamp step and latency sink (default: build ./hack/bench/benchworker into -out)")
	flag.Float64Var(&c.latencySeconds, "latency-seconds", 4, "length of each latency run (after its warm-up)")
	flag.DurationVar(&c.latencyWarmup, "latency-warmup", time.Second, "start of each paced latency run whose outputs are not counted (steady-state latency; the log shows the figures with it too)")
	flag.Int64Var(&c.latencyRate, "latency-rate", 0, "events/s of the latency runs (0: half of the latency job's measured peak)")
	flag.DurationVar(&c.latencyTrace, "latency-trace", 0, "log each latency run's figures per period of this length (e.g. 250ms), to tell start-up, a steady lag and stalls apart (0: off)")
	flag.StringVar(&c.bufferTimeout, "buffer-timeout", "", "the latency jobs' spec.bufferTimeout (default: the job's, else the engine's default); the worker processes' exchange linger is FLINKJOB_EXCHANGE_LINGER")
	flag.BoolVar(&c.readAllFields, "read-all-fields", false, "turn projection pushdown off: the nexmark source builds whole events even where the query reads a few fields (in-process runs; workers read FLINKJOB_READ_ALL_FIELDS=1)")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of this process to this file (in-process runs; worker processes write their own with FLINKJOB_CPU_PROFILE)")
	flag.Parse()
	// As cmd/flinkjob (in-process runs) and cmd/worker do.
	if checkpointInterval == "auto" {
		c.checkpointAuto = true
	} else if d, err := time.ParseDuration(checkpointInterval); err != nil || d < 0 {
		log.Fatalf("-checkpoint-interval %q: want a duration, 0 or auto", checkpointInterval)
	} else {
		c.checkpoint = d
	}
	gcPercent, _ := gctune.Apply()
	log.Printf("GOGC %d", gcPercent)
	c.queries = strings.Split(queries, ",")
	for _, m := range strings.Split(modes, ",") {
		c.modes = append(c.modes, spec.RuntimeMode(m))
	}
	c.runners = strings.Split(runners, ",")
	c.latencyRunners = strings.Split(latencyRunners, ",")
	// The engine logs each checkpoint; the table is what matters here.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	// slog.SetDefault sends package log through that handler too, at INFO
	// (dropped): the progress lines and fatal errors go to stderr.
	log.SetOutput(os.Stderr)
	log.SetFlags(0)
	if err := run(c); err != nil {
		log.Fatal(err)
	}
}

// result is one throughput run.
type result struct {
	query  string
	mode   spec.RuntimeMode
	runner string
	events int64
	wall   time.Duration
	cpu    time.Duration
	allocs float64 // heap allocations per event (in-process only)
	output int64   // records that reached the sink (in-process only)
	// checkpoint is the ID of the newest complete checkpoint (0: none),
	// taken every interval (0: off).
	checkpoint int64
	interval   time.Duration
}

func (r result) perCore() float64 { return float64(r.events) / r.cpu.Seconds() }
func (r result) perWall() float64 { return float64(r.events) / r.wall.Seconds() }

// ratio is the throughput per core over Flink's, 0 without a Flink figure.
func (r result) ratio() float64 {
	f, ok := bench.FlinkPerCore[r.query]
	if !ok {
		return 0
	}
	return r.perCore() / f
}

func run(c config) error {
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	for _, rn := range c.latencyRunners {
		if rn != inProcess && rn != processes {
			return fmt.Errorf("-latency-runners: no runner %q (in-process, processes)", rn)
		}
	}
	if slices.Contains(c.runners, processes) && c.worker == "" {
		c.worker = filepath.Join(c.out, "worker")
		if err := build(c.worker, "./cmd/worker"); err != nil {
			return err
		}
	}
	if c.latency && slices.Contains(c.latencyRunners, processes) && c.latencyWorker == "" {
		c.latencyWorker = filepath.Join(c.out, "benchworker")
		if err := build(c.latencyWorker, "./hack/bench/benchworker"); err != nil {
			return err
		}
	}
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var results []result
	var lats []latency
	for _, q := range c.queries {
		if !slices.Contains(bench.NexmarkQueries, q) {
			return fmt.Errorf("no query %q (the queries are %s)", q, strings.Join(bench.NexmarkQueries, ", "))
		}
		for _, m := range c.modes {
			for _, rn := range c.runners {
				interval := c.checkpoint
				if m == spec.Streaming && c.checkpointAuto {
					interval = autoInterval(results, q, rn)
				}
				settle()
				r, err := throughput(c, q, m, rn, interval)
				if err != nil {
					return fmt.Errorf("%s %s %s: %w", q, m, rn, err)
				}
				ckpt := ""
				if r.interval > 0 {
					ckpt = fmt.Sprintf(", checkpoint %d, every %v", r.checkpoint, r.interval)
				}
				log.Printf("%-3s %-9s %-10s %10.0f events/s/core  %6.2fx Flink  (%.2fs wall, %.2fs CPU, %.2f allocs/event%s)",
					q, m, rn, r.perCore(), r.ratio(), r.wall.Seconds(), r.cpu.Seconds(), r.allocs, ckpt)
				results = append(results, r)
			}
		}
		if !c.latency {
			continue
		}
		for _, rn := range c.latencyRunners {
			// Half of the STREAMING wall-clock rate with the same runner
			// (else the other one) sizes the latency job's unpaced peak
			// run (see measureLatency).
			var peak float64
			for _, want := range []string{rn, ""} {
				for _, r := range results {
					if peak == 0 && r.query == q && r.mode == spec.Streaming && (want == "" || r.runner == want) {
						peak = r.perWall()
					}
				}
			}
			if peak == 0 && c.latencyRate == 0 {
				log.Printf("%s: no STREAMING run to take the peak rate from; no latency run", q)
				break
			}
			settle()
			l, err := measureLatency(c, q, rn, int64(peak/2))
			if err != nil {
				return fmt.Errorf("%s latency %s: %w", q, rn, err)
			}
			log.Printf("%-3s %-10s latency at %d events/s (latency job's peak %d/s): p50 %v, p99 %v (%d samples)", q, rn, l.rate, l.peak, l.p50, l.p99, l.samples)
			lats = append(lats, l)
		}
	}
	printTable(os.Stdout, c, results, lats)
	if err := writeCSV(filepath.Join(c.out, "results.csv"), results); err != nil {
		return err
	}
	if err := writeLatencyCSV(filepath.Join(c.out, "latency.csv"), lats); err != nil {
		return err
	}
	if err := writeSVG(filepath.Join(c.out, "ratio.svg"), c, results); err != nil {
		return err
	}
	log.Printf("wrote %s", strings.Join([]string{"results.csv", "latency.csv", "ratio.svg"}, ", "))
	return nil
}

// settle collects the garbage of the runs before and returns its memory to
// the OS, so a run starts from the same small heap wherever it comes in
// the sequence: the CPU time counted includes this process's, and an
// earlier latency run leaves millions of samples to collect. (Measured:
// q4 after q0 and its latency runs, with and without it, within noise.)
func settle() {
	runtime.GC()
	debug.FreeOSMemory()
}

// build builds the command pkg into bin.
func build(bin, pkg string) error {
	log.Printf("building %s", bin)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building %s: %w", pkg, err)
	}
	return nil
}

// autoInterval is the STREAMING checkpoint interval for query q with
// runner rn: a third of its BATCH run's wall time (see the package doc).
func autoInterval(results []result, q, rn string) time.Duration {
	for _, r := range results {
		if r.query == q && r.runner == rn && r.mode == spec.Batch {
			return max(r.wall/3, 100*time.Millisecond).Round(time.Millisecond)
		}
	}
	return time.Second
}

// throughput runs query q once for c.events events and measures it, with
// STREAMING checkpoints every interval (0: none).
func throughput(c config, q string, mode spec.RuntimeMode, rn string, interval time.Duration) (result, error) {
	res := result{query: q, mode: mode, runner: rn, events: c.events}
	if mode == spec.Streaming {
		res.interval = interval
	}
	opts := bench.NexmarkOptions{Events: c.events, Seed: 1, FirstEventRate: c.firstEventRate, Parallelism: int32(c.parallelism)}
	if rn == inProcess {
		opts.Sink = "bench-count"
	} else {
		opts.Sink = "" // the sample's sink, made a discard sink below
	}
	job, err := bench.NexmarkJob(c.samples, q, opts)
	if err != nil {
		return res, err
	}
	dir, err := os.MkdirTemp("", "flinkjob-bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0, wall0 := cpuTime(), time.Now()
	switch rn {
	case inProcess:
		p, err := plan.New(job, plan.Options{Mode: mode, ReadAllFields: c.readAllFields})
		if err != nil {
			return res, err
		}
		sink := &bench.CountSink{}
		lo := local.Options{WorkDir: dir, Env: connector.Env{CallSink: func(string) (connector.Sink, bool) { return sink, true }}}
		if res.interval > 0 {
			lo.CheckpointInterval, lo.CheckpointDir = res.interval, filepath.Join(dir, "checkpoints")
		}
		if err := local.Run(ctx, p, lo); err != nil {
			return res, err
		}
		res.output = sink.Result().Count
	case processes:
		for i := range job.Steps {
			if job.Steps[i].Name == "out" {
				job.Steps[i].Sink = &spec.Sink{Discard: &spec.DiscardSink{}}
			}
		}
		for _, d := range []string{"run", "shuffle"} {
			if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
				return res, err
			}
		}
		ro := runner.Options{Worker: c.worker, Mode: mode, Dir: filepath.Join(dir, "run"), ShuffleURL: filepath.Join(dir, "shuffle")}
		if res.interval > 0 {
			ro.Args = []string{"--checkpoint-interval", res.interval.String(), "--checkpoint-url", filepath.Join(dir, "checkpoints")}
		}
		r, err := runner.New(job, ro)
		if err != nil {
			return res, err
		}
		if err := r.Run(ctx); err != nil {
			return res, err
		}
	default:
		return res, fmt.Errorf("unknown runner %q", rn)
	}
	res.wall, res.cpu = time.Since(wall0), cpuTime()-cpu0
	runtime.ReadMemStats(&m1)
	if res.interval > 0 {
		st, err := checkpoint.OpenLocal(filepath.Join(dir, "checkpoints"))
		if err == nil {
			res.checkpoint, _, err = checkpoint.Latest(ctx, st)
		}
		if err != nil {
			return res, fmt.Errorf("reading the checkpoints: %w", err)
		}
	}
	if rn == inProcess {
		res.allocs = float64(m1.Mallocs-m0.Mallocs) / float64(c.events)
	}
	return res, nil
}

// cpuTime is the user and system CPU time of this process and of the
// children it has waited for (the worker processes).
func cpuTime() time.Duration {
	var t time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err == nil {
			t += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return t
}

func printTable(w io.Writer, c config, results []result, lats []latency) {
	cp := "off"
	switch {
	case c.checkpointAuto:
		cp = "every third of the query's BATCH wall time (ckpt every)"
	case c.checkpoint > 0:
		cp = "every " + c.checkpoint.String()
	}
	fmt.Fprintf(w, "\nNexmark, %d events per run, parallelism %d, event-time rate %d/s, STREAMING checkpoints %s; events/s per CPU core (process CPU time incl. workers)\n\n", c.events, c.parallelism, c.firstEventRate, cp)
	fmt.Fprintf(w, "%-5s %-10s %-11s %14s %12s %8s %10s %8s %12s %6s %11s\n", "query", "mode", "runner", "events/s/core", "Flink/core", "ratio", "events/s", "cores", "allocs/event", "ckpts", "ckpt every")
	for _, r := range results {
		allocs := "-"
		if r.runner == inProcess {
			allocs = fmt.Sprintf("%.1f", r.allocs)
		}
		flink, ratio := "-", "-"
		if f, ok := bench.FlinkPerCore[r.query]; ok {
			flink, ratio = fmt.Sprintf("%.0f", f), fmt.Sprintf("%.2fx", r.ratio())
		}
		every := "-"
		if r.interval > 0 {
			every = r.interval.String()
		}
		fmt.Fprintf(w, "%-5s %-10s %-11s %14.0f %12s %8s %10.0f %8.2f %12s %6d %11s\n", r.query, r.mode, r.runner, r.perCore(),
			flink, ratio, r.perWall(), r.cpu.Seconds()/r.wall.Seconds(), allocs, r.checkpoint, every)
	}
	if len(lats) > 0 {
		printLatency(w, c, lats)
	}
}

// printLatency prints the latency table: a row per query, a group of
// columns per runner.
func printLatency(w io.Writer, c config, lats []latency) {
	fmt.Fprintf(w, "\nSTREAMING latency, from when the output became determinable (the due time of its event, or for timer results of the last of the events, one per source subtask, that moved the watermark past them) to the sink, at half of the latency job's peak with the same runner (or at -latency-rate), after a warm-up of -latency-warmup\n\n")
	var head strings.Builder
	fmt.Fprintf(&head, "%-5s", "")
	for _, rn := range c.latencyRunners {
		fmt.Fprintf(&head, " | %-55s", rn)
	}
	fmt.Fprintf(w, "%s\n%-5s", strings.TrimRight(head.String(), " "), "query")
	for range c.latencyRunners {
		fmt.Fprintf(w, " | %9s %9s %11s %11s %11s", "events/s", "peak", "p50", "p99", "max")
	}
	fmt.Fprintln(w)
	for _, q := range c.queries {
		var line strings.Builder
		found := false
		fmt.Fprintf(&line, "%-5s", q)
		for _, rn := range c.latencyRunners {
			cell := fmt.Sprintf("%9s %9s %11s %11s %11s", "-", "-", "-", "-", "-")
			for _, l := range lats {
				if l.query == q && l.runner == rn {
					found = true
					peak := "-" // -latency-rate: not measured
					if l.peak > 0 {
						peak = strconv.FormatInt(l.peak, 10)
					}
					cell = fmt.Sprintf("%9d %9s %11s %11s %11s", l.rate, peak, round(l.p50), round(l.p99), round(l.max))
				}
			}
			fmt.Fprintf(&line, " | %s", cell)
		}
		if found {
			fmt.Fprintln(w, line.String())
		}
	}
}

// round shows a latency in ms with µs precision (one under a µs, e.g. a
// job whose stages all run in one goroutine, as "<0.001ms", not 0).
func round(d time.Duration) string {
	if d < time.Microsecond {
		return "<0.001ms"
	}
	return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond))
}
