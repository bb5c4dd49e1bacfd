package task

import (
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
)

// TestBufferTimeoutFromSpec: the job's spec.bufferTimeout sets a
// subtask's BufferTimeout unless the caller set one; without either it is
// DefaultBufferTimeout.
func TestBufferTimeoutFromSpec(t *testing.T) {
	job := func(bt spec.Duration) *plan.Plan {
		p, err := plan.New(&spec.Job{RuntimeMode: spec.Streaming, BufferTimeout: bt, Steps: []spec.Step{
			{Name: "src", Source: &spec.Source{Elements: []spec.Value{{Raw: []byte("1")}}}},
			{Name: "out", Sink: &spec.Sink{Discard: &spec.DiscardSink{}}},
		}}, plan.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		spec   spec.Duration
		caller time.Duration
		want   time.Duration
	}{
		{"", 0, DefaultBufferTimeout},
		{"20ms", 0, 20 * time.Millisecond},
		{"20ms", time.Millisecond, time.Millisecond},
	} {
		cfg := Config{Plan: job(c.spec), BufferTimeout: c.caller}
		cfg.defaults()
		if cfg.BufferTimeout != c.want {
			t.Errorf("spec %q, caller %v: BufferTimeout %v, want %v", c.spec, c.caller, cfg.BufferTimeout, c.want)
		}
	}
}
