package expr

import (
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
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
