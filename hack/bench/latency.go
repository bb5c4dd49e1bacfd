package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime/metrics"
	"slices"
	"strconv"
	"time"

	"github.com/flinkjob/flinkjob/engine/bench"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/hack/bench/stamp"
	"github.com/flinkjob/flinkjob/worker/runner"
)

// A latency run gives event n the event time base + n ms (an event-time
// rate of 1000/s, faster than wall time, so windows and auctions close
// many times in a few seconds), so an event time names one event. A `call`
// step chained right after the source (same goroutine, no serialization)
// stores the wall time at which each event was generated, and the sink the
// wall time at which each output arrived (package stamp).
//
// The job runs in process (engine/local) or as worker processes over gRPC
// (worker/runner, the bench worker hack/bench/benchworker, which has the
// stamp step and the sink). All processes are on this machine and share its
// wall clock (time.Now().UnixNano()); the workers write their stamps and
// arrivals to files of the run's directory and the bench computes the same
// figures from them after the run as from the in-process run's memory.
//
// An event's creation is when the paced generator was due to produce it,
// or when it did if that was earlier: subtask i of p emits its k-th event
// (event i + k*p) at its start + k*p/rate seconds (engine/connector's
// pacer), and its start is taken at its first event. Counting from the
// moment the generator got round to it instead would leave out every wait
// that happens before the source runs: a source blocked by backpressure or
// not scheduled by the OS generates its due events late, in one burst, and
// their wait would never show (coordinated omission); an outside source
// (Kafka) keeps producing while the job falls behind. The log also shows
// the figures counted from generation, for comparison with runs before
// this method.
//
// Latency is measured from when an output became determinable, not from
// the oldest event it depends on (nexmark/nexmark reports throughput and
// cores only; this is our method): a record derived from one event (q0-q3,
// q8) from that event's creation; the result of an event-time timer or
// window (q4-q7, timestamped at the timer's time T) from the moment the
// watermark could first reach T: the watermark is the least over the source
// subtasks of their max timestamp - 0 - 1 (the runs' events are in order
// per subtask), so from the latest creation among events T+1 ... T+p, the
// first event after T of each of the p subtasks (stamp.determinable).
// Waiting for an auction's end or a window's end is the query's semantics,
// not the engine's latency.
//
// The figures are the steady state's: outputs determinable within the
// first -latency-warmup (1 s) of a paced run are left out, as benchmarks
// leave out a warm-up (nexmark/nexmark's runs last minutes, so theirs is a
// negligible share). In a run of a few seconds the start (join state and
// heaps growing from nothing, collections at a small heap) would otherwise
// be most of the 1% a p99 looks at; the log gives the figures with it too,
// and -latency-trace the figures per period.
//
// "Half of the peak" is half of the peak of this same job with the same
// runner: a first unpaced run with the latency run's configuration
// measures it (events over wall time; with worker processes the wall time
// includes their start), since the throughput runs' per-event cost differs
// (at their 10M events/s of event time every window and auction stays
// open until the end of the input).

type latency struct {
	query         string
	runner        string
	rate          int64
	peak          int64
	p50, p99, max time.Duration
	samples       int
}

// timerQueries are the queries whose outputs are event-time timer or window
// results, timestamped at the timer's time.
var timerQueries = map[string]bool{"q4": true, "q5": true, "q6": true, "q7": true}

