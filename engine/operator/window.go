package operator

import (
	"fmt"
	"sort"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/state"
	"github.com/flinkjob/flinkjob/engine/value"
)

// assigner maps a timestamp to its windows, as Flink's window assigners.
type assigner struct {
	typ   spec.WindowType
	size  int64
	slide int64
	gap   int64
}

// windowStart is Flink's TimeWindow.getWindowStartWithOffset with offset 0.
func windowStart(ts, size int64) int64 {
	r := ts % size
	if r < 0 {
		r += size
	}
	return ts - r
}

// assign calls fn with [start, end) of every window holding ts.
func (a assigner) assign(ts int64, fn func(start, end int64) error) error {
	switch a.typ {
	case spec.Tumbling:
		s := windowStart(ts, a.size)
		return fn(s, s+a.size)
	case spec.Sliding:
		last := windowStart(ts, a.slide)
		for s := last; s > ts-a.size; s -= a.slide {
			if err := fn(s, s+a.size); err != nil {
				return err
			}
		}
		return nil
	}
	return fn(ts, ts+a.gap)
}

// win is one window of one key with its accumulator.
type win struct {
	start, end int64
	acc        any
}

func (w *win) maxTs() int64 { return w.end - 1 }

// winSet is a key's open windows, ordered by start. Keys usually have a
// handful, so a sorted slice beats a map. A set comes with room for its
// first window and the slice's first slot: most keys of a tumbling window
// have one window at a time, so a key's first costs one allocation
// instead of three.
type winSet struct {
	ws        []*win
	first     fieldsWin
	firstUsed bool
	slot      [1]*win
}

// fieldsWin is a window with room for an aggregate step's accumulator
// (its acc then points to fa): one allocation, and firing a window reads
// its bounds and accumulator from the same few cache lines instead of
// chasing a pointer to another part of the heap.
type fieldsWin struct {
	win
	fa fieldAcc
}

func newWinSet() *winSet {
	s := &winSet{}
	s.ws = s.slot[:0]
	return s
}

// newWin returns a new window of the set (not yet inserted): the set's own
// first one, once, then allocated ones. With room, the window comes with
// room for a fieldAcc.
func (s *winSet) newWin(start, end int64, room bool) (*win, *fieldAcc) {
	if !s.firstUsed {
		s.firstUsed = true
		s.first = fieldsWin{win: win{start: start, end: end}}
		return &s.first.win, &s.first.fa
	}
	if room {
		x := &fieldsWin{win: win{start: start, end: end}}
		return &x.win, &x.fa
	}
	return &win{start: start, end: end}, nil
}

func (s *winSet) find(start, end int64) *win {
	for _, w := range s.ws {
		if w.start == start && w.end == end {
			return w
		}
	}
	return nil
}

func (s *winSet) insert(w *win) {
	i := sort.Search(len(s.ws), func(i int) bool { return s.ws[i].start > w.start })
	s.ws = append(s.ws, nil)
	copy(s.ws[i+1:], s.ws[i:])
	s.ws[i] = w
}

func (s *winSet) remove(w *win) {
	for i, x := range s.ws {
		if x == w {
			s.ws = append(s.ws[:i], s.ws[i+1:]...)
			return
		}
	}
}

// winSetCodec lets window state be snapshotted as [[start, end, acc],
// ...], each accumulator as acc says.
func winSetCodec(acc state.Codec) state.Codec {
	toAcc, fromAcc := acc.ToValue, acc.FromValue
	if toAcc == nil {
		toAcc = func(v any) any { return v }
		fromAcc = func(v any) (any, error) { return v, nil }
	}
	return state.Codec{
		ToValue: func(v any) any {
			s := v.(*winSet)
			out := make([]any, len(s.ws))
			for i, w := range s.ws {
				out[i] = []any{w.start, w.end, toAcc(w.acc)}
			}
			return out
		},
		FromValue: func(v any) (any, error) {
			list, ok := v.([]any)
			if !ok {
				return nil, fmt.Errorf("window state: want a list, got %s", value.TypeName(v))
			}
			s := &winSet{}
			for _, e := range list {
				t, ok := e.([]any)
				if !ok || len(t) != 3 {
					return nil, fmt.Errorf("window state: bad entry")
				}
				st, ok1 := t[0].(int64)
				en, ok2 := t[1].(int64)
				if !ok1 || !ok2 {
					return nil, fmt.Errorf("window state: bad bounds")
				}
				acc, err := fromAcc(t[2])
				if err != nil {
					return nil, fmt.Errorf("window state: %w", err)
				}
				s.ws = append(s.ws, &win{start: st, end: en, acc: acc})
			}
			return s, nil
		},
	}
}

