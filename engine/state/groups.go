package state

import (
	"fmt"

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
	groups map[int]*groupSnap
}

type groupSnap struct {
	entries []any
	timers  []any
}

// NewGroupWriter starts a snapshot of the state of k; group maps a key ID
// to its key group.
func NewGroupWriter(k *Keyed, group func(keyID string) int) *GroupWriter {
	w := &GroupWriter{group: group, groups: map[int]*groupSnap{}}
	for _, d := range k.descs {
		w.names = append(w.names, d.name)
	}
	return w
}

func (w *GroupWriter) at(keyID string) *groupSnap {
	g := w.group(keyID)
	s := w.groups[g]
	if s == nil {
		s = &groupSnap{}
		w.groups[g] = s
	}
	return s
}

func (w *GroupWriter) addEntry(k *Keyed, id string, e *entry) {
	if e.used == 0 {
		return
	}
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
	s := w.at(id)
	s.entries = append(s.entries, []any{[]byte(id), slots})
}

func (w *GroupWriter) addTimers(t *Timers) {
	for d := range t.queues {
		for id, kt := range t.queues[d].keys {
			s := w.at(id)
			for _, ts := range kt.ts {
				s.timers = append(s.timers, []any{int64(d), ts, []byte(id)})
			}
		}
	}
}

// AddAll adds every key's state and every timer (hash form, STREAMING).
func (w *GroupWriter) AddAll(k *Keyed, t *Timers) {
	for id, e := range k.entries {
		w.addEntry(k, id, e)
	}
	w.addTimers(t)
}

// AddCurrent adds the current key's state and every registered timer
// (single-key form, BATCH: all timers belong to the current key).
func (w *GroupWriter) AddCurrent(k *Keyed, t *Timers) {
	if k.cur != nil {
		w.addEntry(k, k.curID, k.cur)
	}
	w.addTimers(t)
}

// Bytes encodes the snapshot.
func (w *GroupWriter) Bytes() []byte {
	groups := make([]any, 0, len(w.groups))
	for g, s := range w.groups {
		groups = append(groups, []any{int64(g), s.entries, s.timers})
	}
	return value.Append(nil, []any{w.names, groups})
}

// RestoreGroups adds the key groups of a GroupWriter snapshot for which
// keep is true to k and t (hash form), leaving what they hold: a subtask
// calls it once per snapshot file that overlaps the key groups it owns.
// The operator's states must have the snapshot's names, in order.
func RestoreGroups(k *Keyed, t *Timers, data []byte, keep func(group int) bool) error {
	v, rest, err := value.Decode(data)
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
			f, ok := tv.([]any)
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
		if old := k.entries[string(id)]; old != nil {
			old.gone = true
		}
		k.entries[string(id)] = e
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