// latencyRun runs the latency job of query q with runner rn for
// rate*latencySeconds events, paced at rate events/s unless unpaced (then
// after a warm-up of latencyWarmup, whose outputs are not counted). It
// returns the sink's latencies, counted from each event's due time and
// from its generation (see above), and the wall time. An unpaced run with
// worker processes returns the wall time only (it measures the peak).
func latencyRun(c config, q, rn string, rate int64, paced bool) (due, gen []time.Duration, wall time.Duration, err error) {
	seconds := c.latencySeconds
	if paced {
		seconds += c.latencyWarmup.Seconds()
	}
	events := int64(float64(rate) * seconds)
	opts := bench.NexmarkOptions{
		Events: events, Seed: 1, FirstEventRate: 1000,
		Parallelism: int32(c.parallelism), Sink: stamp.SinkName,
		// Events are in order within each source subtask.
		MaxOutOfOrderness: "0s",
	}
	p := int64(c.parallelism)
	st := stamp.New(events, p)
	if paced {
		opts.RatePerSecond = rate
		st.Every = stamp.PacerInterval(rate, p)
	}
	job, err := latencyJob(c, q, opts)
	if err != nil {
		return nil, nil, 0, err
	}
	dir, err := os.MkdirTemp("", "flinkjob-latency-")
	if err != nil {
		return nil, nil, 0, err
	}
	defer os.RemoveAll(dir)
	var samples []stamp.Sample
	switch rn {
	case inProcess:
		pl, err := plan.New(job, plan.Options{Mode: spec.Streaming})
		if err != nil {
			return nil, nil, 0, err
		}
		stamp.Use(st)
		defer stamp.Use(nil)
		sink := &stamp.Sink{}
		start, cpu0, gc0 := time.Now(), cpuTime(), readGC()
		err = local.Run(context.Background(), pl, local.Options{WorkDir: dir,
			Env: connector.Env{CallSink: func(string) (connector.Sink, bool) { return sink, true }}})
		wall = time.Since(start)
		logBusy(c, q, rn, paced, cpuTime()-cpu0, wall)
		logGC(c, q, rn, paced, readGC().since(gc0))
		if err != nil || !paced {
			// An unpaced run measures the peak: its wall time only.
			return nil, nil, wall, err
		}
		samples = sink.Samples()
	case processes:
		run, lat := filepath.Join(dir, "run"), filepath.Join(dir, "latency")
		for _, d := range []string{run, lat} {
			if err := os.Mkdir(d, 0o755); err != nil {
				return nil, nil, 0, err
			}
		}
		env := []string{stamp.EnvEvents + "=" + strconv.FormatInt(events, 10), stamp.EnvParallelism + "=" + strconv.FormatInt(p, 10)}
		if paced {
			env = append(env, stamp.EnvDir+"="+lat)
		}
		r, err := runner.New(job, runner.Options{Worker: c.latencyWorker, Mode: spec.Streaming, Dir: run, Env: env})
		if err != nil {
			return nil, nil, 0, err
		}
		start, cpu0 := time.Now(), cpuTime()
		err = r.Run(context.Background())
		wall = time.Since(start)
		logBusy(c, q, rn, paced, cpuTime()-cpu0, wall)
		if err != nil || !paced {
			return nil, nil, wall, err
		}
		if samples, err = stamp.Read(lat, st); err != nil {
			return nil, nil, 0, err
		}
	default:
		return nil, nil, 0, fmt.Errorf("unknown runner %q", rn)
	}
	outs := st.Measure(samples, timerQueries[q])
	due, gen = outs.Latencies(c.latencyWarmup)
	if all, _ := outs.Latencies(0); len(all) > 0 && c.latencyWarmup > 0 {
		slices.Sort(all)
		log.Printf("%-3s %-10s latency with the warm-up (%v) counted too: p50 %v, p99 %v", q, rn, c.latencyWarmup, all[len(all)/2], all[len(all)*99/100])
	}
	if c.latencyTrace > 0 {
		for _, p := range outs.Trace(c.latencyTrace) {
			log.Printf("%-3s %-10s trace %6v: %6d samples, p50 %v, p99 %v, max %v; generation behind schedule p99 %v",
				q, rn, p.From, p.Samples, p.P50.Round(time.Microsecond), p.P99.Round(time.Microsecond), p.Max.Round(time.Microsecond), p.Behind99.Round(time.Microsecond))
		}
	}
	return due, gen, wall, nil
}

// gcStats are the Go collector's counters in this process (runtime/metrics).
// An in-process run shares the bench's heap, so they are the job's. With
// -latency-trace the log gives each run's collections: the trace's slow
// periods line up with them. On this 2-core machine a mark phase takes up
// to about 1.3 of the 2 Ps (the fractional worker, plus an idle worker that
// keeps its P while goroutines queue on the other, and holds that P's
// timers), so the job falls behind for the phase and catches up after it.
type gcStats struct {
	cycles                          uint64
	assist, background, idle, pause float64 // CPU seconds
}

