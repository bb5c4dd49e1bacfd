package expr

import (
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"testing"

	"github.com/flinkjob/flinkjob/engine/value"
)

// genExpr writes a random expression over record's fields a, b, c (ints or
// anything), f (doubles), s, t (strings), m (a map), l (a list), z (bools).
func genExpr(rng *rand.Rand, depth int) string {
	leaf := func() string {
		switch rng.Intn(12) {
		case 0:
			return fmt.Sprint(rng.Intn(7) - 3)
		case 1:
			return []string{"9223372036854775807", "-9223372036854775807", "0", "2"}[rng.Intn(4)]
		case 2:
			return []string{"0.0", "1.5", "-2.5", "1e308"}[rng.Intn(4)]
		case 3:
			return []string{"'x'", "''", "'héllo'"}[rng.Intn(3)]
		case 4:
			return []string{"true", "false", "null", "3u"}[rng.Intn(4)]
		case 5:
			return "record"
		case 6:
			return "record.m." + []string{"k", "j", "q"}[rng.Intn(3)]
		default:
			return "record." + []string{"a", "b", "c", "f", "s", "t", "m", "l", "z", "missing"}[rng.Intn(10)]
		}
	}
	if depth <= 0 {
		return leaf()
	}
	sub := func() string { return genExpr(rng, depth-1) }
	switch rng.Intn(14) {
	case 0, 1, 2, 3:
		ops := []string{"+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||"}
		return "(" + sub() + " " + ops[rng.Intn(len(ops))] + " " + sub() + ")"
	case 4:
		return "-(" + sub() + ")"
	case 5:
		return "!(" + sub() + ")"
	case 6:
		return "(" + sub() + " ? " + sub() + " : " + sub() + ")"
	case 7:
		return "{'x': " + sub() + ", 'y': " + sub() + "}"
	case 8:
		return "[" + sub() + ", " + sub() + "]"
	case 9:
		return "size(" + sub() + ")"
	case 10:
		return "(" + sub() + ").size()"
	case 11:
		return "has(record." + []string{"a", "m", "missing"}[rng.Intn(3)] + ")"
	}
	return leaf()
}

func genValue(rng *rand.Rand, depth int) any {
	switch rng.Intn(14) {
	case 0:
		return nil
	case 1:
		return []int64{0, 1, -1, 2, 3, math.MaxInt64, math.MinInt64, math.MinInt64 + 1, 1 << 32}[rng.Intn(9)]
	case 2, 3:
		return int64(rng.Intn(11) - 5)
	case 4:
		return []float64{0, 1.5, -2.5, math.NaN(), math.Inf(1), math.Copysign(0, -1), 1e308}[rng.Intn(7)]
	case 5:
		return []string{"", "x", "héllo", "y"}[rng.Intn(4)]
	case 6:
		return rng.Intn(2) == 0
	case 7:
		return uint64(rng.Intn(4))
	case 8:
		return int(rng.Intn(3)) // not normalized: CEL converts it
	case 9:
		if depth > 0 {
			return map[string]any{"k": genValue(rng, depth-1), "j": genValue(rng, depth-1)}
		}
	case 10:
		if depth > 0 {
			return []any{genValue(rng, depth-1)}
		}
	case 11:
		return []byte("b")
	}
	return int64(rng.Intn(5))
}

