package local_test

import (
	"context"
	"flag"
	"runtime"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/bench"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/plan"
)

var readAllFields = flag.Bool("read-all-fields", false, "BenchmarkNexmark: sources build whole events (no projection pushdown)")

// BenchmarkNexmark runs each Nexmark sample query in process, in both
// modes, at parallelism 1, over 200,000 events at Flink's benchmark
// event-time rate (10M/s); one op is one whole run. Metrics per event:
// events/cpu-s (the process's CPU time, GC included), allocs/event and
// B/event. hack/bench runs the same queries at larger sizes, also as
// worker processes; this one is for profiles:
//
//	go test ./engine/local -run '^$' -bench 'Nexmark/q4/STREAMING' -cpuprofile cpu.out
//
// -read-all-fields turns projection pushdown off (the source then builds
// whole events), for the ratio of the two.
func BenchmarkNexmark(b *testing.B) {
	const events = 200_000
	for _, q := range bench.NexmarkQueries {
		for _, mode := range modes {
			b.Run(q+"/"+string(mode), func(b *testing.B) {
				job, err := bench.NexmarkJob("../../config/samples/nexmark", q, bench.NexmarkOptions{
					Events: events, Seed: 1, FirstEventRate: 10_000_000, Parallelism: 1, Sink: "out"})
				if err != nil {
					b.Fatal(err)
				}
				p, err := plan.New(job, plan.Options{Mode: mode, ReadAllFields: *readAllFields})
				if err != nil {
					b.Fatal(err)
				}
				sink := &bench.CountSink{}
				opts := local.Options{WorkDir: b.TempDir(), Env: connector.Env{CallSink: func(string) (connector.Sink, bool) { return sink, true }}}
				runtime.GC()
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				cpu0 := bench.CPUTime()
				start := time.Now()
				for b.Loop() {
					if err := local.Run(context.Background(), p, opts); err != nil {
						b.Fatal(err)
					}
				}
				cpu, wall := bench.CPUTime()-cpu0, time.Since(start)
				runtime.ReadMemStats(&m1)
				total := float64(events) * float64(b.N)
				b.ReportMetric(total/cpu.Seconds(), "events/cpu-s")
				b.ReportMetric(total/wall.Seconds(), "events/s")
				b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/total, "allocs/event")
				b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/total, "B/event")
				if sink.Result().Count == 0 {
					b.Fatalf("no output")
				}
			})
		}
	}
}
