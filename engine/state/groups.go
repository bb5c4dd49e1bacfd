package state

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/flinkjob/flinkjob/engine/value"
)

// GroupWriter builds a snapshot of keyed state and timers split by key
// group, the form checkpoints and savepoints store (issue #7): a restore
// keeps only the key groups its subtask owns, so a job may restore at
// another parallelism, and a BATCH job's final state and a STREAMING
// job's state have the same form.
//
// Encoding (package value): [names, groups], names the operator's state
// names in registration order, groups a list of [keyGroup, entries,
// timers]; an entry is [keyID, [slot values...]] as in Keyed.Snapshot, a
// timer [domain, ts, keyID].
type GroupWriter struct {
	group  func(keyID string) int
	names  []any
	groups []*groupSnap // by key group
	n      int          // key groups with data
	// enc encodes the state values: a key's values mostly have the same
	// fields as the previous key's, which it remembers, so it writes maps
	// by lookups in sorted order instead of iterating and sorting each
	// (value.Encoder; the same canonical bytes as value.Append).
	enc value.Encoder
	// The last snapshot's buffers (hash form), which size this one's.
	prevEntries, prevTimers [][]byte
}

// groupSnap is one key group's entries and timers, each already encoded
// (a checkpoint encodes every key: building a value tree first would
// allocate per key for nothing).
type groupSnap struct {
	entries, timers   []byte
	nEntries, nTimers int
}

// The encoding's list and bytes tags, taken from the codec itself so they
// cannot drift from it: a list is tag, uvarint count, elements; bytes are
// tag, uvarint length, bytes.
var (
	tagList  = value.Append(nil, []any{})[0]
	tagBytes = value.Append(nil, []byte{})[0]
	tagInt   = value.Append(nil, int64(0))[0]
)

// appendInt is value.Append of an int64 (tag, zig-zag varint) without
// boxing it.
func appendInt(b []byte, v int64) []byte {
	return binary.AppendVarint(append(b, tagInt), v)
}

func appendListHeader(b []byte, n int) []byte {
	return binary.AppendUvarint(append(b, tagList), uint64(n))
}

func appendBytes(b []byte, s string) []byte {
	b = binary.AppendUvarint(append(b, tagBytes), uint64(len(s)))
	return append(b, s...)
}

// NewGroupWriter starts a snapshot of the state of k; group maps a key ID
// to its key group. It must map a key ID to the same group in every
// GroupWriter of k (key groups are fixed: shuffle.KeyGroup), as a key's
// group is computed once and kept with its state and timers.
func NewGroupWriter(k *Keyed, group func(keyID string) int) *GroupWriter {
	w := &GroupWriter{group: group}
	for _, d := range k.descs {
		w.names = append(w.names, d.name)
	}
	return w
}

// at returns the snapshot of keyID's key group; cached holds the group
// plus one once computed (entry.group, keyTimers.group).
func (w *GroupWriter) at(keyID string, cached *int32) *groupSnap {
	if *cached == 0 {
		*cached = int32(w.group(keyID)) + 1
	}
	g := int(*cached - 1)
	if g >= len(w.groups) {
		w.groups = append(w.groups, make([]*groupSnap, g+1-len(w.groups))...)
	}
	s := w.groups[g]
	if s == nil {
		s = &groupSnap{}
		// About the size of the last snapshot's: one allocation instead
		// of a buffer grown by copying from empty.
		if g < len(w.prevEntries) {
			s.entries = make([]byte, 0, len(w.prevEntries[g])+len(w.prevEntries[g])/8)
		}
		if g < len(w.prevTimers) {
			s.timers = make([]byte, 0, len(w.prevTimers[g])+len(w.prevTimers[g])/8)
		}
		w.groups[g] = s
		w.n++
	}
	return s
}

