package expr

import (
	"reflect"
	"strings"
	"testing"
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
		if !reflect.DeepEqual(got, c.out) {
			t.Errorf("%s = %#v, want %#v", c.src, got, c.out)
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
