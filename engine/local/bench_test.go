package local_test

// Throughput benchmarks of the in-process executor against hand-written Go
// loops computing the same result on the same input (GitHub issue #2).
//
//	go test ./engine/local -run '^$' -bench . -benchtime 1x   # quick
//	go test ./engine/local -run '^$' -bench Stateless          # one case
//	go test ./engine/local -run '^$' -bench 'Window/engine' -cpuprofile cpu.out
//	go tool pprof -tagfocus=bench=engine local.test cpu.out   # timed runs only
//
// Every job runs at parallelism 1 so the comparison is per core (STREAMING
// still runs one goroutine per stage: see records/cpu-s). The source is an
// inline elements source parsed once when the executor is created, which is
// reused for every iteration, so reading the input costs a slice index per
// record. The sink is a Go sink that counts. See package engine/bench for
// the metrics reported.

import (
	"context"
	"math"
	"strconv"
	"sync"
	"testing"

	"github.com/flinkjob/flinkjob/engine/bench"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/udf"
)

const (
	benchKeys       = 10_000 // keys of the keyed reduce benchmarks (field k)
	benchWindowKeys = 1_000  // keys of the window benchmark (field g)
	benchPerMs      = 10     // records per event-time millisecond
	benchJitter     = 50     // ms of out-of-orderness in ts (< the bound below)
)

// benchRecord is record i: {"id", "k", "g", "v", "ts"}. ts grows by one ms
// every benchPerMs records, shifted by up to benchJitter ms, so timestamps
// are out of order by less than the 100ms watermark bound: no record is late.
func benchRecord(b []byte, i int) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `,"k":`...)
	b = strconv.AppendInt(b, int64(i%benchKeys), 10)
	b = append(b, `,"g":`...)
	b = strconv.AppendInt(b, int64(i%benchWindowKeys), 10)
	b = append(b, `,"v":`...)
	b = strconv.AppendInt(b, int64(i*7919%1000), 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, int64(i/benchPerMs+i*37%benchJitter), 10)
	return append(b, '}')
}

var (
	benchInputsMu sync.Mutex
	benchInputs   = map[int]bench.Input{}
)

func benchInput(n int) bench.Input {
	benchInputsMu.Lock()
	defer benchInputsMu.Unlock()
	in, ok := benchInputs[n]
	if !ok {
		in = bench.Records(n, benchRecord)
		benchInputs[n] = in
	}
	return in
}

// The per-record logic of the stateless chain, as plain Go functions: the
// `call:` steps run them through udf, the hand-written loop calls them directly.
// They are not inlined so that both sides pay the same for them (inlined
// into the loop, the map benchEnrich builds would not escape).

//go:noinline
func benchEnrich(v any) (any, error) {
	m := v.(map[string]any)
	return map[string]any{"id": m["id"], "v": m["v"].(int64)*3 + 1}, nil
}

//go:noinline
func benchKeepEven(v any) (bool, error) { return v.(map[string]any)["v"].(int64)%2 == 0, nil }

//go:noinline
func benchProject(v any) (any, error) {
	m := v.(map[string]any)
	return m["v"].(int64) + m["id"].(int64), nil
}

func init() {
	udf.Map("bench-enrich", benchEnrich)
	udf.Filter("bench-keep-even", benchKeepEven)
	udf.Map("bench-project", benchProject)
}

// benchJob builds a job: an elements source (with extra source options),
// the given steps, and a counting Go sink named sink.
func benchJob(in bench.Input, src spec.Source, sink string, steps ...spec.Step) *spec.Job {
	src.Elements = in.Elements
	j := &spec.Job{Parallelism: 1, Steps: []spec.Step{{Name: "src", Source: &src}}}
	j.Steps = append(j.Steps, steps...)
	j.Steps = append(j.Steps, spec.Step{Name: "out", Sink: &spec.Sink{Call: sink}})
	return j
}