// addEntry encodes [keyID, [slots...]]. With gen set (AddAll), an entry
// that the last snapshot wrote and nothing touched since is copied from
// that snapshot's bytes, and every entry written remembers where it is in
// this one's.
func (w *GroupWriter) addEntry(k *Keyed, id string, e *entry, gen uint32) {
	if e.used == 0 {
		return
	}
	s := w.at(id, &e.group)
	start := len(s.entries)
	if gen != 0 && e.snapGen != 0 && e.snapGen == k.snapGen {
		s.entries = append(s.entries, k.snapBufs[e.group-1][e.snapOff:e.snapOff+e.snapLen]...)
	} else {
		b := appendListHeader(s.entries, 2)
		b = appendBytes(b, id)
		b = appendListHeader(b, len(k.descs))
		for i := range k.descs {
			var v any
			if i < len(e.slots) {
				v = e.slots[i]
			}
			if v != nil {
				if c := k.descs[i].codec; c.ToValue != nil {
					v = c.ToValue(v)
				}
			}
			b = w.enc.Append(b, v)
		}
		s.entries = b
	}
	s.nEntries++
	e.snapGen = 0
	if gen != 0 && len(s.entries) <= math.MaxUint32 {
		e.snapGen, e.snapOff, e.snapLen = gen, uint32(start), uint32(len(s.entries)-start)
	}
}

// addTimers encodes every timer as [domain, ts, keyID]. With gen set
// (AddAll), a key's timers unchanged since the last snapshot are copied
// from it, as addEntry does for state.
func (w *GroupWriter) addTimers(t *Timers, gen uint32) {
	for d := range t.queues {
		for id, kt := range t.queues[d].keys {
			s := w.at(id, &kt.group)
			start := len(s.timers)
			if gen != 0 && kt.snapGen != 0 && kt.snapGen == t.snapGen {
				s.timers = append(s.timers, t.snapBufs[kt.group-1][kt.snapOff:kt.snapOff+kt.snapLen]...)
			} else {
				for _, ts := range kt.ts {
					b := appendListHeader(s.timers, 3)
					b = appendInt(b, int64(d))
					b = appendInt(b, ts)
					s.timers = appendBytes(b, id)
				}
			}
			s.nTimers += len(kt.ts)
			kt.snapGen = 0
			if gen != 0 && len(s.timers) <= math.MaxUint32 {
				kt.snapGen, kt.snapOff, kt.snapLen = gen, uint32(start), uint32(len(s.timers)-start)
			}
		}
	}
}

// AddAll adds every key's state and every timer (hash form, STREAMING).
// It keeps the entries' encoding for the next AddAll of k, which copies
// the entries no handle has touched since instead of encoding them (a
// checkpoint writes every key; most keys of a large state are idle between
// two): the state holds on to one snapshot's worth of bytes for it.
func (w *GroupWriter) AddAll(k *Keyed, t *Timers) {
	k.compactList()
	w.prevEntries, w.prevTimers = k.snapBufs, t.snapBufs
	gen := nextGen(k.snapGen)
	for _, e := range k.list {
		w.addEntry(k, e.id, e, gen)
	}
	tgen := nextGen(t.snapGen)
	w.addTimers(t, tgen)
	ebufs, tbufs := make([][]byte, len(w.groups)), make([][]byte, len(w.groups))
	for g, s := range w.groups {
		if s != nil {
			ebufs[g], tbufs[g] = s.entries, s.timers
		}
	}
	k.snapBufs, k.snapGen = ebufs, gen
	t.snapBufs, t.snapGen = tbufs, tgen
}

// nextGen is the snapshot generation after g; it skips 0, which means no
// encoding (entry.snapGen, keyTimers.snapGen).
func nextGen(g uint32) uint32 {
	if g++; g == 0 {
		g = 1
	}
	return g
}

// AddCurrent adds the current key's state and every registered timer
// (single-key form, BATCH: all timers belong to the current key).
func (w *GroupWriter) AddCurrent(k *Keyed, t *Timers) {
	if k.cur != nil {
		w.addEntry(k, k.curID, k.cur, 0)
	}
	w.addTimers(t, 0)
}

// Bytes encodes the snapshot.
func (w *GroupWriter) Bytes() []byte {
	n := 16
	for _, s := range w.groups {
		if s != nil {
			n += len(s.entries) + len(s.timers) + 32
		}
	}
	b := make([]byte, 0, n)
	b = appendListHeader(b, 2)
	b = value.Append(b, w.names)
	b = appendListHeader(b, w.n)
	for g, s := range w.groups {
		if s == nil {
			continue
		}
		b = appendListHeader(b, 3)
		b = value.Append(b, int64(g))
		b = append(appendListHeader(b, s.nEntries), s.entries...)
		b = append(appendListHeader(b, s.nTimers), s.timers...)
	}
	return b
}

