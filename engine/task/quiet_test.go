package task_test

import (
	"context"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/checkpoint"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/enginetest"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/task"
)

// quietSource never produces a value: a read blocks until its context ends.
type quietSource struct{}

func (quietSource) Bounded() bool { return false }
func (quietSource) Open(context.Context, int, int) (connector.Reader, error) {
	return quietReader{}, nil
}

type quietReader struct{}

func (quietReader) Read(ctx context.Context, _ int, _ func(any)) error {
	<-ctx.Done()
	return ctx.Err()
}
func (quietReader) Close() error              { return nil }
func (quietReader) Position() ([]byte, error) { return []byte("0"), nil }
func (quietReader) Seek([]byte) error         { return nil }

// A source with no data (and no idleness configured) still starts the
// barrier it is asked for: its reads time out while checkpoints are on.
func TestQuietSourceStartsBarriers(t *testing.T) {
	p, err := plan.New(enginetest.Parse(t, `
parallelism: 1
steps:
  - name: quiet
    source: {datagen: {value: "seq"}}
  - name: out
    sink: {call: out}
`), plan.Options{Mode: spec.Streaming})
	if err != nil {
		t.Fatal(err)
	}
	barriers := make(chan checkpoint.Barrier, 1)
	acked := make(chan int64, 1)
	cp := &task.Checkpointing{Barriers: barriers, Ack: func(id int64, snap map[string][]byte) error {
		if _, ok := snap[checkpoint.SourcePositionName("quiet", 0, 1)]; !ok {
			t.Errorf("snapshot %v has no position", snap)
		}
		acked <- id
		return nil
	}}
	cfg := task.Config{Plan: p, Stage: p.Stages[0], Sources: map[string]connector.Source{"quiet": quietSource{}},
		Sinks: map[string]connector.Sink{"out": &seenSink{}}, Checkpoint: cp}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- task.RunStreaming(ctx, cfg, nil, noSend{}) }()
	barriers <- checkpoint.Barrier{ID: 7}
	select {
	case id := <-acked:
		if id != 7 {
			t.Errorf("acked %d, want 7", id)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the quiet source never started the barrier")
	}
	cancel()
	<-done
}
