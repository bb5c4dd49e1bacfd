// Package state is keyed state and timers for keyed operators, in the two
// forms Flink's runtime modes need:
//
//   - STREAMING (hash form): every key's state lives in a hash map for the
//     life of the job, with a snapshot/restore interface for checkpoints.
//     Timers of all keys sit in one priority queue and fire as the watermark
//     advances.
//   - BATCH (single-key form): input arrives sorted by key, so only the
//     current key's state exists. Moving to the next key drops the previous
//     key's state, which keeps memory flat however large the input is.
//
// Operators use the same handles (ValueState, ListState, MapState, Timers)
// in both modes and never know which form backs them.
package state

import (
	"fmt"
	"io"
	"unsafe"

	"github.com/flinkjob/flinkjob/engine/value"
)

// Codec converts a state value to and from the engine's dynamic values, so
// operators may keep typed Go structs in state and still snapshot them.
// The zero Codec stores dynamic values as they are.
type Codec struct {
	ToValue   func(any) any
	FromValue func(any) (any, error)
}

type kind int

const (
	kindValue kind = iota
	kindList
	kindMap
)

type desc struct {
	name  string
	kind  kind
	codec Codec
}

type entry struct {
	key   any
	id    string // the key ID (hash form)
	slots []any
	used  int  // non-nil slots; the entry is removed when it drops to 0
	gone  bool // removed from entries (a cached pointer to it is stale)
	// group is the key group of id plus one, once a GroupWriter has
	// computed it (0: not yet): every checkpoint writes every key.
	group int32
	// snapGen is the generation of the last snapshot (Keyed.snapGen)
	// when that snapshot wrote the entry and no handle has read or
	// written it since; 0 otherwise. Its encoding is then
	// Keyed.snapBufs[group-1][snapOff:snapOff+snapLen], which the next
	// snapshot copies instead of encoding the values again.
	snapGen          uint32
	snapOff, snapLen uint32
	// kts is the key's timers by domain once a registration or a firing
	// linked them (hash form): registering finds them without a lookup.
	// Stale once empty (they left their queue).
	kts [2]*keyTimers
}

// entryCache remembers the entries of recently selected keys by the
// address of their key ID's bytes. Records of one key usually carry the
// same key ID string (the partitioner and the exchange decoder that set it
// reuse it), so a hit costs a pointer hash and a pointer comparison,
// instead of hashing the key ID into the entries map. It compares
// addresses, never bytes: the IDs of a set's other keys mostly have the
// same length (int keys), and comparing their bytes would read each one's
// memory; an equal ID at another address is a miss that the map serves.
type entryCache [entryCacheSize]struct {
	id string
	e  *entry
}

const entryCacheBits = 12
const entryCacheSize = 1 << entryCacheBits

// slot returns the first of the two slots (ways) where id may be cached.
func (c *entryCache) slot(id string) int {
	p := uint64(uintptr(unsafe.Pointer(unsafe.StringData(id))))
	return int((p*0x9E3779B97F4A7C15)>>(64-entryCacheBits)) &^ 1
}

// sameString reports whether a and b are the same bytes in memory (so
// equal): the cache holds its IDs, so their memory is not reused.
func sameString(a, b string) bool {
	return len(a) == len(b) && unsafe.StringData(a) == unsafe.StringData(b)
}

// get returns the cached live entry of id, or nil. It compares the IDs
// before it reads an entry: an entry is elsewhere in memory, and reading
// the ones a miss passes by would cost a cache miss each.
func (c *entryCache) get(id string) *entry {
	i := c.slot(id)
	for w := i; w < i+2; w++ {
		if sameString(c[w].id, id) {
			if e := c[w].e; e != nil && !e.gone {
				return e
			}
		}
	}
	return nil
}

// put caches id's entry as the most recent of its set.
func (c *entryCache) put(id string, e *entry) {
	i := c.slot(id)
	if !sameString(c[i].id, id) {
		c[i+1] = c[i]
	}
	c[i].id, c[i].e = id, e
}

