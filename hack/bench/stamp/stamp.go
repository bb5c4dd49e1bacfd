// Package stamp holds the clocks of hack/bench's latency runs (the method
// is in hack/bench/latency.go): the `call` step "bench-stamp", chained
// right after the nexmark source, records when each event was generated;
// the sink "bench-latency" records when each output arrived. In process
// both write into memory the bench reads. Worker processes (the bench
// worker, hack/bench/benchworker) keep them in memory too and hand them
// over in files of a run directory after the run (see Worker and Read):
// the processes share the machine's wall clock (time.Now().UnixNano()), so
// the stamps of one process compare with the arrivals of another.
package stamp

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/operator"
	"github.com/flinkjob/flinkjob/engine/udf"
	"github.com/flinkjob/flinkjob/engine/value"
)

// Step and SinkName are the names the latency job calls.
const (
	Step     = "bench-stamp"
	SinkName = "bench-latency"
)

// Stamps are a latency run's clocks, in wall-clock ns.
type Stamps struct {
	// Created[n] is when event n was generated (0: not yet).
	Created []atomic.Int64
	// In a paced run, Every is the pacer's interval per subtask (0:
	// unpaced) and Start[i] when subtask i of P generated its first event.
	P     int64
	Every int64
	Start []atomic.Int64
}

// New makes the stamps of a run of events events from p source subtasks.
func New(events, p int64) *Stamps {
	return &Stamps{Created: make([]atomic.Int64, events), P: p, Start: make([]atomic.Int64, p)}
}

// PacerInterval is the interval between a subtask's events when p subtasks
// share rate events/s, computed as the pacer does (engine/connector).
func PacerInterval(rate, p int64) int64 {
	return int64(time.Duration(float64(time.Second) * float64(p) / float64(rate)))
}

// Due is when event n counts as created: its pacer's due time, or its
// generation if that was earlier (or the run is unpaced). ok is false
// while event n was not generated.
func (s *Stamps) Due(n int64) (ns int64, ok bool) {
	t := s.Created[n].Load()
	if t == 0 {
		return 0, false
	}
	if s.Every > 0 {
		if st := s.Start[n%s.P].Load(); st > 0 {
			t = min(t, st+(n/s.P)*s.Every)
		}
	}
	return t, true
}

// stamp records that event n was generated now.
func (s *Stamps) stamp(n int64) {
	if n < 0 || n >= int64(len(s.Created)) {
		return
	}
	now := time.Now().UnixNano()
	s.Created[n].Store(now)
	if n < s.P {
		s.Start[n].Store(now)
	}
}

// Sample is one output's arrival at the sink: Event is its timestamp's
// event number (ts - connector.NexmarkBaseTime), Arrival the wall-clock ns.
type Sample struct {
	Event, Arrival int64
}

// start is when the run's first event was generated (0: none was).
func (s *Stamps) start() int64 {
	var first int64
	for i := range s.Start {
		if t := s.Start[i].Load(); t > 0 && (first == 0 || t < first) {
			first = t
		}
	}
	return first
}

// determinable is when the output of a sample of event n became
// determinable (see hack/bench/latency.go): for a record derived from
// event n, that event's due time; for the result of a timer at n's time
// (timer), the moment the watermark could first pass it, which is when
// every source subtask had produced an event after it: the watermark is
// the least over the subtasks. Those are events n+1 ... n+P, one per
// subtask (subtask i produces i, i+P, ...), so it is the latest of their
// due times; counting from event n+1 alone would charge the job for the
// other subtasks starting later (a few ms between worker processes, the
// same for the whole run). created is the matching generation time; ok is
// false while an event needed was not generated or is outside the run.
func (s *Stamps) determinable(n int64, timer bool) (due, created int64, ok bool) {
	first, last := n, n
	if timer {
		first, last = n+1, n+s.P
	}
	if first < 0 || last >= int64(len(s.Created)) {
		return 0, 0, false
	}
	for e := first; e <= last; e++ {
		t, ok := s.Due(e)
		if !ok {
			return 0, 0, false
		}
		due, created = max(due, t), max(created, s.Created[e].Load())
	}
	return due, created, true
}

// Outputs are a run's samples measured once: for each output whose events
// were generated inside the run, when it became determinable (see
// determinable), when those events were generated and when it arrived.
// Latencies and Trace read them.
type Outputs struct {
	start int64 // the run's first generated event
	outs  []output
}

type output struct{ due, created, arrival int64 }

// Measure measures the samples; timer says they are timer results.
// Samples whose events are outside the run or not generated are left out.
func (s *Stamps) Measure(samples []Sample, timer bool) Outputs {
	o := Outputs{start: s.start(), outs: make([]output, 0, len(samples))}
	for _, x := range samples {
		if t, c, ok := s.determinable(x.Event, timer); ok {
			o.outs = append(o.outs, output{due: t, created: c, arrival: x.Arrival})
		}
	}
	return o
}

