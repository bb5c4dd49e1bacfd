package main

import (
	"sync/atomic"
	"testing"
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
