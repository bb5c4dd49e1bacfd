package expr

import (
	"fmt"
	"math"
	"math/rand"
	"strings"
	"syscall"
	"testing"

	"github.com/google/cel-go/cel"

	"github.com/flinkjob/flinkjob/engine/value"
)

// genRich writes a random expression over record and state using what the
// keyed process steps use: comprehension macros (with iteration variables
// in scope), `in`, indexing, list concatenation, slice, cel.bind,
// math.greatest/least, string(), dyn() and null comparisons, on top of
// the operators genExpr covers.
func genRich(rng *rand.Rand, depth int, scope []string) string {
	pick := func(xs ...string) string { return xs[rng.Intn(len(xs))] }
	leaf := func() string {
		if len(scope) > 0 && rng.Intn(3) == 0 {
			v := scope[rng.Intn(len(scope))]
			switch rng.Intn(3) {
			case 0:
				return v + "." + pick("t", "p", "missing")
			default:
				return v
			}
		}
		switch rng.Intn(10) {
		case 0:
			return fmt.Sprint(rng.Intn(7) - 3)
		case 1:
			return pick("9223372036854775807", "0.5", "-2.0", "'x'", "''", "true", "null", "2u")
		case 2:
			return "state"
		case 3:
			return "state." + pick("bids", "a", "max", "xs")
		case 4:
			return "record"
		default:
			return "record." + pick("a", "b", "f", "s", "l", "m", "bids", "missing", "t", "p")
		}
	}
	if depth <= 0 {
		return leaf()
	}
	sub := func() string { return genRich(rng, depth-1, scope) }
	list := func() string {
		switch rng.Intn(6) {
		case 0:
			return "[" + sub() + ", " + sub() + "]"
		case 1:
			return "(" + sub() + ")"
		case 2:
			return "state.bids"
		case 3:
			return "record.l"
		case 4:
			return "record.m"
		}
		return "record.bids"
	}
	v := pick("x", "y", "b")
	inner := func() string { return genRich(rng, depth-1, append(scope[:len(scope):len(scope)], v)) }
	switch rng.Intn(30) {
	case 0, 1, 2:
		ops := []string{"+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||"}
		return "(" + sub() + " " + ops[rng.Intn(len(ops))] + " " + sub() + ")"
	case 3:
		return "(" + sub() + " ? " + sub() + " : " + sub() + ")"
	case 4:
		return "!(" + sub() + ")"
	case 5:
		return "{'t': " + sub() + ", 'p': " + sub() + "}"
	case 6:
		return "[" + sub() + "]"
	case 7:
		return "(" + sub() + " in " + list() + ")"
	case 8:
		return "(" + sub() + " in [" + sub() + ", 1, 'x'])"
	case 9:
		return list() + "[" + pick("0", "1", "-1", "size("+list()+") - 1", "'t'", "1u", "0.0", sub()) + "]"
	case 10:
		return "(" + list() + " + " + list() + ")"
	case 11:
		return "(" + list() + " + [" + sub() + "])"
	case 12:
		return list() + "." + pick("exists", "all", "exists_one") + "(" + v + ", " + inner() + ")"
	case 13:
		return list() + ".map(" + v + ", " + inner() + ")"
	case 14:
		return list() + ".map(" + v + ", " + inner() + ", " + inner() + ")"
	case 15:
		return list() + ".filter(" + v + ", " + inner() + ")"
	case 16:
		i := pick("i", "j")
		in2 := genRich(rng, depth-1, append(scope[:len(scope):len(scope)], v, i))
		return list() + "." + pick("all", "exists", "existsOne", "transformList") + "(" + i + ", " + v + ", " + in2 + ")"
	case 17:
		i := pick("i", "j")
		in2 := genRich(rng, depth-1, append(scope[:len(scope):len(scope)], v, i))
		in3 := genRich(rng, depth-1, append(scope[:len(scope):len(scope)], v, i))
		return list() + ".transformList(" + i + ", " + v + ", " + in2 + ", " + in3 + ")"
	case 18:
		return "(" + sub() + " in " + pick("['x', '']", "[1, 2, -1]", "[1, 2.5, 'x', null]", "[]", "[2u, 1.0]") + ")"
	case 28:
		return "(" + sub() + " " + pick("<", "<=", ">", ">=", "==", "!=") + " " + pick("1", "2.5", "'x'", "3u", "true", "null", "-1") + ")"
	case 29:
		return "(" + pick("1", "2.5", "'x'", "true", "null") + " " + pick("==", "!=") + " " + sub() + ")"
	case 19:
		return list() + ".slice(" + pick("0", "1", "-1", sub()) + ", " + pick("0", "1", "2", "size("+list()+")", sub()) + ")"
	case 20:
		return "math." + pick("greatest", "least") + "(" + pick(list(), "[1, 2.5]", "[3, -1, 2]", "[-1.0, 2.0]") + ")"
	case 21:
		return "math." + pick("greatest", "least") + "(" + sub() + ", " + sub() + ")"
	case 22:
		if rng.Intn(2) == 0 {
			return "(string(" + sub() + ") + " + pick("'-'", "string("+sub()+")", sub()) + " + " + pick("''", "string("+sub()+")", sub()) + ")"
		}
		return "string(" + sub() + ")"
	case 23:
		if rng.Intn(2) == 0 {
			// The value is evaluated outside v's scope, the body inside.
			return "cel.bind(" + v + ", " + sub() + ", " + inner() + ")"
		}
		return "dyn(" + sub() + ")"
	case 24:
		return "(" + sub() + " == null)"
	case 25:
		return "has(" + pick("state", "record") + "." + pick("a", "bids", "t") + ")"
	case 26:
		return "size(" + list() + ")"
	case 27:
		if rng.Intn(2) == 0 {
			str := pick("record.s", "'héllo'", "string("+sub()+")", sub(), "'A-b'")
			switch rng.Intn(5) {
			case 0:
				return str + "." + pick("contains", "startsWith", "endsWith") + "(" + pick("'h'", "''", "'lo'", sub()) + ")"
			case 1:
				return str + ".matches(" + pick("'^h'", "'l+'", "'[0-9]'", "''") + ")"
			case 2:
				return str + "." + pick("lowerAscii()", "upperAscii()", "split('l')", "split('')")
			case 3:
				return "regex.extractAll(" + str + ", " + pick("'[a-z]+'", "'l(.)'", "'(x)?'", "'é'") + ")"
			}
			return "matches(" + str + ", 'o$')"
		}
		return "(" + sub() + " == " + sub() + ")"
	}
	return leaf()
}

