package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/checkpoint"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/internal/testminio"
	"github.com/flinkjob/flinkjob/worker"
	"github.com/flinkjob/flinkjob/worker/runner"
)

// BenchmarkStreamingExchange runs the same two-stage STREAMING job (a
// datagen source, a REBALANCE shuffle, a discard sink; parallelism 1) as
// two worker processes exchanging over gRPC on loopback, and in process
// with engine/local's bounded channels. ns/op is one whole job (process
// start-up included for the processes); records/s and MB/s are over the
// job, MB counting the encoded bytes the exchange carried.
func BenchmarkStreamingExchange(b *testing.B) {
	const records = 500_000
	job := loadJob(b, fmt.Sprintf(`
runtimeMode: STREAMING
parallelism: 1
steps:
  - name: gen
    source:
      datagen:
        value: "{'id': seq, 'name': 'record-payload-0123456789-0123456789-0123456789', 'v': seq * 3}"
        count: %d
  - name: out
    partitioning: REBALANCE
    sink: {discard: {}}
`, records))
	var wire int64 // encoded bytes per job, measured by the processes run
	b.Run("processes-grpc", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			dir := b.TempDir()
			r, err := runner.New(job, runner.Options{Worker: workerBin, Dir: dir})
			if err != nil {
				b.Fatal(err)
			}
			if err := r.Run(context.Background()); err != nil {
				b.Fatal(err)
			}
			var res worker.Result
			buf, err := os.ReadFile(filepath.Join(dir, "term-0-0-0.json"))
			if err == nil {
				err = json.Unmarshal(buf, &res)
			}
			if err != nil || res.RecordsOut != records {
				b.Fatalf("producer: %+v %v", res, err)
			}
			wire = res.BytesOut
		}
		b.SetBytes(wire)
		b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("in-process-channels", func(b *testing.B) {
		p, err := plan.New(job, plan.Options{Mode: spec.Streaming})
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < b.N; i++ {
			if err := local.Run(context.Background(), p, local.Options{Env: connector.Env{}}); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(wire)
		b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
}

// BenchmarkStreamingCheckpointOverhead measures what checkpoints cost a
// STREAMING job run as worker processes: the same keyed job (10,000 keys
// of rolling state, parallelism 2, four processes) with checkpoints every
// second into a real MinIO, and with checkpoints off, alternating in the
// same run so both see the same machine. It reports records/s of each and
// their ratio (goal: on/off above 0.9).
func BenchmarkStreamingCheckpointOverhead(b *testing.B) {
	const records = 3_000_000
	job := loadJob(b, fmt.Sprintf(`
runtimeMode: STREAMING
parallelism: 2
steps:
  - name: gen
    source:
      datagen: {value: "{'k': seq %% 10000, 'n': seq}", count: %d}
  - name: sums
    keyBy: record.k
    reduce: "{'k': acc.k, 'n': acc.n + record.n}"
  - name: out
    sink: {discard: {}}
`, records))
	s3 := testminio.Start(b)
	bucket := testminio.Bucket(b, s3)
	var cpuOn, cpuOff time.Duration
	run := func(i int, on bool) time.Duration {
		env := testminio.Env(s3)
		if on {
			base := fmt.Sprintf("s3://%s/bench-%d/", bucket, i)
			env = append(env, "FLINKJOB_CHECKPOINT_INTERVAL=1s", "FLINKJOB_CHECKPOINT_URL="+base+"checkpoints/",
				"FLINKJOB_CONTROL_URL="+base+"control/")
		}
		r, err := runner.New(job, runner.Options{Worker: workerBin, Dir: b.TempDir(), Env: env})
		if err != nil {
			b.Fatal(err)
		}
		cpu0 := childrenCPU()
		start := time.Now()
		if err := r.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		if on {
			cpuOn += childrenCPU() - cpu0
		} else {
			cpuOff += childrenCPU() - cpu0
		}
		return took
	}
	var off, on time.Duration
	checkpoints := 0
	for i := 0; i < b.N; i++ {
		// Alternate the order so a trend in the machine's load hits both.
		if i%2 == 0 {
			off += run(i, false)
			on += run(i, true)
		} else {
			on += run(i, true)
			off += run(i, false)
		}
		ls, err := checkpoint.OpenURL(s3)(fmt.Sprintf("s3://%s/bench-%d/control/", bucket, i))
		if err != nil {
			b.Fatal(err)
		}
		var latest worker.LatestCheckpoint
		if buf, err := ls.Get(context.Background(), worker.ControlLatest); err == nil && json.Unmarshal(buf, &latest) == nil {
			checkpoints += int(latest.ID)
		}
	}
	if checkpoints == 0 {
		b.Fatal("no checkpoint completed: the job is too short to measure their cost")
	}
	n := float64(records) * float64(b.N)
	b.ReportMetric(n/off.Seconds(), "records/s-off")
	b.ReportMetric(n/on.Seconds(), "records/s-1s")
	b.ReportMetric(off.Seconds()/on.Seconds(), "on/off")
	b.ReportMetric(float64(checkpoints)/float64(b.N), "checkpoints/run")
	// CPU of the worker processes (user+system): what checkpoints cost in
	// work, as opposed to waiting.
	b.ReportMetric(cpuOn.Seconds()/cpuOff.Seconds(), "cpu-on/off")
}

// childrenCPU is the user+system time of the waited-for child processes.
func childrenCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