// RestoreGroups adds the key groups of a GroupWriter snapshot for which
// keep is true to k and t (hash form), leaving what they hold: a subtask
// calls it once per snapshot file that overlaps the key groups it owns.
// The operator's states must have the snapshot's names, in order.
func RestoreGroups(k *Keyed, t *Timers, data []byte, keep func(group int) bool) error {
	// A Decoder: the keys' values mostly share their fields, which it
	// interns (one schema for all rows, or one set of names for maps).
	v, rest, err := new(value.Decoder).Decode(data)
	if err != nil || len(rest) != 0 {
		return fmt.Errorf("state snapshot: %w", value.ErrCorrupt)
	}
	top, ok := v.([]any)
	if !ok || len(top) != 2 {
		return fmt.Errorf("state snapshot: %w", value.ErrCorrupt)
	}
	names, _ := top[0].([]any)
	if len(names) != len(k.descs) {
		return fmt.Errorf("state snapshot has states %v, the operator has %d", names, len(k.descs))
	}
	for i, n := range names {
		if n != k.descs[i].name {
			return fmt.Errorf("state snapshot has state %v where the operator has %q", n, k.descs[i].name)
		}
	}
	groups, _ := top[1].([]any)
	k.cur, k.curID, k.curKey = nil, "", nil
	if k.cache != nil {
		*k.cache = entryCache{}
	}
	for _, gv := range groups {
		g, ok := gv.([]any)
		if !ok || len(g) != 3 {
			return fmt.Errorf("state snapshot: %w", value.ErrCorrupt)
		}
		kg, _ := g[0].(int64)
		if !keep(int(kg)) {
			continue
		}
		entries, _ := g[1].([]any)
		for _, ev := range entries {
			if err := k.restoreEntry(ev); err != nil {
				return err
			}
		}
		timers, _ := g[2].([]any)
		for _, tv := range timers {
			if err := t.restoreTimer(tv); err != nil {
				return err
			}
		}
	}
	return nil
}

// restoreEntry adds one [keyID, slots] entry of a snapshot.
func (k *Keyed) restoreEntry(ev any) error {
	pair, ok := ev.([]any)
	if !ok || len(pair) != 2 {
		return fmt.Errorf("state snapshot: %w", value.ErrCorrupt)
	}
	id, _ := pair[0].([]byte)
	slots, _ := pair[1].([]any)
	key, krest, err := value.Decode(id)
	if err != nil || len(krest) != 0 || len(slots) != len(k.descs) {
		return fmt.Errorf("state snapshot: %w", value.ErrCorrupt)
	}
	e := &entry{key: key, slots: make([]any, len(k.descs))}
	for i, s := range slots {
		if s == nil {
			continue
		}
		if c := k.descs[i].codec; c.FromValue != nil {
			if s, err = c.FromValue(s); err != nil {
				return fmt.Errorf("state %q: %w", k.descs[i].name, err)
			}
		}
		e.slots[i] = s
		e.used++
	}
	if e.used > 0 {
		e.id = string(id)
		if old := k.entries[e.id]; old != nil {
			old.gone = true
		}
		k.entries[e.id] = e
		k.addToList(e)
	}
	return nil
}

// Dump returns every key's state and timers in a canonical form (keys
// sorted; values as the engine's JSON), for tests that compare state.
func Dump(k *Keyed, t *Timers) map[string]string {
	out := map[string]string{}
	for _, e := range k.entries {
		slots := make([]any, len(k.descs))
		for i := range slots {
			if i < len(e.slots) && e.slots[i] != nil {
				v := e.slots[i]
				if c := k.descs[i].codec; c.ToValue != nil {
					v = c.ToValue(v)
				}
				slots[i] = v
			}
		}
		out["state "+string(value.ToJSON(e.key))] = string(value.ToJSON(slots))
	}
	for d := range t.queues {
		for _, kt := range t.queues[d].keys {
			for _, ts := range kt.ts {
				out[fmt.Sprintf("timer %s %d %s", Domain(d), ts, value.ToJSON(kt.key))] = ""
			}
		}
	}
	return out
}