func genBids(rng *rand.Rand, n int) []any {
	l := make([]any, n)
	for i := range l {
		switch rng.Intn(12) {
		case 0:
			l[i] = genValue(rng, 1)
		case 1:
			l[i] = map[string]any{"t": float64(rng.Intn(5)), "p": int64(rng.Intn(5))}
		default:
			l[i] = map[string]any{"t": int64(rng.Intn(6)), "p": int64(rng.Intn(9) - 2)}
		}
	}
	return l
}

func genRecordState(rng *rand.Rand) (rec, st any) {
	r := map[string]any{}
	for _, f := range []string{"a", "b", "f", "s", "l", "m", "bids", "t", "p"} {
		if rng.Intn(6) == 0 {
			continue
		}
		switch f {
		case "a", "b", "t", "p":
			if rng.Intn(4) == 0 {
				r[f] = genValue(rng, 1)
			} else {
				r[f] = int64(rng.Intn(7) - 2)
			}
		case "l":
			l := make([]any, rng.Intn(4))
			for i := range l {
				if rng.Intn(3) == 0 {
					l[i] = genValue(rng, 1)
				} else {
					l[i] = int64(rng.Intn(5))
				}
			}
			r[f] = l
		case "bids":
			r[f] = genBids(rng, rng.Intn(4))
		default:
			r[f] = genValue(rng, 2)
		}
	}
	switch rng.Intn(4) {
	case 0:
		return r, nil
	case 1:
		return r, map[string]any{"bids": genBids(rng, rng.Intn(5))}
	case 2:
		return r, map[string]any{"a": map[string]any{"t": int64(rng.Intn(4)), "p": int64(3)}, "max": int64(rng.Intn(5) - 1)}
	}
	return r, genValue(rng, 2)
}

