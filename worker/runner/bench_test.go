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
	"github.com/flinkjob/flinkjob/worker/control"
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
// of rolling state, parallelism 2, four processes) with checkpoints off,
// with checkpointing set up but no periodic checkpoint (the leader, the
// control connections, the task hooks), and with checkpoints every second
// into a real MinIO, in rotating order in the same run so all see the same
// machine. It reports records/s of each, the ratios to "off" (goal: 1s/off
// above 0.9), and the ratio of the workers' CPU time (user+system), which
// separates work from waiting on a shared machine.
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
	variants := []string{"off", "setup", "1s"}
	wall := map[string]time.Duration{}
	cpu := map[string]time.Duration{}
	checkpoints := 0
	for i := 0; i < b.N; i++ {
		for j := range variants {
			// Rotate the order so a trend in the machine's load hits all.
			v := variants[(i+j)%len(variants)]
			env := testminio.Env(s3)
			base := fmt.Sprintf("s3://%s/bench-%d-%s/", bucket, i, v)
			if v != "off" {
				env = append(env, "FLINKJOB_CHECKPOINT_URL="+base+"checkpoints/", "FLINKJOB_CONTROL_URL="+base+"control/")
			}
			if v == "1s" {
				env = append(env, "FLINKJOB_CHECKPOINT_INTERVAL=1s")
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
			wall[v] += time.Since(start)
			cpu[v] += childrenCPU() - cpu0
			if v != "1s" {
				continue
			}
			ls, err := checkpoint.OpenURL(s3)(base + "control/")
			if err != nil {
				b.Fatal(err)
			}
			var latest control.LatestCheckpoint
			if buf, err := ls.Get(context.Background(), control.LatestObject); err == nil && json.Unmarshal(buf, &latest) == nil {
				checkpoints += int(latest.ID)
			}
		}
	}
	if checkpoints == 0 {
		b.Fatal("no checkpoint completed: the job is too short to measure their cost")
	}
	n := float64(records) * float64(b.N)
	b.ReportMetric(n/wall["off"].Seconds(), "records/s-off")
	b.ReportMetric(n/wall["1s"].Seconds(), "records/s-1s")
	b.ReportMetric(wall["off"].Seconds()/wall["1s"].Seconds(), "1s/off")
	b.ReportMetric(wall["off"].Seconds()/wall["setup"].Seconds(), "setup/off")
	b.ReportMetric(cpu["1s"].Seconds()/cpu["off"].Seconds(), "cpu-1s/off")
	b.ReportMetric(float64(checkpoints)/float64(b.N), "checkpoints/run")
}

// childrenCPU is the user+system time of the waited-for child processes.
func childrenCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
