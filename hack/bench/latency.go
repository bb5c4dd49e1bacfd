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
// rate of 1000/s), so an event time names one event. A `call` step chained
// right after the source (same goroutine, no serialization) stores the wall
// time at which each event was generated; the sink looks up the event its
// record's timestamp names. A record derived from one event (q0-q3) is
// measured from that event's creation; a window's result (timestamped at
// the window's last millisecond) from the creation of the window's last
// possible event; a timer's output from the event at the timer's time.

type latency struct {
	query         string
	rate          int64
	p50, p99, max time.Duration
	samples       int
}

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

func measureLatency(c config, q string, rate int64) (latency, error) {
	l := latency{query: q, rate: rate}
	events := int64(float64(rate) * c.latencySeconds)
	job, err := bench.NexmarkJob(c.samples, q, bench.NexmarkOptions{
		Events: events, Seed: 1, FirstEventRate: 1000, RatePerSecond: rate,
		Parallelism: int32(c.parallelism), Sink: "bench-latency",
		// Events are in order within each source subtask.
		MaxOutOfOrderness: "0s",
	})
	if err != nil {
		return l, err
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
		return l, err
	}
	stamps := make([]atomic.Int64, events)
	created.Store(&stamps)
	defer created.Store(nil)
	sink := &latencySink{created: stamps}
	dir, err := os.MkdirTemp("", "flinkjob-latency-")
	if err != nil {
		return l, err
	}
	defer os.RemoveAll(dir)
	err = local.Run(context.Background(), p, local.Options{WorkDir: dir,
		Env: connector.Env{CallSink: func(string) (connector.Sink, bool) { return sink, true }}})
	if err != nil {
		return l, err
	}
	d := sink.all
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
	if n := r.Ts - connector.NexmarkBaseTime; n >= 0 && n < int64(len(w.s.created)) {
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
