package expr

import (
	"cmp"
	"math"
	"unicode/utf8"

	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/overloads"
	"github.com/google/cel-go/common/types"
)

// The fast evaluator runs the common per-record expressions (field access,
// map and list literals, int and double arithmetic, comparisons, logic,
// size) as Go closures compiled from the checked AST, without CEL's
// interpreter and without converting values to CEL and back.
//
// It never decides anything CEL would decide differently: every operation
// handles only the operand types whose result is certain (int with int,
// double with double, string with string...) and reports "not handled" for
// anything else — other or mixed types, a missing key, an integer
// overflow, a division by zero. Then the whole expression is evaluated by
// CEL, which gives the result or the error it always gave. Expressions are
// side-effect free, so evaluating twice is only a cost, paid on the rare
// paths. Expressions with anything the fast evaluator does not know
// (comprehensions, other functions, optional syntax) are not compiled and
// always go to CEL, and so does every expression that needs the runtime
// cost limit.

// fastFn evaluates a compiled subexpression. ok is false when the fast
// evaluator cannot tell the result.
type fastFn func(a *activation) (v any, ok bool)

func (a *activation) get(i int) any {
	if i < len(a.vals) {
		return a.vals[i]
	}
	return a.more[i-len(a.vals)]
}

// isNative reports whether CEL would hand v back unchanged (ToNative of
// its CEL form is v itself).
func isNative(v any) bool {
	switch v.(type) {
	case nil, bool, int64, uint64, float64, string, []byte, []any, map[string]any:
		return true
	}
	return false
}

// compileFast compiles e, or returns nil when it uses anything the fast
// evaluator does not handle.
func compileFast(e celast.Expr, vars []string) fastFn {
	switch e.Kind() {
	case celast.LiteralKind:
		var v any
		switch x := e.AsLiteral().(type) {
		case types.Int:
			v = int64(x)
		case types.Uint:
			v = uint64(x)
		case types.Double:
			v = float64(x)
		case types.String:
			v = string(x)
		case types.Bool:
			v = bool(x)
		case types.Null:
			v = nil
		default:
			return nil // bytes (mutable) and anything else
		}
		return func(*activation) (any, bool) { return v, true }
	case celast.IdentKind:
		name := e.AsIdent()
		for i, n := range vars {
			if n == name {
				return func(a *activation) (any, bool) {
					v := a.get(i)
					return v, isNative(v)
				}
			}
		}
		return nil
	case celast.SelectKind:
		sel := e.AsSelect()
		operand := compileFast(sel.Operand(), vars)
		if operand == nil {
			return nil
		}
		field := sel.FieldName()
		if sel.IsTestOnly() {
			return func(a *activation) (any, bool) {
				v, ok := operand(a)
				if !ok {
					return nil, false
				}
				m, ok := v.(map[string]any)
				if !ok {
					return nil, false
				}
				_, has := m[field]
				return has, true
			}
		}
		return func(a *activation) (any, bool) {
			v, ok := operand(a)
			if !ok {
				return nil, false
			}
			m, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			v, ok = m[field]
			return v, ok && isNative(v)
		}
	case celast.ListKind:
		l := e.AsList()
		if len(l.OptionalIndices()) > 0 {
			return nil
		}
		elems := make([]fastFn, len(l.Elements()))
		for i, x := range l.Elements() {
			if elems[i] = compileFast(x, vars); elems[i] == nil {
				return nil
			}
		}
		return func(a *activation) (any, bool) {
			out := make([]any, len(elems))
			for i, f := range elems {
				v, ok := f(a)
				if !ok {
					return nil, false
				}
				out[i] = v
			}
			return out, true
		}
	case celast.MapKind:
		m := e.AsMap()
		keys := make([]string, len(m.Entries()))
		vals := make([]fastFn, len(m.Entries()))
		seen := map[string]bool{}
		for i, ent := range m.Entries() {
			me := ent.AsMapEntry()
			if me.IsOptional() || me.Key().Kind() != celast.LiteralKind {
				return nil
			}
			k, ok := me.Key().AsLiteral().(types.String)
			if !ok || seen[string(k)] {
				return nil // non-string or repeated keys: CEL's business
			}
			seen[string(k)] = true
			keys[i] = string(k)
			if vals[i] = compileFast(me.Value(), vars); vals[i] == nil {
				return nil
			}
		}
		return func(a *activation) (any, bool) {
			out := make(map[string]any, len(keys))
			for i, f := range vals {
				v, ok := f(a)
				if !ok {
					return nil, false
				}
				out[keys[i]] = v
			}
			return out, true
		}
	case celast.CallKind:
		return compileCall(e.AsCall(), vars)
	}
	return nil
}

