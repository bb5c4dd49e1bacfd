package task_test

import (
	"context"
	"io"
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

// burstSource delivers the values 1..n in a single read, as a source that
// fell behind does (a paced generator after a pause, a Kafka backlog).
type burstSource struct{ n int64 }

func (s burstSource) Bounded() bool { return true }
func (s burstSource) Open(context.Context, int, int) (connector.Reader, error) {
	return &burstReader{n: s.n}, nil
}

type burstReader struct{ n, next int64 }

func (r *burstReader) Read(_ context.Context, max int, emit func(any)) error {
	for i := 0; i < max && r.next < r.n; i++ {
		r.next++
		emit(r.next)
	}
	if r.next == r.n {
		return io.EOF
	}
	return nil
}
func (r *burstReader) Close() error { return nil }

// recordingSender keeps every element sent, in order, and the subtask's
// RecordsIn count at each send.
type recordingSender struct {
	mu       sync.Mutex
	elems    []task.Element
	inAtSend []int64
	in       *task.Counters
}

func (s *recordingSender) Send(_ context.Context, _ *plan.Edge, _ int, b task.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.elems = append(s.elems, b.Elems...)
	if s.in != nil {
		s.inAtSend = append(s.inAtSend, s.in.RecordsIn.Load())
	}
	return nil
}

const twoKeyedStages = `
parallelism: 1
steps:
  - name: src
    source:
      elements: [1]
      timestamp: record
      watermarks: {maxOutOfOrderness: 0s}
  - name: keyed
    keyBy: record
    process:
      onElement: "dyn({'emit': [record]})"
  - name: again
    keyBy: record
    process:
      onElement: "dyn({'emit': [record]})"
  - name: out
    sink: {call: out}
`

// A source that reads many records at once still moves event time in
// small steps: watermarks go out within the read batch, not only after it,
// so downstream timers do not wait for (and fire in one burst after) the
// whole batch.
func TestSourceWatermarksWithinReadBatch(t *testing.T) {
	p, err := plan.New(enginetest.Parse(t, twoKeyedStages), plan.Options{Mode: spec.Streaming})
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	send := &recordingSender{}
	cfg := task.Config{Plan: p, Stage: p.Stages[0], Sources: map[string]connector.Source{"src": burstSource{n: n}}}
	if err := task.RunStreaming(context.Background(), cfg, nil, send); err != nil {
		t.Fatal(err)
	}
	var records int
	var maxTs int64
	wms := 0
	var lastWm int64 = value.MinWatermark
	for _, el := range send.elems {
		switch el.Kind {
		case task.KindRecord:
			records++
			if el.Rec.Ts <= lastWm {
				t.Fatalf("record at %d after watermark %d (late)", el.Rec.Ts, lastWm)
			}
			maxTs = max(maxTs, el.Rec.Ts)
		case task.KindWatermark:
			if el.Wm == value.MaxWatermark {
				continue // end of input
			}
			if el.Wm >= maxTs {
				t.Fatalf("watermark %d not below the records so far (max %d)", el.Wm, maxTs)
			}
			if records < n {
				wms++
			}
			lastWm = el.Wm
		}
	}
	if records != n {
		t.Fatalf("%d records sent, want %d", records, n)
	}
	// One watermark per 64 records of the 300 read at once.
	if wms < n/64 {
		t.Errorf("%d watermarks before the batch's last record, want at least %d", wms, n/64)
	}
}

// A subtask whose input stays busy flushes its output once it waited
// BufferTimeout even in the middle of one input batch: a batch can hold
// hundreds of records and a watermark that fires many timers, and their
// output must not wait for the rest of the batch.
func TestBufferTimeoutWithinBatch(t *testing.T) {
	p, err := plan.New(enginetest.Parse(t, twoKeyedStages), plan.Options{Mode: spec.Streaming})
	if err != nil {
		t.Fatal(err)
	}
	st := p.Stages[1]
	if len(st.Inputs) != 1 || len(st.Outputs) != 1 {
		t.Fatalf("stage %q: want one input and one output edge", st.Name)
	}
	const n = 300
	elems := make([]task.Element, 0, n+1)
	for i := int64(1); i <= n; i++ {
		elems = append(elems, task.Element{Kind: task.KindRecord, Rec: value.Record{Value: i, Ts: i}})
	}
	elems = append(elems, task.Element{Kind: task.KindEnd})
	inbox := make(chan task.Batch, 1)
	inbox <- task.Batch{Channel: shuffle.ChannelBase(st.Inputs[0]), Elems: elems}
	counters := &task.Counters{}
	send := &recordingSender{in: counters}
	// The timeout has always passed: every check flushes.
	cfg := task.Config{Plan: p, Stage: st, BufferTimeout: time.Nanosecond, Counters: counters}
	if err := task.RunStreaming(context.Background(), cfg, inbox, send); err != nil {
		t.Fatal(err)
	}
	records := 0
	for _, el := range send.elems {
		if el.Kind == task.KindRecord {
			records++
		}
	}
	if records != n {
		t.Fatalf("%d records sent, want %d", records, n)
	}
	// RecordsIn is counted once the whole batch was processed: output
	// sent while it is still 0 left in the middle of the batch.
	if len(send.inAtSend) == 0 || send.inAtSend[0] != 0 {
		t.Errorf("RecordsIn at each send %v: want the first send within the input batch (RecordsIn 0)", send.inAtSend)
	}
}
