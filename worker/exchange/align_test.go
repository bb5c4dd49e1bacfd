package exchange

import (
	"context"
	"runtime"
	"testing"

	"github.com/flinkjob/flinkjob/engine/enginetest"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/shuffle"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/task"
	"github.com/flinkjob/flinkjob/engine/value"
)

type discardSender struct{}

func (discardSender) Send(context.Context, *plan.Edge, int, task.Batch) error { return nil }

// What a subtask holds while a checkpoint aligns: channel 0's barrier
// arrived, channel 1's not yet, so channel 0's next messages (here one
// watermark each, as a sparse stream sends after every source read) wait.
// Each waits in a slice of its own length, not the pooled slice it was
// decoded into (at least 512 elements): 5000 of them held 205 MB before
// (found by review), a few MB now.
func TestAlignmentKeepsWaitingBatchesSmall(t *testing.T) {
	p, err := plan.New(enginetest.Parse(t, `
parallelism: 2
steps:
  - name: src
    source:
      elements: [1]
      timestamp: record
      watermarks: {maxOutOfOrderness: 0s}
  - name: keyed
    keyBy: record
    parallelism: 1
    process:
      onElement: "dyn({'emit': [record]})"
  - name: out
    sink: {print: {}}
`), plan.Options{Mode: spec.Streaming})
	if err != nil {
		t.Fatal(err)
	}
	st := p.Stages[1]
	if shuffle.Channels(st) != 2 {
		t.Fatal("want 2 channels")
	}
	inbox := make(chan task.Batch)
	done := make(chan error, 1)
	go func() {
		done <- task.RunStreaming(context.Background(), task.Config{Plan: p, Stage: st}, inbox, discardSender{})
	}()
	dec := new(value.Decoder)
	msg := func(ch int, el task.Element) task.Batch {
		b, err := decodeBatch(AppendBatch(nil, &task.Batch{Channel: ch, Elems: []task.Element{el}}), dec)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	inbox <- msg(0, task.Element{Kind: task.KindBarrier, Wm: 1})
	const n = 5000
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	for i := 0; i < n; i++ {
		inbox <- msg(0, task.Element{Kind: task.KindWatermark, Wm: int64(i)})
	}
	inbox <- msg(0, task.Element{Kind: task.KindWatermark, Wm: n}) // the previous one is buffered by now
	runtime.GC()
	runtime.ReadMemStats(&m1)
	held := float64(m1.HeapAlloc) - float64(m0.HeapAlloc)
	t.Logf("%d one-watermark messages held during alignment: %.1f MB", n, held/1e6)
	inbox <- msg(1, task.Element{Kind: task.KindBarrier, Wm: 1})
	inbox <- msg(0, task.Element{Kind: task.KindEnd})
	inbox <- msg(1, task.Element{Kind: task.KindEnd})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if held > 50e6 {
		t.Errorf("alignment holds %.1f MB for %d one-element messages", held/1e6, n)
	}
}
