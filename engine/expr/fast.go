package expr

import (
	"cmp"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/cel-go/common"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/overloads"
	"github.com/google/cel-go/common/types"

	"github.com/flinkjob/flinkjob/engine/value"
)

// The fast evaluator runs the common per-record expressions (field access,
// map and list literals, int and double arithmetic, comparisons, logic,
// size, `in`, indexing, list concatenation, the comprehension macros
// exists/all/exists_one/map/filter and their two-variable forms over
// lists and rows, cel.bind, slice, math.greatest/least, string(), the
// common string functions: contains, startsWith, endsWith, split,
// lowerAscii, upperAscii, and matches and regex.extractAll with a literal
// pattern) as Go closures compiled from the checked AST, without CEL's
// interpreter and without converting values to CEL and back. Common
// shapes get closures of their own: a comparison with a literal, `in` a
// literal list, int arithmetic with literal operands, a string
// concatenation, a list grown by a literal's elements. Rows (value.Row)
// are maps wherever maps are handled; a field selection caches the
// field's index per row schema (fieldSite).
//
// It never decides anything CEL would decide differently: every operation
// handles only the operand types whose result is certain (int with int,
// double with double, string with string...) and reports "not handled" for
// anything else — other or mixed types, a missing key, an index out of
// range, an integer overflow, a division by zero, a map as a comprehension
// range (CEL's iteration order over a map is not Go's; over a row it is
// the sorted one, as here). Then the whole
// expression is evaluated by CEL, which gives the result or the error it
// always gave. Expressions are side-effect free, so evaluating twice is
// only a cost, paid on the rare paths. Expressions with anything the fast
// evaluator does not know (other functions, optional syntax) are not
// compiled and always go to CEL.
//
// Values it returns are ones CEL's result would convert back to (ToNative)
// unchanged: a list it builds holds only such values (isNative), so that a
// list built by CEL, whose elements ToNative normalizes, and one built here
// are equal.
//
// The runtime cost limit. An expression whose compile-time cost estimate
// stays within DefaultCostLimit for any input needs no limit at run time,
// and its fast evaluator checks nothing (fastUnlimited). One that could
// exceed it (a comprehension over input data) is evaluated natively only
// where CEL's cost is known to stay within the limit, in one of two ways.
//
// fastCheckSizes, when the estimate for inputs whose every string, list
// and map has at most smallInputSize elements stays within the limit
// (Program.small): every value the evaluator reads from its inputs — a
// variable, a field, an element by index or by iteration, an element
// compared by `in` — must be that small, or it reports "not handled" and
// CEL runs with the limit. This is enough: CEL's cost on an input depends
// only on the values its evaluation reads, which are the ones the fast
// evaluator reads (it evaluates the same subexpressions, short-circuiting
// the same way, and checks every element the deep operations, such as
// equality of lists, read). Replacing every value never read by a small
// one gives an input whose every value is small, which CEL evaluates
// reading the same values, at the same cost, within the estimate. A map
// that is only selected from (record in record.a, has(record.a)) is not
// read whole and need not be small: CEL's cost of a selection does not
// depend on the map's size, and dropping the fields never selected from
// such a map leaves it small (see compileRawPath).
//
// fastCountCost, when not even that estimate does (sortBy, whose estimate
// is unbounded): the evaluation adds up a bound of what CEL's runtime cost
// tracker charges for the same evaluation (interpreter.CostTracker: 1 per
// identifier, selection and call, the list and map creation costs,
// 0.1 per character for string comparisons and concatenation, the size
// of the list for `in`, slice and math.greatest, n² for sorting; here
// rounded up, and charging at least as much for every node it evaluates)
// and gives up, leaving the evaluation to CEL and its limit, once the
// bound passes DefaultCostLimit. TestFastCostBoundsCEL compares the bound
// with CEL's actual cost.

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
	case nil, bool, int64, uint64, float64, string, []byte, []any, map[string]any, *value.Row:
		return true
	}
	return false
}

// isSmallNative is isNative for a value read from the inputs of a program
// compiled with size checks: it also has at most smallInputSize bytes or
// elements (the size of what it holds is checked where that is read).
func isSmallNative(v any) bool {
	switch x := v.(type) {
	case nil, bool, int64, uint64, float64:
		return true
	case string:
		return len(x) <= smallInputSize
	case []byte:
		return len(x) <= smallInputSize
	case []any:
		return len(x) <= smallInputSize
	case map[string]any:
		return len(x) <= smallInputSize
	case *value.Row:
		return x.Len() <= smallInputSize
	}
	return false
}

// fastCompiler compiles a checked AST into fastFns.
type fastCompiler struct {
	vars []string
	// check makes every read of input data check its size (see above).
	check bool
	// count makes the evaluation add up a bound of CEL's cost (see
	// above) in activation.cost, and give up past DefaultCostLimit.
	count bool
	// scope holds the comprehension variables in scope, innermost last;
	// each has a slot in activation.locals.
	scope  []fastLocal
	nslots int
	// rows makes map literals with constant string keys build rows
	// (value.UseRows when the expression is compiled); rowSlots counts
	// the scratch ones among them (activation.rows).
	rows     bool
	rowSlots int
}

type fastLocal struct {
	name string
	slot int
}

// compileFast compiles e, or returns nil when it uses anything the fast
// evaluator does not handle. locals is the number of activation.locals
// slots the evaluation needs, rowSlots the number of activation.rows.
// With rows, map literals build rows.
func compileFast(e celast.Expr, vars []string, mode fastMode, rows bool) (f fastFn, locals, rowSlots int) {
	c := &fastCompiler{vars: vars, check: mode == fastCheckSizes, count: mode == fastCountCost, rows: rows}
	f = c.compileTop(e)
	if f == nil {
		return nil, 0, 0
	}
	if !c.count {
		return f, c.nslots, c.rowSlots
	}
	inner := f
	return func(a *activation) (any, bool) {
		a.cost = 0
		v, ok := inner(a)
		return v, ok && a.cost <= DefaultCostLimit
	}, c.nslots, c.rowSlots
}

// fastMode says how a fast evaluator stays within the runtime cost limit.
type fastMode uint8

const (
	// fastUnlimited: the compile-time estimate rules the limit out.
	fastUnlimited fastMode = iota
	// fastCheckSizes: it rules it out for small inputs; every read checks
	// that the value read is small.
	fastCheckSizes
	// fastCountCost: the evaluation adds up a bound of CEL's cost.
	fastCountCost
)

// counted charges w (at least what CEL charges for the node f evaluates,
// without its operands) before evaluating f, giving up past the limit.
func (c *fastCompiler) counted(f fastFn, w uint64) fastFn {
	if f == nil || !c.count {
		return f
	}
	return func(a *activation) (any, bool) {
		if a.cost += w; a.cost > DefaultCostLimit {
			return nil, false
		}
		return f(a)
	}
}

// nodeCost bounds CEL's own charge for evaluating e: 1 for an identifier,
// a field selection or a call whose cost does not depend on its operands
// (the others add theirs when they know the operands, see costOf), plus
// the base cost of creating a list or a map.
func nodeCost(e celast.Expr) uint64 {
	switch e.Kind() {
	case celast.ListKind:
		return 1 + common.ListCreateBaseCost
	case celast.MapKind:
		return 1 + common.MapCreateBaseCost
	}
	return 1
}

// costOf bounds CEL's charge for traversing v: a string's or bytes'
// length, a list's or map's size, over 10 (CEL charges 0.1 per character
// and, for equality, per element), rounded up.
func costOf(v any) uint64 {
	switch x := v.(type) {
	case string:
		return uint64(len(x))/10 + 1
	case []byte:
		return uint64(len(x))/10 + 1
	case []any:
		return uint64(len(x))/10 + 1
	case map[string]any:
		return uint64(len(x))/10 + 1
	case *value.Row:
		return uint64(x.Len())/10 + 1
	}
	return 0
}

// readOK reports whether a value read from input data can be used: a
// native value, and a small one when check is set. (A direct call: an
// indirect one per read would cost more than the check.)
func readOK(check bool, v any) bool {
	if _, isInt := v.(int64); isInt {
		return true // the common case, first
	}
	if check {
		return isSmallNative(v)
	}
	return isNative(v)
}

