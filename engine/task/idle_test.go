package task_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/flinkjob/flinkjob/engine/enginetest"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/shuffle"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/task"
	"github.com/flinkjob/flinkjob/engine/value"
)

// A subtask all of whose input channels are idle is idle itself, and says
// so downstream (Flink's StatusWatermarkValve), so the next stages leave
// it out of their watermark instead of waiting for it; once a channel is
// active again it says that before the records that follow.
func TestIdleInputsMakeTheSubtaskIdle(t *testing.T) {
	p, err := plan.New(enginetest.Parse(t, twoKeyedStages), plan.Options{Mode: spec.Streaming})
	if err != nil {
		t.Fatal(err)
	}
	st := p.Stages[1]
	ch := shuffle.ChannelBase(st.Inputs[0])
	inbox := make(chan task.Batch, 4)
	inbox <- task.Batch{Channel: ch, Elems: []task.Element{{Kind: task.KindRecord, Rec: value.Record{Value: int64(1), Ts: 1}}, {Kind: task.KindWatermark, Wm: 1}}}
	inbox <- task.Batch{Channel: ch, Elems: []task.Element{{Kind: task.KindIdle}}}
	inbox <- task.Batch{Channel: ch, Elems: []task.Element{{Kind: task.KindActive}, {Kind: task.KindRecord, Rec: value.Record{Value: int64(2), Ts: 2}}}}
	inbox <- task.Batch{Channel: ch, Elems: []task.Element{{Kind: task.KindEnd}}}
	send := &recordingSender{}
	if err := task.RunStreaming(context.Background(), task.Config{Plan: p, Stage: st}, inbox, send); err != nil {
		t.Fatal(err)
	}
	var kinds []task.Kind
	for _, el := range send.elems {
		kinds = append(kinds, el.Kind)
	}
	// Then the end of input: watermarks and the end, no more status.
	want := []task.Kind{task.KindRecord, task.KindWatermark, task.KindIdle, task.KindActive, task.KindRecord}
	if len(kinds) < len(want) {
		t.Fatalf("sent %v, want it to begin with %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("sent %v, want it to begin with %v", kinds, want)
		}
	}
	for _, k := range kinds[len(want):] {
		if k != task.KindWatermark && k != task.KindEnd {
			t.Fatalf("sent %v: after the last record only watermarks and the end", kinds)
		}
	}
}

const twoChannelsIntoOne = `
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
    sink: {call: out}
`

// An idle subtask that turns active says so before anything else it sends,
// including the watermark its returning channel moves (found by review:
// the watermark went first).
func TestActiveGoesBeforeTheWatermarkItMoves(t *testing.T) {
	p, err := plan.New(enginetest.Parse(t, twoChannelsIntoOne), plan.Options{Mode: spec.Streaming})
	if err != nil {
		t.Fatal(err)
	}
	st := p.Stages[1]
	if n := shuffle.Channels(st); n != 2 {
		t.Fatalf("%d input channels, want 2", n)
	}
	inbox := make(chan task.Batch, 16)
	el := func(ch int, e task.Element) { inbox <- task.Batch{Channel: ch, Elems: []task.Element{e}} }
	el(0, task.Element{Kind: task.KindWatermark, Wm: 5})
	el(1, task.Element{Kind: task.KindWatermark, Wm: 10})
	// Output watermark 5; channel 1 (at 10) goes idle, then channel 0:
	// the subtask is idle at 5. Channel 1 comes back: the watermark moves
	// to 10, and ACTIVE must go out before it.
	el(1, task.Element{Kind: task.KindIdle})
	el(0, task.Element{Kind: task.KindIdle})
	el(1, task.Element{Kind: task.KindActive})
	el(0, task.Element{Kind: task.KindEnd})
	el(1, task.Element{Kind: task.KindEnd})
	send := &perTarget{kinds: map[int][]task.Kind{}}
	if err := task.RunStreaming(context.Background(), task.Config{Plan: p, Stage: st}, inbox, send); err != nil {
		t.Fatal(err)
	}
	if len(send.kinds) == 0 {
		t.Fatal("nothing sent")
	}
	for target, kinds := range send.kinds {
		idle := slices.Index(kinds, task.KindIdle)
		if idle < 0 || idle+1 >= len(kinds) || kinds[idle+1] != task.KindActive {
			t.Fatalf("sent %v to subtask %d: want IDLE, then ACTIVE before anything else", kinds, target)
		}
	}
}

// perTarget keeps the kinds of the elements sent to each target subtask.
type perTarget struct {
	mu    sync.Mutex
	kinds map[int][]task.Kind
}

func (s *perTarget) Send(_ context.Context, _ *plan.Edge, target int, b task.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range b.Elems {
		s.kinds[target] = append(s.kinds[target], e.Kind)
	}
	return nil
}