// engineRunner plans the job once and creates the executor once (which
// parses the elements); each call runs it to the end.
func engineRunner(b *testing.B, job *spec.Job, mode spec.RuntimeMode, sinkName string, checksum func(any) int64) func(bool) (bench.Result, error) {
	b.Helper()
	sink := &bench.CountSink{}
	udf.RegisterSink(sinkName, sink)
	p, err := plan.New(job, plan.Options{Mode: mode})
	if err != nil {
		b.Fatalf("plan: %v", err)
	}
	if len(p.Stages) == 0 || p.Stages[0].Parallelism != 1 {
		b.Fatalf("unexpected plan:\n%s", p)
	}
	opts := local.Options{}
	if mode == spec.Batch {
		// An explicit work dir survives the run, so the executor can be reused;
		// every run overwrites the same shuffle files.
		opts.WorkDir = b.TempDir()
	}
	e, err := local.New(p, opts)
	if err != nil {
		b.Fatalf("executor: %v", err)
	}
	return func(check bool) (bench.Result, error) {
		sink.Reset()
		sink.Checksum = nil
		if check {
			sink.Checksum = checksum
		}
		err := e.Run(context.Background())
		return sink.Result(), err
	}
}

func intValue(v any) int64 { i, _ := v.(int64); return i }

// a. Stateless chain map -> filter -> map with Go functions (`call:` steps):
// the hand-written loop calls the same functions, so the ratio is the
// engine's per-record overhead.
func BenchmarkStatelessGo(b *testing.B) {
	const n = 200_000
	in := benchInput(n)
	job := benchJob(in, spec.Source{}, "bench-stateless-go",
		spec.Step{Name: "enrich", Call: "bench-enrich"},
		spec.Step{Name: "even", Call: "bench-keep-even"},
		spec.Step{Name: "project", Call: "bench-project"})
	bench.Compare(b, bench.Case{
		Records: n,
		Engine:  engineRunner(b, job, spec.Streaming, "bench-stateless-go", intValue),
		Hand: func() (r bench.Result) {
			for _, v := range in.Values {
				e, err := benchEnrich(v)
				if err != nil {
					panic(err)
				}
				if keep, err := benchKeepEven(e); err != nil || !keep {
					continue
				}
				out, err := benchProject(e)
				if err != nil {
					panic(err)
				}
				r.Count++
				r.Sum += out.(int64)
			}
			return r
		},
	})
}

// handStateless is the stateless chain in plain Go.
func handStateless(vals []any) (r bench.Result) {
	for _, v := range vals {
		m := v.(map[string]any)
		x := m["v"].(int64)*3 + 1
		if x%2 != 0 {
			continue
		}
		r.Count++
		r.Sum += x + m["id"].(int64)
	}
	return r
}

// a'. The same chain in CEL: the ratio shows what CEL evaluation costs.
func BenchmarkStatelessCEL(b *testing.B) {
	const n = 100_000
	in := benchInput(n)
	job := benchJob(in, spec.Source{}, "bench-stateless-cel",
		spec.Step{Name: "enrich", Map: "{'id': record.id, 'v': record.v * 3 + 1}"},
		spec.Step{Name: "even", Filter: "record.v % 2 == 0"},
		spec.Step{Name: "project", Map: "record.v + record.id"})
	bench.Compare(b, bench.Case{
		Records: n,
		Engine:  engineRunner(b, job, spec.Streaming, "bench-stateless-cel", intValue),
		Hand:    func() bench.Result { return handStateless(in.Values) },
	})
}

// handRollingSum is a rolling sum per key emitting every update.
func handRollingSum(vals []any) (r bench.Result) {
	sums := make(map[int64]int64, benchKeys)
	for _, v := range vals {
		m := v.(map[string]any)
		k := m["k"].(int64)
		s := sums[k] + m["v"].(int64)
		sums[k] = s
		r.Count++
		r.Sum += s
	}
	return r
}

// b. Keyed rolling reduce (STREAMING): sum per key over 10k keys; every
// record emits the key's updated sum.
func BenchmarkKeyedReduce(b *testing.B) {
	const n = 100_000
	in := benchInput(n)
	job := benchJob(in, spec.Source{}, "bench-keyed-reduce",
		spec.Step{Name: "sum", KeyBy: "record.k", Reduce: "{'k': acc.k, 'v': acc.v + record.v}"})
	bench.Compare(b, bench.Case{
		Records: n,
		Engine: engineRunner(b, job, spec.Streaming, "bench-keyed-reduce",
			func(v any) int64 { return bench.Int(v, "v") }),
		Hand: func() bench.Result { return handRollingSum(in.Values) },
	})
}