func (c *fastCompiler) compile(e celast.Expr) fastFn {
	if f, n := c.compilePath(e); f != nil {
		return c.counted(f, n)
	}
	return c.counted(c.compileNode(e), nodeCost(e))
}

// compilePath compiles a variable followed by field selections
// (record.bid.price, b.t) into one closure, which looks the fields up in
// a loop, and returns the number of identifier and select nodes in it.
// It returns nil for anything else.
func (c *fastCompiler) compilePath(e celast.Expr) (fastFn, uint64) {
	name, fields, ok := selectPath(e)
	if !ok || len(fields) == 0 {
		return nil, 0
	}
	f := c.compileRawPath(name, fields)
	if f == nil {
		return nil, 0
	}
	check := c.check
	return func(a *activation) (any, bool) {
		v, ok := f(a)
		return v, ok && readOK(check, v)
	}, uint64(len(fields)) + 1
}

// compileRawPath compiles a variable followed by field selections, for a
// value that is only selected from (a path's operand, has()'s): it does
// not check the value at the end (readOK), nor the maps along the way
// but that they are maps. With size checks that is enough: CEL's cost
// of selecting a field does not depend on the map's size, so the
// argument above holds for the input in which every map that is only
// selected from keeps only the fields selected (a map read whole is
// checked where it is read).
func (c *fastCompiler) compileRawPath(name string, fields []string) fastFn {
	root := c.compileRawIdent(name)
	if root == nil {
		return nil
	}
	// An input variable among the first ones, read in place (no call).
	in := -1
	if c.isVar(name) {
		in = slices.Index(c.vars, name)
	}
	switch {
	case len(fields) == 0:
		return root
	case len(fields) == 1 && in >= 0 && in < len(activation{}.vals):
		f := newFieldSite(fields[0])
		return func(a *activation) (any, bool) { return f.get(a.vals[in]) }
	case len(fields) == 2 && in >= 0 && in < len(activation{}.vals):
		f, g := newFieldSite(fields[0]), newFieldSite(fields[1])
		return func(a *activation) (any, bool) {
			v, ok := f.get(a.vals[in])
			if !ok {
				return nil, false
			}
			return g.get(v)
		}
	case len(fields) == 1:
		f := newFieldSite(fields[0])
		return func(a *activation) (any, bool) {
			v, _ := root(a)
			return f.get(v)
		}
	}
	sites := make([]*fieldSite, len(fields))
	for i, f := range fields {
		sites[i] = newFieldSite(f)
	}
	return func(a *activation) (any, bool) {
		v, ok := root(a)
		for _, f := range sites {
			if v, ok = f.get(v); !ok {
				return nil, false
			}
		}
		return v, ok
	}
}

// isVar reports whether name is an input variable, not a comprehension
// variable in scope.
func (c *fastCompiler) isVar(name string) bool {
	for _, l := range c.scope {
		if l.name == name {
			return false
		}
	}
	return slices.Contains(c.vars, name)
}

// compileRawIdent reads a variable (see compileIdent) without checking
// its value (see compileRawPath).
func (c *fastCompiler) compileRawIdent(name string) fastFn {
	for i := len(c.scope) - 1; i >= 0; i-- {
		if c.scope[i].name == name {
			slot := c.scope[i].slot
			return func(a *activation) (any, bool) { return a.locals[slot], true }
		}
	}
	for i, n := range c.vars {
		if n == name {
			if i < len(activation{}.vals) {
				return func(a *activation) (any, bool) { return a.vals[i], true }
			}
			return func(a *activation) (any, bool) { return a.get(i), true }
		}
	}
	return nil
}

func (c *fastCompiler) compileNode(e celast.Expr) fastFn {
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
		return c.compileIdent(e.AsIdent())
	case celast.SelectKind:
		sel := e.AsSelect()
		var operand fastFn
		if name, fields, ok := selectPath(sel.Operand()); ok {
			// Only selected from: see compileRawPath.
			operand = c.counted(c.compileRawPath(name, fields), uint64(len(fields))+1)
		} else {
			operand = c.compile(sel.Operand())
		}
		if operand == nil {
			return nil
		}
		field := newFieldSite(sel.FieldName())
		if sel.IsTestOnly() {
			return func(a *activation) (any, bool) {
				v, ok := operand(a)
				if !ok || !value.IsMap(v) {
					return nil, false
				}
				_, has := field.get(v)
				return has, true
			}
		}
		check := c.check
		return func(a *activation) (any, bool) {
			v, ok := operand(a)
			if !ok {
				return nil, false
			}
			v, ok = field.get(v)
			return v, ok && readOK(check, v)
		}
	case celast.ListKind:
		l := e.AsList()
		if len(l.OptionalIndices()) > 0 {
			return nil
		}
		elems := make([]fastFn, len(l.Elements()))
		for i, x := range l.Elements() {
			if elems[i] = c.compile(x); elems[i] == nil {
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
		return c.compileMap(e.AsMap(), false)
	case celast.CallKind:
		return c.compileCall(e.AsCall())
	case celast.ComprehensionKind:
		return c.compileComprehension(e.AsComprehension())
	}
	return nil
}

// compileIdent reads a comprehension variable, the innermost of that
// name, or else an input variable.
func (c *fastCompiler) compileIdent(name string) fastFn {
	check := c.check
	for i := len(c.scope) - 1; i >= 0; i-- {
		if c.scope[i].name == name {
			slot := c.scope[i].slot
			return func(a *activation) (any, bool) {
				v := a.locals[slot]
				return v, readOK(check, v)
			}
		}
	}
	for i, n := range c.vars {
		if n == name {
			return func(a *activation) (any, bool) {
				v := a.get(i)
				return v, readOK(check, v)
			}
		}
	}
	return nil
}

// compileMap compiles a map literal with string keys. A scratch one (the
// expression's outermost, see compileTop) fills activation.scratch when
// the caller provides one instead of allocating. With c.rows it builds a
// row, of a schema found once here, each entry written to its sorted
// slot; a scratch one refills the row it returned last time when the
// caller provides activation.rows.
func (c *fastCompiler) compileMap(m celast.MapExpr, scratch bool) fastFn {
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
		if vals[i] = c.compile(me.Value()); vals[i] == nil {
			return nil
		}
	}
	if c.rows {
		return c.rowLiteral(keys, vals, scratch)
	}
	return func(a *activation) (any, bool) {
		var out map[string]any
		if scratch && a.scratch != nil {
			out, a.scratch = a.scratch, nil
		} else {
			out = make(map[string]any, len(keys))
		}
		for i, f := range vals {
			v, ok := f(a)
			if !ok {
				return nil, false
			}
			out[keys[i]] = v
		}
		return out, true
	}
}

// rowLiteral builds a map literal's row: its entries, evaluated in the
// order written, go to their slots in the sorted schema.
func (c *fastCompiler) rowLiteral(keys []string, vals []fastFn, scratch bool) fastFn {
	schema := value.MustSchemaOf(keys...) // distinct: compileMap checked
	slots := make([]int, len(keys))
	for i, k := range keys {
		slots[i] = schema.Index(k)
	}
	site := -1
	if scratch {
		site = c.rowSlots
		c.rowSlots++
	}
	return func(a *activation) (any, bool) {
		var out *value.Row
		if site >= 0 && a.rows != nil {
			if out = a.rows[site]; out == nil {
				out = value.NewRow(schema)
				a.rows[site] = out
			}
		} else {
			out = value.NewRow(schema)
		}
		row := out.Values()
		for i, f := range vals {
			v, ok := f(a)
			if !ok {
				return nil, false
			}
			row[slots[i]] = v
		}
		return out, true
	}
}