// Latencies are the outputs' latencies counted from their due time; gen
// counts from their events' generation instead. Outputs determinable
// within warmup of the run's start are left out.
func (o Outputs) Latencies(warmup time.Duration) (due, gen []time.Duration) {
	from := o.start + int64(warmup)
	for _, x := range o.outs {
		if x.due >= from {
			due = append(due, time.Duration(x.arrival-x.due))
			gen = append(gen, time.Duration(x.arrival-x.created))
		}
	}
	return due, gen
}

var current atomic.Pointer[Stamps]

// Use makes the bench-stamp steps of this process write into s (nil: stamp
// nothing).
func Use(s *Stamps) { current.Store(s) }

func init() {
	// Peek: the stamp reads only ts (value.Field), so the events go on as
	// the source built them (rows, not turned into maps), and the source
	// still reuses the events the query's first filter rejects, as it
	// does in the throughput runs, which have no stamp step.
	udf.Peek(Step, func(v any) error {
		if s := current.Load(); s != nil {
			ts, _ := value.Field(v, "ts")
			if t, ok := ts.(int64); ok {
				s.stamp(t - connector.NexmarkBaseTime)
			}
		}
		return nil
	})
}

// Sink is the latency sink: its writers note each record's arrival. With
// a Dir (worker processes), each writer also writes its samples to a file
// there when it closes.
type Sink struct {
	Dir     string
	mu      sync.Mutex
	samples []Sample
}

// Samples are the arrivals of the writers closed so far.
func (s *Sink) Samples() []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}

func (s *Sink) Open(_ context.Context, index, _ int) (connector.Writer, error) {
	return &writer{s: s, index: index}, nil
}

type writer struct {
	s     *Sink
	index int
	// chunks hold the samples in slices of chunkSamples: one growing
	// slice would copy all of it at each doubling (tens of MB at q0's
	// millions of samples, stalling the job's goroutine for ms, which the
	// run would then measure as the job's latency).
	chunks [][]Sample
}

const chunkSamples = 1 << 16

func (w *writer) Write(r *value.Record) error {
	n := len(w.chunks)
	if n == 0 || len(w.chunks[n-1]) == chunkSamples {
		w.chunks = append(w.chunks, make([]Sample, 0, chunkSamples))
		n++
	}
	w.chunks[n-1] = append(w.chunks[n-1], Sample{Event: r.Ts - connector.NexmarkBaseTime, Arrival: time.Now().UnixNano()})
	return nil
}

func (w *writer) Close() error {
	w.s.mu.Lock()
	for _, c := range w.chunks {
		w.s.samples = append(w.s.samples, c...)
	}
	w.s.mu.Unlock()
	if w.s.Dir == "" {
		return nil
	}
	var samples []Sample
	for _, c := range w.chunks {
		samples = append(samples, c...)
	}
	return writeSamples(w.s.Dir, w.index, samples)
}

func (w *writer) Abort() {}

// AcceptsRows (operator.RowsAware): the writer reads only a record's
// timestamp, so the rows of a rows run reach it as they are, not turned
// into maps first (which would add to the latency measured).
func (w *writer) AcceptsRows() bool { return true }

var _ operator.RowsAware = (*writer)(nil)

// Period is one slice of a run's trace: the samples whose event was due
// in [From, From+len) after the run's first due time.
type Period struct {
	From          time.Duration
	Samples       int
	P50, P99, Max time.Duration
	Behind99      time.Duration // p99 of generation - due time: how late the source itself was
}

// Trace cuts the run into periods of length every by due time and gives
// each one's latency figures (counted from the due time) and how far the
// generators themselves were behind their schedule, so a tail can be told
// apart as start-up, a steady lag or periodic stalls.
func (o Outputs) Trace(every time.Duration) []Period {
	type pt struct{ due, lat, behind int64 }
	var pts []pt
	first := int64(-1)
	for _, x := range o.outs {
		pts = append(pts, pt{x.due, x.arrival - x.due, x.created - x.due})
		if first < 0 || x.due < first {
			first = x.due
		}
	}
	byPeriod := map[int64][]pt{}
	last := int64(0)
	for _, p := range pts {
		i := (p.due - first) / int64(every)
		byPeriod[i] = append(byPeriod[i], p)
		last = max(last, i)
	}
	var out []Period
	for i := int64(0); i <= last; i++ {
		ps := byPeriod[i]
		if len(ps) == 0 {
			continue
		}
		lat := make([]int64, len(ps))
		beh := make([]int64, len(ps))
		for j, p := range ps {
			lat[j], beh[j] = p.lat, p.behind
		}
		slices.Sort(lat)
		slices.Sort(beh)
		out = append(out, Period{From: time.Duration(i) * every, Samples: len(ps),
			P50: time.Duration(lat[len(lat)/2]), P99: time.Duration(lat[len(lat)*99/100]), Max: time.Duration(lat[len(lat)-1]),
			Behind99: time.Duration(beh[len(beh)*99/100])})
	}
	return out
}
