package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flinkjob/flinkjob/engine/bench"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/operator"
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

// stamps are a latency run's clocks, in wall-clock ns.
type stamps struct {
	// created[n] is when event n was generated (0: not yet).
	created []atomic.Int64
	// In a paced run, every is the pacer's interval per subtask (0:
	// unpaced) and start[i] when subtask i of p generated its first event.
	p     int64
	every int64
	start []atomic.Int64
}

// due is when event n counts as created: its pacer's due time, or its
// generation if that was earlier (or the run is unpaced). ok is false
// while event n was not generated.
func (s *stamps) due(n int64) (ns int64, ok bool) {
	t := s.created[n].Load()
	if t == 0 {
		return 0, false
	}
	if s.every > 0 {
		if st := s.start[n%s.p].Load(); st > 0 {
			t = min(t, st+(n/s.p)*s.every)
		}
	}
	return t, true
}

var current atomic.Pointer[stamps]

func init() {
	// MapRows: the stamp reads only ts (value.Field), so the events go on
	// as the source built them (rows), not turned into maps.
	udf.MapRows("bench-stamp", func(v any) (any, error) {
		if s := current.Load(); s != nil {
			ts, _ := value.Field(v, "ts")
			if n := ts.(int64) - connector.NexmarkBaseTime; n >= 0 && n < int64(len(s.created)) {
				now := time.Now().UnixNano()
				s.created[n].Store(now)
				if n < s.p {
					s.start[n].Store(now)
				}
			}
		}
		return v, nil
	})
}

// latencyRun runs the latency job of query q for rate*latencySeconds
// events, paced at rate events/s unless unpaced. It returns the sink's
// latencies, counted from each event's due time and from its generation
// (see above), and the wall time.
func latencyRun(c config, q string, rate int64, paced bool) (due, gen []time.Duration, wall time.Duration, err error) {
	events := int64(float64(rate) * c.latencySeconds)
	opts := bench.NexmarkOptions{
		Events: events, Seed: 1, FirstEventRate: 1000,
		Parallelism: int32(c.parallelism), Sink: "bench-latency",
		// Events are in order within each source subtask.
		MaxOutOfOrderness: "0s",
	}
	p := int64(c.parallelism)
	st := &stamps{created: make([]atomic.Int64, events), p: p, start: make([]atomic.Int64, p)}
	if paced {
		opts.RatePerSecond = rate
		// The pacer's interval, computed as it does (engine/connector).
		st.every = int64(time.Duration(float64(time.Second) * float64(p) / float64(rate)))
	}
	job, err := bench.NexmarkJob(c.samples, q, opts)
	if err != nil {
		return nil, nil, 0, err
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
	pl, err := plan.New(job, plan.Options{Mode: spec.Streaming})
	if err != nil {
		return nil, nil, 0, err
	}
	current.Store(st)
	defer current.Store(nil)
	sink := &latencySink{st: st, timer: timerQueries[q]}
	dir, err := os.MkdirTemp("", "flinkjob-latency-")
	if err != nil {
		return nil, nil, 0, err
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	err = local.Run(context.Background(), pl, local.Options{WorkDir: dir,
		Env: connector.Env{CallSink: func(string) (connector.Sink, bool) { return sink, true }}})
	return sink.due, sink.gen, time.Since(start), err
}

// measureLatency measures the peak of q's latency job, unpaced, for
// guess*latencySeconds events, then its latency at half of that peak.
func measureLatency(c config, q string, guess int64) (latency, error) {
	l := latency{query: q}
	if c.latencyRate > 0 {
		l.rate = c.latencyRate
	} else {
		_, _, wall, err := latencyRun(c, q, guess, false)
		if err != nil {
			return l, err
		}
		l.peak = int64(float64(guess) * c.latencySeconds / wall.Seconds())
		l.rate = l.peak / 2
	}
	d, gen, _, err := latencyRun(c, q, l.rate, true)
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
	log.Printf("%-3s latency counted from generation instead of due time: p50 %v, p99 %v", q, gen[len(gen)/2], gen[len(gen)*99/100])
	return l, nil
}

type latencySink struct {
	st    *stamps
	timer bool // outputs are timer results: measure from ts+1
	mu    sync.Mutex
	due   []time.Duration
	gen   []time.Duration
}

func (s *latencySink) Open(context.Context, int, int) (connector.Writer, error) {
	return &latencyWriter{s: s}, nil
}

type latencyWriter struct {
	s        *latencySink
	due, gen []time.Duration
}

func (w *latencyWriter) Write(r *value.Record) error {
	now := time.Now().UnixNano()
	n := r.Ts - connector.NexmarkBaseTime
	if w.s.timer {
		n++
	}
	if st := w.s.st; n >= 0 && n < int64(len(st.created)) {
		if t, ok := st.due(n); ok {
			w.due = append(w.due, time.Duration(now-t))
			w.gen = append(w.gen, time.Duration(now-st.created[n].Load()))
		}
	}
	return nil
}

func (w *latencyWriter) Close() error {
	w.s.mu.Lock()
	w.s.due = append(w.s.due, w.due...)
	w.s.gen = append(w.s.gen, w.gen...)
	w.s.mu.Unlock()
	return nil
}

func (w *latencyWriter) Abort() {}

// AcceptsRows (operator.RowsAware): the writer reads only a record's
// timestamp, so the rows of a rows run reach it as they are, not turned
// into maps first (which would add to the latency measured).
func (w *latencyWriter) AcceptsRows() bool { return true }

var _ operator.RowsAware = (*latencyWriter)(nil)
