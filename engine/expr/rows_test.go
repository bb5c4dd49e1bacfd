package expr

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/flinkjob/flinkjob/engine/value"
)

// iteratesMaps reports whether src may build a list by iterating over a
// map, in an order CEL leaves open.
func iteratesMaps(src string) bool {
	for _, m := range []string{".map(", ".filter(", ".transformList("} {
		if strings.Contains(src, m) {
			return true
		}
	}
	return false
}

// sameResult is sameValue, and also sameUnordered where src may iterate
// over a map: CEL visits a map's keys in no set order (not even the same
// each time for its own map literals), the fast evaluator a row's in
// sorted order, one of CEL's.
func sameResult(src string, a, b any) bool {
	return sameValue(a, b) || iteratesMaps(src) && sameUnordered(a, b)
}

// sameUnordered is sameValue with the elements of every list compared in
// any order.
func sameUnordered(a, b any) bool {
	a, b = value.Plain(a), value.Plain(b)
	switch x := a.(type) {
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		used := make([]bool, len(y))
	next:
		for _, e := range x {
			for j, f := range y {
				if !used[j] && sameUnordered(e, f) {
					used[j] = true
					continue next
				}
			}
			return false
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameUnordered(v, w) {
				return false
			}
		}
		return true
	}
	return sameValue(a, b)
}