// The fast evaluator agrees with CEL on comprehensions and the other
// constructs of keyed process logic: wherever it gives a result, CEL gives
// the same and no error.
func TestFastMatchesCELRich(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	compiled, limited, handled, checked, rowsHandled := 0, 0, 0, 0, 0
	seen := map[string]bool{}
	for i := 0; i < 8000; i++ {
		src := genRich(rng, 1+rng.Intn(3), nil)
		if seen[src] {
			continue
		}
		seen[src] = true
		p, err := Compile(src, Any, Record, State)
		if err != nil || p.fast == nil {
			continue
		}
		compiled++
		if p.limited {
			limited++
		}
		for j := 0; j < 10; j++ {
			rec, st := genRecordState(rng)
			want, wantErr := celEval(p, rec, st)
			// The same inputs as rows: the fast evaluator agrees with
			// CEL on them, and CEL on rows with CEL on maps (but for
			// the order in which a map's keys are visited, which CEL
			// leaves open and is the sorted one for rows).
			rrec, rst := value.Rows(rec), value.Rows(st)
			rowsWant, rowsErr := celEval(p, rrec, rst)
			if (rowsErr != nil) != (wantErr != nil) || !sameResult(src, rowsWant, want) {
				t.Fatalf("%s on %v, %v: CEL gives %#v (%v) on rows, %#v (%v) on maps", src, rec, st, rowsWant, rowsErr, want, wantErr)
			}
			if got, ok := fastEval(p, rrec, rst); ok {
				rowsHandled++
				if rowsErr != nil || !sameResult(src, got, rowsWant) {
					t.Fatalf("%s on rows %v, %v: fast gives %#v, CEL %#v (%v)", src, rec, st, got, rowsWant, rowsErr)
				}
			}
			got, ok := fastEval(p, rec, st)
			checked++
			if !ok {
				continue
			}
			handled++
			if wantErr != nil {
				t.Fatalf("%s on %v, %v: fast gives %#v, CEL fails: %v", src, rec, st, got, wantErr)
			}
			if !sameResult(src, got, want) {
				t.Fatalf("%s on %v, %v: fast gives %#v, CEL %#v", src, rec, st, got, want)
			}
			if v, err := p.Evaluator().Eval2(rec, st); err != nil || !sameResult(src, v, want) {
				t.Fatalf("%s on %v, %v: Evaluator.Eval2 = %#v, %v; want %#v", src, rec, st, v, err, want)
			}
		}
	}
	t.Logf("%d expressions compiled (%d with the cost limit), %d of %d evaluations handled (%d on rows)", compiled, limited, handled, checked, rowsHandled)
	if compiled < 1000 || limited < 200 || handled < checked/8 || rowsHandled < handled {
		t.Fatalf("too few cases exercised: %d compiled (%d limited), %d/%d handled", compiled, limited, handled, checked)
	}
}

// Each construct is handled (gives a result natively) on well-typed
// inputs, and agrees with CEL.
func TestFastHandlesMacros(t *testing.T) {
	rec := map[string]any{"t": int64(3), "p": int64(7), "s": "héllo", "l": []any{int64(1), int64(2), int64(3)},
		"m": map[string]any{"k": int64(1)}, "f": 2.5}
	st := map[string]any{"bids": []any{
		map[string]any{"t": int64(1), "p": int64(5)},
		map[string]any{"t": int64(3), "p": int64(9)},
		map[string]any{"t": int64(4), "p": int64(2)},
	}}
	for _, src := range []string{
		"state.bids.exists(b, b.t >= record.t)",
		"state.bids.exists(b, b.t > 10)",
		"state.bids.all(b, b.p > 0)",
		"state.bids.exists_one(b, b.t == 3)",
		"state.bids.filter(b, b.t >= record.t).map(b, b.p)",
		"state.bids.filter(b, b.t > 10)",
		"state.bids.map(b, b.t > 1, b.p * 2)",
		"math.greatest(state.bids.map(b, b.p))",
		"math.least(state.bids.map(b, b.p))",
		"math.greatest(record.t, record.p)",
		"math.greatest([1.5, 2.5])",
		"state.bids[size(state.bids) - 1].t",
		"state.bids.slice(0, state.bids.size() - 1) + [{'t': record.t, 'p': record.p}]",
		"record.t in record.l",
		"4 in record.l",
		"'k' in record.m",
		"'x' in record.m",
		"record.m['k']",
		"record.l.all(i, v, v == i + 1)",
		"record.l.transformList(i, v, i * v)",
		"record.l.transformList(i, v, v > 1, i)",
		"string(record.t) + string(record.f) + string(true)",
		"string(record.s) + string(3u)",
		"string(record.t) + '-' + string(size(string(record.p) + 'xy')) + record.s + string(record.f)",
		"state.bids.sortBy(b, string(b.t) + ':' + string(b.p + 1000)).map(b, b.p)",
		"state == null ? -1 : size(state.bids)",
		"record == null",
		"null == null",
		"dyn({'state': null, 'emit': []})",
		"record.l.map(x, [1, 2, 3].filter(y, y > x))",
		"record.l.exists(x, [1, 2].exists(y, x + y == 5))",
		"has(state.a) ? 1 : 2",
		"cel.bind(l, state.bids.map(b, b.p), math.greatest(l) - math.least(l) + size(l))",
		"cel.bind(x, record.t, cel.bind(y, x * 2, [x, y, record.l.filter(v, v < y)]))",
	} {
		p, err := Compile(src, Any, Record, State)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if p.fast == nil {
			t.Errorf("%s: not compiled to the fast evaluator", src)
			continue
		}
		got, ok := fastEval(p, rec, st)
		want, wantErr := celEval(p, rec, st)
		if !ok || wantErr != nil || !sameValue(got, want) {
			t.Errorf("%s: fast %#v (handled %v), CEL %#v (%v)", src, got, ok, want, wantErr)
		}
	}
}

