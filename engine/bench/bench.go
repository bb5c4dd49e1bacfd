// Package bench holds helpers for the engine's throughput benchmarks
// (GitHub issue #2): a counting Go sink, inline input generation, and a
// harness that runs an engine job and a hand-written Go loop computing the
// same result on the same input, and reports records/s, allocs/record and
// the engine/handwritten throughput ratio.
//
// Each benchmark is one function with two sub-benchmarks, "handwritten"
// (run first) and "engine". Every iteration processes the whole input (a
// fixed number of records), so ns/op is the time for that many records; the
// per-record figures are reported as extra metrics:
//
//	records/s           wall-clock throughput
//	records/cpu-s       throughput per CPU second of the whole process
//	                    (STREAMING runs one goroutine per stage and GC runs
//	                    concurrently, so this is the per-core figure)
//	allocs/record       heap allocations per input record
//	B/record            heap bytes allocated per input record
//	GCs/op              garbage collections per run (the benchmark's input
//	                    stays live, so each one marks it: allocations cost
//	                    the engine GC work the hand-written loop never does)
//	engine/handwritten  engine records/s over hand-written records/s (wall)
//	engine/handwritten-cpu  the same over records/cpu-s
//
// Before timing, the engine's output is checked against the hand-written
// loop's (record count and a checksum computed by the sink).
package bench

