package stamp

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/udf"
	"github.com/flinkjob/flinkjob/engine/value"
)

// An event generated late (its source blocked or not scheduled) counts from
// when its pacer was due to produce it; one generated on time from its
// generation; one not generated yet is not measured.
func TestStampsDue(t *testing.T) {
	s := New(10, 2)
	s.Every = 100
	s.Start[0].Store(1000)   // subtask 0: events 0, 2, 4, ... due at 1000, 1100, 1200, ...
	s.Start[1].Store(1010)   // subtask 1: events 1, 3, 5, ... due at 1010, 1110, ...
	s.Created[4].Store(1750) // due at 1200, generated 550 late
	s.Created[5].Store(1215) // due at 1210
	s.Created[3].Store(1100) // generated before its due time 1110 (start taken late)
	for _, c := range []struct {
		n    int64
		want int64
		ok   bool
	}{{4, 1200, true}, {5, 1210, true}, {3, 1100, true}, {6, 0, false}} {
		got, ok := s.Due(c.n)
		if got != c.want || ok != c.ok {
			t.Errorf("Due(%d) = %d, %v; want %d, %v", c.n, got, ok, c.want, c.ok)
		}
	}
	// Latencies: a record of event 4 from its due time, a timer result at
	// 3 from the later of events 4 and 5 (one per subtask: the watermark
	// waits for both); events not generated or outside the run are left out.
	due, gen := s.Measure([]Sample{{4, 2000}, {6, 2000}, {10, 2000}}, false).Latencies(0)
	if !slices.Equal(due, []time.Duration{800}) || !slices.Equal(gen, []time.Duration{250}) {
		t.Errorf("Latencies = %v, %v; want [800], [250]", due, gen)
	}
	due, gen = s.Measure([]Sample{{3, 2000}, {9, 2000}, {-2, 2000}, {4, 2000}}, true).Latencies(0)
	if !slices.Equal(due, []time.Duration{790}) || !slices.Equal(gen, []time.Duration{250}) {
		t.Errorf("timer Latencies = %v, %v; want [790] (event 5's due time), [250] (event 4's generation)", due, gen)
	}
	// A warm-up of 205 (the run starts at 1000, subtask 0's first event)
	// leaves out what was determinable before 1205: event 4 (due 1200) and
	// the timer result at 3 (1210) stays.
	if due, _ := s.Measure([]Sample{{4, 2000}, {5, 2000}}, false).Latencies(205); !slices.Equal(due, []time.Duration{790}) {
		t.Errorf("Latencies after a warm-up = %v, want [790] (event 5 only)", due)
	}
	if due, _ := s.Measure([]Sample{{3, 2000}}, true).Latencies(205); !slices.Equal(due, []time.Duration{790}) {
		t.Errorf("timer Latencies after a warm-up = %v, want [790]", due)
	}
	// Unpaced: generation time.
	s.Every = 0
	if got, _ := s.Due(4); got != 1750 {
		t.Errorf("unpaced Due(4) = %d, want 1750", got)
	}
}

// The stamp step reads an event's ts from a map and from a row alike, and
// takes rows as they are (udf.MapRows).
func TestStampReadsRows(t *testing.T) {
	fn, ok := udf.Lookup(Step)
	if !ok || !udf.AcceptsRows(Step) {
		t.Fatal("bench-stamp is not registered to take rows")
	}
	s := New(10, 2)
	Use(s)
	defer Use(nil)
	for n, v := range []any{
		map[string]any{"type": "bid", "ts": connector.NexmarkBaseTime + 3},
		value.RowOf(map[string]any{"type": "bid", "ts": connector.NexmarkBaseTime + 4}),
	} {
		var out []any
		if err := fn(v, func(o any) { out = append(out, o) }); err != nil {
			t.Fatal(err)
		}
		if len(out) != 1 || !reflect.DeepEqual(out[0], v) {
			t.Fatalf("value %d: stamp emitted %v, want its input", n, out)
		}
	}
	if s.Created[3].Load() == 0 || s.Created[4].Load() == 0 || s.Created[5].Load() != 0 {
		t.Errorf("stamped %v %v %v, want events 3 and 4 only", s.Created[3].Load(), s.Created[4].Load(), s.Created[5].Load())
	}
}

// What a worker process's stamps and sink write to the run directory reads
// back as the same stamps (a subtask's start being its first event's) and
// samples.
func TestFilesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	w := New(10, 2)
	w.Created[0].Store(100) // subtask 0's first event
	w.Created[2].Store(300)
	w.Created[7].Store(800)
	if err := writeCreated(dir, w); err != nil {
		t.Fatal(err)
	}
	if err := writeCreated(dir, New(10, 2)); err != nil { // a process without a source
		t.Fatal(err)
	}
	sink := &Sink{Dir: dir}
	wr, err := sink.Open(context.Background(), 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range []int64{2, 7} {
		if err := wr.Write(&value.Record{Ts: connector.NexmarkBaseTime + ts, Value: map[string]any{}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := wr.Close(); err != nil {
		t.Fatal(err)
	}
	st := New(10, 2)
	samples, err := Read(dir, st)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(samples, sink.Samples()) || len(samples) != 2 || samples[0].Event != 2 || samples[1].Event != 7 {
		t.Errorf("read samples %v, the sink has %v", samples, sink.Samples())
	}
	for n := range st.Created {
		if st.Created[n].Load() != w.Created[n].Load() {
			t.Errorf("event %d: read %d, wrote %d", n, st.Created[n].Load(), w.Created[n].Load())
		}
	}
	if st.Start[0].Load() != 100 || st.Start[1].Load() != 0 {
		t.Errorf("starts %d %d, want 100 0", st.Start[0].Load(), st.Start[1].Load())
	}
	// A run of fewer events than the files name is an error.
	if _, err := Read(dir, New(5, 2)); err == nil {
		t.Error("Read into a shorter run: no error")
	}
}
