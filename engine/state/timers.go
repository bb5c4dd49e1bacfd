package state

import (
	"container/heap"
	"fmt"
	"io"

	"github.com/flinkjob/flinkjob/engine/value"
)

// Domain is the time a timer is set in.
type Domain uint8

const (
	EventTime Domain = iota
	ProcessingTime
)

func (d Domain) String() string {
	if d == ProcessingTime {
		return "processing"
	}
	return "event"
}

// Timer is a registered timer of one key.
type Timer struct {
	Ts     int64
	KeyID  string
	Key    any
	Domain Domain
}

type timerID struct {
	ts     int64
	keyID  string
	domain Domain
}

type timerHeap []Timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].Ts != h[j].Ts {
		return h[i].Ts < h[j].Ts
	}
	return h[i].KeyID < h[j].KeyID
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(Timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

// Timers is a keyed operator's timer service: timers are per key and per
// timestamp (registering the same one twice keeps one), fire in timestamp
// order, and may be deleted.
type Timers struct {
	k       *Keyed
	queues  [2]timerHeap
	set     map[timerID]struct{}
	deleted map[timerID]struct{}
}

// NewTimers returns the timer service for the keys of k.
func NewTimers(k *Keyed) *Timers {
	return &Timers{k: k, set: map[timerID]struct{}{}, deleted: map[timerID]struct{}{}}
}

// Register adds a timer for the current key.
func (t *Timers) Register(d Domain, ts int64) {
	id := timerID{ts, t.k.curID, d}
	if _, ok := t.set[id]; ok {
		delete(t.deleted, id)
		return
	}
	t.set[id] = struct{}{}
	heap.Push(&t.queues[d], Timer{Ts: ts, KeyID: t.k.curID, Key: t.k.curKey, Domain: d})
}

// Delete removes a timer of the current key (lazily: it is skipped when due).
func (t *Timers) Delete(d Domain, ts int64) {
	id := timerID{ts, t.k.curID, d}
	if _, ok := t.set[id]; ok {
		t.deleted[id] = struct{}{}
	}
}

// Pending counts registered timers in a domain.
func (t *Timers) Pending(d Domain) int { return t.queues[d].Len() }

// Next returns the earliest timer of a domain without removing it.
func (t *Timers) Next(d Domain) (Timer, bool) {
	for t.queues[d].Len() > 0 {
		top := t.queues[d][0]
		id := timerID{top.Ts, top.KeyID, d}
		if _, del := t.deleted[id]; del {
			heap.Pop(&t.queues[d])
			delete(t.deleted, id)
			delete(t.set, id)
			continue
		}
		return top, true
	}
	return Timer{}, false
}

// PopDue removes and returns the earliest timer with Ts <= upTo, selecting
// its key as the current key so the firing operator sees that key's state.
func (t *Timers) PopDue(d Domain, upTo int64) (Timer, bool) {
	top, ok := t.Next(d)
	if !ok || top.Ts > upTo {
		return Timer{}, false
	}
	heap.Pop(&t.queues[d])
	delete(t.set, timerID{top.Ts, top.KeyID, d})
	t.k.SetCurrentKey(top.KeyID, top.Key)
	return top, true
}

// Reset drops every timer (BATCH: at the end of a key).
func (t *Timers) Reset() {
	t.queues[0] = t.queues[0][:0]
	t.queues[1] = t.queues[1][:0]
	clear(t.set)
	clear(t.deleted)
}

// Snapshot writes all pending timers.
func (t *Timers) Snapshot(w io.Writer) error {
	var list []any
	for d := range t.queues {
		for _, tm := range t.queues[d] {
			if _, del := t.deleted[timerID{tm.Ts, tm.KeyID, tm.Domain}]; del {
				continue
			}
			list = append(list, []any{int64(tm.Domain), tm.Ts, []byte(tm.KeyID)})
		}
	}
	_, err := w.Write(value.Append(nil, list))
	return err
}

// Restore replaces all timers with a snapshot.
func (t *Timers) Restore(data []byte) error {
	v, rest, err := value.Decode(data)
	if err != nil || len(rest) != 0 {
		return fmt.Errorf("timer snapshot: %w", value.ErrCorrupt)
	}
	t.Reset()
	list, _ := v.([]any)
	for _, e := range list {
		f, ok := e.([]any)
		if !ok || len(f) != 3 {
			return fmt.Errorf("timer snapshot: %w", value.ErrCorrupt)
		}
		d, _ := f[0].(int64)
		ts, _ := f[1].(int64)
		id, _ := f[2].([]byte)
		key, krest, err := value.Decode(id)
		if err != nil || len(krest) != 0 || d < 0 || d > 1 {
			return fmt.Errorf("timer snapshot: %w", value.ErrCorrupt)
		}
		tid := timerID{ts, string(id), Domain(d)}
		if _, dup := t.set[tid]; dup {
			continue
		}
		t.set[tid] = struct{}{}
		heap.Push(&t.queues[d], Timer{Ts: ts, KeyID: string(id), Key: key, Domain: Domain(d)})
	}
	return nil
}