// compileTop compiles the whole expression: a map literal that is its
// result (possibly under dyn() and conditionals) is a scratch one. Only
// one of them is evaluated per evaluation, and the caller that provided
// the scratch map is the only holder of the result.
func (c *fastCompiler) compileTop(e celast.Expr) fastFn {
	switch e.Kind() {
	case celast.MapKind:
		return c.counted(c.compileMap(e.AsMap(), true), nodeCost(e))
	case celast.CallKind:
		call := e.AsCall()
		args := call.Args()
		if call.IsMemberFunction() {
			break
		}
		switch {
		case call.FunctionName() == overloads.TypeConvertDyn && len(args) == 1:
			return c.counted(c.compileTop(args[0]), 1)
		case call.FunctionName() == operators.Conditional && len(args) == 3:
			cond, t, f := c.compile(args[0]), c.compileTop(args[1]), c.compileTop(args[2])
			if cond == nil || t == nil || f == nil {
				return nil
			}
			return c.counted(conditionalFn(cond, t, f), 1)
		}
	}
	return c.compile(e)
}

func (c *fastCompiler) compileCall(call celast.CallExpr) fastFn {
	fn := call.FunctionName()
	if call.IsMemberFunction() {
		if f := c.compileSortBy(call); f != nil {
			return f
		}
		target := c.compile(call.Target())
		if target == nil {
			return nil
		}
		args := c.compileArgs(call.Args())
		if args == nil {
			return nil
		}
		switch {
		case fn == overloads.Size && len(args) == 0:
			return sizeFn(target)
		case fn == "slice" && len(args) == 2:
			return sliceFn(target, args[0], args[1], c.count)
		case fn == "@sortByAssociatedKeys" && len(args) == 1:
			return sortByKeysFn(target, args[0], c.count)
		case c.count:
		case len(args) == 1 && (fn == overloads.Contains || fn == overloads.StartsWith || fn == overloads.EndsWith):
			return stringPredFn(target, args[0], fn)
		case len(args) == 1 && fn == overloads.Matches:
			if re := literalRegexp(call.Args()[0]); re != nil {
				return matchesFn(target, re)
			}
		case len(args) == 0 && (fn == "lowerAscii" || fn == "upperAscii"):
			return asciiCaseFn(target, fn == "lowerAscii")
		case len(args) == 1 && fn == "split":
			return splitFn(target, args[0])
		}
		return nil
	}
	if args := call.Args(); len(args) == 2 && !c.count && (fn == overloads.Matches || fn == "regex.extractAll") {
		re := literalRegexp(args[1])
		if re == nil || fn != overloads.Matches && len(re.SubexpNames()) > 2 {
			return nil // more than one group: CEL's error
		}
		target := c.compile(args[0])
		if target == nil {
			return nil
		}
		if fn == overloads.Matches {
			return matchesFn(target, re)
		}
		return extractAllFn(target, re)
	}
	if isStringConcat(call) {
		return c.compileConcat(call)
	}
	if f := c.compileAppendLiteral(call); f != nil {
		return f
	}
	if f := c.compileConstArith(call); f != nil {
		return f
	}
	args := c.compileArgs(call.Args())
	if args == nil {
		return nil
	}
	switch len(args) {
	case 1:
		x := args[0]
		switch fn {
		case overloads.TypeConvertDyn:
			return x
		case operators.LogicalNot:
			return func(a *activation) (any, bool) {
				v, ok := x(a)
				b, isBool := v.(bool)
				return !b, ok && isBool
			}
		case operators.NotStrictlyFalse:
			// A bool is itself; CEL makes anything else (an error)
			// true, which this cannot tell from a failure here.
			return func(a *activation) (any, bool) {
				v, ok := x(a)
				b, isBool := v.(bool)
				return b, ok && isBool
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
		case overloads.TypeConvertString:
			return stringFn(x)
		case "math.@max", "math.@min":
			return extremumFn(x, fn == "math.@max", c.count)
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
			count := c.count
			return func(a *activation) (any, bool) {
				l, r, ok := operands(a, x, y)
				if !ok {
					return nil, false
				}
				if count {
					a.cost += costOf(l) + costOf(r)
				}
				return op(l, r)
			}
		case operators.Equals, operators.NotEquals:
			ne := fn == operators.NotEquals
			if k, ok := literalOf(call.Args()[1]); ok {
				return eqConstFn(c.chargeConst(x, k), k, ne)
			}
			if k, ok := literalOf(call.Args()[0]); ok {
				return eqConstFn(c.chargeConst(y, k), k, ne) // == is symmetric
			}
			count, check := c.count, c.check
			return func(a *activation) (any, bool) {
				l, r, ok := operands(a, x, y)
				if !ok {
					return nil, false
				}
				if count {
					a.cost += costOf(l) + costOf(r)
				}
				eq, ok := equal(l, r, check)
				return eq != ne, ok
			}
		case operators.Less, operators.LessEquals, operators.Greater, operators.GreaterEquals:
			if k, ok := literalOf(call.Args()[1]); ok {
				if f := cmpConstFn(c.chargeConst(x, k), k, fn); f != nil {
					return f
				}
			}
			want := compareWant(fn)
			count := c.count
			return func(a *activation) (any, bool) {
				l, r, ok := operands(a, x, y)
				if !ok {
					return nil, false
				}
				if count {
					a.cost += costOf(l) + costOf(r)
				}
				c, ok := compareSame(l, r, false)
				if !ok {
					return nil, false
				}
				return want(c), true
			}
		case operators.In:
			if l, ok := constList(call.Args()[1]); ok {
				// The list and its literals, and in's traversal.
				return inConstFn(c.chargeAfter(x, nodeCost(call.Args()[1])+2*uint64(len(l))+1), l, c.check)
			}
			return inFn(x, y, c.check, c.count)
		case operators.Index:
			return indexFn(x, y, c.check)
		case "math.@max", "math.@min":
			return extremum2Fn(x, y, fn == "math.@max")
		}
	case 3:
		if fn == operators.Conditional {
			return conditionalFn(args[0], args[1], args[2])
		}
	}
	return nil
}

// chargeConst makes x, compared with the literal k, charge what CEL
// charges for the literal and for the comparison's traversal of both
// operands, counting cost.
func (c *fastCompiler) chargeConst(x fastFn, k any) fastFn {
	if !c.count {
		return x
	}
	w := 1 + costOf(k)
	return func(a *activation) (any, bool) {
		v, ok := x(a)
		a.cost += w + costOf(v)
		return v, ok
	}
}

// literalOf is the value of a scalar literal (not bytes, which are
// mutable): a constant operand the operators below compare with directly.
func literalOf(e celast.Expr) (any, bool) {
	if e.Kind() != celast.LiteralKind {
		return nil, false
	}
	switch x := e.AsLiteral().(type) {
	case types.Int:
		return int64(x), true
	case types.Uint:
		return uint64(x), true
	case types.Double:
		return float64(x), true
	case types.String:
		return string(x), true
	case types.Bool:
		return bool(x), true
	case types.Null:
		return nil, true
	}
	return nil, false
}

// constList is a list literal of scalar literals, built once: the
// operand of `in`, which neither keeps nor changes it.
func constList(e celast.Expr) ([]any, bool) {
	if e.Kind() != celast.ListKind || len(e.AsList().OptionalIndices()) > 0 {
		return nil, false
	}
	elems := e.AsList().Elements()
	l := make([]any, len(elems))
	for i, x := range elems {
		v, ok := literalOf(x)
		if !ok {
			return nil, false
		}
		l[i] = v
	}
	return l, true
}

// eqConstFn is x == k (or !=) for a constant scalar k: the common case, x
// of k's type, without equal's dispatch.
func eqConstFn(x fastFn, k any, ne bool) fastFn {
	switch c := k.(type) {
	case string:
		return eqConstOf(x, c, ne)
	case int64:
		return eqConstOf(x, c, ne)
	case float64:
		return eqConstOf(x, c, ne)
	case bool:
		return eqConstOf(x, c, ne)
	case nil:
		// x == null: true for null, false for any other native value.
		return func(a *activation) (any, bool) {
			v, ok := x(a)
			if !ok || v != nil && !isNative(v) {
				return nil, false
			}
			return (v == nil) != ne, true
		}
	}
	return func(a *activation) (any, bool) {
		v, ok := x(a)
		if !ok {
			return nil, false
		}
		eq, ok := equal(v, k, false)
		return eq != ne, ok
	}
}

func eqConstOf[T string | int64 | float64 | bool](x fastFn, c T, ne bool) fastFn {
	k := any(c)
	return func(a *activation) (any, bool) {
		v, ok := x(a)
		if !ok {
			return nil, false
		}
		if t, same := v.(T); same {
			return (t == c) != ne, true // a NaN is unequal, as in CEL
		}
		eq, ok := equal(v, k, false)
		return eq != ne, ok
	}
}

// cmpConstFn is x < k (<=, >, >=) for a constant k of an ordered type, or
// nil for others.
func cmpConstFn(x fastFn, k any, fn string) fastFn {
	switch c := k.(type) {
	case string:
		return cmpConstOf(x, c, fn)
	case int64:
		return cmpConstOf(x, c, fn)
	case float64:
		return cmpConstOf(x, c, fn)
	case uint64:
		return cmpConstOf(x, c, fn)
	}
	return nil
}

func cmpConstOf[T string | int64 | float64 | uint64](x fastFn, c T, fn string) fastFn {
	k := any(c)
	want := compareWant(fn)
	less, orEqual := fn == operators.Less || fn == operators.LessEquals, fn == operators.LessEquals || fn == operators.GreaterEquals
	return func(a *activation) (any, bool) {
		v, ok := x(a)
		if !ok {
			return nil, false
		}
		if t, same := v.(T); same {
			if t != t {
				return nil, false // ordering a NaN: CEL's error
			}
			if t == c {
				return orEqual, true
			}
			return (t < c) == less, true
		}
		r, ok := compareSame(v, k, false)
		return want(r), ok
	}
}

// inConstFn is x in l for a constant list l (see constList): for a
// string or an int, a search for the same value, as equal would find.
func inConstFn(x fastFn, l []any, check bool) fastFn {
	strs, ints := []string{}, []int64{}
	for _, e := range l {
		switch k := e.(type) {
		case string:
			strs = append(strs, k)
		case int64:
			ints = append(ints, k)
		}
	}
	return func(a *activation) (any, bool) {
		v, ok := x(a)
		if !ok {
			return nil, false
		}
		// Only when every element is of v's type: mixed numbers are
		// equal's (CEL's) business.
		switch t := v.(type) {
		case string:
			if len(strs) == len(l) {
				return slices.Contains(strs, t), true
			}
		case int64:
			if len(ints) == len(l) {
				return slices.Contains(ints, t), true
			}
		}
		return in(a, v, l, check, false)
	}
}

// operands evaluates a binary operator's operands, x then y.
func operands(a *activation, x, y fastFn) (l, r any, ok bool) {
	if l, ok = x(a); !ok {
		return nil, nil, false
	}
	r, ok = y(a)
	return l, r, ok
}

func conditionalFn(cond, t, f fastFn) fastFn {
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

func (c *fastCompiler) compileArgs(es []celast.Expr) []fastFn {
	args := make([]fastFn, len(es))
	for i, x := range es {
		if args[i] = c.compile(x); args[i] == nil {
			return nil
		}
	}
	return args
}

// compileComprehension compiles a comprehension over a list or a row (the
// macros and cel.bind expand to these). As in CEL, the range and the
// accumulator's initial value are evaluated outside the comprehension's
// scope and the result with the accumulator but without the iteration
// variables in scope.
func (c *fastCompiler) compileComprehension(comp celast.ComprehensionExpr) fastFn {
	rng := c.compile(comp.IterRange())
	if rng == nil {
		return nil
	}
	init := c.compile(comp.AccuInit())
	if init == nil {
		return nil
	}
	outer := len(c.scope)
	accu := c.bind(comp.AccuVar())
	defer func() { c.scope = c.scope[:outer] }()
	result := c.compile(comp.Result())
	if result == nil {
		return nil
	}
	iter := c.bind(comp.IterVar())
	iter2 := -1
	if comp.HasIterVar2() {
		iter2 = c.bind(comp.IterVar2())
	}
	if f := c.compileAppend(comp, rng, accu, iter, iter2); f != nil {
		return f
	}
	cond := c.compile(comp.LoopCondition())
	step := c.compile(comp.LoopStep())
	if cond == nil || step == nil {
		return nil
	}
	return func(a *activation) (any, bool) {
		r, ok := rng(a)
		list, row, n, isRange := rangeOf(r)
		if !ok || !isRange {
			return nil, false
		}
		acc, ok := init(a)
		if !ok {
			return nil, false
		}
		for i := 0; i < n; i++ {
			setIter(a, list, row, i, iter, iter2)
			a.locals[accu] = acc
			v, ok := cond(a)
			more, isBool := v.(bool)
			if !ok || !isBool {
				return nil, false
			}
			if !more {
				break
			}
			if acc, ok = step(a); !ok {
				return nil, false
			}
		}
		a.locals[accu] = acc
		return result(a)
	}
}

// rangeOf is a comprehension's range: a list, or a row, whose keys CEL
// visits in sorted order (rowVal's iterator). Not a map[string]any: CEL's
// order over its keys is not Go's.
func rangeOf(v any) (list []any, row *value.Row, n int, ok bool) {
	switch x := v.(type) {
	case []any:
		return x, nil, len(x), true
	case *value.Row:
		return nil, x, x.Len(), true
	}
	return nil, nil, 0, false
}

// setIter sets the iteration variables to the range's element i: a
// list's element (or its index and the element), a row's key (or its key
// and value).
func setIter(a *activation, list []any, row *value.Row, i, iter, iter2 int) {
	switch {
	case row != nil && iter2 >= 0:
		a.locals[iter], a.locals[iter2] = row.Name(i), row.At(i)
	case row != nil:
		a.locals[iter] = row.Name(i)
	case iter2 >= 0:
		a.locals[iter], a.locals[iter2] = int64(i), list[i]
	default:
		a.locals[iter] = list[i]
	}
}

// bind adds a comprehension variable to the scope and returns its slot.
func (c *fastCompiler) bind(name string) int {
	slot := c.nslots
	c.nslots++
	c.scope = append(c.scope, fastLocal{name, slot})
	return slot
}

// compileAppend compiles the comprehensions of map and filter (and
// transformList), which append to a list accumulator:
//
//	init [], condition true, result accu, and the step
//	accu + [e]  or  p ? accu + [e] : accu
//
// appending to one slice instead of building a new list per element.
// The accumulator is not otherwise visible (e and p do not refer to it),
// so nothing can observe it half-built.
func (c *fastCompiler) compileAppend(comp celast.ComprehensionExpr, rng fastFn, accu, iter, iter2 int) fastFn {
	elem, pred := appendStep(comp)
	if elem == nil {
		return nil
	}
	ef := c.compile(elem)
	if ef == nil {
		return nil
	}
	var pf fastFn
	if pred != nil {
		if pf = c.compile(pred); pf == nil {
			return nil
		}
	}
	count := c.count
	return func(a *activation) (any, bool) {
		r, ok := rng(a)
		list, row, n, isRange := rangeOf(r)
		if !ok || !isRange {
			return nil, false
		}
		var out []any
		if pf == nil {
			out = make([]any, 0, n)
		}
		for i := 0; i < n; i++ {
			if count {
				// CEL's step: the conditional, accu + [e] (reading
				// the accumulator, creating a list, adding).
				if a.cost += 3 + common.ListCreateBaseCost; a.cost > DefaultCostLimit {
					return nil, false
				}
			}
			setIter(a, list, row, i, iter, iter2)
			if pf != nil {
				v, ok := pf(a)
				keep, isBool := v.(bool)
				if !ok || !isBool {
					return nil, false
				}
				if !keep {
					continue
				}
			}
			v, ok := ef(a)
			if !ok {
				return nil, false
			}
			out = append(out, v)
		}
		if out == nil {
			out = []any{}
		}
		return out, true
	}
}

// appendStep matches a comprehension that appends to a list
// accumulator (init [], condition true, result accu) with the step
//
//	accu + [e]  or  p ? accu + [e] : accu
//
// where neither e nor p refers to the accumulator, and returns e and p
// (nil for the first form); e is nil for any other comprehension.
func appendStep(comp celast.ComprehensionExpr) (elem, pred celast.Expr) {
	name := comp.AccuVar()
	isAccu := func(e celast.Expr) bool { return e.Kind() == celast.IdentKind && e.AsIdent() == name }
	if comp.AccuInit().Kind() != celast.ListKind || len(comp.AccuInit().AsList().Elements()) != 0 ||
		!isAccu(comp.Result()) || !isTrue(comp.LoopCondition()) {
		return nil, nil
	}
	// appendOf matches accu + [e].
	appendOf := func(e celast.Expr) celast.Expr {
		if e.Kind() != celast.CallKind {
			return nil
		}
		call := e.AsCall()
		if call.FunctionName() != operators.Add || call.IsMemberFunction() || len(call.Args()) != 2 || !isAccu(call.Args()[0]) {
			return nil
		}
		l := call.Args()[1]
		if l.Kind() != celast.ListKind || len(l.AsList().Elements()) != 1 || len(l.AsList().OptionalIndices()) > 0 {
			return nil
		}
		return l.AsList().Elements()[0]
	}
	step := comp.LoopStep()
	elem = appendOf(step)
	if elem == nil {
		if step.Kind() != celast.CallKind || step.AsCall().FunctionName() != operators.Conditional || len(step.AsCall().Args()) != 3 {
			return nil, nil
		}
		args := step.AsCall().Args()
		if elem = appendOf(args[1]); elem == nil || !isAccu(args[2]) {
			return nil, nil
		}
		pred = args[0]
	}
	if refersTo(elem, name) || (pred != nil && refersTo(pred, name)) {
		return nil, nil
	}
	return elem, pred
}

func isTrue(e celast.Expr) bool {
	if e.Kind() != celast.LiteralKind {
		return false
	}
	b, ok := e.AsLiteral().(types.Bool)
	return ok && bool(b)
}

// refersTo reports whether e mentions the identifier name anywhere.
func refersTo(e celast.Expr, name string) bool {
	found := false
	celast.PreOrderVisit(e, celast.NewExprVisitor(func(x celast.Expr) {
		if x.Kind() == celast.IdentKind && x.AsIdent() == name {
			found = true
		}
	}))
	return found
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
		case *value.Row:
			return int64(s.Len()), true
		}
		return nil, false
	}
}