import (
	"context"
	"fmt"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// Result is what a run produced: how many records reached the sink, and a
// checksum over them (computed only when checking).
type Result struct {
	Count int64
	Sum   int64
}

func (r Result) String() string { return fmt.Sprintf("%d records, checksum %d", r.Count, r.Sum) }

// CountSink is a Go sink (register it with udf.RegisterSink) that counts
// the records it receives. When Checksum is set it also sums Checksum over
// the record values; the harness sets it only for the checking run so timed
// runs measure a sink that just counts.
type CountSink struct {
	n, sum   atomic.Int64
	Checksum func(v any) int64
}

// Reset zeroes the counts.
func (s *CountSink) Reset() { s.n.Store(0); s.sum.Store(0) }

// Result returns what the writers closed so far received.
func (s *CountSink) Result() Result { return Result{Count: s.n.Load(), Sum: s.sum.Load()} }

// Open implements connector.Sink.
func (s *CountSink) Open(context.Context, int, int) (connector.Writer, error) {
	return &countWriter{s: s, sum: s.Checksum}, nil
}

type countWriter struct {
	s      *CountSink
	sum    func(any) int64
	n, acc int64
}

var _ connector.ValueReleaser = (*countWriter)(nil)

// ReleasesValues: a record is counted (and summed) before Write returns.
func (w *countWriter) ReleasesValues() bool { return true }

// AcceptsRows (operator.RowsAware): the checksums read fields with Int,
// which reads rows, so the benchmarks measure the engine's own values
// rather than a conversion to maps for the sink.
func (w *countWriter) AcceptsRows() bool { return true }

func (w *countWriter) Write(r *value.Record) error {
	w.n++
	if w.sum != nil {
		w.acc += w.sum(r.Value)
	}
	return nil
}

func (w *countWriter) Close() error {
	w.s.n.Add(w.n)
	w.s.sum.Add(w.acc)
	return nil
}

func (w *countWriter) Abort() {}

// Input is a generated input: the JSON elements of an inline source and
// the same values parsed once for the hand-written loop.
type Input struct {
	Elements []spec.Value
	Values   []any
}

// Records generates n records with gen, which appends the JSON of record i
// to b. The hand-written values are parsed with value.FromJSON, as the
// elements connector parses them, so both sides see identical values.
func Records(n int, gen func(b []byte, i int) []byte) Input {
	in := Input{Elements: make([]spec.Value, n), Values: make([]any, n)}
	var buf []byte
	for i := 0; i < n; i++ {
		buf = gen(buf[:0], i)
		raw := append([]byte(nil), buf...)
		in.Elements[i] = spec.Value{Raw: raw}
		v, err := value.FromJSON(raw)
		if err != nil {
			panic(fmt.Sprintf("bench: record %d: %v", i, err))
		}
		in.Values[i] = v
	}
	return in
}

// Case is one comparison.
type Case struct {
	// Records is the number of input records each iteration processes.
	Records int
	// Hand is the hand-written loop over the input; it returns the result
	// with the checksum the engine's sink computes.
	Hand func() Result
	// Engine runs the job once; check says the sink must compute its
	// checksum.
	Engine func(check bool) (Result, error)
}

var (
	handMu   sync.Mutex
	handRate = map[string]rates{}
)

type rates struct{ wall, cpu float64 }

// Compare runs the sub-benchmarks "handwritten" and "engine" of c.
func Compare(b *testing.B, c Case) {
	b.Helper()
	want := c.Hand()
	if want.Count == 0 {
		b.Fatalf("hand-written loop produced nothing")
	}
	name := b.Name()
	b.Run("handwritten", func(b *testing.B) {
		r := measure(b, "handwritten", c.Records, func() (Result, error) { return c.Hand(), nil }, want.Count)
		handMu.Lock()
		handRate[name] = r
		handMu.Unlock()
	})
	b.Run("engine", func(b *testing.B) {
		got, err := c.Engine(true)
		if err != nil {
			b.Fatalf("engine run: %v", err)
		}
		if got != want {
			b.Fatalf("engine produced %v, hand-written loop %v", got, want)
		}
		r := measure(b, "engine", c.Records, func() (Result, error) { return c.Engine(false) }, want.Count)
		handMu.Lock()
		h, ok := handRate[name]
		handMu.Unlock()
		if !ok {
			// The handwritten sub-benchmark was filtered out: time it here.
			h = quickRate(c)
		}
		b.ReportMetric(r.wall/h.wall, "engine/handwritten")
		b.ReportMetric(r.cpu/h.cpu, "engine/handwritten-cpu")
	})
}

// measure times b.N runs of fn over records records each and reports the
// per-record metrics. The timed runs carry the pprof label bench=<side> (so
// do the goroutines they start), so a CPU profile can leave out the setup:
// go tool pprof -tagfocus=bench=engine.
func measure(b *testing.B, side string, records int, fn func() (Result, error), wantCount int64) rates {
	defer pprof.SetGoroutineLabels(context.Background())
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("bench", side)))
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0 := cpuTime()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		got, err := fn()
		if err != nil {
			b.Fatal(err)
		}
		if got.Count != wantCount {
			b.Fatalf("run %d: %d records reached the sink, want %d", i, got.Count, wantCount)
		}
	}
	wall := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	runtime.ReadMemStats(&m1)
	total := float64(records) * float64(b.N)
	r := rates{wall: total / wall.Seconds(), cpu: total / cpu.Seconds()}
	b.ReportMetric(r.wall, "records/s")
	b.ReportMetric(r.cpu, "records/cpu-s")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/total, "allocs/record")
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/total, "B/record")
	b.ReportMetric(float64(m1.NumGC-m0.NumGC)/float64(b.N), "GCs/op")
	return r
}

// quickRate measures the hand-written loop for about 300ms.
func quickRate(c Case) rates {
	runtime.GC()
	cpu0 := cpuTime()
	start := time.Now()
	n := 0
	for time.Since(start) < 300*time.Millisecond {
		c.Hand()
		n++
	}
	total := float64(c.Records) * float64(n)
	return rates{wall: total / time.Since(start).Seconds(), cpu: total / (cpuTime() - cpu0).Seconds()}
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Int reads an integer field of a map record, a map or a row (0 when
// absent).
func Int(v any, field string) int64 {
	f, _ := value.Field(v, field)
	i, _ := f.(int64)
	return i
}
