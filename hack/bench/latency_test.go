package main

import (
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/udf"
	"github.com/flinkjob/flinkjob/engine/value"
)

// An event generated late (its source blocked or not scheduled) counts from
// when its pacer was due to produce it; one generated on time from its
// generation; one not generated yet is not measured.
func TestStampsDue(t *testing.T) {
	s := &stamps{created: make([]atomic.Int64, 10), p: 2, every: 100, start: make([]atomic.Int64, 2)}
	s.start[0].Store(1000)   // subtask 0: events 0, 2, 4, ... due at 1000, 1100, 1200, ...
	s.start[1].Store(1010)   // subtask 1: events 1, 3, 5, ... due at 1010, 1110, ...
	s.created[4].Store(1750) // due at 1200, generated 550 late
	s.created[5].Store(1215) // due at 1210
	s.created[3].Store(1100) // generated before its due time 1110 (start taken late)
	for _, c := range []struct {
		n    int64
		want int64
		ok   bool
	}{{4, 1200, true}, {5, 1210, true}, {3, 1100, true}, {6, 0, false}} {
		got, ok := s.due(c.n)
		if got != c.want || ok != c.ok {
			t.Errorf("due(%d) = %d, %v; want %d, %v", c.n, got, ok, c.want, c.ok)
		}
	}
	// Unpaced: generation time.
	s.every = 0
	if got, _ := s.due(4); got != 1750 {
		t.Errorf("unpaced due(4) = %d, want 1750", got)
	}
}

// The stamp step reads an event's ts from a map and from a row alike, and
// takes rows as they are (udf.MapRows).
func TestStampReadsRows(t *testing.T) {
	fn, ok := udf.Lookup("bench-stamp")
	if !ok || !udf.AcceptsRows("bench-stamp") {
		t.Fatal("bench-stamp is not registered to take rows")
	}
	s := &stamps{created: make([]atomic.Int64, 10), p: 2, start: make([]atomic.Int64, 2)}
	current.Store(s)
	defer current.Store(nil)
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
	if s.created[3].Load() == 0 || s.created[4].Load() == 0 || s.created[5].Load() != 0 {
		t.Errorf("stamped %v %v %v, want events 3 and 4 only", s.created[3].Load(), s.created[4].Load(), s.created[5].Load())
	}
}