// allNative reports whether every element of l is isNative: a list CEL
// builds from them converts back to the same elements.
func allNative(l []any) bool {
	for _, e := range l {
		if !isNative(e) {
			return false
		}
	}
	return true
}

// sliceFn is ext.Lists' list.slice(start, end): errors (not handled) for
// negative or reversed bounds and an end past the list.
func sliceFn(target, start, end fastFn, count bool) fastFn {
	return func(a *activation) (any, bool) {
		t, ok := target(a)
		l, isList := t.([]any)
		if !ok || !isList {
			return nil, false
		}
		s, ok := start(a)
		i, isInt := s.(int64)
		if !ok || !isInt {
			return nil, false
		}
		e, ok := end(a)
		j, isInt := e.(int64)
		if !ok || !isInt || i < 0 || j < i || j > int64(len(l)) {
			return nil, false
		}
		out := l[i:j:j]
		if !allNative(out) {
			return nil, false
		}
		if count {
			a.cost += uint64(len(out)) + 1 + common.ListCreateBaseCost
		}
		return out, true
	}
}

// sortByKeysFn is ext.Lists' list.@sortByAssociatedKeys(keys), which
// sortBy expands to: the list's elements in the order of sorting their
// keys, with the same sort (sort.Slice over indices, not stable) and the
// same comparisons, so equal keys end in the same order as in CEL. Keys
// of one type among int, string and non-NaN double only.
func sortByKeysFn(target, keys fastFn, count bool) fastFn {
	return func(a *activation) (any, bool) {
		t, ok := target(a)
		l, isList := t.([]any)
		if !ok || !isList {
			return nil, false
		}
		k, ok := keys(a)
		ks, isList := k.([]any)
		if !ok || !isList || len(ks) != len(l) || !allNative(l) {
			return nil, false
		}
		if count {
			// CEL: n² times 2 (2.1 for string keys), plus the call and
			// the list.
			n := uint64(len(ks))
			a.cost += 3*n*n + 1 + common.ListCreateBaseCost
		}
		if len(l) == 0 {
			return l, true
		}
		switch ks[0].(type) {
		case int64:
			return sortByTyped[int64](l, ks)
		case string:
			return sortByTyped[string](l, ks)
		case float64:
			return sortByTyped[float64](l, ks)
		}
		return nil, false
	}
}