// Inputs too large for the compile-time estimate that made the runtime
// cost limit unnecessary are not handled natively: CEL evaluates them with
// the limit, and exceeding it is still the error it was.
func TestFastLeavesLargeInputsToCEL(t *testing.T) {
	p, err := Compile("record.xs.exists(a, a < 0)", Any, Record)
	if err != nil {
		t.Fatal(err)
	}
	if !p.limited || p.small == nil || p.fast == nil {
		t.Fatalf("limited %v, small %v, fast %v: want all", p.limited, p.small != nil, p.fast != nil)
	}
	xs := func(n int) map[string]any {
		l := make([]any, n)
		for i := range l {
			l[i] = int64(i)
		}
		return map[string]any{"xs": l}
	}
	if _, ok := fastEval(p, xs(smallInputSize)); !ok {
		t.Errorf("%d elements: not handled", smallInputSize)
	}
	if _, ok := fastEval(p, xs(smallInputSize+1)); ok {
		t.Errorf("%d elements: handled natively", smallInputSize+1)
	}
	// Over the limit: CEL's error, as before.
	p, err = Compile("record.xs.exists(a, a == record.s)", Any, Record)
	if err != nil {
		t.Fatal(err)
	}
	long := make([]any, 20_000)
	for i := range long {
		long[i] = strings.Repeat("b", smallInputSize)
	}
	in := map[string]any{"xs": long, "s": strings.Repeat("a", smallInputSize)}
	if _, err := p.Eval1(in); err == nil || !strings.Contains(err.Error(), "cost limit") {
		t.Errorf("%d elements: want a cost limit error, got %v", len(long), err)
	}
	// Large values inside: an element read by `in`, a string read by a
	// field, an element read by index.
	big := strings.Repeat("x", smallInputSize+1)
	for _, c := range []struct {
		src string
		in  map[string]any
	}{
		{"record.xs.exists(x, x == 1) && 1 in record.ys", map[string]any{"xs": []any{int64(1)}, "ys": []any{big, int64(1)}}},
		{"record.xs.exists(x, x == record.s)", map[string]any{"xs": []any{"a"}, "s": big}},
		{"record.xs.exists(x, x == record.ys[0])", map[string]any{"xs": []any{"a"}, "ys": []any{big}}},
		{"record.xs.exists(x, x == 'a')", map[string]any{"xs": []any{big}}},
	} {
		p, err := Compile(c.src, Any, Record)
		if err != nil {
			t.Fatal(err)
		}
		if !p.limited || p.fast == nil {
			t.Fatalf("%s: limited %v, fast %v: want both", c.src, p.limited, p.fast != nil)
		}
		if v, ok := fastEval(p, c.in); ok {
			t.Errorf("%s: a value over %d bytes handled natively: %v", c.src, smallInputSize, v)
		}
		if _, err := p.Eval1(c.in); err != nil {
			t.Errorf("%s: %v", c.src, err)
		}
	}
}