// Keyed holds the keyed state of one operator in one subtask.
type Keyed struct {
	batch   bool
	descs   []desc
	entries map[string]*entry
	single  entry // BATCH: the current key's entry, reused
	// list holds the entries in creation order, gone ones included until
	// the next compaction, so a snapshot walks a slice instead of the map.
	list   []*entry
	cur    *entry
	curID  string
	curKey any
	cache  *entryCache // hash form only
	// snapBufs is the encoded entries of the last GroupWriter.AddAll by
	// key group, and snapGen its generation (see entry.snapGen): a
	// checkpoint re-encodes only the keys touched since the one before.
	snapBufs [][]byte
	snapGen  uint32
}

// NewHash returns hash-form state (STREAMING).
func NewHash() *Keyed { return &Keyed{entries: map[string]*entry{}, cache: new(entryCache)} }

// NewSingleKey returns single-key state (BATCH, input sorted by key).
func NewSingleKey() *Keyed { return &Keyed{batch: true} }

// Batch reports whether this is single-key state.
func (k *Keyed) Batch() bool { return k.batch }

// SetCurrentKey selects the key that state handles read and write. In
// single-key form a different key drops the previous key's state.
func (k *Keyed) SetCurrentKey(keyID string, key any) {
	if keyID == k.curID && k.cur != nil {
		return
	}
	k.curID, k.curKey = keyID, key
	if k.batch {
		if k.single.key != nil || k.single.used > 0 {
			clear(k.single.slots)
			k.single.used = 0
		}
		k.single.key, k.single.group = key, 0
		k.cur = &k.single
		return
	}
	if e := k.cache.get(keyID); e != nil {
		k.cur = e
		return
	}
	k.cur = k.entries[keyID]
	if k.cur != nil {
		k.cache.put(keyID, k.cur)
	}
}

// CurrentKey is the key selected by SetCurrentKey.
func (k *Keyed) CurrentKey() any { return k.curKey }

// CurrentKeyID is the encoded current key.
func (k *Keyed) CurrentKeyID() string { return k.curID }

// Keys returns how many keys hold state (always 0 or 1 in single-key form).
func (k *Keyed) Keys() int {
	if k.batch {
		if k.single.used > 0 {
			return 1
		}
		return 0
	}
	return len(k.entries)
}

func (k *Keyed) register(name string, kd kind, c Codec) int {
	for _, d := range k.descs {
		if d.name == name {
			panic(fmt.Sprintf("state %q registered twice", name))
		}
	}
	k.descs = append(k.descs, desc{name: name, kind: kd, codec: c})
	return len(k.descs) - 1
}

// get reads a slot of the current key. A handle's reader may change what
// it reads in place (a window set, a list), so a read, as a write, makes
// the entry's last encoding stale.
func (k *Keyed) get(slot int) any {
	e := k.cur
	if e == nil {
		return nil
	}
	e.snapGen = 0
	if slot >= len(e.slots) {
		return nil
	}
	return e.slots[slot]
}

func (k *Keyed) set(slot int, v any) {
	e := k.cur
	if e == nil {
		if v == nil {
			return
		}
		e = &entry{key: k.curKey, id: k.curID}
		k.entries[k.curID] = e
		k.addToList(e)
		k.cur = e
		k.cache.put(k.curID, e)
	}
	e.snapGen = 0
	if len(e.slots) < len(k.descs) {
		e.slots = append(e.slots, make([]any, len(k.descs)-len(e.slots))...)
	}
	old := e.slots[slot]
	e.slots[slot] = v
	switch {
	case old == nil && v != nil:
		e.used++
	case old != nil && v == nil:
		e.used--
		if e.used == 0 && !k.batch {
			delete(k.entries, k.curID)
			e.gone = true
			k.cur = nil
		}
	}
}

// ValueState is one value per key.
type ValueState struct {
	k    *Keyed
	slot int
}

// Value registers a value state.
func (k *Keyed) Value(name string, c Codec) ValueState {
	return ValueState{k, k.register(name, kindValue, c)}
}

// Get returns the current key's value, or nil.
func (s ValueState) Get() any { return s.k.get(s.slot) }

// Set replaces the current key's value; nil clears it.
func (s ValueState) Set(v any) { s.k.set(s.slot, v) }

// Clear removes the current key's value.
func (s ValueState) Clear() { s.k.set(s.slot, nil) }

// ListState is a list of values per key.
type ListState struct {
	k    *Keyed
	slot int
}