// sortByTyped is sortByKeys of keys all of type T and none NaN; false if
// one is not.
func sortByTyped[T int64 | string | float64](l, keys []any) ([]any, bool) {
	typed := make([]T, len(keys))
	for i, k := range keys {
		v, ok := k.(T)
		if !ok || v != v { // v != v: NaN
			return nil, false
		}
		typed[i] = v
	}
	return sortByKeys(l, typed), true
}

// sortByKeys is l ordered by keys (keys[i] is l[i]'s) as
// @sortByAssociatedKeys orders it: sort.Slice over the indices with <, so
// the order of ties is sort.Slice's, as CEL's.
func sortByKeys[T int64 | string | float64](l []any, keys []T) []any {
	idx := make([]int, len(keys))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(i, j int) bool { return keys[idx[i]] < keys[idx[j]] })
	out := make([]any, len(l))
	for i, j := range idx {
		out[i] = l[j]
	}
	return out
}

// stringFn is string(x) for the scalar types, formatted as CEL does.
func stringFn(x fastFn) fastFn {
	return func(a *activation) (any, bool) {
		v, ok := x(a)
		if !ok {
			return nil, false
		}
		switch s := v.(type) {
		case string:
			return s, true
		case int64:
			return strconv.FormatInt(s, 10), true
		case uint64:
			return strconv.FormatUint(s, 10), true
		case float64:
			return fmt.Sprintf("%g", s), true
		case bool:
			return strconv.FormatBool(s), true
		}
		return nil, false
	}
}

// compileAppendLiteral compiles l + [e1, e2...] (a state's list and the
// new elements) to build the result list at once, without the literal's
// own list; nil for any other call. When l is not a list, the literal is
// built and + takes its course (addOp).
func (c *fastCompiler) compileAppendLiteral(call celast.CallExpr) fastFn {
	args := call.Args()
	if call.FunctionName() != operators.Add || call.IsMemberFunction() || len(args) != 2 ||
		args[1].Kind() != celast.ListKind || len(args[1].AsList().OptionalIndices()) > 0 {
		return nil
	}
	x := c.compile(args[0])
	if x == nil {
		return nil
	}
	elems := make([]fastFn, len(args[1].AsList().Elements()))
	for i, e := range args[1].AsList().Elements() {
		if elems[i] = c.compile(e); elems[i] == nil {
			return nil
		}
	}
	count := c.count
	litCost := nodeCost(args[1])
	return func(a *activation) (any, bool) {
		v, ok := x(a)
		if !ok {
			return nil, false
		}
		l, isList := v.([]any)
		if count {
			// The literal's node, then +'s traversal of both lists.
			a.cost += litCost + costOf(v) + uint64(len(elems))/10 + 1
			if a.cost > DefaultCostLimit {
				return nil, false
			}
		}
		var out []any
		if isList {
			if !allNative(l) {
				return nil, false
			}
			out = make([]any, len(l), len(l)+len(elems))
			copy(out, l)
		} else {
			out = make([]any, 0, len(elems))
		}
		for _, f := range elems {
			e, ok := f(a)
			if !ok {
				return nil, false
			}
			out = append(out, e)
		}
		if !isList {
			return addOp(v, out)
		}
		return out, true
	}
}