// The process logic of the Nexmark samples (q3, q4, q8: joins and
// per-key maxima written with comprehensions) runs natively on the state
// shapes it builds, with CEL's results.
func TestFastNexmarkProcessLogic(t *testing.T) {
	q4Element := `has(record.expires)
            ? dyn({'timers': [record.expires],
               'state': {'a': record, 'max': state == null ? -1 :
                 (state.bids.exists(b, b.t >= record.dateTime && b.t <= record.expires)
                   ? math.greatest(state.bids.filter(b, b.t >= record.dateTime && b.t <= record.expires).map(b, b.p))
                   : -1)}})
            : (state != null && has(state.a)
                ? (record.dateTime >= state.a.dateTime && record.dateTime <= state.a.expires && record.price > state.max
                    ? dyn({'state': {'a': state.a, 'max': record.price}}) : null)
                : (state != null && state.bids[state.bids.size() - 1].t == record.dateTime
                    ? (record.price > state.bids[state.bids.size() - 1].p
                        ? dyn({'state': {'bids': state.bids.slice(0, state.bids.size() - 1) + [{'t': record.dateTime, 'p': record.price}]}})
                        : null)
                    : dyn({'state': {'bids': (state == null ? [] : state.bids) + [{'t': record.dateTime, 'p': record.price}]},
                           'timers': [record.dateTime]})))`
	q4Timer := `state == null ? null :
          has(state.a)
            ? (timer == state.a.expires
                ? dyn({'state': null, 'emit': state.max < 0 ? [] : [{'id': key, 'category': state.a.category, 'final': state.max}]})
                : null)
            : (state.bids.exists(b, b.t > timer)
                ? dyn({'state': {'bids': state.bids.filter(b, b.t > timer)}})
                : dyn({'state': null}))`
	q8Element := `has(record.name)
            ? (state != null && record.w in state.aws
                ? dyn({'emit': [{'id': record.id, 'name': record.name, 'stime': record.w}],
                       'state': {'name': record.name, 'w': record.w, 'done': true}, 'timers': [record.w + 9999]})
                : dyn({'state': {'name': record.name, 'w': record.w, 'done': false}, 'timers': [record.w + 9999]}))
            : (state != null && has(state.done)
                ? (!state.done && state.w == record.w
                    ? dyn({'emit': [{'id': record.id, 'name': state.name, 'stime': record.w}],
                           'state': {'name': state.name, 'w': state.w, 'done': true}})
                    : null)
                : (state != null && record.w in state.aws
                    ? null
                    : dyn({'state': {'aws': (state == null ? [] : state.aws) + [record.w]}, 'timers': [record.w + 9999]})))`
	q3Element := `has(record.name)
            ? dyn({'state': {'person': record},
               'emit': state == null ? [] : state.auctions.map(a,
                 {'name': record.name, 'city': record.city, 'state': record.state, 'id': a})})
            : (state != null && has(state.person)
                ? dyn({'emit': [{'name': state.person.name, 'city': state.person.city, 'state': state.person.state, 'id': record.id}]})
                : dyn({'state': {'auctions': (state == null ? [] : state.auctions) + [record.id]}}))`
	elemVars := []string{Record, Key, State}
	timerVars := []string{Key, State, Timer}
	rng := rand.New(rand.NewSource(3))
	bids := func() []any {
		l := make([]any, 1+rng.Intn(4))
		for i := range l {
			l[i] = map[string]any{"t": int64(100 + 10*i + rng.Intn(10)), "p": int64(rng.Intn(1000))}
		}
		return l
	}
	auction := func() map[string]any {
		t := int64(90 + rng.Intn(40))
		return map[string]any{"id": int64(7), "category": int64(10 + rng.Intn(3)), "dateTime": t, "expires": t + int64(rng.Intn(50))}
	}
	// q4's state: nothing, the bids before the auction, or the auction
	// and the maximum bid so far.
	q4State := func() any {
		switch rng.Intn(3) {
		case 1:
			return map[string]any{"bids": bids()}
		case 2:
			return map[string]any{"a": auction(), "max": int64(rng.Intn(500) - 1)}
		}
		return nil
	}
	cases := []struct {
		name, src string
		vars      []string
		gen       func() []any
	}{
		{"q4 onElement", q4Element, elemVars, func() []any {
			st := q4State()
			if rng.Intn(3) == 0 && (st == nil || rng.Intn(2) == 0) {
				// An auction arrives once: before it, the state is
				// nothing or bids.
				if st != nil {
					st = map[string]any{"bids": bids()}
				}
				return []any{auction(), int64(7), st}
			}
			rec := map[string]any{"id": int64(7), "price": int64(rng.Intn(1000)), "dateTime": int64(100 + rng.Intn(40))}
			return []any{rec, int64(7), st}
		}},
		{"q4 onTimer", q4Timer, timerVars, func() []any {
			return []any{int64(7), q4State(), int64(100 + rng.Intn(60))}
		}},
		{"q8 onElement", q8Element, elemVars, func() []any {
			w := int64(10000 * rng.Intn(3))
			rec := map[string]any{"id": int64(3), "w": w}
			var st any
			switch rng.Intn(3) {
			case 1:
				st = map[string]any{"aws": []any{int64(0), int64(10000)}[:1+rng.Intn(2)]}
			case 2:
				st = map[string]any{"name": "n", "w": int64(10000 * rng.Intn(2)), "done": rng.Intn(2) == 0}
			}
			if rng.Intn(2) == 0 && (st == nil || st.(map[string]any)["aws"] != nil) {
				rec["name"] = "n" // a person arrives once
			}
			return []any{rec, int64(3), st}
		}},
		{"q3 onElement", q3Element, elemVars, func() []any {
			rec := map[string]any{"seller": int64(5), "id": int64(rng.Intn(100))}
			var st any
			switch rng.Intn(3) {
			case 1:
				st = map[string]any{"auctions": []any{int64(1), int64(2)}[:rng.Intn(3)]}
			case 2:
				st = map[string]any{"person": map[string]any{"name": "p", "city": "c", "state": "ID"}}
			}
			if rng.Intn(2) == 0 && (st == nil || st.(map[string]any)["auctions"] != nil) {
				// a person arrives once
				rec = map[string]any{"seller": int64(5), "name": "p", "city": "c", "state": "OR"}
			}
			return []any{rec, int64(5), st}
		}},
	}
	for _, c := range cases {
		p, err := Compile(c.src, Map, c.vars...)
		if err != nil {
			t.Fatal(err)
		}
		if p.fast == nil {
			t.Errorf("%s: not compiled to the fast evaluator", c.name)
			continue
		}
		ev := p.Evaluator()
		for i := 0; i < 300; i++ {
			vals := c.gen()
			got, ok := fastEval(p, vals...)
			want, wantErr := celEval(p, vals...)
			if !ok || wantErr != nil || !sameValue(got, want) {
				t.Fatalf("%s on %v: fast %#v (handled %v), CEL %#v (%v)", c.name, vals, got, ok, want, wantErr)
			}
			// Records and state as rows (as a row source and row
			// literals make them): handled natively, the same result.
			rows := value.Rows(vals).([]any)
			if got, ok := fastEval(p, rows...); !ok || !sameValue(got, want) {
				t.Fatalf("%s on rows %v: fast %#v (handled %v), want %#v", c.name, vals, got, ok, want)
			}
			if v, err := ev.Eval(vals...); err != nil || !sameValue(v, want) {
				t.Fatalf("%s on %v: Evaluator %#v, %v; want %#v", c.name, vals, v, err, want)
			}
		}
	}
}