var gcMetrics = []string{
	"/gc/cycles/total:gc-cycles",
	"/cpu/classes/gc/mark/assist:cpu-seconds",
	"/cpu/classes/gc/mark/dedicated:cpu-seconds",
	"/cpu/classes/gc/mark/idle:cpu-seconds",
	"/cpu/classes/gc/pause:cpu-seconds",
}

func readGC() gcStats {
	s := make([]metrics.Sample, len(gcMetrics))
	for i, name := range gcMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	f := func(i int) float64 {
		if s[i].Value.Kind() == metrics.KindFloat64 {
			return s[i].Value.Float64()
		}
		return 0
	}
	var g gcStats
	if s[0].Value.Kind() == metrics.KindUint64 {
		g.cycles = s[0].Value.Uint64()
	}
	g.assist, g.background, g.idle, g.pause = f(1), f(2), f(3), f(4)
	return g
}

func (g gcStats) since(b gcStats) gcStats {
	return gcStats{g.cycles - b.cycles, g.assist - b.assist, g.background - b.background, g.idle - b.idle, g.pause - b.pause}
}

// logGC logs, with -latency-trace, the collections of an in-process run.
func logGC(c config, q, rn string, paced bool, g gcStats) {
	if c.latencyTrace > 0 {
		ms := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)).Round(time.Millisecond) }
		log.Printf("%-3s %-10s %s run: %d GC cycles, GC CPU %v (mark: dedicated and fractional workers %v, idle workers %v, assists %v; pauses %v)",
			q, rn, map[bool]string{true: "paced", false: "peak"}[paced], g.cycles,
			ms(g.assist+g.background+g.idle+g.pause), ms(g.background), ms(g.idle), ms(g.assist), ms(g.pause))
	}
}

// logBusy logs, with -latency-trace, how many cores a latency run kept
// busy: a paced run near 2 (all of this machine's) is no longer at half of
// what the job can do.
func logBusy(c config, q, rn string, paced bool, cpu, wall time.Duration) {
	if c.latencyTrace > 0 {
		log.Printf("%-3s %-10s %s run: %.2f cores busy over %v (CPU time of the bench and its worker processes / wall time)",
			q, rn, map[bool]string{true: "paced", false: "peak"}[paced], cpu.Seconds()/wall.Seconds(), wall.Round(time.Millisecond))
	}
}

// latencyJob is query q's job with the stamp step right after its source
// and the latency sink.
func latencyJob(c config, q string, opts bench.NexmarkOptions) (*spec.Job, error) {
	job, err := bench.NexmarkJob(c.samples, q, opts)
	if err != nil {
		return nil, err
	}
	// The source becomes events-gen; the stamp step takes its name, so the
	// steps reading "events" read the stamped events.
	var steps []spec.Step
	for _, s := range job.Steps {
		if s.Name == "events" {
			s.Name = "events-gen"
			steps = append(steps, s, spec.Step{Name: "events", Call: stamp.Step})
			continue
		}
		steps = append(steps, s)
	}
	job.Steps = steps
	if c.bufferTimeout != "" {
		job.BufferTimeout = spec.Duration(c.bufferTimeout)
	}
	return job, nil
}

// measureLatency measures the peak of q's latency job with runner rn,
// unpaced, for guess*latencySeconds events, then its latency at half of
// that peak.
func measureLatency(c config, q, rn string, guess int64) (latency, error) {
	l := latency{query: q, runner: rn}
	if c.latencyRate > 0 {
		l.rate = c.latencyRate
	} else {
		_, _, wall, err := latencyRun(c, q, rn, guess, false)
		if err != nil {
			return l, err
		}
		l.peak = int64(float64(guess) * c.latencySeconds / wall.Seconds())
		l.rate = l.peak / 2
	}
	d, gen, _, err := latencyRun(c, q, rn, l.rate, true)
	if err != nil {
		return l, err
	}
	if len(d) == 0 {
		return l, fmt.Errorf("no output to measure")
	}
	slices.Sort(d)
	slices.Sort(gen)
	l.samples = len(d)
	l.p50, l.p99, l.max = d[len(d)/2], d[len(d)*99/100], d[len(d)-1]
	log.Printf("%-3s %-10s latency counted from generation instead of due time: p50 %v, p99 %v", q, rn, gen[len(gen)/2], gen[len(gen)*99/100])
	return l, nil
}