// compileConstArith compiles x op k1 op k2 ... (record.price * 908 / 1000),
// where every right operand is an int literal, to apply the operations
// to an int x without boxing the intermediate results; nil for any other
// call.
func (c *fastCompiler) compileConstArith(call celast.CallExpr) fastFn {
	ca := c.constArithOf(call)
	if ca == nil {
		return nil
	}
	return func(a *activation) (any, bool) {
		i, v, isInt, ok := ca.eval(a)
		if isInt {
			return i, ok
		}
		return v, ok
	}
}

// constArith is x op k1 op k2 ... (see compileConstArith).
type constArith struct {
	x     fastFn
	steps []arithStep
	count bool
}

type arithStep struct {
	op  func(x, y int64) (int64, bool)
	gen func(l, r any) (any, bool)
	k   int64
}

// constArithOf compiles call as a constArith, or returns nil. Counting
// cost, it charges the nodes other than the outermost call (its
// literals and inner calls), which the caller charges.
func (c *fastCompiler) constArithOf(call celast.CallExpr) *constArith {
	var steps []arithStep
	e := celast.Expr(nil)
	for cur := call; ; {
		fn, args := cur.FunctionName(), cur.Args()
		if cur.IsMemberFunction() || len(args) != 2 || args[1].Kind() != celast.LiteralKind {
			break
		}
		k, isInt := args[1].AsLiteral().(types.Int)
		if !isInt {
			break
		}
		var op func(x, y int64) (int64, bool)
		switch fn {
		case operators.Add:
			op = addInt
		case operators.Subtract:
			op = subInt
		case operators.Multiply:
			op = mulInt
		case operators.Divide:
			op = divInt
		case operators.Modulo:
			op = modInt
		}
		if op == nil {
			break
		}
		steps = append(steps, arithStep{op, arith(fn), int64(k)})
		e = args[0]
		if e.Kind() != celast.CallKind {
			break
		}
		cur = e.AsCall()
	}
	if len(steps) == 0 {
		return nil
	}
	slices.Reverse(steps) // innermost first
	x := c.chargeAfter(c.compile(e), uint64(2*len(steps)-1))
	if x == nil {
		return nil
	}
	return &constArith{x: x, steps: steps, count: c.count}
}

// eval is the result: an int (i, isInt), or another value (v) when x is
// not an int, through the boxed operations, each as before.
func (ca *constArith) eval(a *activation) (i int64, v any, isInt, ok bool) {
	if v, ok = ca.x(a); !ok {
		return 0, nil, false, false
	}
	if i, isInt = v.(int64); isInt {
		for _, s := range ca.steps {
			if i, ok = s.op(i, s.k); !ok {
				return 0, nil, false, false
			}
		}
		return i, nil, true, true
	}
	for _, s := range ca.steps {
		if ca.count {
			a.cost += costOf(v) // + CEL's traversal of a string or list
		}
		if v, ok = s.gen(v, s.k); !ok {
			return 0, nil, false, false
		}
	}
	return 0, v, false, true
}

// chargeAfter makes x charge w more, counting cost: the nodes an
// operation compiled as one closure takes the place of.
func (c *fastCompiler) chargeAfter(x fastFn, w uint64) fastFn {
	if x == nil || !c.count || w == 0 {
		return x
	}
	return func(a *activation) (any, bool) {
		v, ok := x(a)
		a.cost += w
		return v, ok
	}
}

// String functions on string operands (any other operand is CEL's
// business), not when counting cost: contains, startsWith, endsWith,
// matches and regex.extractAll with a literal pattern (compiled once, as
// CEL's optimizer does), lowerAscii, upperAscii and split.

// stringPredFn is s.contains(t), s.startsWith(t) or s.endsWith(t).
func stringPredFn(target, arg fastFn, fn string) fastFn {
	pred := strings.Contains
	switch fn {
	case overloads.StartsWith:
		pred = strings.HasPrefix
	case overloads.EndsWith:
		pred = strings.HasSuffix
	}
	return func(a *activation) (any, bool) {
		v, t, ok := operands(a, target, arg)
		s, isStr := v.(string)
		u, isStr2 := t.(string)
		if !ok || !isStr || !isStr2 {
			return nil, false
		}
		return pred(s, u), true
	}
}

// splitFn is s.split(sep) (ext.Strings: strings.Split).
func splitFn(target, sep fastFn) fastFn {
	return func(a *activation) (any, bool) {
		v, t, ok := operands(a, target, sep)
		s, isStr := v.(string)
		u, isStr2 := t.(string)
		if !ok || !isStr || !isStr2 {
			return nil, false
		}
		parts := strings.Split(s, u)
		out := make([]any, len(parts))
		for i, p := range parts {
			out[i] = p
		}
		return out, true
	}
}

// literalRegexp is a string literal compiled as a regular expression, or
// nil (not a literal, or not a valid pattern: CEL's error).
func literalRegexp(e celast.Expr) *regexp.Regexp {
	if e.Kind() != celast.LiteralKind {
		return nil
	}
	p, ok := e.AsLiteral().(types.String)
	if !ok {
		return nil
	}
	re, err := regexp.Compile(string(p))
	if err != nil {
		return nil
	}
	return re
}

// matchesFn is s.matches(re) (or matches(s, re)): an unanchored search.
func matchesFn(target fastFn, re *regexp.Regexp) fastFn {
	return func(a *activation) (any, bool) {
		v, ok := target(a)
		s, isStr := v.(string)
		if !ok || !isStr {
			return nil, false
		}
		return re.MatchString(s), true
	}
}

// extractAllFn is regex.extractAll(s, re) for a pattern with at most one
// capturing group: every match, or the group's non-empty matches.
func extractAllFn(target fastFn, re *regexp.Regexp) fastFn {
	group := len(re.SubexpNames()) - 1
	return func(a *activation) (any, bool) {
		v, ok := target(a)
		s, isStr := v.(string)
		if !ok || !isStr {
			return nil, false
		}
		var out []any
		if group == 0 {
			for _, m := range re.FindAllString(s, -1) {
				out = append(out, m)
			}
		} else {
			for _, m := range re.FindAllStringSubmatch(s, -1) {
				if m[1] != "" {
					out = append(out, m[1])
				}
			}
		}
		if out == nil {
			out = []any{}
		}
		return out, true
	}
}

// asciiCaseFn is s.lowerAscii() or s.upperAscii(): the ASCII letters
// changed, as ext.Strings does it (through runes, so invalid UTF-8 comes
// out as U+FFFD); a string that is valid ASCII with nothing to change is
// returned as it is.
func asciiCaseFn(target fastFn, lower bool) fastFn {
	from, to := byte('A'), byte('Z')
	if !lower {
		from, to = 'a', 'z'
	}
	conv := unicode.ToUpper
	if lower {
		conv = unicode.ToLower
	}
	return func(a *activation) (any, bool) {
		v, ok := target(a)
		s, isStr := v.(string)
		if !ok || !isStr {
			return nil, false
		}
		same := true
		for i := 0; i < len(s); i++ {
			if c := s[i]; c >= utf8.RuneSelf || c >= from && c <= to {
				same = false
				break
			}
		}
		if same {
			return s, true
		}
		runes := []rune(s)
		for i, r := range runes {
			if r <= unicode.MaxASCII {
				runes[i] = conv(r)
			}
		}
		return string(runes), true
	}
}

