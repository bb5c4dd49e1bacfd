package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flinkjob/flinkjob/engine/bench"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/udf"
	"github.com/flinkjob/flinkjob/engine/value"
)

// A latency run gives event n the event time base + n ms (an event-time
// rate of 1000/s, faster than wall time, so windows and auctions close
// many times in a few seconds), so an event time names one event. A `call`
// step chained right after the source (same goroutine, no serialization)
// stores the wall time at which each event was generated.
//
// Latency is measured from when an output became determinable, not from
// the oldest event it depends on (nexmark/nexmark reports throughput and
// cores only; this is our method): a record derived from one event (q0-q3,
// q8) from that event's creation; the result of an event-time timer or
// window (q4-q7, timestamped at the timer's time T) from the creation of
// event T+1, the earliest event that lets the watermark (max timestamp - 0
// - 1, the runs' events being in order per subtask) reach T. Waiting for an
// auction's end or a window's end is the query's semantics, not the
// engine's latency.
//
// "Half of the peak" is half of the peak of this same job: a first unpaced
// run with the latency run's configuration measures it, since the
// throughput runs' per-event cost differs (at their 10M events/s of event
// time every window and auction stays open until the end of the input).

type latency struct {
	query         string
	rate          int64
	peak          int64
	p50, p99, max time.Duration
	samples       int
}

// timerQueries are the queries whose outputs are event-time timer or window
// results, timestamped at the timer's time.
var timerQueries = map[string]bool{"q4": true, "q5": true, "q6": true, "q7": true}

// created[n] is the wall time (ns) at which event n was generated.
var created atomic.Pointer[[]atomic.Int64]

func init() {
	udf.Map("bench-stamp", func(v any) (any, error) {
		if c := created.Load(); c != nil {
			if n := v.(map[string]any)["ts"].(int64) - connector.NexmarkBaseTime; n >= 0 && n < int64(len(*c)) {
				(*c)[n].Store(time.Now().UnixNano())
			}
		}
		return v, nil
	})
}

// latencyRun runs the latency job of query q for rate*latencySeconds
// events, paced at rate events/s unless unpaced. It returns the sink's
// latencies and the wall time.
func latencyRun(c config, q string, rate int64, paced bool) ([]time.Duration, time.Duration, error) {
	events := int64(float64(rate) * c.latencySeconds)
	opts := bench.NexmarkOptions{
		Events: events, Seed: 1, FirstEventRate: 1000,
		Parallelism: int32(c.parallelism), Sink: "bench-latency",
		// Events are in order within each source subtask.
		MaxOutOfOrderness: "0s",
	}
	if paced {
		opts.RatePerSecond = rate
	}
	job, err := bench.NexmarkJob(c.samples, q, opts)
	if err != nil {
		return nil, 0, err
	}
	// The source becomes events-gen; the stamp step takes its name, so the
	// steps reading "events" read the stamped events.
	var steps []spec.Step
	for _, s := range job.Steps {
		if s.Name == "events" {
			s.Name = "events-gen"
			steps = append(steps, s, spec.Step{Name: "events", Call: "bench-stamp"})
			continue
		}
		steps = append(steps, s)
	}
	job.Steps = steps
	p, err := plan.New(job, plan.Options{Mode: spec.Streaming})
	if err != nil {
		return nil, 0, err
	}
	stamps := make([]atomic.Int64, events)
	created.Store(&stamps)
	defer created.Store(nil)
	sink := &latencySink{created: stamps, timer: timerQueries[q]}
	dir, err := os.MkdirTemp("", "flinkjob-latency-")
	if err != nil {
		return nil, 0, err
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	err = local.Run(context.Background(), p, local.Options{WorkDir: dir,
		Env: connector.Env{CallSink: func(string) (connector.Sink, bool) { return sink, true }}})
	return sink.all, time.Since(start), err
}

// measureLatency measures the peak of q's latency job, unpaced, for
// guess*latencySeconds events, then its latency at half of that peak.
func measureLatency(c config, q string, guess int64) (latency, error) {
	l := latency{query: q}
	if c.latencyRate > 0 {
		l.rate = c.latencyRate
	} else {
		_, wall, err := latencyRun(c, q, guess, false)
		if err != nil {
			return l, err
		}
		l.peak = int64(float64(guess) * c.latencySeconds / wall.Seconds())
		l.rate = l.peak / 2
	}
	d, _, err := latencyRun(c, q, l.rate, true)
	if err != nil {
		return l, err
	}
	if len(d) == 0 {
		return l, fmt.Errorf("no output to measure")
	}
	slices.Sort(d)
	l.samples = len(d)
	l.p50, l.p99, l.max = d[len(d)/2], d[len(d)*99/100], d[len(d)-1]
	return l, nil
}

type latencySink struct {
	created []atomic.Int64
	timer   bool // outputs are timer results: measure from ts+1
	mu      sync.Mutex
	all     []time.Duration
}

func (s *latencySink) Open(context.Context, int, int) (connector.Writer, error) {
	return &latencyWriter{s: s}, nil
}

type latencyWriter struct {
	s *latencySink
	d []time.Duration
}

func (w *latencyWriter) Write(r *value.Record) error {
	now := time.Now().UnixNano()
	n := r.Ts - connector.NexmarkBaseTime
	if w.s.timer {
		n++
	}
	if n >= 0 && n < int64(len(w.s.created)) {
		if t := w.s.created[n].Load(); t > 0 {
			w.d = append(w.d, time.Duration(now-t))
		}
	}
	return nil
}

func (w *latencyWriter) Close() error {
	w.s.mu.Lock()
	w.s.all = append(w.s.all, w.d...)
	w.s.mu.Unlock()
	return nil
}

func (w *latencyWriter) Abort() {}
