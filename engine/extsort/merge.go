package extsort

import (
	"bytes"
	"errors"
	"fmt"

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
	// In encoded mode (NextEncoded): the input's current body, with its
	// key ID and timestamp read from its front.
	enc  EncodedIterator
	body []byte
	key  []byte
	ts   int64
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
	encoded bool // NextEncoded is in use
}

// less orders inputs by their current record: KeyID bytes (Go compares
// strings bytewise), then Ts, then input index.
func (m *mergeIterator) less(i, j int) bool {
	if m.encoded {
		a, b := &m.cursors[i], &m.cursors[j]
		if c := bytes.Compare(a.key, b.key); c != 0 {
			return c < 0
		}
		if a.ts != b.ts {
			return a.ts < b.ts
		}
		return i < j
	}
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

// heapify orders the whole heap.
func (m *mergeIterator) heapify() {
	for i := len(m.heap)/2 - 1; i >= 0; i-- {
		m.down(i)
	}
}

// settleTop restores the heap after its top input was advanced, dropping
// that input first when it is exhausted (ok false).
func (m *mergeIterator) settleTop(ok bool) {
	if !ok {
		n := len(m.heap) - 1
		m.heap[0] = m.heap[n]
		m.heap = m.heap[:n]
	}
	if len(m.heap) > 0 {
		m.down(0)
	}
}

func (m *mergeIterator) Next(rec *value.Record) (bool, error) {
	if m.err != nil {
		return false, m.err
	}
	if m.closed {
		return false, errClosed
	}
	if m.encoded {
		return false, errors.New("extsort: Next after NextEncoded")
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
		m.heapify()
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
		}
		m.settleTop(ok)
	}
	if len(m.heap) == 0 {
		return false, nil
	}
	m.last = m.heap[0]
	*rec = m.cursors[m.last].rec
	return true, nil
}

// advanceEncoded reads input i's next body; false at its end.
func (m *mergeIterator) advanceEncoded(i int) (bool, error) {
	c := &m.cursors[i]
	body, ok, err := c.enc.NextEncoded()
	if err != nil || !ok {
		c.body, c.key = nil, nil
		return false, err
	}
	key, ts, err := value.RecordKeyTs(body)
	if err != nil {
		return false, fmt.Errorf("extsort: %w", err)
	}
	c.body, c.key, c.ts = body, key, ts
	return true, nil
}

// NextEncoded implements EncodedIterator: the same merge over encoded
// bodies, comparing the key ID bytes and timestamps at their fronts. A
// body handed out stays valid until the next call, because only its input
// is read again then.
func (m *mergeIterator) NextEncoded() ([]byte, bool, error) {
	if m.err != nil {
		return nil, false, m.err
	}
	if m.closed {
		return nil, false, errClosed
	}
	if !m.started {
		m.started, m.encoded = true, true
		for i := range m.cursors {
			m.cursors[i].enc = Encoded(m.cursors[i].it)
			ok, err := m.advanceEncoded(i)
			if err != nil {
				m.err = err
				return nil, false, err
			}
			if ok {
				m.heap = append(m.heap, i)
			}
		}
		m.heapify()
	} else if !m.encoded {
		return nil, false, errors.New("extsort: NextEncoded after Next")
	} else if m.last >= 0 {
		i := m.last
		m.last = -1
		ok, err := m.advanceEncoded(i)
		if err != nil {
			m.err = err
			return nil, false, err
		}
		m.settleTop(ok)
	}
	if len(m.heap) == 0 {
		return nil, false, nil
	}
	m.last = m.heap[0]
	return m.cursors[m.last].body, true, nil
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
		m.cursors[i].body, m.cursors[i].key = nil, nil
	}
	m.heap = nil
	return errors.Join(errs...)
}

var errClosed = errors.New("extsort: iterator closed")

// emptyIterator is the merge of no inputs.
type emptyIterator struct{}

func (emptyIterator) Next(*value.Record) (bool, error) { return false, nil }
func (emptyIterator) Close() error                     { return nil }

func (emptyIterator) NextEncoded() ([]byte, bool, error) { return nil, false, nil }