// The fast evaluator agrees with CEL wherever it gives a result: same
// value, and CEL gives no error.
func TestFastMatchesCEL(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	compiled, handled, checked, rowsHandled := 0, 0, 0, 0
	for i := 0; i < 6000; i++ {
		src := genExpr(rng, 1+rng.Intn(3))
		p, err := Compile(src, Any, Record)
		if err != nil {
			continue // does not type-check
		}
		if p.fast == nil {
			continue
		}
		compiled++
		for j := 0; j < 8; j++ {
			in := map[string]any{}
			for _, f := range []string{"a", "b", "c", "f", "s", "t", "m", "l", "z"} {
				if rng.Intn(8) != 0 {
					in[f] = genValue(rng, 2)
				}
			}
			switch rng.Intn(3) { // mostly well-typed fields
			case 0:
				in["a"], in["b"], in["c"] = int64(rng.Intn(9)-4), int64(rng.Intn(9)-4), int64(rng.Intn(3))
				in["f"], in["s"], in["t"], in["z"] = []float64{1.25, math.NaN(), math.Copysign(0, -1)}[rng.Intn(3)], "s", "t", true
				in["m"] = map[string]any{"k": int64(1), "j": "v"}
			}
			want, wantErr := celEval(p, in)
			// The same record as rows (every map in it, at any depth):
			// CEL's result is the same, and so is the fast evaluator's
			// where it gives one.
			rows := value.Rows(in)
			rowsWant, rowsErr := celEval(p, rows)
			if (rowsErr != nil) != (wantErr != nil) || !sameValue(rowsWant, want) {
				t.Fatalf("%s on %v: CEL gives %#v (%v) on rows, %#v (%v) on maps", src, in, rowsWant, rowsErr, want, wantErr)
			}
			if got, ok := fastEval(p, rows); ok {
				rowsHandled++
				if wantErr != nil || !sameValue(got, want) {
					t.Fatalf("%s on rows %v: fast gives %#v, CEL %#v (%v)", src, in, got, want, wantErr)
				}
			}
			got, ok := fastEval(p, in)
			checked++
			if !ok {
				continue
			}
			handled++
			if wantErr != nil {
				t.Fatalf("%s on %v: fast gives %#v, CEL fails: %v", src, in, got, wantErr)
			}
			if !sameValue(got, want) {
				t.Fatalf("%s on %v: fast gives %#v, CEL %#v", src, in, got, want)
			}
			// Through the public paths too.
			if v, err := p.Eval1(in); err != nil || !sameValue(v, want) {
				t.Fatalf("%s on %v: Eval1 = %#v, %v; want %#v", src, in, v, err, want)
			}
		}
	}
	t.Logf("%d expressions compiled, %d of %d evaluations handled (%d on rows)", compiled, handled, checked, rowsHandled)
	if compiled < 500 || handled < checked/10 || rowsHandled < handled*9/10 {
		t.Fatalf("too few cases exercised: %d compiled, %d/%d handled", compiled, handled, checked)
	}
}

// sameValue is reflect.DeepEqual with NaN equal to NaN, -0 distinct from
// 0, and a row the same as its map.
func sameValue(a, b any) bool {
	a, b = value.Plain(a), value.Plain(b)
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		return ok && (x == y && math.Signbit(x) == math.Signbit(y) || x != x && y != y)
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// fastEval runs p's fast evaluator alone on vals.
func fastEval(p *Program, vals ...any) (any, bool) {
	act := &activation{names: p.names, locals: make([]any, p.fastLocals)}
	n := copy(act.vals[:], vals)
	act.more = vals[n:]
	return p.fast(act)
}

// The per-record expressions of the benchmarks and samples run natively.
func TestFastCompilesCommonExpressions(t *testing.T) {
	for _, c := range []struct {
		src  string
		vars []string
	}{
		{"{'id': record.id, 'v': record.v * 3 + 1}", []string{Record}},
		{"record.v % 2 == 0", []string{Record}},
		{"record.v + record.id", []string{Record}},
		{"{'k': acc.k, 'v': acc.v + record.v}", []string{Acc, Record}},
		{"record.price > 10.0 && record.qty >= 1 || !has(record.flag)", []string{Record}},
		{"record.n < 0 ? -record.n : record.n", []string{Record}},
		{"size(record.name) > 3", []string{Record}},
		{"[record.a, record.b]", []string{Record}},
		{"record.xs.map(x, x + 1)", []string{Record}},
		{"'a' in record.tags", []string{Record}},
		{"string(record.n)", []string{Record}},
		{"dyn({'a': record.a})", []string{Record}},
		{"state == null ? [] : state.bids.filter(b, b.t > record.t)", []string{Record, State}},
		{"math.greatest(record.xs.map(x, x.p))", []string{Record}},
		{"record.xs.slice(0, size(record.xs) - 1) + [record.xs[0]]", []string{Record}},
		{"record.s.contains('a') && record.s.startsWith('b') || record.s.endsWith(record.t)", []string{Record}},
		{"record.s.matches('^a+$') || matches(record.t, 'b')", []string{Record}},
		{"regex.extractAll(record.line.lowerAscii(), '[a-z]+').map(w, {'word': w, 'n': 1})", []string{Record}},
		{"record.s.upperAscii()", []string{Record}},
	} {
		p, err := Compile(c.src, Any, c.vars...)
		if err != nil {
			t.Fatal(err)
		}
		if p.fast == nil {
			t.Errorf("%s: not compiled to the fast evaluator", c.src)
		}
	}
	// Not handled: left to CEL.
	for _, src := range []string{"record.?a.orValue(1)", "b'x'", "record.s.matches(record.p)", "record.s.split(',', 2)",
		"regex.extractAll(record.s, '(a)(b)')", "record.s.indexOf('a')"} {
		p, err := Compile(src, Any, Record)
		if err != nil {
			t.Fatal(err)
		}
		if p.fast != nil {
			t.Errorf("%s: compiled to the fast evaluator", src)
		}
	}
}