// Window is an event-time window operator over a keyed stream: tumbling,
// sliding or session windows, fired by the event-time trigger when the
// watermark passes a window's end, with allowed lateness (late records
// within it re-fire the window with the updated result) and a side output
// for records too late for any window.
type Window struct {
	keyedBase
	step     string
	asg      assigner
	lateness int64
	agg      aggregator
	isAgg    bool
	out      *aggOut // set by Open when isAgg
	lateName string
	late     Collector
	wins     state.ValueState
	// The boxed start and end of the window emitted last (see box): every
	// key's window of a time range has the same bounds.
	lastStart, lastEnd       int64
	lastStartAny, lastEndAny any
}

func (o *Window) Open(ctx *Context, out Collector) error {
	o.openKeyed(ctx, out)
	o.wins = o.st.Value("windows", winSetCodec(accCodec(o.agg)))
	o.onTimer = o.fire
	if o.isAgg {
		o.out = newAggOut(o.agg.(fields), "key", "windowStart", "windowEnd")
	}
	if o.lateName != "" && ctx.SideOutput != nil {
		o.late = ctx.SideOutput(o.step, o.lateName)
	}
	return nil
}

func (o *Window) set() *winSet {
	if s, ok := o.wins.Get().(*winSet); ok {
		return s
	}
	return &winSet{}
}

func (o *Window) isLate(w *win) bool {
	return w.maxTs()+o.lateness <= o.wm
}

func (o *Window) Process(r *value.Record, _ int) error {
	if r.Ts == value.NoTimestamp {
		return o.fail(fmt.Errorf("a window needs event time, but the record has no timestamp: set source.timestamp on the source"))
	}
	o.setKey(r)
	cur, _ := o.wins.Get().(*winSet)
	ws := cur
	if ws == nil {
		ws = newWinSet()
	}
	var err error
	var placed bool
	switch o.asg.typ {
	case spec.Session:
		placed, err = o.addSession(ws, r)
	case spec.Tumbling:
		// assign's single window, without the callback.
		s := windowStart(r.Ts, o.asg.size)
		placed, err = o.addTo(ws, r, s, s+o.asg.size)
	default:
		err = o.asg.assign(r.Ts, func(start, end int64) error {
			ok, err := o.addTo(ws, r, start, end)
			placed = placed || ok
			return err
		})
	}
	if err != nil {
		return o.fail(err)
	}
	if len(ws.ws) > 0 {
		if ws != cur {
			o.wins.Set(ws)
		}
	} else if cur != nil {
		o.wins.Clear()
	}
	if !placed {
		return o.dropLate(r)
	}
	return nil
}

// addTo adds r to the key's window [start, end), creating it unless it is
// late; it reports whether r was placed.
func (o *Window) addTo(ws *winSet, r *value.Record, start, end int64) (bool, error) {
	w := ws.find(start, end)
	if w == nil {
		if o.isLate(&win{start: start, end: end}) {
			return false, nil
		}
		var fa *fieldAcc
		w, fa = ws.newWin(start, end, o.isAgg)
		var acc any
		var err error
		if o.isAgg {
			acc, err = o.agg.(fields).createIn(fa)
		} else {
			acc, err = o.agg.create()
		}
		if err != nil {
			return false, err
		}
		w.acc = acc
		ws.insert(w)
		o.registerTimers(w)
	}
	acc, err := o.agg.add(w.acc, r)
	if err != nil {
		return true, err
	}
	w.acc = acc
	if w.maxTs() <= o.wm {
		// A late record within the allowed lateness: fire again now.
		return true, o.emit(w)
	}
	return true, nil
}