// withRows compiles with value.UseRows set to on for the duration.
func withRows(t *testing.T, on bool, src string, want Want, vars ...string) *Program {
	t.Helper()
	old := value.UseRows
	value.UseRows = on
	defer func() { value.UseRows = old }()
	p, err := Compile(src, want, vars...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Every construct gives the same result for a row as for its map: CEL's
// own evaluation of a row, the fast evaluator on rows (which handles every
// shape listed here natively), and programs whose map literals build rows
// or maps. The map input evaluated by CEL alone is the reference.
func TestRowsMatchMaps(t *testing.T) {
	rec := map[string]any{
		"id": int64(7), "s": "héllo", "f": 2.5, "n": nil,
		"m":    map[string]any{"k": int64(1), "j": "v"},
		"bids": []any{map[string]any{"t": int64(1), "p": int64(5)}, map[string]any{"t": int64(3), "p": int64(9)}},
		"l":    []any{int64(1), map[string]any{"k": int64(1), "j": "v"}},
	}
	st := map[string]any{
		"m":    map[string]any{"j": "v", "k": int64(1)},
		"o":    map[string]any{"k": int64(1), "j": "w"},
		"bids": []any{map[string]any{"p": int64(5), "t": int64(1)}, map[string]any{"t": int64(3), "p": int64(9)}},
	}
	cases := []struct {
		src string
		// cel: left to CEL by the fast evaluator (functions it does not
		// know); unordered: iterates over a map's keys.
		cel, unordered bool
	}{
		{src: "record"},
		{src: "record.m"},
		{src: "record.m.k"},
		{src: "record.bids[1].p"},
		{src: "record.l[1].j"},
		{src: "{'a': record.id, 'b': record.m, 'c': {'d': record.s}}"},
		{src: "[{'x': record.id}, record.m]"},
		{src: "dyn({'z': 1, 'a': record.n})"},
		{src: "has(record.m)"},
		{src: "has(record.missing)"},
		{src: "has(record.m.k)"},
		{src: "has(record.m.q)"},
		{src: "has(record.n)"},
		{src: "size(record)"},
		{src: "size(record.m)"},
		{src: "record.m.size()"},
		{src: "'k' in record.m"},
		{src: "'q' in record.m"},
		{src: "'id' in record"},
		{src: "record['id']"},
		{src: "record.m['j']"},
		{src: "record['m']['k']"},
		{src: "record.m == state.m"},
		{src: "record.m != state.o"},
		{src: "record.m == {'k': 1, 'j': 'v'}"},
		{src: "{'j': 'v', 'k': 1} == record.m"},
		{src: "record.m == {'k': 1}"},
		{src: "record.bids == state.bids"},
		{src: "record.l == [1, state.m]"},
		{src: "record.m in [1, state.o, state.m]"},
		{src: "record.m in [state.o]"},
		{src: "{'x': record.m} == {'x': state.m}"},
		{src: "[record.m, record.m] == [state.m, state.o]"},
		{src: "record == state"},
		{src: "record.m == record.bids"},
		{src: "record.bids.exists(b, b.t > 2)"},
		{src: "record.bids.all(b, has(b.p) && b.p > 1)"},
		{src: "record.bids.filter(b, b.t >= 1).map(b, {'p': b.p})"},
		{src: "record.bids.map(b, b.t + b.p)"},
		{src: "record.m.exists(k, k == 'j')"},
		{src: "record.m.all(k, k in state.m)"},
		{src: "record.m.exists_one(k, k == 'k')"},
		{src: "record.m.all(k, v, state.m[k] == v)"},
		{src: "record.m.map(k, k)", unordered: true},
		{src: "record.m.filter(k, k != 'q')", unordered: true},
		{src: "record.m.transformList(k, v, k + string(v))", unordered: true},
		{src: "record.bids.map(b, b) + [record.m]"},
		{src: "record.bids.map(b, string(b.t)).exists(t, t in record.m)"},
		{src: "type(record.m) == map", cel: true},
		{src: "dyn(record.m).j", cel: false},
		{src: "record.?m.?k.orValue(0)", cel: true},
		{src: "record.?missing.orValue(record.m)", cel: true},
		{src: "record.m.transformMap(k, v, v)", cel: true},
		{src: "record.bids.sortBy(b, -b.t)"},
		{src: "sets.contains([record.m, 1], [state.m])", cel: true},
		{src: "lists.range(size(record.m))", cel: true},
		{src: "'%s %s'.format([record.m, record.bids])", cel: true},
		{src: "optional.of(record.m).value()", cel: true},
		{src: "record.m.?k.orValue(5) + record.m.?q.orValue(5)", cel: true},
		{src: "[[record.m], [state.m]].flatten()", cel: true},
		{src: "sets.equivalent([record.m], [state.m])", cel: true},
		{src: "record.bids.sortBy(b, b.p).map(b, b.t)"},
		{src: "dyn(record.m) == dyn(state.m)"},
		{src: "record.m.exists(k, record.m[k] == state.m[k])"},
		{src: "record.m.k + 1 == 2 ? record.bids[0] : state.m"},
	}
	for _, c := range cases {
		vars := []string{Record, State}
		ref, refErr := celEval(withRows(t, false, c.src, Any, vars...), rec, st)
		if refErr != nil {
			t.Fatalf("%s: CEL on maps: %v", c.src, refErr)
		}
		same := func(got any) bool {
			return sameValue(got, ref) || c.unordered && sameUnordered(got, ref)
		}
		for _, rows := range []bool{false, true} {
			p := withRows(t, rows, c.src, Any, vars...)
			for _, in := range []struct {
				name    string
				rec, st any
				allRows bool
			}{
				{"rows", value.Rows(rec), value.Rows(st), true},
				{"row record, map state", value.RowOf(rec), st, false},
				{"map record, row state", rec, value.Rows(st), false},
			} {
				what := fmt.Sprintf("%s (row literals %v) on %s", c.src, rows, in.name)
				if got, err := celEval(p, in.rec, in.st); err != nil || !same(got) {
					t.Errorf("%s: CEL gives %#v, %v; want %#v", what, got, err, ref)
				}
				if got, err := p.Evaluator().Eval(in.rec, in.st); err != nil || !same(got) {
					t.Errorf("%s: Eval gives %#v, %v; want %#v", what, got, err, ref)
				}
				if got, err := p.Eval(in.rec, in.st); err != nil || !same(got) {
					t.Errorf("%s: Program.Eval gives %#v, %v; want %#v", what, got, err, ref)
				}
				if c.cel || !in.allRows {
					continue
				}
				if p.fast == nil && p.pathVar < 0 {
					t.Errorf("%s: not compiled to the fast evaluator", c.src)
					continue
				}
				if p.fast != nil {
					if got, ok := fastEval(p, in.rec, in.st); !ok || !same(got) {
						t.Errorf("%s: fast gives %#v (handled %v); want %#v", what, got, ok, ref)
					}
				}
			}
		}
	}
}

// With value.UseRows, a map literal with constant string keys builds a
// row, of the literal's sorted schema; one with another key (or the same
// key twice) stays CEL's map.
func TestMapLiteralsBuildRows(t *testing.T) {
	p := withRows(t, true, "{'b': record.x, 'a': 1, 'c': {'y': [record.x]}}", Map, Record)
	v, err := p.Eval1(map[string]any{"x": "s"})
	if err != nil {
		t.Fatal(err)
	}
	r, ok := v.(*value.Row)
	if !ok {
		t.Fatalf("got %#v, want a row", v)
	}
	if !slices.Equal(r.Schema().Names(), []string{"a", "b", "c"}) || r.At(0) != int64(1) || r.At(1) != "s" {
		t.Errorf("row %v", r)
	}
	if inner, ok := r.At(2).(*value.Row); !ok || !sameValue(inner, map[string]any{"y": []any{"s"}}) {
		t.Errorf("nested literal %#v, want a row", r.At(2))
	}
	if v, err := withRows(t, false, "{'b': record.x}", Map, Record).Eval1(map[string]any{"x": "s"}); err != nil {
		t.Fatal(err)
	} else if _, ok := v.(map[string]any); !ok {
		t.Errorf("rows off: got %#v, want a map", v)
	}
	for _, src := range []string{"{'a': 1, 'a': 2}", "{1: 'a'}", "{record.k: 1}"} {
		p := withRows(t, true, src, Map, Record)
		v, err := p.Eval1(map[string]any{"k": "a"})
		if _, isRow := v.(*value.Row); isRow {
			t.Errorf("%s: got a row %v", src, v)
		}
		want, wantErr := celEval(p, map[string]any{"k": "a"})
		if (err != nil) != (wantErr != nil) || !sameValue(v, want) {
			t.Errorf("%s: %#v, %v; CEL %#v, %v", src, v, err, want, wantErr)
		}
	}
}

// EvalInto with row literals refills the row it returned from the same
// literal before, and only that one: a nested literal, another branch's
// literal, a passed-through input and CEL's result are other values.
func TestEvalIntoRefillsRow(t *testing.T) {
	p := withRows(t, true, `record.k == 1 ? dyn({'state': {'n': record.k}, 'emit': [{'a': 1}]})
		: record.k == 2 ? record : record.k == 3 ? {'x': record.missing} : {'y': record.k}`, Map, Record)
	if p.rowSlots != 3 {
		t.Fatalf("rowSlots %d, want 3", p.rowSlots)
	}
	ev := p.Evaluator()
	scratch := map[string]any{}
	eval := func(k int64) any {
		t.Helper()
		v, err := ev.EvalInto(scratch, map[string]any{"k": k})
		if err != nil {
			t.Fatal(err)
		}
		if len(scratch) != 0 {
			t.Fatalf("k=%d: the scratch map was filled: %v", k, scratch)
		}
		return v
	}
	first := eval(1).(*value.Row)
	state := first.At(1) // emit, state
	second := eval(1).(*value.Row)
	if first != second {
		t.Errorf("k=1: a new row, want the last one refilled")
	}
	if second.At(1) == state {
		t.Errorf("k=1: the nested literal's row was reused")
	}
	y4 := eval(4).(*value.Row)
	if y4 == second || y4.At(0) != int64(4) {
		t.Errorf("k=4: %v (the k=1 literal's row: %v)", y4, y4 == second)
	}
	if y5 := eval(5).(*value.Row); y5 != y4 || y5.At(0) != int64(5) {
		t.Errorf("k=5: %v, refilled %v", y5, y5 == y4)
	}
	in := value.RowOf(map[string]any{"k": int64(2)})
	if v, err := ev.EvalInto(scratch, in); err != nil || v != any(in) {
		t.Errorf("k=2: %v, %v; want the record itself", v, err)
	}
	if _, err := ev.EvalInto(scratch, map[string]any{"k": int64(3)}); err == nil {
		t.Errorf("k=3: want CEL's no such key error")
	}
	// Eval never hands out the scratch row.
	if v, err := ev.Eval(map[string]any{"k": int64(6)}); err != nil || v == any(y4) {
		t.Errorf("Eval after EvalInto: %v, %v (scratch reused: %v)", v, err, v == any(y4))
	}
}

// A field read caches the field's index per schema; rows of several
// schemas at one site, more than the cache holds, read right, also from
// goroutines sharing the program.
func TestFieldSiteSchemas(t *testing.T) {
	p := withRows(t, false, "record.b", Any, Record)
	q := withRows(t, false, "record.b + 0", Any, Record)
	for round := 0; round < 3; round++ {
		for n := 0; n < 2*siteSchemas; n++ {
			m := map[string]any{"b": int64(n)}
			for i := 0; i < n; i++ {
				m[fmt.Sprintf("f%d", i)] = int64(-1)
				m[fmt.Sprintf("a%d", i)] = int64(-2)
			}
			r := value.RowOf(m)
			for _, prog := range []*Program{p, q} {
				if v, err := prog.Eval1(r); err != nil || v != int64(n) {
					t.Fatalf("%s on %v: %v, %v", prog.Source(), r, v, err)
				}
			}
			if _, err := p.Eval1(value.RowOf(map[string]any{"a": int64(1)})); err == nil {
				t.Fatalf("no field b: want CEL's error")
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := value.RowOf(map[string]any{"b": int64(g), fmt.Sprintf("g%d", g): true})
			for i := 0; i < 1000; i++ {
				if v, err := q.Eval1(r); err != nil || v != int64(g) {
					errs <- fmt.Errorf("goroutine %d: %v, %v", g, v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// With size checks (a comprehension over input data), a map that is only
// selected from may be large: CEL's cost of a selection does not depend
// on it. A map read whole (size, equality, iteration, a result) must be
// small, or CEL evaluates with the limit.
func TestFastSelectsFromLargeMaps(t *testing.T) {
	big := map[string]any{"xs": []any{int64(1), int64(-2)}, "f": int64(3)}
	for i := 0; i < 2*smallInputSize; i++ {
		big[fmt.Sprintf("k%d", i)] = int64(i)
	}
	for _, in := range []any{big, value.RowOf(big)} {
		for _, c := range []struct {
			src     string
			handled bool
		}{
			{"record.xs.exists(a, a < 0) && has(record.f) && record.f == 3", true},
			{"record.xs.map(a, a * record.f)", true},
			{"record.xs.exists(a, a < 0) && size(record) > 0", false},
			{"record.xs.exists(a, a < 0) ? record : {}", false},
			{"record.xs.exists(a, a < 0) && record == record", false},
		} {
			p, err := Compile(c.src, Any, Record)
			if err != nil {
				t.Fatal(err)
			}
			if !p.limited || p.small == nil || p.fast == nil {
				t.Fatalf("%s: limited %v, small %v, fast %v: want all", c.src, p.limited, p.small != nil, p.fast != nil)
			}
			got, ok := fastEval(p, in)
			if ok != c.handled {
				t.Errorf("%s: handled %v, want %v", c.src, ok, c.handled)
			}
			want, err := celEval(p, in)
			if err != nil {
				t.Fatalf("%s: %v", c.src, err)
			}
			if ok && !sameValue(got, want) {
				t.Errorf("%s: fast %v, CEL %v", c.src, got, want)
			}
		}
	}
}

// The string functions the fast evaluator knows give CEL's results, on
// ASCII, other UTF-8 and invalid UTF-8, and are left to CEL on other
// operand types.
func TestFastStringFunctions(t *testing.T) {
	inputs := []string{"", "Hello World", "héllo WÖRLD", "ÉCOLE école", "a\xffB", "abc123 l1l2", "xx", "ID:12,id:345"}
	for _, src := range []string{
		"record.s.contains('l')", "record.s.startsWith('H')", "record.s.endsWith('D')", "record.s.contains('')",
		"record.s.matches('^[a-z]+$')", "matches(record.s, 'l+')", "record.s.matches('(?i)hello')",
		"record.s.lowerAscii()", "record.s.upperAscii()", "record.s.lowerAscii() == record.s",
		"regex.extractAll(record.s, '[a-z]+')", "regex.extractAll(record.s, 'l(.)')", "regex.extractAll(record.s, '(x)?')",
		"regex.extractAll(record.s.lowerAscii(), '(?:id):([0-9]+)')", "regex.extractAll(record.s, '')",
		"record.s.split(' ')", "record.s.split('')", "record.s.split('l').filter(w, w != '').map(w, {'w': w})",
	} {
		p, err := Compile(src, Any, Record)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if p.fast == nil {
			t.Fatalf("%s: not compiled to the fast evaluator", src)
		}
		for _, s := range inputs {
			for _, in := range []any{map[string]any{"s": s}, value.RowOf(map[string]any{"s": s})} {
				want, wantErr := celEval(p, in)
				got, ok := fastEval(p, in)
				if !ok || wantErr != nil || !sameValue(got, want) {
					t.Errorf("%s on %q: fast %#v (handled %v), CEL %#v (%v)", src, s, got, ok, want, wantErr)
				}
			}
		}
		// Another type: CEL's error.
		in := map[string]any{"s": int64(1)}
		if got, ok := fastEval(p, in); ok {
			t.Errorf("%s on an int: fast gives %#v", src, got)
		}
	}
}

// sortBy on string concatenation keys (computed unboxed, compileSortBy)
// gives CEL's order, ties included, on maps and rows, within the counted
// cost bound.
func TestFastSortByConcatKeys(t *testing.T) {
	src := "state.l.sortBy(e, string(e.t) + '/' + string(e.id + 1000)).map(e, e.p)"
	vars := []string{Record, State}
	p, err := Compile(src, Any, vars...)
	if err != nil {
		t.Fatal(err)
	}
	if p.fast == nil {
		t.Fatal("not compiled to the fast evaluator")
	}
	rng := rand.New(rand.NewSource(9))
	for i := 0; i < 300; i++ {
		l := make([]any, rng.Intn(14))
		for j := range l {
			l[j] = map[string]any{"t": int64(rng.Intn(4)), "id": int64(rng.Intn(3)), "p": int64(j)}
		}
		for _, st := range []any{map[string]any{"l": l}, value.Rows(map[string]any{"l": l})} {
			want, cost, err := celActualCost(t, src, vars, nil, st)
			if err != nil {
				t.Fatal(err)
			}
			act := &activation{names: vars, locals: make([]any, p.fastLocals)}
			act.vals[1] = st
			got, ok := p.fast(act)
			if !ok || !sameValue(got, want) {
				t.Fatalf("on %v: fast %v (handled %v), CEL %v", st, got, ok, want)
			}
			if act.cost < cost {
				t.Fatalf("on %v: counted cost %d < CEL's %d", st, act.cost, cost)
			}
		}
	}
}

// ToMillis names a value's type as CEL does, so a row and its map fail
// with the same message.
func TestToMillisNamesTypes(t *testing.T) {
	m := map[string]any{"t": int64(1)}
	_, errMap := ToMillis(m)
	_, errRow := ToMillis(value.RowOf(m))
	if errMap == nil || errRow == nil || errMap.Error() != errRow.Error() || !strings.Contains(errMap.Error(), "has type map") {
		t.Errorf("map: %v; row: %v", errMap, errRow)
	}
	if _, err := ToMillis([]any{}); err == nil || !strings.Contains(err.Error(), "has type list") {
		t.Errorf("list: %v", err)
	}
	if v, err := ToMillis(int64(5)); err != nil || v != 5 {
		t.Errorf("int: %v, %v", v, err)
	}
}

// CEL's errors on a row are the ones on its map.
func TestRowErrorsMatchMaps(t *testing.T) {
	rec := map[string]any{"m": map[string]any{"k": int64(1)}, "s": "x", "l": []any{map[string]any{"a": int64(1)}}}
	for _, src := range []string{
		"record.missing", "record.m.q", "record['q']", "record.m + 1", "record.s.k", "record.l[0].b",
		"record.m.k.size()", "int(record.m)", "record.l[3]", "record.m > record.m",
	} {
		p, err := Compile(src, Any, Record)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		_, errMap := p.Eval(rec)
		_, errRow := p.Eval(value.Rows(rec))
		if errMap == nil || errRow == nil || errMap.Error() != errRow.Error() {
			t.Errorf("%s: map %v; row %v", src, errMap, errRow)
		}
	}
}
