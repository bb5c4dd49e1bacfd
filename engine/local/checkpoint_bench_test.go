package local_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/bench"
	"github.com/flinkjob/flinkjob/engine/checkpoint"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// The checkpoint overhead benchmark (issue #7): the same unbounded
// STREAMING job, a rolling sum over 10k or 100k keys (every checkpoint
// snapshots all keys' state: snapshots are full and synchronous), runs for
// the same wall time with checkpoints off and every second, alternately in
// the same process, and reports the throughput of each and their ratio
// (goal: > 0.9).
//
//	go test ./engine/local -run '^$' -bench CheckpointOverhead -benchtime 3x
//
// Metrics: off-rec/s and ckpt-rec/s (records into the keyed step per
// second), ckpt/off (their ratio), ckpt/off-cpu (the ratio of records per
// CPU-second of the process, steadier on a shared machine),
// checkpoints/run, state-MB (the size of the last checkpoint's keyed
// snapshots), %snapshot (the share of the keyed subtasks' wall time spent
// taking snapshots, during which they process nothing: the overhead's
// main part, measured inside the run, so less exposed to machine load).
const ckptBenchJob = `
parallelism: 2
steps:
  - name: gen
    source:
      datagen: {value: "{'k': seq % KEYS, 'v': seq % 1000}"}
  - name: sums
    keyBy: record.k
    reduce: "{'k': acc.k, 'v': acc.v + record.v}"
  - name: out
    sink: {call: out}
`

// dropSink keeps nothing: the benchmark counts the keyed step's input
// (Progress). It is not connector's discard sink, which declares
// ReleasesValues and so would change what the job does.
type dropSink struct{}

func (dropSink) Open(context.Context, int, int) (connector.Writer, error) { return dropWriter{}, nil }

type dropWriter struct{}

func (dropWriter) Write(*value.Record) error { return nil }
func (dropWriter) Close() error              { return nil }
func (dropWriter) Abort()                    {}

func BenchmarkCheckpointOverhead(b *testing.B) {
	for _, keys := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("keys=%d", keys), func(b *testing.B) {
			benchCheckpointOverhead(b, strings.Replace(ckptBenchJob, "KEYS", fmt.Sprint(keys), 1))
		})
	}
}

func benchCheckpointOverhead(b *testing.B, job string) {
	const d = 6 * time.Second
	run := func(interval time.Duration) (recPerS, recPerCPU float64, checkpoints int64, stateBytes int64, snapShare float64) {
		dir := b.TempDir()
		var n atomic.Int64
		opts := local.Options{CheckpointInterval: interval, CheckpointDir: dir, OnCheckpoint: func(int64) { n.Add(1) }}
		opts.Env.CallSink = func(string) (connector.Sink, bool) { return dropSink{}, true }
		ex, err := local.New(newPlan(b, job, spec.Streaming), opts)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		start, cpu0 := time.Now(), bench.CPUTime()
		err = ex.Run(ctx)
		el, cpu := time.Since(start), bench.CPUTime()-cpu0
		if ctx.Err() == nil {
			b.Fatalf("the unbounded job ended: %v", err)
		}
		var in int64
		for _, p := range ex.Progress() {
			if p.Stage.Head().Name == "sums" {
				in = p.RecordsIn
				// The share of the keyed subtasks' time spent in
				// snapshots (they process nothing meanwhile).
				snapShare = p.SnapshotTime.Seconds() / (el.Seconds() * float64(p.Stage.Parallelism))
			}
		}
		if id, ok, _ := checkpoint.Latest(context.Background(), checkpoint.LocalStore{Dir: dir}); ok {
			ents, _ := os.ReadDir(filepath.Join(dir, fmt.Sprintf("chk-%d", id), "keyed", "sums"))
			for _, e := range ents {
				if fi, err := e.Info(); err == nil {
					stateBytes += fi.Size()
				}
			}
		}
		return float64(in) / el.Seconds(), float64(in) / cpu.Seconds(), n.Load(), stateBytes, snapShare
	}
	var off, on, offCPU, onCPU, share float64
	var cps, size int64
	for i := 0; i < b.N; i++ {
		o, oc, _, _, _ := run(0)
		c, cc, k, s, sh := run(time.Second)
		share += sh
		off += o
		on += c
		offCPU += oc
		onCPU += cc
		cps += k
		size = s
		b.Logf("pair %d: off %.0f rec/s (%.0f rec/cpu-s), checkpoints every 1s %.0f rec/s (%.0f rec/cpu-s, %d checkpoints, %.1f%% of the keyed subtasks' time in snapshots): ratio %.3f wall, %.3f cpu",
			i, o, oc, c, cc, k, 100*sh, c/o, cc/oc)
	}
	b.ReportMetric(off/float64(b.N), "off-rec/s")
	b.ReportMetric(on/float64(b.N), "ckpt-rec/s")
	b.ReportMetric(on/off, "ckpt/off")
	b.ReportMetric(onCPU/offCPU, "ckpt/off-cpu")
	b.ReportMetric(100*share/float64(b.N), "%snapshot")
	b.ReportMetric(float64(cps)/float64(b.N), "checkpoints/run")
	b.ReportMetric(float64(size)/1e6, "state-MB")
}
