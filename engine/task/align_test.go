package task_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/enginetest"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/shuffle"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/task"
	"github.com/flinkjob/flinkjob/engine/value"
)

type seenSink struct {
	mu   sync.Mutex
	vals []int64
}

func (s *seenSink) Open(context.Context, int, int) (connector.Writer, error) {
	return seenWriter{s}, nil
}
func (s *seenSink) seen() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.vals...)
}

type seenWriter struct{ s *seenSink }

func (w seenWriter) Write(r *value.Record) error {
	w.s.mu.Lock()
	w.s.vals = append(w.s.vals, r.Value.(int64))
	w.s.mu.Unlock()
	return nil
}
func (seenWriter) Close() error { return nil }
func (seenWriter) Abort()       {}

type noSend struct{}

func (noSend) Send(context.Context, *plan.Edge, int, task.Batch) error { return nil }

func recs(vs ...int64) []task.Element {
	var out []task.Element
	for _, v := range vs {
		out = append(out, task.Element{Kind: task.KindRecord, Rec: value.Record{Value: v, Ts: value.NoTimestamp}})
	}
	return out
}

// twoInputStage plans a STREAMING job with one two-input stage and returns
// that stage and the base channels of its input from step first and of its
// other input.
func twoInputStage(t *testing.T, job, first string) (p *plan.Plan, st *plan.Stage, firstCh, otherCh int) {
	t.Helper()
	p, err := plan.New(enginetest.Parse(t, job), plan.Options{Mode: spec.Streaming})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Stages {
		if len(s.Inputs) == 2 {
			st = s
		}
	}
	if st == nil {
		t.Fatal("no two-input stage")
	}
	for _, e := range st.Inputs {
		if e.From.Head().Name == first {
			firstCh = shuffle.ChannelBase(e)
		} else {
			otherCh = shuffle.ChannelBase(e)
		}
	}
	return p, st, firstCh, otherCh
}

// fastSlowUnion is a job whose union stage has two inputs, one channel each.
const fastSlowUnion = `
parallelism: 1
steps:
  - name: fast
    source: {elements: [1]}
  - name: slow
    source: {elements: [2]}
  - name: all
    inputs: [fast, slow]
    union: {}
  - name: out
    sink: {call: out}
`

// After barrier N on one channel, that channel's records wait (buffered)
// until barrier N arrived on the other channel too; the snapshot is taken
// then, before the held-back records are processed.
func TestBarrierAlignmentBuffers(t *testing.T) {
	p, st, fastCh, slowCh := twoInputStage(t, fastSlowUnion, "fast")
	sink := &seenSink{}
	var mu sync.Mutex
	var acks []int64
	var seenAtAck []int64
	cp := &task.Checkpointing{Ack: func(id int64, _ map[string][]byte) error {
		mu.Lock()
		acks = append(acks, id)
		seenAtAck = sink.seen()
		mu.Unlock()
		return nil
	}}
	inbox := make(chan task.Batch) // unbuffered: a send returns once the previous batch was processed
	cfg := task.Config{Plan: p, Stage: st, Index: 0, Sinks: map[string]connector.Sink{"out": sink}, Checkpoint: cp}
	done := make(chan error, 1)
	go func() { done <- task.RunStreaming(context.Background(), cfg, inbox, noSend{}) }()

	barrier := task.Element{Kind: task.KindBarrier, Wm: 1}
	end := task.Element{Kind: task.KindEnd}
	inbox <- task.Batch{Channel: fastCh, Elems: append(append(recs(1, 2), barrier), recs(3, 4)...)}
	inbox <- task.Batch{Channel: fastCh, Elems: recs(5)}
	inbox <- task.Batch{Channel: slowCh, Elems: recs(10)}
	inbox <- task.Batch{Channel: slowCh, Elems: recs(11)}
	inbox <- task.Batch{Channel: slowCh, Elems: recs(12)} // 11 was processed
	seen := sink.seen()
	for _, v := range seen {
		if v == 3 || v == 4 || v == 5 {
			t.Fatalf("record %d after the fast channel's barrier was processed before alignment: %v", v, seen)
		}
	}
	if len(seen) < 4 {
		t.Fatalf("records before the barrier or on the slow channel were not processed: %v", seen)
	}
	inbox <- task.Batch{Channel: slowCh, Elems: append([]task.Element{barrier}, recs(13)...)}
	inbox <- task.Batch{Channel: slowCh, Elems: []task.Element{end}}
	inbox <- task.Batch{Channel: fastCh, Elems: []task.Element{end}}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("task did not end")
	}
	if len(acks) != 1 || acks[0] != 1 {
		t.Fatalf("acks %v, want [1]", acks)
	}
	want := map[int64]bool{1: true, 2: true, 10: true, 11: true, 12: true}
	if len(seenAtAck) != len(want) {
		t.Errorf("at the snapshot the sink had %v, want exactly %v", seenAtAck, want)
	}
	for _, v := range seenAtAck {
		if !want[v] {
			t.Errorf("at the snapshot the sink had %v, want exactly the records before the barriers", seenAtAck)
		}
	}
	all := sink.seen()
	// The fast channel's held-back records come in order, after the snapshot.
	var fast []int64
	for _, v := range all {
		if v < 10 {
			fast = append(fast, v)
		}
	}
	if len(all) != 9 || len(fast) != 5 || fast[2] != 3 || fast[3] != 4 || fast[4] != 5 {
		t.Errorf("sink got %v, want every record once with 3, 4, 5 in order", all)
	}
}

// What a subtask holds while a checkpoint aligns: the fast channel's
// barrier arrived, the slow one's not yet, so the fast channel's next
// batches (one watermark each, as a sparse stream sends after every source
// read) wait. Each arrives in a pooled slice of at least 512 elements, as
// the worker exchange decodes it (task.GetElems), and waits in a slice of
// its own length: 5000 of them held 205 MB before (found by review), a few
// MB now.
func TestAlignmentKeepsWaitingBatchesSmall(t *testing.T) {
	p, st, fastCh, slowCh := twoInputStage(t, fastSlowUnion, "fast")
	inbox := make(chan task.Batch)
	done := make(chan error, 1)
	cfg := task.Config{Plan: p, Stage: st, Sinks: map[string]connector.Sink{"out": &seenSink{}}}
	go func() { done <- task.RunStreaming(context.Background(), cfg, inbox, noSend{}) }()
	pooled := func(ch int, el task.Element) task.Batch {
		return task.Batch{Channel: ch, Elems: append(task.GetElems(1), el)}
	}
	inbox <- pooled(fastCh, task.Element{Kind: task.KindBarrier, Wm: 1})
	const n = 5000
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	for i := 0; i < n; i++ {
		inbox <- pooled(fastCh, task.Element{Kind: task.KindWatermark, Wm: int64(i)})
	}
	inbox <- pooled(fastCh, task.Element{Kind: task.KindWatermark, Wm: n}) // the previous one is buffered by now
	runtime.GC()
	runtime.ReadMemStats(&m1)
	held := float64(m1.HeapAlloc) - float64(m0.HeapAlloc)
	t.Logf("%d one-watermark batches held during alignment: %.1f MB", n, held/1e6)
	inbox <- pooled(slowCh, task.Element{Kind: task.KindBarrier, Wm: 1})
	inbox <- pooled(fastCh, task.Element{Kind: task.KindEnd})
	inbox <- pooled(slowCh, task.Element{Kind: task.KindEnd})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if held > 50e6 {
		t.Errorf("alignment holds %.1f MB for %d one-element batches", held/1e6, n)
	}
}