func (o *Window) addSession(ws *winSet, r *value.Record) (bool, error) {
	nw := &win{start: r.Ts, end: r.Ts + o.asg.gap}
	var merged []*win
	for _, w := range ws.ws {
		// Flink's TimeWindow.intersects: touching sessions merge.
		if w.start <= nw.end && w.end >= nw.start {
			merged = append(merged, w)
			if w.start < nw.start {
				nw.start = w.start
			}
			if w.end > nw.end {
				nw.end = w.end
			}
		}
	}
	if o.isLate(nw) {
		return false, nil
	}
	acc, err := o.agg.create()
	if err != nil {
		return false, err
	}
	for _, w := range merged {
		if acc, err = o.agg.merge(acc, w.acc); err != nil {
			return false, err
		}
		ws.remove(w)
		// The merged-away window's timers are left to fire: timers are
		// per key and time, not per window, so one of them may also be
		// another live window's trigger or cleanup timer (e.g. this
		// window's end + lateness == the next session's end), and
		// deleting it would lose that window. A timer whose window is
		// gone finds nothing to fire or clean up in fire().
	}
	if acc, err = o.agg.add(acc, r); err != nil {
		return false, err
	}
	nw.acc = acc
	ws.insert(nw)
	o.registerTimers(nw)
	if nw.maxTs() <= o.wm {
		return true, o.emit(nw)
	}
	return true, nil
}

// registerTimers sets the window's trigger timer (at its max timestamp)
// and, with allowed lateness, its cleanup timer. A window created when the
// watermark has already passed its end (a late record within the allowed
// lateness) fires at once in Process, as Flink's EventTimeTrigger.onElement
// does, so it gets no trigger timer: one would fire it a second time, with
// the same contents, at the next watermark.
func (o *Window) registerTimers(w *win) {
	if w.maxTs() > o.wm {
		o.timers.Register(state.EventTime, w.maxTs())
	}
	if o.lateness > 0 {
		o.timers.Register(state.EventTime, w.maxTs()+o.lateness)
	}
}

func (o *Window) dropLate(r *value.Record) error {
	if o.late != nil {
		return o.emitTo(o.late, r.Value, r.Ts)
	}
	if o.ctx.LateDropped != nil {
		*o.ctx.LateDropped++
	}
	return nil
}

// fire handles a timer: windows ending at it emit their result; windows
// whose cleanup time (end + allowed lateness) it is are dropped.
func (o *Window) fire(t state.Timer) error {
	ws := o.set()
	// Filter in place: the set keeps its backing array for the key's
	// next windows.
	keep := ws.ws[:0]
	for i, w := range ws.ws {
		if w.maxTs() == t.Ts {
			if err := o.emit(w); err != nil {
				// Keep the windows not yet looked at, as before.
				ws.ws = append(keep, ws.ws[i:]...)
				return err
			}
		}
		if w.maxTs()+o.lateness > t.Ts {
			keep = append(keep, w)
		} else if w == &ws.first.win {
			ws.first = fieldsWin{} // the set may live on: keep no accumulator alive
		}
	}
	clear(ws.ws[len(keep):])
	ws.ws = keep
	if len(keep) == 0 {
		o.wins.Clear()
	} else {
		o.wins.Set(ws)
	}
	return nil
}

func (o *Window) emit(w *win) error {
	if o.isAgg {
		o.out.head = [3]any{o.st.CurrentKey(), box(w.start, &o.lastStart, &o.lastStartAny), box(w.end, &o.lastEnd, &o.lastEndAny)}
	}
	v, err := o.agg.result(w.acc, o.out)
	if err != nil {
		return err
	}
	return o.base.emit(v, w.maxTs())
}