func compileCall(c celast.CallExpr, vars []string) fastFn {
	args := make([]fastFn, len(c.Args()))
	for i, x := range c.Args() {
		if args[i] = compileFast(x, vars); args[i] == nil {
			return nil
		}
	}
	fn := c.FunctionName()
	if c.IsMemberFunction() {
		if fn != overloads.Size || len(args) != 0 {
			return nil
		}
		target := compileFast(c.Target(), vars)
		if target == nil {
			return nil
		}
		return sizeFn(target)
	}
	switch len(args) {
	case 1:
		x := args[0]
		switch fn {
		case operators.LogicalNot:
			return func(a *activation) (any, bool) {
				v, ok := x(a)
				b, isBool := v.(bool)
				return !b, ok && isBool
			}
		case operators.Negate:
			return func(a *activation) (any, bool) {
				v, ok := x(a)
				if !ok {
					return nil, false
				}
				switch n := v.(type) {
				case int64:
					return -n, n != math.MinInt64
				case float64:
					return -n, true
				}
				return nil, false
			}
		case overloads.Size:
			return sizeFn(x)
		}
	case 2:
		x, y := args[0], args[1]
		switch fn {
		case operators.LogicalAnd, operators.LogicalOr:
			and := fn == operators.LogicalAnd
			return func(a *activation) (any, bool) {
				v, ok := x(a)
				l, isBool := v.(bool)
				if !ok || !isBool {
					return nil, false
				}
				if l != and {
					return l, true // false && _, true || _
				}
				v, ok = y(a)
				r, isBool := v.(bool)
				return r, ok && isBool
			}
		case operators.Add, operators.Subtract, operators.Multiply, operators.Divide, operators.Modulo:
			op := arith(fn)
			return func(a *activation) (any, bool) {
				l, ok := x(a)
				if !ok {
					return nil, false
				}
				r, ok := y(a)
				if !ok {
					return nil, false
				}
				return op(l, r)
			}
		case operators.Equals, operators.NotEquals, operators.Less, operators.LessEquals, operators.Greater, operators.GreaterEquals:
			want := compareWant(fn)
			equality := fn == operators.Equals || fn == operators.NotEquals
			return func(a *activation) (any, bool) {
				l, ok := x(a)
				if !ok {
					return nil, false
				}
				r, ok := y(a)
				if !ok {
					return nil, false
				}
				c, ok := compareSame(l, r, equality)
				if !ok {
					return nil, false
				}
				return want(c), true
			}
		}
	case 3:
		if fn == operators.Conditional {
			cond, t, f := args[0], args[1], args[2]
			return func(a *activation) (any, bool) {
				v, ok := cond(a)
				b, isBool := v.(bool)
				if !ok || !isBool {
					return nil, false
				}
				if b {
					return t(a)
				}
				return f(a)
			}
		}
	}
	return nil
}

func sizeFn(x fastFn) fastFn {
	return func(a *activation) (any, bool) {
		v, ok := x(a)
		if !ok {
			return nil, false
		}
		switch s := v.(type) {
		case string:
			return int64(utf8.RuneCountInString(s)), true
		case []byte:
			return int64(len(s)), true
		case []any:
			return int64(len(s)), true
		case map[string]any:
			return int64(len(s)), true
		}
		return nil, false
	}
}