// compileSortBy compiles list.sortBy(e, key) for a string concatenation
// key (string(e.t) + string(e.id), Nexmark q6), as ext.Lists' macro
// expands it: the bound list's @sortByAssociatedKeys of list.map(e, key).
// The keys are computed into a []string, not boxed into a list, and the
// list is sorted as sortByKeysFn sorts it; nil for any other call. Cost
// is charged for the nodes of the expansion as their own closures do
// (see compileAppend and sortByKeysFn).
func (c *fastCompiler) compileSortBy(call celast.CallExpr) fastFn {
	if call.FunctionName() != "@sortByAssociatedKeys" || !call.IsMemberFunction() || len(call.Args()) != 1 ||
		call.Target().Kind() != celast.IdentKind || call.Args()[0].Kind() != celast.ComprehensionKind {
		return nil
	}
	comp := call.Args()[0].AsComprehension()
	if comp.HasIterVar2() || comp.IterRange().Kind() != celast.IdentKind || comp.IterRange().AsIdent() != call.Target().AsIdent() {
		return nil
	}
	// The step: accu + [key], key a string concatenation.
	keyExpr, pred := appendStep(comp)
	if keyExpr == nil || pred != nil || keyExpr.Kind() != celast.CallKind || !isStringConcat(keyExpr.AsCall()) {
		return nil
	}
	name := comp.AccuVar()
	target := c.compile(call.Target())
	rng := c.compile(comp.IterRange())
	if target == nil || rng == nil {
		return nil
	}
	outer := len(c.scope)
	c.bind(name)
	iter := c.bind(comp.IterVar())
	key := c.compileConcatString(keyExpr.AsCall())
	c.scope = c.scope[:outer]
	if key == nil {
		return nil
	}
	count := c.count
	return func(a *activation) (any, bool) {
		t, ok := target(a)
		l, isList := t.([]any)
		if !ok || !isList {
			return nil, false
		}
		if count {
			a.cost++ // the comprehension
		}
		r, ok := rng(a)
		list, isList := r.([]any)
		if !ok || !isList || len(list) != len(l) || !allNative(l) {
			return nil, false
		}
		keys := make([]string, len(list))
		for i, el := range list {
			if count {
				// compileAppend's step, and the key's outermost +.
				if a.cost += 4 + common.ListCreateBaseCost; a.cost > DefaultCostLimit {
					return nil, false
				}
			}
			a.locals[iter] = el
			if keys[i], ok = key(a); !ok {
				return nil, false
			}
		}
		if count {
			n := uint64(len(keys))
			a.cost += 3*n*n + 1 + common.ListCreateBaseCost
		}
		if len(l) == 0 {
			return l, true
		}
		return sortByKeys(l, keys), true
	}
}

// appendString appends string(v) to b, formatted as stringFn formats it.
func appendString(b []byte, v any) ([]byte, bool) {
	switch s := v.(type) {
	case string:
		return append(b, s...), true
	case int64:
		return strconv.AppendInt(b, s, 10), true
	case uint64:
		return strconv.AppendUint(b, s, 10), true
	case float64:
		return fmt.Appendf(b, "%g", s), true
	case bool:
		return strconv.AppendBool(b, s), true
	}
	return b, false
}

// A string concatenation (string(a.t) + '-' + string(a.id), the keys
// of sortBy) is built in one buffer: one string instead of one per
// string() and per +. It is recognized by its operands: a + whose
// operand is a string literal, a string() conversion or such a + is a
// string or an error (CEL's + takes two strings or no strings), so every
// operand of the chain of +s must be a string, or the whole is CEL's
// business.

// isStringConcat reports whether call is x + y with x or y a string
// literal, a string() conversion, or such a concatenation.
func isStringConcat(call celast.CallExpr) bool {
	if call.FunctionName() != operators.Add || call.IsMemberFunction() || len(call.Args()) != 2 {
		return false
	}
	for _, x := range call.Args() {
		switch x.Kind() {
		case celast.LiteralKind:
			if _, ok := x.AsLiteral().(types.String); ok {
				return true
			}
		case celast.CallKind:
			if isStringConversion(x.AsCall()) || isStringConcat(x.AsCall()) {
				return true
			}
		}
	}
	return false
}

func isStringConversion(call celast.CallExpr) bool {
	return call.FunctionName() == overloads.TypeConvertString && !call.IsMemberFunction() && len(call.Args()) == 1
}

// compileConcat compiles a string concatenation (isStringConcat): its
// operands, through nested +s, append to activation.buf in turn, then the
// string is made once. activation.buf is used as a stack, each
// concatenation truncating it back to where it started, so one inside an
// operand of another does not disturb it. Counting the cost: the nodes
// compiled here charge 1 each, and each + at most (n/10 + 2) for the
// final string of n bytes, which holds both its operands (CEL charges
// a tenth of theirs, rounded up).
func (c *fastCompiler) compileConcat(call celast.CallExpr) fastFn {
	f := c.compileConcatString(call)
	if f == nil {
		return nil
	}
	return func(a *activation) (any, bool) {
		s, ok := f(a)
		if !ok {
			return nil, false
		}
		return s, true
	}
}

// compileConcatString is compileConcat's string, not boxed.
func (c *fastCompiler) compileConcatString(call celast.CallExpr) func(a *activation) (string, bool) {
	type part func(a *activation) bool
	var parts []part
	var adds, own uint64 = 1, 0 // the outermost + is charged by compile
	var walk func(e celast.Expr) bool
	walk = func(e celast.Expr) bool {
		switch e.Kind() {
		case celast.CallKind:
			call := e.AsCall()
			if call.FunctionName() == operators.Add && !call.IsMemberFunction() && len(call.Args()) == 2 {
				adds++
				own++
				return walk(call.Args()[0]) && walk(call.Args()[1])
			}
			if isStringConversion(call) {
				if arg := call.Args()[0]; arg.Kind() == celast.CallKind {
					if ca := c.constArithOf(arg.AsCall()); ca != nil {
						own += 2 // string() and the outermost operation
						parts = append(parts, func(a *activation) bool {
							i, v, isInt, ok := ca.eval(a)
							if !ok {
								return false
							}
							if isInt {
								a.buf = strconv.AppendInt(a.buf, i, 10)
								return true
							}
							a.buf, ok = appendString(a.buf, v)
							return ok
						})
						return true
					}
				}
				x := c.compile(call.Args()[0])
				if x == nil {
					return false
				}
				own++
				parts = append(parts, func(a *activation) bool {
					v, ok := x(a)
					if !ok {
						return false
					}
					a.buf, ok = appendString(a.buf, v)
					return ok
				})
				return true
			}
		case celast.LiteralKind:
			if s, ok := e.AsLiteral().(types.String); ok {
				own++
				parts = append(parts, func(a *activation) bool {
					a.buf = append(a.buf, s...)
					return true
				})
				return true
			}
		}
		x := c.compile(e)
		if x == nil {
			return false
		}
		parts = append(parts, func(a *activation) bool {
			v, ok := x(a)
			s, isString := v.(string)
			if !ok || !isString {
				return false
			}
			a.buf = append(a.buf, s...)
			return true
		})
		return true
	}
	args := call.Args()
	if !walk(args[0]) || !walk(args[1]) {
		return nil
	}
	count := c.count
	return func(a *activation) (string, bool) {
		start := len(a.buf)
		for _, p := range parts {
			if !p(a) {
				a.buf = a.buf[:start]
				return "", false
			}
		}
		s := string(a.buf[start:])
		a.buf = a.buf[:start]
		if count {
			a.cost += own + adds*(uint64(len(s))/10+2)
		}
		return s, true
	}
}

// extremumFn is math.greatest / math.least of one argument (math.@max,
// math.@min): a number itself, or a non-empty list of numbers of one type
// (ints, or doubles without NaN).
func extremumFn(x fastFn, max, count bool) fastFn {
	return func(a *activation) (any, bool) {
		v, ok := x(a)
		if !ok {
			return nil, false
		}
		switch l := v.(type) {
		case int64, uint64:
			return l, true
		case float64:
			return l, l == l
		case []any:
			if len(l) == 0 {
				return nil, false
			}
			if count {
				a.cost += uint64(len(l)) + 1
			}
			best := l[0]
			for _, e := range l[1:] {
				if c, ok := compareSame(e, best, false); !ok {
					return nil, false
				} else if (c > 0) == max && c != 0 {
					best = e
				}
			}
			switch b := best.(type) {
			case int64, uint64:
				return b, true
			case float64:
				return b, b == b
			}
		}
		return nil, false
	}
}

// extremum2Fn is math.greatest / math.least of two numbers of one type.
func extremum2Fn(x, y fastFn, max bool) fastFn {
	return func(a *activation) (any, bool) {
		l, r, ok := operands(a, x, y)
		if !ok {
			return nil, false
		}
		switch l.(type) {
		case int64, uint64, float64:
		default:
			return nil, false
		}
		c, ok := compareSame(r, l, false)
		if !ok {
			return nil, false
		}
		if (c > 0) == max && c != 0 {
			return r, true
		}
		return l, true
	}
}