// EvalInto fills the caller's map only with the expression's own
// outermost map literal; nested maps, passed-through values and CEL's
// results are other maps. (Literals that build rows: TestEvalIntoRefillsRow.)
func TestEvalIntoFillsScratch(t *testing.T) {
	p := withRows(t, false, `record.k == 1 ? dyn({'state': {'n': record.k}, 'emit': [{'a': 1}]})
		: record.k == 2 ? record : record.k == 3 ? {'x': record.missing} : {'y': 2}`, Map, Record)
	ev := p.Evaluator()
	same := func(a, b map[string]any) bool { return fmt.Sprintf("%p", a) == fmt.Sprintf("%p", b) }
	for _, c := range []struct {
		k       int64
		scratch bool
	}{{1, true}, {2, false}, {4, true}, {1, true}} {
		scratch := map[string]any{}
		in := map[string]any{"k": c.k}
		v, err := ev.EvalInto(scratch, in)
		if err != nil {
			t.Fatal(err)
		}
		m := v.(map[string]any)
		if same(m, scratch) != c.scratch {
			t.Errorf("k=%d: result is the scratch map: %v, want %v", c.k, same(m, scratch), c.scratch)
		}
		if c.k == 1 && (same(m["state"].(map[string]any), scratch) || len(m) != 2) {
			t.Errorf("k=1: %v", m)
		}
		if c.k == 2 && !same(m, in) {
			t.Errorf("k=2: the record itself is not returned")
		}
	}
	// CEL's error, and an Eval afterwards does not fill a stale scratch.
	scratch := map[string]any{}
	if _, err := ev.EvalInto(scratch, map[string]any{"k": int64(3)}); err == nil {
		t.Errorf("k=3: want CEL's no such key error")
	}
	v, err := ev.Eval(map[string]any{"k": int64(4)})
	if err != nil || same(v.(map[string]any), scratch) {
		t.Errorf("Eval after EvalInto: %v, %v (scratch reused: %v)", v, err, same(v.(map[string]any), scratch))
	}
}