// arith returns the operation of an arithmetic operator on two values of
// the same type: ints (failing on overflow and division by zero, where
// CEL reports an error), doubles, and strings for +.
func arith(fn string) func(l, r any) (any, bool) {
	switch fn {
	case operators.Add:
		return addOp
	case operators.Subtract:
		return subOp
	case operators.Multiply:
		return mulOp
	case operators.Divide:
		return divOp
	}
	return modOp
}

func addOp(l, r any) (any, bool) {
	switch x := l.(type) {
	case int64:
		if y, ok := r.(int64); ok {
			s := x + y
			if (x^s)&(y^s) < 0 {
				return nil, false // overflow
			}
			return s, true
		}
	case float64:
		if y, ok := r.(float64); ok {
			return x + y, true
		}
	case string:
		if y, ok := r.(string); ok {
			return x + y, true
		}
	}
	return nil, false
}

func subOp(l, r any) (any, bool) {
	switch x := l.(type) {
	case int64:
		if y, ok := r.(int64); ok {
			s := x - y
			if (x^y)&(x^s) < 0 {
				return nil, false
			}
			return s, true
		}
	case float64:
		if y, ok := r.(float64); ok {
			return x - y, true
		}
	}
	return nil, false
}

func mulOp(l, r any) (any, bool) {
	switch x := l.(type) {
	case int64:
		if y, ok := r.(int64); ok {
			if x == 0 || y == 0 {
				return int64(0), true
			}
			if (x == -1 && y == math.MinInt64) || (y == -1 && x == math.MinInt64) {
				return nil, false
			}
			p := x * y
			if p/y != x {
				return nil, false
			}
			return p, true
		}
	case float64:
		if y, ok := r.(float64); ok {
			return x * y, true
		}
	}
	return nil, false
}

func divOp(l, r any) (any, bool) {
	switch x := l.(type) {
	case int64:
		if y, ok := r.(int64); ok && y != 0 && !(y == -1 && x == math.MinInt64) {
			return x / y, true
		}
	case float64:
		if y, ok := r.(float64); ok {
			return x / y, true
		}
	}
	return nil, false
}

func modOp(l, r any) (any, bool) {
	if x, ok := l.(int64); ok {
		if y, ok := r.(int64); ok && y != 0 && !(y == -1 && x == math.MinInt64) {
			return x % y, true
		}
	}
	return nil, false
}

// compareSame compares two values of the same type: ints, uints, doubles
// and strings, and bools for equality only. For equality a NaN gives
// c = 2 (unequal to everything, as in CEL); ordering a NaN is a CEL error,
// so it is not handled.
func compareSame(l, r any, equality bool) (c int, ok bool) {
	switch x := l.(type) {
	case int64:
		if y, ok := r.(int64); ok {
			return cmp.Compare(x, y), true
		}
	case uint64:
		if y, ok := r.(uint64); ok {
			return cmp.Compare(x, y), true
		}
	case float64:
		if y, ok := r.(float64); ok {
			if x != x || y != y {
				return 2, equality
			}
			return cmp.Compare(x, y), true
		}
	case string:
		if y, ok := r.(string); ok {
			return cmp.Compare(x, y), true
		}
	case bool:
		if y, ok := r.(bool); ok && equality {
			if x == y {
				return 0, true
			}
			return 1, true
		}
	}
	return 0, false
}

func compareWant(fn string) func(c int) bool {
	switch fn {
	case operators.Equals:
		return func(c int) bool { return c == 0 }
	case operators.NotEquals:
		return func(c int) bool { return c != 0 }
	case operators.Less:
		return func(c int) bool { return c == -1 }
	case operators.LessEquals:
		return func(c int) bool { return c == -1 || c == 0 }
	case operators.Greater:
		return func(c int) bool { return c == 1 }
	}
	return func(c int) bool { return c == 1 || c == 0 }
}