// List registers a list state.
func (k *Keyed) List(name string) ListState { return ListState{k, k.register(name, kindList, Codec{})} }

// Get returns the current key's list (do not modify it).
func (s ListState) Get() []any {
	l, _ := s.k.get(s.slot).([]any)
	return l
}

// Add appends to the current key's list.
func (s ListState) Add(v any) { s.k.set(s.slot, append(s.Get(), v)) }

// Update replaces the current key's list; an empty list clears it.
func (s ListState) Update(l []any) {
	if len(l) == 0 {
		s.k.set(s.slot, nil)
		return
	}
	s.k.set(s.slot, l)
}

// Clear removes the current key's list.
func (s ListState) Clear() { s.k.set(s.slot, nil) }

// MapState is a map of string keys to values per key.
type MapState struct {
	k    *Keyed
	slot int
}

// Map registers a map state.
func (k *Keyed) Map(name string) MapState { return MapState{k, k.register(name, kindMap, Codec{})} }

func (s MapState) m() map[string]any {
	switch m := s.k.get(s.slot).(type) {
	case map[string]any:
		return m
	case *value.Row:
		// A restored map decodes as a row when rows are on: the handle
		// reads and writes a map, so the slot becomes the row's map.
		mm := m.ToMap()
		s.k.set(s.slot, mm)
		return mm
	}
	return nil
}

// Get looks up one entry of the current key's map.
func (s MapState) Get(key string) (any, bool) {
	v, ok := s.m()[key]
	return v, ok
}

// Put sets one entry.
func (s MapState) Put(key string, v any) {
	m := s.m()
	if m == nil {
		m = map[string]any{}
		s.k.set(s.slot, m)
	}
	m[key] = v
}

// Remove deletes one entry.
func (s MapState) Remove(key string) {
	m := s.m()
	delete(m, key)
	if len(m) == 0 && m != nil {
		s.k.set(s.slot, nil)
	}
}

// Entries returns the current key's map (do not modify it).
func (s MapState) Entries() map[string]any { return s.m() }

// Clear removes the current key's map.
func (s MapState) Clear() { s.k.set(s.slot, nil) }

// Snapshot writes every key's state (hash form) with the value encoding:
// a list of [keyID, [slot values...]] pairs, slots by registration order
// and named so a restore can check it matches the operator.
func (k *Keyed) Snapshot(w io.Writer) error {
	names := make([]any, len(k.descs))
	for i, d := range k.descs {
		names[i] = d.name
	}
	entries := make([]any, 0, len(k.entries))
	for id, e := range k.entries {
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
		entries = append(entries, []any{[]byte(id), slots})
	}
	_, err := w.Write(value.Append(nil, []any{names, entries}))
	return err
}

// Restore replaces all state with a snapshot written by Snapshot.
func (k *Keyed) Restore(data []byte) error {
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
		return fmt.Errorf("state snapshot has %d states, operator has %d", len(names), len(k.descs))
	}
	for i, n := range names {
		if n != k.descs[i].name {
			return fmt.Errorf("state snapshot has state %v where the operator has %q", n, k.descs[i].name)
		}
	}
	entries, _ := top[1].([]any)
	for _, e := range k.entries {
		e.gone = true
	}
	k.entries = make(map[string]*entry, len(entries))
	clear(k.list)
	k.list = k.list[:0]
	k.cur, k.curID, k.curKey = nil, "", nil
	if k.cache != nil {
		*k.cache = entryCache{}
	}
	k.snapBufs = nil // every entry is new: none has an encoding there
	for _, ev := range entries {
		if err := k.restoreEntry(ev); err != nil {
			return err
		}
	}
	return nil
}

// addToList appends a new entry to list, first dropping the gone ones
// when they would make up most of it.
func (k *Keyed) addToList(e *entry) {
	if len(k.list) >= 2*len(k.entries)+1024 {
		k.compactList()
	}
	k.list = append(k.list, e)
}

// compactList drops gone entries from list.
func (k *Keyed) compactList() {
	n := 0
	for _, e := range k.list {
		if !e.gone {
			k.list[n] = e
			n++
		}
	}
	clear(k.list[n:])
	k.list = k.list[:n]
}
