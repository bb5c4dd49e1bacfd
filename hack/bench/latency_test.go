package main

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/bench"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
)

// A short paced latency run of each kind of query (q1: records derived from
// one event; q5: window results, measured from the event after their
// time), in process and as bench worker processes over gRPC: the sink has
// samples, every latency is positive and below the run's wall time (the
// stamps and arrivals of different processes share the wall clock), and
// the stamp step runs in the source's stage (chained, as the method
// assumes). Not a measurement: the figures are not checked.
func TestLatencyRunners(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the bench worker and runs worker processes")
	}
	c := config{parallelism: 2, samples: "../../config/samples/nexmark", latencySeconds: 2,
		latencyWorker: filepath.Join(t.TempDir(), "benchworker")}
	// q5's windows end every 2 s of event time: 12000 events (12 s) close
	// several before the input ends.
	const rate = 6000
	build := exec.Command("go", "build", "-o", c.latencyWorker, "./benchworker")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the bench worker: %v\n%s", err, out)
	}
	for _, q := range []string{"q1", "q5"} {
		job, err := latencyJob(c, q, bench.NexmarkOptions{Events: 100, Parallelism: 2, Sink: "bench-latency"})
		if err != nil {
			t.Fatal(err)
		}
		pl, err := plan.New(job, plan.Options{Mode: spec.Streaming})
		if err != nil {
			t.Fatal(err)
		}
		var chained bool
		for _, st := range pl.Stages {
			for _, n := range st.Chain {
				chained = chained || n.Name == "events" && st.Head().Name == "events-gen"
			}
		}
		if !chained {
			t.Fatalf("%s: the stamp step is not in the source's stage", q)
		}
		for _, rn := range []string{inProcess, processes} {
			due, gen, wall, err := latencyRun(c, q, rn, rate, true)
			if err != nil {
				t.Fatalf("%s %s: %v", q, rn, err)
			}
			if len(due) == 0 || len(gen) != len(due) {
				t.Fatalf("%s %s: %d latencies counted from due time, %d from generation; want some of each, as many", q, rn, len(due), len(gen))
			}
			for i := range due {
				for _, d := range []time.Duration{due[i], gen[i]} {
					if d <= 0 || d >= wall {
						t.Fatalf("%s %s: latency %v, want one in (0, %v) (the run's wall time)", q, rn, d, wall)
					}
				}
			}
			t.Logf("%s %s: %d samples in %v", q, rn, len(due), wall)
		}
	}
}