// inFn is x in y: membership in a list (by CEL's equality) or among a
// map's keys. With size checks, the list's elements compared are reads of
// input data.
func inFn(x, y fastFn, check, count bool) fastFn {
	return func(a *activation) (any, bool) {
		v, c, ok := operands(a, x, y)
		if !ok {
			return nil, false
		}
		return in(a, v, c, check, count)
	}
}

// in is v in c (see inFn).
func in(a *activation, v, c any, check, count bool) (any, bool) {
	switch coll := c.(type) {
	case []any:
		if _, isBytes := v.([]byte); isBytes {
			// CEL looks values up in a constant list by hashing
			// them, which fails for bytes.
			return nil, false
		}
		if count {
			a.cost += uint64(len(coll)) + 1
		}
		for _, e := range coll {
			if check && !isSmallNative(e) {
				return nil, false
			}
			eq, ok := equal(v, e, check)
			if !ok {
				return nil, false
			}
			if eq {
				return true, true
			}
		}
		return false, true
	case map[string]any:
		k, ok := v.(string)
		if !ok {
			return nil, false
		}
		_, has := coll[k]
		return has, true
	case *value.Row:
		k, ok := v.(string)
		if !ok {
			return nil, false
		}
		return coll.Schema().Index(k) >= 0, true
	}
	return nil, false
}

// indexFn is x[y]: a list by an int in range, a map by a present string
// key.
func indexFn(x, y fastFn, check bool) fastFn {
	return func(a *activation) (any, bool) {
		c, k, ok := operands(a, x, y)
		if !ok {
			return nil, false
		}
		var v any
		switch coll := c.(type) {
		case []any:
			i, ok := k.(int64)
			if !ok || i < 0 || i >= int64(len(coll)) {
				return nil, false
			}
			v = coll[i]
		case map[string]any:
			s, ok := k.(string)
			if !ok {
				return nil, false
			}
			if v, ok = coll[s]; !ok {
				return nil, false
			}
		case *value.Row:
			s, ok := k.(string)
			if !ok {
				return nil, false
			}
			if v, ok = coll.Get(s); !ok {
				return nil, false
			}
		default:
			return nil, false
		}
		return v, readOK(check, v)
	}
}

// equal is CEL's == on the values it can be certain of: scalars of one
// type, values of different non-numeric kinds (unequal in CEL), and lists
// with lists and maps with maps (rows and map[string]any alike), element
// by element by these same rules, as CEL compares them. Numbers of
// different types, bytes, and anything not native are not handled. With
// check (fastCheckSizes), the elements it reads must be small: they are
// reads of input data.
func equal(l, r any, check bool) (eq, ok bool) {
	if !isNative(l) || !isNative(r) {
		return false, false
	}
	if c, ok := compareSame(l, r, true); ok {
		return c == 0, true
	}
	lk, rk := kindOf(l), kindOf(r)
	switch {
	case lk == kindNumber && rk == kindNumber:
		return false, false // mixed numbers
	case lk != rk:
		return false, true
	case lk == kindList:
		return equalLists(l.([]any), r.([]any), check)
	case lk == kindMap:
		return equalMaps(l, r, check)
	}
	return false, false // bytes
}

// equalElems is equal on two elements of lists or maps being compared.
func equalElems(x, y any, check bool) (eq, ok bool) {
	if check && (!isSmallNative(x) || !isSmallNative(y)) {
		return false, false
	}
	return equal(x, y, check)
}

// equalLists: of one length, and equal element by element.
func equalLists(x, y []any, check bool) (eq, ok bool) {
	if len(x) != len(y) {
		return false, true
	}
	for i := range x {
		if eq, ok := equalElems(x[i], y[i], check); !ok || !eq {
			return false, ok
		}
	}
	return true, true
}

// equalMaps: of one size, and each key of l in r with an equal value.
func equalMaps(l, r any, check bool) (eq, ok bool) {
	ln, _ := value.MapLen(l)
	rn, _ := value.MapLen(r)
	if ln != rn {
		return false, true
	}
	lr, lIsRow := l.(*value.Row)
	rr, rIsRow := r.(*value.Row)
	if lIsRow && rIsRow && lr.Schema() == rr.Schema() {
		rv := rr.Values()
		for i, x := range lr.Values() {
			if eq, ok := equalElems(x, rv[i], check); !ok || !eq {
				return false, ok
			}
		}
		return true, true
	}
	eq, ok = true, true
	value.RangeFields(l, func(name string, x any) bool {
		y, found := value.Field(r, name)
		if !found {
			eq = false
			return false
		}
		eq, ok = equalElems(x, y, check)
		return ok && eq
	})
	if !ok {
		return false, false
	}
	return eq, true
}

type valueKind uint8

const (
	kindNull valueKind = iota
	kindBool
	kindNumber
	kindString
	kindBytes
	kindList
	kindMap
)

func kindOf(v any) valueKind {
	switch v.(type) {
	case nil:
		return kindNull
	case bool:
		return kindBool
	case int64, uint64, float64:
		return kindNumber
	case string:
		return kindString
	case []byte:
		return kindBytes
	case []any:
		return kindList
	}
	return kindMap
}

// arith returns the operation of an arithmetic operator on two values of
// the same type: ints (failing on overflow and division by zero, where
// CEL reports an error), doubles, and strings and lists for +.
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
			if s, ok := addInt(x, y); ok {
				return s, true
			}
		}
	case float64:
		if y, ok := r.(float64); ok {
			return x + y, true
		}
	case string:
		if y, ok := r.(string); ok {
			return x + y, true
		}
	case []any:
		if y, ok := r.([]any); ok {
			if !allNative(x) || !allNative(y) {
				return nil, false
			}
			out := make([]any, len(x)+len(y))
			copy(out, x)
			copy(out[len(x):], y)
			return out, true
		}
	}
	return nil, false
}

func subOp(l, r any) (any, bool) {
	switch x := l.(type) {
	case int64:
		if y, ok := r.(int64); ok {
			if s, ok := subInt(x, y); ok {
				return s, true
			}
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
			if p, ok := mulInt(x, y); ok {
				return p, true
			}
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
		if y, ok := r.(int64); ok {
			if q, ok := divInt(x, y); ok {
				return q, true
			}
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
		if y, ok := r.(int64); ok {
			if m, ok := modInt(x, y); ok {
				return m, true
			}
		}
	}
	return nil, false
}

// The int operations fail where CEL reports an error: on overflow and
// division by zero.

func addInt(x, y int64) (int64, bool) {
	s := x + y
	return s, (x^s)&(y^s) >= 0
}

func subInt(x, y int64) (int64, bool) {
	s := x - y
	return s, (x^y)&(x^s) >= 0
}

func mulInt(x, y int64) (int64, bool) {
	if x == 0 || y == 0 {
		return 0, true
	}
	if (x == -1 && y == math.MinInt64) || (y == -1 && x == math.MinInt64) {
		return 0, false
	}
	p := x * y
	return p, p/y == x
}

func divInt(x, y int64) (int64, bool) {
	if y == 0 || (y == -1 && x == math.MinInt64) {
		return 0, false
	}
	return x / y, true
}

func modInt(x, y int64) (int64, bool) {
	if y == 0 || (y == -1 && x == math.MinInt64) {
		return 0, false
	}
	return x % y, true
}

// compareSame compares two values of the same type: ints, uints, doubles
// and strings, and bools and nulls for equality only. For equality a NaN
// gives c = 2 (unequal to everything, as in CEL); ordering a NaN is a CEL
// error, so it is not handled.
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
	case nil:
		if r == nil && equality {
			return 0, true
		}
	}
	return 0, false
}

func compareWant(fn string) func(c int) bool {
	switch fn {
	case operators.Less:
		return func(c int) bool { return c == -1 }
	case operators.LessEquals:
		return func(c int) bool { return c == -1 || c == 0 }
	case operators.Greater:
		return func(c int) bool { return c == 1 }
	}
	return func(c int) bool { return c == 1 || c == 0 }
}
