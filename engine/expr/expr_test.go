package expr

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/flinkjob/flinkjob/engine/value"
)

func TestEvalRoundTrip(t *testing.T) {
	cases := []struct {
		src  string
		want Want
		in   any
		out  any
	}{
		{"record.n + 1", Any, map[string]any{"n": int64(1)}, int64(2)},
		{"record.line.split(' ').filter(w, w != '').map(w, {'word': w, 'n': 1})", List,
			map[string]any{"line": "a  b"},
			[]any{map[string]any{"word": "a", "n": int64(1)}, map[string]any{"word": "b", "n": int64(1)}}},
		{"record.price > 10.0", Bool, map[string]any{"price": 12.5}, true},
		{"record.n > 1", Bool, map[string]any{"n": int64(1)}, false},
		{"record", Any, map[string]any{"x": "y"}, map[string]any{"x": "y"}},
		{"{'a': [1, 2.5, 'x', true, null]}", Map, nil, map[string]any{"a": []any{int64(1), 2.5, "x", true, nil}}},
		{"record.?missing.orValue('d')", Any, map[string]any{}, "d"},
	}
	for _, c := range cases {
		p, err := Compile(c.src, c.want, Record)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		got, err := p.Eval1(c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		if !reflect.DeepEqual(value.Plain(got), c.out) {
			t.Errorf("%s = %#v, want %#v", c.src, got, c.out)
		}
		// The record as a row: the same result.
		if got, err = p.Eval1(value.Rows(c.in)); err != nil || !reflect.DeepEqual(value.Plain(got), c.out) {
			t.Errorf("%s on a row = %#v, %v; want %#v", c.src, got, err, c.out)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		src  string
		want Want
		msg  string
	}{
		{"recrd.n", Any, "undeclared reference to 'recrd'"},
		{"record.n +", Any, "does not compile"},
		{"1 + 'a'", Any, "no matching overload"},
		{"'x'", Bool, "want bool"},
		{"1", List, "want list"},
		{"", Any, "empty expression"},
	}
	for _, c := range cases {
		_, err := Compile(c.src, c.want, Record)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Compile(%q) error = %v, want it to contain %q", c.src, err, c.msg)
		}
	}
}

func TestCostLimit(t *testing.T) {
	p, err := Compile("[1,2,3,4,5,6,7,8,9,10].map(a, [1,2,3,4,5,6,7,8,9,10].map(b, [1,2,3,4,5,6,7,8,9,10].map(c, [1,2,3,4,5,6,7,8,9,10].map(d, [1,2,3,4,5,6,7,8,9,10].map(e, [1,2,3,4,5,6,7,8,9,10].map(f, a+b+c+d+e+f))))))", Any, Record)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Eval1(nil)
	if err == nil || !strings.Contains(err.Error(), "cost limit") {
		t.Fatalf("want a cost limit error, got %v", err)
	}
}

func TestRuntimeErrorNamesExpression(t *testing.T) {
	p, err := Compile("record.missing + 1", Any, Record)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Eval1(map[string]any{})
	if err == nil || !strings.Contains(err.Error(), "record.missing + 1") || !strings.Contains(err.Error(), "no such key") {
		t.Fatalf("got %v", err)
	}
}

func BenchmarkEvalMap(b *testing.B) {
	p, _ := Compile("{'word': record.word, 'n': record.n * 2}", Any, Record)
	in := map[string]any{"word": "flink", "n": int64(3)}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := p.Eval1(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEvalFilter(b *testing.B) {
	p, _ := Compile("record.n % 2 == 0", Bool, Record)
	in := map[string]any{"word": "flink", "n": int64(3)}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := p.EvalBool(in); err != nil {
			b.Fatal(err)
		}
	}
}

// The runtime cost limit is enforced only where the compile-time estimate
// cannot rule out reaching it: comprehensions over input data (or large
// ones over literals), not plain per-record arithmetic.
func TestRuntimeCostLimitOnlyWhereNeeded(t *testing.T) {
	cases := []struct {
		src     string
		vars    []string
		limited bool
	}{
		{"{'id': record.id, 'v': record.v * 3 + 1}", []string{Record}, false},
		{"record.v % 2 == 0", []string{Record}, false},
		{"record.v + record.id", []string{Record}, false},
		{"{'k': acc.k, 'v': acc.v + record.v}", []string{Acc, Record}, false},
		{"record.s.contains('abc') && record.t.startsWith(record.u)", []string{Record}, false},
		{"[1,2,3].map(a, [1,2,3].map(b, a+b))", []string{Record}, false},
		{"record.items.map(x, x * 2)", []string{Record}, true},
		{"record.items.all(x, true)", []string{Record}, true},
		{"record.line.split(' ').filter(w, w != '')", []string{Record}, true},
		{"lists.range(record.n).map(i, i)", []string{Record}, true},
	}
	for _, c := range cases {
		p, err := Compile(c.src, Any, c.vars...)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		if p.limited != c.limited {
			t.Errorf("%s: runtime cost limit = %v (estimate max %d), want %v", c.src, p.limited, p.costMax, c.limited)
		}
	}
}

// A comprehension over input data keeps the runtime limit.
func TestCostLimitOverInput(t *testing.T) {
	p, err := Compile("record.xs.map(a, record.xs.map(b, record.xs.map(c, a+b+c)))", Any, Record)
	if err != nil {
		t.Fatal(err)
	}
	xs := make([]any, 200)
	for i := range xs {
		xs[i] = int64(i)
	}
	_, err = p.Eval1(map[string]any{"xs": xs})
	if err == nil || !strings.Contains(err.Error(), "cost limit") {
		t.Fatalf("want a cost limit error, got %v", err)
	}
}

// A comprehension over input data runs without cost tracking when the
// inputs are small enough for the estimate to stay within the limit, with
// the same results, and with it when they are not (TestCostLimitOverInput
// shows its limit holds); a function whose result size does not depend on
// the inputs' sizes (lists.range) always keeps the limit.
func TestSmallInputsSkipCostTracking(t *testing.T) {
	p, err := Compile("state.bids.filter(b, b.t >= record.t).map(b, b.p)", Any, Record, "state")
	if err != nil {
		t.Fatal(err)
	}
	if !p.limited || p.small == nil {
		t.Fatalf("limited %v, small program %v: want both", p.limited, p.small != nil)
	}
	bids := func(n int) map[string]any {
		l := make([]any, n)
		for i := range l {
			l[i] = map[string]any{"t": int64(i), "p": int64(2 * i)}
		}
		return map[string]any{"bids": l}
	}
	rec := map[string]any{"t": int64(2)}
	act := &activation{names: p.names, vals: [4]any{rec, bids(4)}}
	if p.program(act) != p.small {
		t.Errorf("4 bids: the cost-tracking program runs")
	}
	got, err := p.Eval(rec, bids(4))
	if err != nil || !reflect.DeepEqual(got, []any{int64(4), int64(6)}) {
		t.Errorf("4 bids: %v, %v", got, err)
	}
	act.vals[1] = bids(smallInputSize + 1)
	if p.program(act) != p.prg {
		t.Errorf("%d bids: the program without cost tracking runs", smallInputSize+1)
	}
	act.vals[1] = map[string]any{"bids": []any{map[string]any{"t": int64(1), "p": strings.Repeat("x", smallInputSize+1)}}}
	if p.program(act) != p.prg {
		t.Errorf("a long string: the program without cost tracking runs")
	}
	// The cost-tracking program gives the same results.
	if got, err := p.Eval(map[string]any{"t": int64(smallInputSize - 1)}, bids(smallInputSize+1)); err != nil ||
		!reflect.DeepEqual(got, []any{int64(2 * (smallInputSize - 1)), int64(2 * smallInputSize)}) {
		t.Errorf("%d bids: %v, %v", smallInputSize+1, got, err)
	}
	for _, src := range []string{"lists.range(record.n).map(i, i)", "record.xs.map(a, record.xs.map(b, a + b))"} {
		p, err := Compile(src, Any, Record)
		if err != nil {
			t.Fatal(err)
		}
		if !p.limited || p.small != nil {
			t.Errorf("%s: limited %v, small program %v: want limited only", src, p.limited, p.small != nil)
		}
	}
}

// celEval evaluates with CEL only, bypassing the field-path fast path.
func celEval(p *Program, vals ...any) (any, error) {
	act := &activation{names: p.names}
	n := copy(act.vals[:], vals)
	act.more = vals[n:]
	out, err := p.run(act)
	if err != nil {
		return nil, err
	}
	return ToNative(out)
}

// Plain field paths skip CEL; results and errors must be CEL's.
func TestFieldPathFastPath(t *testing.T) {
	paths := []struct {
		src   string
		vars  []string
		isVar int
		path  []string
	}{
		{"record.a", []string{Record}, 0, []string{"a"}},
		{"record.a.b", []string{Record}, 0, []string{"a", "b"}},
		{"record", []string{Record}, 0, []string{}},
		{"acc.x", []string{Acc, Record}, 0, []string{"x"}},
		{"record.v", []string{Acc, Record}, 1, []string{"v"}},
		{"record.a + 1", []string{Record}, -1, nil},
		{"has(record.a)", []string{Record}, -1, nil},
		{"record.?a", []string{Record}, -1, nil},
		{"record['a']", []string{Record}, -1, nil},
		{"[record.a][0]", []string{Record}, -1, nil},
	}
	for _, c := range paths {
		p, err := Compile(c.src, Any, c.vars...)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		if p.pathVar != c.isVar || (c.isVar >= 0 && !reflect.DeepEqual(p.path, c.path)) {
			t.Errorf("%s: path = %d %q, want %d %q", c.src, p.pathVar, p.path, c.isVar, c.path)
		}
	}
	inputs := []any{
		map[string]any{"a": int64(1)},
		map[string]any{"a": map[string]any{"b": "x"}},
		map[string]any{"a": map[string]any{"c": "x"}},
		map[string]any{"a": nil},
		map[string]any{"a": []any{int64(1)}},
		map[string]any{"a": map[string]any{"b": nil}},
		map[string]any{"a": map[string]any{"b": []byte("hi")}},
		map[string]any{"a": map[string]any{"b": 2.5}},
		map[string]any{"a": map[string]any{"b": uint64(7)}},
		map[string]any{"a": map[string]any{"b": true}},
		map[string]any{"a": int(3)},           // not normalized: CEL converts
		map[string]any{"a": map[string]any{}}, // missing b
		map[string]any{},                      // missing a
		map[string]any{"b": int64(1)},         // missing a
		map[string]any{"a": "str"},            // select on a string
		int64(5),                              // select on an int
		nil,                                   // select on null
		[]any{int64(1)},                       // select on a list
		map[string]string{"a": "typed"},       // not normalized
	}
	for _, src := range []string{"record.a", "record.a.b", "record"} {
		p, err := Compile(src, Any, Record)
		if err != nil {
			t.Fatal(err)
		}
		bp, err := Compile(src, Bool, Record)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range inputs {
			want, wantErr := celEval(p, in)
			for name, got := range map[string]func() (any, error){
				"Eval1":           func() (any, error) { return p.Eval1(in) },
				"Eval":            func() (any, error) { return p.Eval(in) },
				"Evaluator.Eval1": func() (any, error) { return p.Evaluator().Eval1(in) },
				"Evaluator.Eval":  func() (any, error) { return p.Evaluator().Eval(in) },
			} {
				v, err := got()
				if fmt.Sprint(err) != fmt.Sprint(wantErr) || !reflect.DeepEqual(v, want) {
					t.Errorf("%s %s(%#v) = %#v, %v; CEL gives %#v, %v", src, name, in, v, err, want, wantErr)
				}
			}
			if wantErr != nil && strings.HasPrefix(src, "record.a") {
				if _, isMap := in.(map[string]any); isMap && !strings.Contains(wantErr.Error(), "no such key") && fmt.Sprint(in) == "map[]" {
					t.Errorf("%s(%v): CEL error %v, want no such key", src, in, wantErr)
				}
			}
			wantB, wantBErr := func() (bool, error) {
				act := &activation{names: bp.names}
				act.vals[0] = in
				out, err := bp.run(act)
				if err != nil {
					return false, err
				}
				return bp.toBool(out)
			}()
			for name, got := range map[string]func() (bool, error){
				"EvalBool":           func() (bool, error) { return bp.EvalBool(in) },
				"Evaluator.EvalBool": func() (bool, error) { return bp.Evaluator().EvalBool(in) },
			} {
				b, err := got()
				if fmt.Sprint(err) != fmt.Sprint(wantBErr) || b != wantB {
					t.Errorf("%s %s(%#v) = %v, %v; CEL gives %v, %v", src, name, in, b, err, wantB, wantBErr)
				}
			}
		}
	}
	// The missing-key error is CEL's and names the expression.
	p, _ := Compile("record.a", Any, Record)
	_, err := p.Eval1(map[string]any{"b": int64(1)})
	if err == nil || !strings.Contains(err.Error(), "no such key: a") || !strings.Contains(err.Error(), "record.a") {
		t.Fatalf("got %v", err)
	}
}

// An Evaluator reused across evaluations does not leak values between them.
func TestEvaluatorReuse(t *testing.T) {
	p, err := Compile("{'k': acc.k, 'v': acc.v + record.v}", Any, Acc, Record)
	if err != nil {
		t.Fatal(err)
	}
	ev := p.Evaluator()
	acc := any(map[string]any{"k": "x", "v": int64(0)})
	for i := 1; i <= 10; i++ {
		acc, err = ev.Eval2(acc, map[string]any{"v": int64(i)})
		if err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := value.Field(acc, "v"); got != int64(55) {
		t.Fatalf("sum = %v", got)
	}
	if _, err := ev.Eval2(nil, map[string]any{"v": int64(1)}); err == nil {
		t.Fatal("want an error for a null acc")
	}
	v, err := ev.Eval(map[string]any{"k": "y", "v": int64(1)}, map[string]any{"v": int64(2)})
	if f, _ := value.Field(v, "v"); err != nil || f != int64(3) {
		t.Fatalf("got %v, %v", v, err)
	}
}

func BenchmarkEvaluatorMap(b *testing.B) {
	p, _ := Compile("{'word': record.word, 'n': record.n * 2}", Any, Record)
	ev := p.Evaluator()
	in := map[string]any{"word": "flink", "n": int64(300)}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := ev.Eval1(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvalMapCEL is BenchmarkEvalMap through CEL's interpreter (an
// expression the fast evaluator does not compile).
func BenchmarkEvalMapCEL(b *testing.B) {
	p, _ := Compile("{'word': record.word, 'n': record.n * 2, 'in': 'a' in record.tags}", Any, Record)
	in := map[string]any{"word": "flink", "n": int64(300), "tags": []any{"a"}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := p.Eval1(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEvaluatorFilter(b *testing.B) {
	p, _ := Compile("record.n % 2 == 0", Bool, Record)
	ev := p.Evaluator()
	in := map[string]any{"word": "flink", "n": int64(3)}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := ev.EvalBool(in); err != nil {
			b.Fatal(err)
		}
	}
}
