package task_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/task"
)

// A barrier of a newer checkpoint on a channel that never delivered the
// current one gives the current alignment up (its held-back records are
// processed) and aligns the new one; a late barrier of the given-up
// checkpoint is skipped.
func TestNewerBarrierAbortsAlignment(t *testing.T) {
	p, st, ach, bch := twoInputStage(t, `
parallelism: 1
steps:
  - name: a
    source: {elements: [1]}
  - name: b
    source: {elements: [2]}
  - name: all
    inputs: [a, b]
    union: {}
  - name: out
    sink: {call: out}
`, "a")
	sink := &seenSink{}
	var mu sync.Mutex
	var acks []int64
	cp := &task.Checkpointing{Ack: func(id int64, _ map[string][]byte) error {
		mu.Lock()
		acks = append(acks, id)
		mu.Unlock()
		return nil
	}}
	inbox := make(chan task.Batch)
	cfg := task.Config{Plan: p, Stage: st, Sinks: map[string]connector.Sink{"out": sink}, Checkpoint: cp}
	done := make(chan error, 1)
	go func() { done <- task.RunStreaming(context.Background(), cfg, inbox, noSend{}) }()
	bar := func(id int64) task.Element { return task.Element{Kind: task.KindBarrier, Wm: id} }
	inbox <- task.Batch{Channel: ach, Elems: append([]task.Element{bar(1)}, recs(1)...)} // 1 held back
	inbox <- task.Batch{Channel: bch, Elems: append([]task.Element{bar(2)}, recs(2)...)} // gives 1 up: 1 flows
	inbox <- task.Batch{Channel: ach, Elems: recs(3)}                                    // not blocked by 1 any more
	inbox <- task.Batch{Channel: ach, Elems: append([]task.Element{bar(2)}, recs(4)...)} // 2 aligned
	inbox <- task.Batch{Channel: bch, Elems: append([]task.Element{bar(1)}, recs(5)...)} // late: skipped
	inbox <- task.Batch{Channel: ach, Elems: []task.Element{{Kind: task.KindEnd}}}
	inbox <- task.Batch{Channel: bch, Elems: []task.Element{{Kind: task.KindEnd}}}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("task did not end")
	}
	if len(acks) != 1 || acks[0] != 2 {
		t.Fatalf("acks %v, want [2]", acks)
	}
	if got := sink.seen(); len(got) != 5 {
		t.Fatalf("sink got %v, want all five records", got)
	}
}