var costPrograms = map[string]cel.Program{}

// celActualCost evaluates src with CEL tracking its cost, as a program
// with the runtime limit does.
func celActualCost(t *testing.T, src string, vars []string, vals ...any) (any, uint64, error) {
	t.Helper()
	prg, ok := costPrograms[src]
	if !ok {
		compileMu <- struct{}{}
		e, err := env(vars)
		<-compileMu
		if err != nil {
			t.Fatal(err)
		}
		ast, iss := e.Compile(src)
		if iss != nil && iss.Err() != nil {
			t.Fatal(iss.Err())
		}
		if prg, err = e.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.CostLimit(math.MaxUint64)); err != nil {
			t.Fatal(err)
		}
		costPrograms[src] = prg
	}
	act := &activation{names: vars}
	n := copy(act.vals[:], vals)
	act.more = vals[n:]
	out, det, err := prg.Eval(act)
	if err != nil {
		return nil, 0, err
	}
	v, err := ToNative(out)
	return v, *det.ActualCost(), err
}

// The cost the fast evaluator counts (fastCountCost) is at least CEL's
// actual cost of the same evaluation, on random expressions and inputs,
// and on the sortBy logic of Nexmark q6; where it gives a result, it is
// CEL's.
func TestFastCostBoundsCEL(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	vars := []string{Record, State}
	handled, checked := 0, 0
	maxRatio := 0.0
	type compiled struct {
		f      fastFn
		locals int
	}
	cache := map[string]compiled{}
	check := func(src string, vals ...any) {
		c, ok := cache[src]
		if !ok {
			if p, err := Compile(src, Any, vars...); err == nil {
				c.f, c.locals, _ = compileFast(p.checked.Expr(), vars, fastCountCost, value.UseRows)
			}
			cache[src] = c
		}
		f, locals := c.f, c.locals
		if f == nil {
			return
		}
		act := &activation{names: vars, locals: make([]any, locals)}
		copy(act.vals[:], vals)
		got, ok := f(act)
		checked++
		if !ok {
			return
		}
		handled++
		want, cost, err := celActualCost(t, src, vars, vals...)
		if err != nil {
			t.Fatalf("%s on %v: fast gives %#v, CEL fails: %v", src, vals, got, err)
		}
		if !sameResult(src, got, want) {
			t.Fatalf("%s on %v: fast gives %#v, CEL %#v", src, vals, got, want)
		}
		if act.cost < cost {
			t.Fatalf("%s on %v: counted cost %d < CEL's %d", src, vals, act.cost, cost)
		}
		if r := float64(act.cost) / float64(cost+1); r > maxRatio {
			maxRatio = r
		}
	}
	for i := 0; i < 3000; i++ {
		src := genRich(rng, 1+rng.Intn(3), nil)
		for j := 0; j < 4; j++ {
			rec, st := genRecordState(rng)
			check(src, rec, st)
			check(src, value.Rows(rec), value.Rows(st))
		}
	}
	q6 := `((state == null ? [] : state.l) + [{'t': record.expires, 'id': record.id, 'p': record.price}])
		.sortBy(e, string(e.t) + string(e.id + 1000000000000))
		.slice((state == null ? 0 : state.l.size()) == 11 ? 1 : 0, (state == null ? 0 : state.l.size()) == 11 ? 12 : (state == null ? 1 : state.l.size() + 1))`
	for i := 0; i < 200; i++ {
		var st any
		if n := rng.Intn(12); n > 0 {
			l := make([]any, n)
			for j := range l {
				l[j] = map[string]any{"t": int64(rng.Intn(50)), "id": int64(rng.Intn(1000)), "p": int64(rng.Intn(100))}
			}
			st = map[string]any{"l": l}
		}
		check(q6, map[string]any{"expires": int64(rng.Intn(50)), "id": int64(rng.Intn(1000)), "price": int64(rng.Intn(100))}, st)
		check("[3, 1, 2, 1].sortBy(x, -x)", nil, nil)
		check("state.l.sortBy(x, x.t)", nil, st)
		check("state.l.sortBy(x, x.t)", nil, value.Rows(st))
	}
	t.Logf("%d of %d evaluations handled; counted cost at most %.1f times CEL's", handled, checked, maxRatio)
	if handled < checked/8 {
		t.Fatalf("too few cases exercised: %d/%d handled", handled, checked)
	}
	// Past the limit, the count gives up.
	p, err := Compile("[1,2,3,4,5,6,7,8,9,10].map(a, [1,2,3,4,5,6,7,8,9,10].map(b, [1,2,3,4,5,6,7,8,9,10].map(c, [1,2,3,4,5,6,7,8,9,10].map(d, [1,2,3,4,5,6,7,8,9,10].map(e, [1,2,3,4,5,6,7,8,9,10].map(f, a+b+c+d+e+f))))))", Any, Record)
	if err != nil {
		t.Fatal(err)
	}
	act := &activation{names: p.names, locals: make([]any, p.fastLocals)}
	if _, ok := p.fast(act); ok {
		t.Errorf("10^6 iterations handled natively, cost %d", act.cost)
	}
}

