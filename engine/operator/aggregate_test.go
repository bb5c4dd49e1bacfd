package operator

import (
	"math/rand"
	"reflect"
	"testing"

	"github.com/flinkjob/flinkjob/engine/expr"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/value"
)

// TestSumSlotMatchesAddNumbers: a sum slot folds any sequence of values
// (ints, floats, uint64s, nulls, non-numbers) to the value and the error
// addNumbers' fold of the boxed sum gives.
func TestSumSlotMatchesAddNumbers(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	pick := func() any {
		switch rnd.Intn(6) {
		case 0:
			return nil
		case 1:
			return float64(rnd.Intn(100)) / 4
		case 2:
			return uint64(rnd.Intn(1000))
		case 3:
			if rnd.Intn(10) == 0 {
				return "x"
			}
		}
		return int64(rnd.Intn(1000) - 300)
	}
	for n := 0; n < 2000; n++ {
		var want any
		var slot aggSlot
		for k := 0; k < 1+rnd.Intn(8); k++ {
			v := pick()
			w, werr := addNumbers(want, v)
			gerr := slot.addSum(v)
			if (werr != nil) != (gerr != nil) || (werr != nil && werr.Error() != gerr.Error()) {
				t.Fatalf("adding %#v to %#v: error %v, addNumbers %v", v, want, gerr, werr)
			}
			if werr != nil {
				break
			}
			want = w
			if got := slot.sum(); !reflect.DeepEqual(got, want) {
				t.Fatalf("sum %#v (%T), addNumbers %#v (%T)", got, got, want, want)
			}
		}
	}
}

// TestFieldAccSnapshotForm: an aggregate step's accumulator is
// snapshotted in the list form steps always stored (count an int, sum its
// value, avg [sum, n], min/max/accumulator their values), and read back
// from it to the same results.
func TestFieldAccSnapshotForm(t *testing.T) {
	prog := func(src string, vars ...string) *expr.Program {
		p, err := expr.Compile(src, expr.Any, vars...)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	f := newFields([]plan.AggField{
		{Name: "n", Kind: "count"},
		{Name: "s", Kind: "sum", Arg: prog("record.v", expr.Record)},
		{Name: "lo", Kind: "min", Arg: prog("record.v", expr.Record)},
		{Name: "hi", Kind: "max", Arg: prog("record.v", expr.Record)},
		{Name: "a", Kind: "avg", Arg: prog("record.v", expr.Record)},
		{Name: "acc", Kind: "accumulator", Init: prog("[]"), Add: prog("acc + [record.v]", expr.Acc, expr.Record),
			Merge: prog("a + b", expr.A, expr.B)},
	})
	acc, err := f.create()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []int64{300, 2, 700} {
		if acc, err = f.add(acc, &value.Record{Value: map[string]any{"v": v}}); err != nil {
			t.Fatal(err)
		}
	}
	want := []any{int64(3), int64(1002), int64(2), int64(700), []any{float64(1002), int64(3)}, []any{int64(300), int64(2), int64(700)}}
	snap := f.toValue(acc)
	if !reflect.DeepEqual(snap, want) {
		t.Fatalf("snapshot %#v, want %#v", snap, want)
	}
	back, err := f.fromValue(value.Plain(snap))
	if err != nil {
		t.Fatal(err)
	}
	out := &aggOut{names: []string{"n", "s", "lo", "hi", "a", "acc"}}
	r1, err1 := f.result(acc, out)
	r2, err2 := f.result(back, out)
	if err1 != nil || err2 != nil || !reflect.DeepEqual(r1, r2) {
		t.Fatalf("result %v (%v), after the snapshot %v (%v)", r1, err1, r2, err2)
	}
	if _, err := f.fromValue([]any{"x", nil, nil, nil, nil, nil}); err == nil {
		t.Error("a count that is no int was read")
	}
	if _, err := f.fromValue([]any{int64(1)}); err == nil {
		t.Error("a list of the wrong length was read")
	}
	// Merging (session windows) adds the parts field by field.
	m, err := f.merge(acc, back)
	if err != nil {
		t.Fatal(err)
	}
	wantM := []any{int64(6), int64(2004), int64(2), int64(700), []any{float64(2004), int64(6)},
		[]any{int64(300), int64(2), int64(700), int64(300), int64(2), int64(700)}}
	if got := f.toValue(m); !reflect.DeepEqual(got, wantM) {
		t.Errorf("merged %#v, want %#v", got, wantM)
	}
}
