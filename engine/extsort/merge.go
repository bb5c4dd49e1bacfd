package extsort

import (
	"errors"

	"github.com/flinkjob/flinkjob/engine/value"
)

// Merge returns an Iterator over the union of inputs, each already in
// (KeyID, Ts) order, in that order. Records that tie come from the input
// with the lower index first, and each input keeps its own order, so the
// merge is stable: merging runs (or upstream partitions) listed in arrival
// order gives the same result as a stable sort of everything. Closing the
// result closes all inputs.
//
// Each record handed out is a copy of the input's record fields, so it stays
// valid after later calls as long as the inputs decode into fresh values
// (as DecodeRecord does).
func Merge(inputs []Iterator) Iterator {
	switch len(inputs) {
	case 0:
		return emptyIterator{}
	case 1:
		return inputs[0]
	}
	m := &mergeIterator{
		cursors: make([]cursor, len(inputs)),
		heap:    make([]int, 0, len(inputs)),
		last:    -1,
	}
	for i, in := range inputs {
		m.cursors[i].it = in
	}
	return m
}

type cursor struct {
	it  Iterator
	rec value.Record // the input's current record, while in the heap
}

// mergeIterator is a k-way merge over a binary min-heap of input indexes,
// ordered by the inputs' current records. Inputs are advanced lazily: the
// input whose record was handed out last is read again only on the next
// call, so no input is read ahead of what the consumer has taken.
type mergeIterator struct {
	cursors []cursor
	heap    []int
	started bool
	last    int // index of the input whose record was handed out last, or -1
	err     error
	closed  bool
}

// less orders inputs by their current record: KeyID bytes (Go compares
// strings bytewise), then Ts, then input index.
func (m *mergeIterator) less(i, j int) bool {
	a, b := &m.cursors[i].rec, &m.cursors[j].rec
	if a.KeyID != b.KeyID {
		return a.KeyID < b.KeyID
	}
	if a.Ts != b.Ts {
		return a.Ts < b.Ts
	}
	return i < j
}

func (m *mergeIterator) down(i int) {
	h := m.heap
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		c := l
		if r := l + 1; r < len(h) && m.less(h[r], h[l]) {
			c = r
		}
		if !m.less(h[c], h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

func (m *mergeIterator) Next(rec *value.Record) (bool, error) {
	if m.err != nil {
		return false, m.err
	}
	if m.closed {
		return false, errClosed
	}
	if !m.started {
		m.started = true
		for i := range m.cursors {
			ok, err := m.cursors[i].it.Next(&m.cursors[i].rec)
			if err != nil {
				m.err = err
				return false, err
			}
			if ok {
				m.heap = append(m.heap, i)
			}
		}
		for i := len(m.heap)/2 - 1; i >= 0; i-- {
			m.down(i)
		}
	} else if m.last >= 0 {
		// The top of the heap is the input handed out last: advance it and
		// restore the heap, or drop it when it is exhausted.
		c := &m.cursors[m.last]
		m.last = -1
		ok, err := c.it.Next(&c.rec)
		if err != nil {
			m.err = err
			return false, err
		}
		if !ok {
			c.rec = value.Record{}
			n := len(m.heap) - 1
			m.heap[0] = m.heap[n]
			m.heap = m.heap[:n]
		}
		if len(m.heap) > 0 {
			m.down(0)
		}
	}
	if len(m.heap) == 0 {
		return false, nil
	}
	m.last = m.heap[0]
	*rec = m.cursors[m.last].rec
	return true, nil
}

func (m *mergeIterator) Close() error {
	if m.closed {
		return nil
	}
	m.closed = true
	var errs []error
	for i := range m.cursors {
		errs = append(errs, m.cursors[i].it.Close())
		m.cursors[i].rec = value.Record{}
	}
	m.heap = nil
	return errors.Join(errs...)
}

var errClosed = errors.New("extsort: iterator closed")

// emptyIterator is the merge of no inputs.
type emptyIterator struct{}

func (emptyIterator) Next(*value.Record) (bool, error) { return false, nil }
func (emptyIterator) Close() error                     { return nil }
