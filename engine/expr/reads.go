package expr

import (
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/overloads"
	"github.com/google/cel-go/common/types"

	"github.com/flinkjob/flinkjob/engine/projection"
)

// Reads returns the part of variable name that the expression can observe
// (see package projection): each use of the variable followed by a chain
// of field selections (record.bid.price, record['bid'], has(record.bid))
// reads the value at the end of the chain whole; any other use reads the
// variable whole. A comprehension variable of the same name shadows it, so
// then the whole variable counts as read (a rare case not worth telling
// apart). nil means the expression never uses the variable.
func (p *Program) Reads(name string) *projection.Fields {
	if p == nil || p.checked == nil {
		return nil
	}
	root := celast.NavigateAST(p.checked)
	for _, c := range celast.MatchDescendants(root, celast.KindMatcher(celast.ComprehensionKind)) {
		comp := c.AsComprehension()
		if comp.IterVar() == name || comp.IterVar2() == name || comp.AccuVar() == name {
			return projection.All()
		}
	}
	var f *projection.Fields
	for _, id := range celast.MatchDescendants(root, celast.KindMatcher(celast.IdentKind)) {
		if id.AsIdent() != name {
			continue
		}
		if f == nil {
			f = projection.None()
		}
		f.Add(selectionPath(id))
	}
	return f
}

// selectionPath follows the field selections applied to e: the names of
// the chain of selections (or constant string indexes) of which e is the
// innermost operand. A presence test (has) ends the chain.
func selectionPath(e celast.NavigableExpr) []string {
	var path []string
	cur := e
	for {
		parent, ok := cur.Parent()
		if !ok {
			return path
		}
		switch parent.Kind() {
		case celast.SelectKind:
			sel := parent.AsSelect()
			if sel.Operand().ID() != cur.ID() {
				return path
			}
			path = append(path, sel.FieldName())
			if sel.IsTestOnly() {
				return path
			}
		case celast.CallKind:
			call := parent.AsCall()
			args := call.Args()
			if call.FunctionName() != operators.Index || len(args) != 2 || args[0].ID() != cur.ID() ||
				args[1].Kind() != celast.LiteralKind {
				return path
			}
			s, isString := args[1].AsLiteral().(types.String)
			if !isString {
				return path
			}
			path = append(path, string(s))
		default:
			return path
		}
		cur = parent
	}
}

// FreshMap reports whether the expression's result is always a map
// literal with constant string keys (possibly under dyn() and the
// branches of conditionals), so every evaluation returns a new map (not
// one of its inputs), and lists the keys whose values may nevertheless be
// an input's map or list: any value other than a scalar literal or the
// result of an operator that only yields scalars (arithmetic other than +,
// which also joins lists, comparisons, logic). A caller that finds none of
// those keys holding a map, list or bytes at run time knows the result
// shares nothing mutable with the inputs (operator.Chain.RecycleSourceValues).
func (p *Program) FreshMap() (check []string, ok bool) {
	if p == nil || p.checked == nil {
		return nil, false
	}
	seen := map[string]bool{}
	if !freshMap(p.checked.Expr(), seen, &check) {
		return nil, false
	}
	return check, true
}

func freshMap(e celast.Expr, seen map[string]bool, check *[]string) bool {
	switch e.Kind() {
	case celast.CallKind:
		call := e.AsCall()
		args := call.Args()
		switch {
		case call.FunctionName() == overloads.TypeConvertDyn && len(args) == 1 && !call.IsMemberFunction():
			return freshMap(args[0], seen, check)
		case call.FunctionName() == operators.Conditional && len(args) == 3:
			return freshMap(args[1], seen, check) && freshMap(args[2], seen, check)
		}
		return false
	case celast.MapKind:
	default:
		return false
	}
	for _, entry := range e.AsMap().Entries() {
		if entry.Kind() != celast.MapEntryKind {
			return false
		}
		me := entry.AsMapEntry()
		if me.IsOptional() || me.Key().Kind() != celast.LiteralKind {
			return false
		}
		key, isString := me.Key().AsLiteral().(types.String)
		if !isString {
			return false
		}
		if !yieldsScalar(me.Value()) && !seen[string(key)] {
			seen[string(key)] = true
			*check = append(*check, string(key))
		}
	}
	return true
}

// scalarOperators yield only numbers, booleans or errors.
var scalarOperators = map[string]bool{
	operators.Subtract: true, operators.Multiply: true, operators.Divide: true, operators.Modulo: true,
	operators.Negate: true, operators.Less: true, operators.LessEquals: true, operators.Greater: true,
	operators.GreaterEquals: true, operators.Equals: true, operators.NotEquals: true,
	operators.LogicalNot: true, operators.LogicalAnd: true, operators.LogicalOr: true, operators.In: true,
}

// yieldsScalar reports whether e certainly evaluates to a scalar (or fails).
func yieldsScalar(e celast.Expr) bool {
	switch e.Kind() {
	case celast.LiteralKind:
		_, isBytes := e.AsLiteral().(types.Bytes)
		return !isBytes
	case celast.CallKind:
		return scalarOperators[e.AsCall().FunctionName()]
	}
	return false
}

// RecordPath reports whether the expression is only a field path of
// variable name (record.bid, record.a.b) and returns the path; its value
// is then a part of the input itself, not a new value.
func (p *Program) RecordPath(name string) ([]string, bool) {
	if p == nil || p.pathVar < 0 || p.pathVar >= len(p.names) || p.names[p.pathVar] != name || len(p.path) == 0 {
		return nil, false
	}
	return p.path, true
}
