// Command benchworker is the flinkjob worker (cmd/worker) with hack/bench's
// latency step and sink registered (package stamp), for the latency runs
// with worker processes: the bench builds it into its -out directory and
// sets its FLINKJOB_BENCH_LATENCY_* environment (see stamp.Worker). The
// stamps it took are written after the worker returns, before it exits.
// Not shipped.
package main

import (
	"fmt"
	"os"

	"github.com/flinkjob/flinkjob/engine/gctune"
	"github.com/flinkjob/flinkjob/hack/bench/stamp"
	"github.com/flinkjob/flinkjob/worker"
)

func main() {
	gctune.Apply() // as cmd/worker
	flush, err := stamp.Worker()
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchworker: %v\n", err)
		os.Exit(2)
	}
	code := worker.Main(os.Args[1:])
	if err := flush(); err != nil {
		fmt.Fprintf(os.Stderr, "benchworker: writing the stamps: %v\n", err)
		code = max(code, 1)
	}
	os.Exit(code)
}