// b'. The same rolling sum with aggregate (sum field) instead of a CEL reduce.
func BenchmarkKeyedAggregateSum(b *testing.B) {
	const n = 200_000
	in := benchInput(n)
	job := benchJob(in, spec.Source{}, "bench-keyed-agg",
		spec.Step{Name: "sum", KeyBy: "record.k", Aggregate: &spec.Aggregate{Fields: []spec.AggregateField{{Name: "v", Sum: "record.v"}}}})
	bench.Compare(b, bench.Case{
		Records: n,
		Engine: engineRunner(b, job, spec.Streaming, "bench-keyed-agg",
			func(v any) int64 { return bench.Int(v, "v") }),
		Hand: func() bench.Result { return handRollingSum(in.Values) },
	})
}

// c. Tumbling event-time window (1s) counting per key (1k keys), bounded
// out-of-orderness 100ms: ~10 records per key and window.
func BenchmarkWindowCount(b *testing.B) {
	const n = 200_000
	const size, bound = 1000, 100
	in := benchInput(n)
	job := benchJob(in, spec.Source{Timestamp: "record.ts", Watermarks: &spec.Watermarks{MaxOutOfOrderness: "100ms"}},
		"bench-window",
		spec.Step{Name: "count", KeyBy: "record.g", Window: &spec.Window{Type: spec.Tumbling, Size: "1s",
			Aggregate: &spec.Aggregate{Fields: []spec.AggregateField{{Name: "n", Count: true}}}}})
	checksum := func(v any) int64 {
		return bench.Int(v, "n")*(bench.Int(v, "key")+1) + bench.Int(v, "windowStart")
	}
	bench.Compare(b, bench.Case{
		Records: n,
		Engine:  engineRunner(b, job, spec.Streaming, "bench-window", checksum),
		Hand: func() (r bench.Result) {
			open := map[int64]map[int64]int64{} // window start -> key -> count
			fire := func(wm int64) {
				for start, counts := range open {
					if start+size-1 > wm {
						continue
					}
					for k, c := range counts {
						r.Count++
						r.Sum += c*(k+1) + start
					}
					delete(open, start)
				}
			}
			maxTs, wm := int64(math.MinInt64), int64(math.MinInt64)
			for _, v := range in.Values {
				m := v.(map[string]any)
				ts, g := m["ts"].(int64), m["g"].(int64)
				start := ts - ts%size
				if start+size-1 <= wm {
					continue // late
				}
				counts := open[start]
				if counts == nil {
					counts = make(map[int64]int64, benchWindowKeys)
					open[start] = counts
				}
				counts[g]++
				if ts > maxTs {
					maxTs = ts
					if w := maxTs - bound - 1; w > wm {
						wm = w
						fire(wm)
					}
				}
			}
			fire(math.MaxInt64)
			return r
		},
	})
}

// d. BATCH keyed reduce: the source stage sorts its output by key (extsort)
// into the local shuffle store, the reduce stage reads it back and emits
// one sum per key. The hand-written loop is a hash aggregation.
func BenchmarkBatchSortReduce(b *testing.B) {
	const n = 100_000
	in := benchInput(n)
	job := benchJob(in, spec.Source{}, "bench-batch-reduce",
		spec.Step{Name: "sum", KeyBy: "record.k", Reduce: "{'k': acc.k, 'v': acc.v + record.v}"})
	bench.Compare(b, bench.Case{
		Records: n,
		Engine: engineRunner(b, job, spec.Batch, "bench-batch-reduce",
			func(v any) int64 { return bench.Int(v, "v") }),
		Hand: func() (r bench.Result) {
			sums := make(map[int64]int64, benchKeys)
			for _, v := range in.Values {
				m := v.(map[string]any)
				sums[m["k"].(int64)] += m["v"].(int64)
			}
			for _, s := range sums {
				r.Count++
				r.Sum += s
			}
			return r
		},
	})
}
