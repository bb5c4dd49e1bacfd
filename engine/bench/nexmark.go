package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/flinkjob/flinkjob/engine/spec"
)

// NexmarkQueries are the Nexmark queries with a manifest under
// config/samples/nexmark/, in benchmark order.
var NexmarkQueries = []string{"q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8"}

// FlinkPerCore is Flink 1.13's published throughput per core for each
// query, in events/s (nexmark/nexmark's README: 3 machines x 8 cores,
// RocksDB, checkpoints on). Flink SQL cannot run q6, so it has none.
var FlinkPerCore = map[string]float64{
	"q0": 155_000, "q1": 158_000, "q2": 175_000, "q3": 152_000,
	"q4": 34_300, "q5": 22_100, "q7": 12_300, "q8": 146_000,
}

// NexmarkOptions adapt a sample query for a test or a benchmark run.
type NexmarkOptions struct {
	// Events bounds the source; 0 or negative makes it unbounded.
	Events int64
	Seed   int64
	// FirstEventRate is the event-time rate (0: the sample's).
	FirstEventRate int64
	// RatePerSecond limits the source's wall-clock rate (0: unlimited).
	RatePerSecond int64
	// Parallelism overrides the job's (0: the sample's).
	Parallelism int32
	// Sink, if set, replaces the sink step's connector by `call: Sink`.
	Sink string
	// MaxOutOfOrderness, if set, replaces the source's watermark bound.
	MaxOutOfOrderness spec.Duration
}

// NexmarkJob reads the manifest of query q from dir (config/samples/nexmark)
// and adapts it: the source step "events" and the sink step "out" are the
// ones every sample has.
func NexmarkJob(dir, q string, o NexmarkOptions) (*spec.Job, error) {
	path := filepath.Join(dir, q+".yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m struct {
		Spec spec.Job `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	job := &m.Spec
	if o.Parallelism > 0 {
		job.Parallelism = o.Parallelism
	}
	var src, sink bool
	for i := range job.Steps {
		s := &job.Steps[i]
		switch {
		case s.Name == "events" && s.Source != nil && s.Source.Nexmark != nil:
			src = true
			n := s.Source.Nexmark
			n.Events = nil
			if o.Events > 0 {
				ev := o.Events
				n.Events = &ev
			}
			n.Seed = o.Seed
			n.RatePerSecond = o.RatePerSecond
			if o.FirstEventRate > 0 {
				n.FirstEventRate = o.FirstEventRate
			}
			if o.MaxOutOfOrderness != "" {
				s.Source.Watermarks = &spec.Watermarks{MaxOutOfOrderness: o.MaxOutOfOrderness}
			}
		case s.Name == "out" && s.Sink != nil:
			sink = true
			if o.Sink != "" {
				s.Sink = &spec.Sink{Call: o.Sink}
			}
		}
	}
	if !src || !sink {
		return nil, fmt.Errorf("%s: want a nexmark source step named events and a sink step named out", path)
	}
	return job, nil
}

// CPUTime is the process's user and system CPU time so far.
func CPUTime() time.Duration { return cpuTime() }