// A map step of nested field reads (Nexmark's rows: q3, q4, q8), on maps
// building maps and on rows building rows.
func BenchmarkEvaluatorNestedFields(b *testing.B) {
	src := `record.type == 'auction'
		? dyn({'id': record.auction.id, 'category': record.auction.category, 'dateTime': record.auction.dateTime, 'expires': record.auction.expires})
		: dyn({'id': record.bid.auction, 'price': record.bid.price, 'dateTime': record.bid.dateTime})`
	in := map[string]any{"type": "bid", "bid": map[string]any{"auction": int64(1000), "price": int64(300), "dateTime": int64(12345678)}}
	benchForms(b, src, []string{Record}, in)
}

// benchForms benchmarks src on vals as maps with map literals, and as
// rows with row literals (value.UseRows).
func benchForms(b *testing.B, src string, vars []string, vals ...any) {
	for _, rows := range []bool{false, true} {
		name := "maps"
		if rows {
			name = "rows"
		}
		b.Run(name, func(b *testing.B) {
			old := value.UseRows
			value.UseRows = rows
			p, err := Compile(src, Any, vars...)
			value.UseRows = old
			if err != nil {
				b.Fatal(err)
			}
			in := vals
			if rows {
				in = value.Rows(vals).([]any)
			}
			ev := p.Evaluator()
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := ev.Eval(in...); err != nil {
					b.Fatal(err)
				}
			}
			// The process's CPU time (GC included) tells more than the
			// wall time on a loaded machine.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// Nexmark q4's onElement for a bid on a known auction (natively, with size
// checks).
func BenchmarkEvaluatorQ4Bid(b *testing.B) {
	src := `state != null && has(state.a)
		? (record.dateTime >= state.a.dateTime && record.dateTime <= state.a.expires && record.price > state.max
		    ? dyn({'state': {'a': state.a, 'max': record.price}}) : null)
		: state.bids.exists(b, b.t > record.dateTime)`
	rec := map[string]any{"id": int64(1000), "price": int64(300), "dateTime": int64(150)}
	st := map[string]any{"a": map[string]any{"id": int64(1000), "category": int64(10), "dateTime": int64(100), "expires": int64(200)}, "max": int64(100)}
	benchForms(b, src, []string{Record, State}, rec, st)
}

// Nexmark q3's filter (a constant string and int comparison, `in` a
// constant list) and q1's map (a scratch literal of paths and
// arithmetic), the per-event work of the stateless steps.
func BenchmarkEvaluatorQ3Filter(b *testing.B) {
	src := `record.type == 'auction' && record.auction.category == 10 ||
		record.type == 'person' && record.person.state in ['OR', 'ID', 'CA']`
	in := map[string]any{"type": "person", "person": map[string]any{"id": int64(1), "name": "n", "city": "c", "state": "CA"}}
	benchForms(b, src, []string{Record}, in)
}

func BenchmarkEvaluatorQ1Map(b *testing.B) {
	src := `{'auction': record.bid.auction, 'bidder': record.bid.bidder, 'price': record.bid.price * 908 / 1000, 'dateTime': record.bid.dateTime}`
	in := map[string]any{"type": "bid", "bid": map[string]any{"auction": int64(1000), "bidder": int64(7), "price": int64(300), "dateTime": int64(12345678)}}
	benchForms(b, src, []string{Record}, in)
}

// cpuTime is the process's user and system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// The word-count samples' flatMap: natively since the string functions
// are known (CEL's interpreter before).
func BenchmarkEvaluatorWordCount(b *testing.B) {
	src := `regex.extractAll(record.line.lowerAscii(), '[a-z]+').map(w, {'word': w, 'n': 1})`
	in := map[string]any{"line": "It was the best of times, it was the worst of times, it was the age of wisdom"}
	benchForms(b, src, []string{Record}, in)
}
