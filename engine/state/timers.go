package state

import (
	"fmt"
	"io"
	"slices"
	"strings"

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

// timerQueue holds one domain's timers, grouped by timestamp: a bucket per
// distinct timestamp listing the keys with a timer then, and a min-heap of
// the bucket timestamps. Many keys usually share a timestamp (every key's
// window ends at the same time), so firing walks a bucket's keys in order
// instead of popping a heap entry per timer, and registering appends to a
// bucket instead of sifting through a heap of (timestamp, key) pairs.
//
// Which timers are registered is kept per key (a key has few timers at
// once): registering looks the key up once, and firing finds the key's
// timers through the bucket without any lookup.
type timerQueue struct {
	keys    map[string]*keyTimers // keys with registered timers
	n       int                   // registered timers
	times   []int64               // min-heap of the timestamps in buckets
	buckets map[int64]*timerBucket
	last    *timerBucket   // the bucket used last (registrations cluster)
	first   *timerBucket   // the bucket of times[0], once looked up
	free    []*timerBucket // emptied buckets kept for reuse
}

// keyTimers is one key's registered timers. Once its last timer fires or
// is deleted it leaves keys for good; a later timer of the key gets a new
// keyTimers, so a bucket entry pointing to a departed one is stale. A
// keyTimers is in keys exactly while it has timers (reset empties them).
type keyTimers struct {
	id     string
	key    any
	ts     []int64
	inline [2]int64 // ts's first backing array: one allocation per key
	group  int32    // key group plus one, once a GroupWriter computed it
	// e is the key's state entry once linked (see entry.kts): firing a
	// timer selects it without looking the key up. Stale once e.gone.
	e *entry
	// snapGen, snapOff and snapLen place the key's timers in the last
	// snapshot's encoding while they are unchanged, as entry's do.
	snapGen          uint32
	snapOff, snapLen uint32
}

func (kt *keyTimers) index(ts int64) int {
	for i, t := range kt.ts {
		if t == ts {
			return i
		}
	}
	return -1
}

// remove unregisters kt's timer i and drops kt from q when it was its last.
func (q *timerQueue) remove(kt *keyTimers, i int) {
	kt.snapGen = 0
	last := len(kt.ts) - 1
	kt.ts[i] = kt.ts[last]
	kt.ts = kt.ts[:last]
	q.n--
	if last == 0 {
		delete(q.keys, kt.id)
	}
}

// timerBucket is the keys with a timer at one timestamp. Timers fire in
// key ID order: ents[pos:] is that order once sorted, which happens when
// the bucket is first looked at by Next or PopDue; later registrations are
// inserted in place. It may hold entries whose timer was deleted (or a key
// twice, registered again after a deletion): an entry counts only while
// its keyTimers has the bucket's timestamp, and the first such entry of a
// key fires it.
type timerBucket struct {
	ts     int64
	ents   []bucketEntry
	pos    int
	sorted bool
}

type bucketEntry struct {
	id string
	kt *keyTimers
}

func (b *timerBucket) live(e bucketEntry) bool { return e.kt.index(b.ts) >= 0 }

func (b *timerBucket) recycle() {
	clear(b.ents)
	b.ents, b.pos, b.sorted = b.ents[:0], 0, false
}

func (q *timerQueue) bucket(ts int64) *timerBucket {
	if b := q.last; b != nil && b.ts == ts {
		return b
	}
	b := q.buckets[ts]
	if b == nil {
		if n := len(q.free); n > 0 {
			b = q.free[n-1]
			q.free = q.free[:n-1]
		} else {
			b = &timerBucket{}
		}
		b.ts = ts
		if q.buckets == nil {
			q.buckets = map[int64]*timerBucket{}
		}
		q.buckets[ts] = b
		q.pushTime(ts)
	}
	q.last = b
	return b
}

// add registers a timer of keyID and returns the key's timers.
func (q *timerQueue) add(ts int64, keyID string, key any) *keyTimers {
	kt := q.keys[keyID]
	if kt == nil {
		if q.keys == nil {
			q.keys = map[string]*keyTimers{}
		}
		kt = &keyTimers{id: keyID, key: key}
		kt.ts = kt.inline[:0]
		q.keys[keyID] = kt
	}
	q.addTo(kt, ts)
	return kt
}

// addTo registers a timer of a key whose timers are in keys.
func (q *timerQueue) addTo(kt *keyTimers, ts int64) {
	if kt.index(ts) >= 0 {
		return
	}
	keyID := kt.id
	kt.ts = append(kt.ts, ts)
	kt.snapGen = 0
	q.n++
	b := q.bucket(ts)
	e := bucketEntry{keyID, kt}
	if b.sorted {
		i, _ := slices.BinarySearchFunc(b.ents[b.pos:], keyID, func(e bucketEntry, id string) int {
			return strings.Compare(e.id, id)
		})
		b.ents = slices.Insert(b.ents, b.pos+i, e)
	} else {
		b.ents = append(b.ents, e)
	}
}

func (q *timerQueue) delete(ts int64, keyID string) {
	if kt := q.keys[keyID]; kt != nil {
		if i := kt.index(ts); i >= 0 {
			q.remove(kt, i)
		}
	}
}

// head returns the earliest bucket, sorted, with its next entry live; nil
// when the queue is empty.
func (q *timerQueue) head() *timerBucket {
	for len(q.times) > 0 {
		b := q.first
		if b == nil || b.ts != q.times[0] {
			b = q.buckets[q.times[0]]
			q.first = b
		}
		if !b.sorted {
			slices.SortFunc(b.ents, func(x, y bucketEntry) int { return strings.Compare(x.id, y.id) })
			b.sorted = true
		}
		for ; b.pos < len(b.ents); b.pos++ {
			if b.live(b.ents[b.pos]) {
				return b
			}
		}
		q.dropHead(b)
	}
	return nil
}

// dropHead removes the earliest bucket, which has no timers left.
func (q *timerQueue) dropHead(b *timerBucket) {
	q.popTime()
	delete(q.buckets, b.ts)
	if q.last == b {
		q.last = nil
	}
	q.first = nil
	b.recycle()
	q.free = append(q.free, b)
}

func (q *timerQueue) reset() {
	for _, b := range q.buckets {
		b.recycle()
		q.free = append(q.free, b)
	}
	clear(q.buckets)
	for _, kt := range q.keys {
		kt.ts = kt.ts[:0] // out of keys: a link to it is stale
	}
	clear(q.keys)
	q.n = 0
	q.times = q.times[:0]
	q.last, q.first = nil, nil
}

func (q *timerQueue) pushTime(ts int64) {
	h := append(q.times, ts)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if h[p] <= h[i] {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
	q.times = h
}

func (q *timerQueue) popTime() {
	h := q.times
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		c := l
		if r := l + 1; r < n && h[r] < h[l] {
			c = r
		}
		if h[i] <= h[c] {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	q.times = h
}

// Timers is a keyed operator's timer service: timers are per key and per
// timestamp (registering the same one twice keeps one), fire in timestamp
// order (keys of one timestamp in key ID order), and may be deleted.
type Timers struct {
	k      *Keyed
	queues [2]timerQueue
	// snapBufs is the encoded timers of the last GroupWriter.AddAll by
	// key group, and snapGen its generation (see keyTimers.snapGen).
	snapBufs [][]byte
	snapGen  uint32
}

// NewTimers returns the timer service for the keys of k.
func NewTimers(k *Keyed) *Timers {
	return &Timers{k: k}
}

// Register adds a timer for the current key. A key with state finds its
// timers through its entry (linked on its first registration) instead of
// looking them up.
func (t *Timers) Register(d Domain, ts int64) {
	q := &t.queues[d]
	e := t.k.cur
	if e == nil || t.k.batch {
		q.add(ts, t.k.curID, t.k.curKey)
		return
	}
	if kt := e.kts[d]; kt != nil && len(kt.ts) > 0 {
		q.addTo(kt, ts)
		return
	}
	kt := q.add(ts, t.k.curID, t.k.curKey)
	e.kts[d], kt.e = kt, e
}

// Delete removes a timer of the current key.
func (t *Timers) Delete(d Domain, ts int64) {
	t.queues[d].delete(ts, t.k.curID)
}

// Pending counts registered timers in a domain.
func (t *Timers) Pending(d Domain) int { return t.queues[d].n }

// Next returns the earliest timer of a domain without removing it.
func (t *Timers) Next(d Domain) (Timer, bool) {
	b := t.queues[d].head()
	if b == nil {
		return Timer{}, false
	}
	e := b.ents[b.pos]
	return Timer{Ts: b.ts, KeyID: e.id, Key: e.kt.key, Domain: d}, true
}

// PopDue removes and returns the earliest timer with Ts <= upTo, selecting
// its key as the current key so the firing operator sees that key's state.
func (t *Timers) PopDue(d Domain, upTo int64) (Timer, bool) {
	q := &t.queues[d]
	if len(q.times) == 0 || q.times[0] > upTo {
		return Timer{}, false
	}
	b := q.head()
	if b == nil || b.ts > upTo {
		return Timer{}, false
	}
	ts, e := b.ts, b.ents[b.pos]
	kt := e.kt
	id, key := e.id, kt.key
	q.remove(kt, kt.index(ts))
	b.ents[b.pos] = bucketEntry{}
	b.pos++
	if b.pos == len(b.ents) {
		q.dropHead(b)
	}
	k := t.k
	if en := kt.e; en != nil && !en.gone && !k.batch {
		if id != k.curID || k.cur != en {
			k.curID, k.curKey, k.cur = id, key, en
		}
	} else {
		k.SetCurrentKey(id, key)
		if cur := k.cur; cur != nil && !k.batch && len(kt.ts) > 0 {
			cur.kts[d], kt.e = kt, cur
		}
	}
	return Timer{Ts: ts, KeyID: id, Key: key, Domain: d}, true
}

// Reset drops every timer (BATCH: at the end of a key).
func (t *Timers) Reset() {
	t.queues[0].reset()
	t.queues[1].reset()
}

// Snapshot writes all pending timers.
func (t *Timers) Snapshot(w io.Writer) error {
	var list []any
	for d := range t.queues {
		q := &t.queues[d]
		times := slices.Clone(q.times)
		slices.Sort(times)
		for _, ts := range times {
			b := q.buckets[ts]
			var ids []string
			for _, e := range b.ents[b.pos:] {
				if b.live(e) {
					ids = append(ids, e.id)
				}
			}
			slices.Sort(ids)
			ids = slices.Compact(ids) // a key listed twice has one timer
			for _, id := range ids {
				list = append(list, []any{int64(d), ts, []byte(id)})
			}
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
		if err := t.restoreTimer(e); err != nil {
			return err
		}
	}
	return nil
}

// restoreTimer adds one [domain, ts, keyID] timer of a snapshot.
func (t *Timers) restoreTimer(e any) error {
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
	t.queues[d].add(ts, string(id), key)
	return nil
}
