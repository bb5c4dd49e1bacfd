package task_test

import (
	"context"
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
