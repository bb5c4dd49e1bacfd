package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
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
