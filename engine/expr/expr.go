// Package expr compiles and evaluates the per-record logic of a job, written
// in CEL (the expression language Kubernetes uses). An expression is
// compiled and type-checked once per step, then evaluated per record with a
// cost limit, so a runaway expression fails the job instead of stalling it.
// The limit is enforced at run time only where the compile-time cost
// estimate says it could be reached (comprehensions over input data);
// elsewhere tracking cost would only slow every evaluation down.
//
// Values cross into CEL as this engine's dynamic values (map[string]any,
// *value.Row, []any, int64, ...) and come back the same way, so operators
// never see CEL types. A row is a map to CEL (see rows.go); with
// value.UseRows, the map literals the fast evaluator builds are rows. Plain field paths (record.a.b) and most per-record and keyed
// process logic (arithmetic, comparisons, map and list literals, `in`,
// indexing, the comprehension macros, ...) skip CEL's interpreter
// altogether (see fast.go), with CEL's results and errors, and within the
// cost limit where there is one.
//
// For per-record use from one goroutine, an Evaluator reuses its state
// across evaluations; a Program itself is safe for concurrent use.
package expr

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"

	"github.com/flinkjob/flinkjob/engine/value"
)

// DefaultCostLimit bounds the work of one evaluation (CEL cost units,
// roughly one per operation). It is generous for per-record logic.
const DefaultCostLimit = 1_000_000

// Well-known variable names.
const (
	Record     = "record"
	Acc        = "acc"
	Key        = "key"
	Left       = "left"
	Right      = "right"
	State      = "state"
	Ts         = "ts"
	Seq        = "seq"
	Input      = "input"
	Watermark  = "watermark"
	Timer      = "timer"
	TimeDomain = "timeDomain"
	A          = "a"
	B          = "b"
)

// intVars are declared as int rather than dyn so type errors surface early.
var intVars = map[string]bool{Ts: true, Seq: true, Watermark: true, Timer: true}

// Want is the result type an expression must have.
type Want int

const (
	// Any accepts any result type.
	Any Want = iota
	// Bool requires a bool (or dyn) result: filters.
	Bool
	// List requires a list (or dyn) result: flatMap.
	List
	// Map requires a map (or dyn) result: process actions.
	Map
)

// Program is a compiled expression. It is safe for concurrent use.
type Program struct {
	src   string
	names []string
	prg   cel.Program
	// limited says the runtime cost limit is enforced: the compile-time
	// estimate could not rule out exceeding DefaultCostLimit.
	limited bool
	// costMax is the compile-time cost estimate's upper bound.
	costMax uint64
	// pathVar >= 0 marks a plain field path (names[pathVar].path[0]...),
	// evaluated with map lookups instead of CEL; -1 otherwise.
	pathVar   int
	path      []string
	pathSites []*fieldSite
	// fast, when set, evaluates the expression natively (see fast.go),
	// falling back to CEL where it cannot tell the result; it needs
	// fastLocals slots for comprehension variables.
	fast       fastFn
	fastLocals int
	// rowSlots is the number of scratch map literals that build rows
	// (Evaluator.EvalInto refills the row each returned before).
	rowSlots int
	// small, when set, is prg without the runtime cost limit, run when
	// every input value is small (fitsSmall): the compile-time estimate
	// for inputs that small stays within DefaultCostLimit, so the cost
	// tracking, which wraps every node, is not needed for them.
	small cel.Program
	// checked is the type-checked AST, for Reads.
	checked *celast.AST
}

// Source returns the expression text.
func (p *Program) Source() string { return p.src }

var envCache = map[string]*cel.Env{}

func env(vars []string) (*cel.Env, error) {
	sig := strings.Join(vars, ",")
	if e, ok := envCache[sig]; ok {
		return e, nil
	}
	opts := []cel.EnvOption{
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Lists(),
		ext.Math(),
		ext.Encoders(),
		ext.Sets(),
		ext.Regex(),
		ext.TwoVarComprehensions(),
		// cel.bind(name, value, expr): a local name for a value an
		// expression uses more than once, evaluated once.
		ext.Bindings(),
		cel.CrossTypeNumericComparisons(true),
		cel.CustomTypeAdapter(celAdapter),
	}
	for _, v := range vars {
		t := cel.DynType
		if intVars[v] {
			t = cel.IntType
		}
		if v == Input || v == TimeDomain {
			t = cel.StringType
		}
		opts = append(opts, cel.Variable(v, t))
	}
	e, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, err
	}
	envCache[sig] = e
	return e, nil
}

// compileMu guards envCache; compilation happens at plan time, not per record.
var compileMu = make(chan struct{}, 1)

// Compile parses and type-checks src with the given variables in scope and
// checks its result type. Errors quote the expression.
func Compile(src string, want Want, vars ...string) (*Program, error) {
	compileMu <- struct{}{}
	defer func() { <-compileMu }()
	if strings.TrimSpace(src) == "" {
		return nil, fmt.Errorf("empty expression")
	}
	e, err := env(vars)
	if err != nil {
		return nil, err
	}
	ast, iss := e.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("CEL expression %q does not compile: %s", src, oneLine(iss.Err().Error()))
	}
	out := ast.OutputType()
	bad := false
	switch want {
	case Bool:
		bad = !out.IsAssignableType(cel.BoolType) && out != cel.DynType
	case List:
		bad = out.Kind() != types.ListKind && out != cel.DynType
	case Map:
		bad = out.Kind() != types.MapKind && out != cel.DynType
	}
	if bad {
		return nil, fmt.Errorf("CEL expression %q has type %s, want %s", src, out, wantName(want))
	}
	// Tracking cost at run time wraps every node and costs a tracker per
	// evaluation, so it is enabled only when the compile-time estimate
	// says the limit could be reached: in practice, comprehensions over
	// input data (or nested ones over literals).
	p := &Program{src: src, names: vars, pathVar: -1}
	p.limited = true
	if est, err := e.EstimateCost(ast, sizeEstimator{inputSizeBound}); err == nil {
		p.costMax = est.Max
		p.limited = est.Max > DefaultCostLimit
	}
	if p.limited {
		if est, err := e.EstimateCost(ast, sizeEstimator{smallInputSize}); err == nil && est.Max <= DefaultCostLimit {
			if sp, err := e.Program(ast, cel.EvalOptions(cel.OptOptimize)); err == nil {
				p.small = sp
			}
		}
	}
	popts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if p.limited {
		popts = append(popts, cel.CostLimit(DefaultCostLimit))
	}
	prg, err := e.Program(ast, popts...)
	if err != nil {
		return nil, fmt.Errorf("CEL expression %q: %v", src, err)
	}
	p.prg = prg
	p.checked = ast.NativeRep()
	p.pathVar, p.path = fieldPath(ast.NativeRep().Expr(), vars)
	for _, f := range p.path {
		p.pathSites = append(p.pathSites, newFieldSite(f))
	}
	// An expression that needs the runtime cost limit runs natively only
	// where the estimate for small inputs rules the limit out, checking
	// that the inputs it reads are that small (see fast.go).
	if p.pathVar < 0 {
		mode := fastUnlimited
		switch {
		case p.limited && p.small != nil:
			mode = fastCheckSizes
		case p.limited:
			mode = fastCountCost
		}
		p.fast, p.fastLocals, p.rowSlots = compileFast(ast.NativeRep().Expr(), vars, mode, value.UseRows)
	}
	return p, nil
}

// inputSizeBound is the size (string/bytes length, list/map entries)
// assumed at compile time for values whose size CEL cannot know: record
// fields and other variables. It is large enough that any comprehension
// over input data is estimated above DefaultCostLimit (at least one cost
// unit per iteration), so such expressions keep the runtime limit, and
// small enough that a few linear string operations (0.1 unit per byte)
// stay well below it.
const inputSizeBound = 1 << 20

// smallInputSize bounds the size of every input value (string and bytes
// length, list and map entries, at any depth) for which Program.small may
// run; smallWalkBudget bounds the values visited to check it.
const (
	smallInputSize  = 1024
	smallWalkBudget = 1 << 14
)

// sizeEstimator gives values of unknown size an upper bound: max for
// input data (a variable and the fields and elements under it), whose
// size fitsSmall checks at run time, and for a comprehension's accumulator
// (which grows by one element per iteration at most, each iteration
// costing at least one unit, estimated from the range's size), and
// inputSizeBound for everything else: a function's result, such as
// lists.range(record.n), may be large whatever the inputs' sizes.
type sizeEstimator struct{ max uint64 }

func (s sizeEstimator) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	if len(n.Path()) > 0 || n.Expr().Kind() == celast.IdentKind {
		return &checker.SizeEstimate{Min: 0, Max: s.max}
	}
	return &checker.SizeEstimate{Min: 0, Max: inputSizeBound}
}

// fitsSmall reports whether v holds no string, bytes, list or map larger
// than smallInputSize, visiting at most *budget elements.
func fitsSmall(v any, budget *int) bool {
	switch x := v.(type) {
	case string:
		return len(x) <= smallInputSize
	case []byte:
		return len(x) <= smallInputSize
	case []any:
		if *budget -= len(x); len(x) > smallInputSize || *budget < 0 {
			return false
		}
		for _, e := range x {
			if !fitsSmall(e, budget) {
				return false
			}
		}
	case map[string]any:
		if *budget -= len(x); len(x) > smallInputSize || *budget < 0 {
			return false
		}
		for k, e := range x {
			if len(k) > smallInputSize || !fitsSmall(e, budget) {
				return false
			}
		}
	case *value.Row:
		if *budget -= x.Len(); x.Len() > smallInputSize || *budget < 0 {
			return false
		}
		for i, e := range x.Values() {
			if len(x.Name(i)) > smallInputSize || !fitsSmall(e, budget) {
				return false
			}
		}
	}
	return true
}

// program is the program to run on act's values.
func (p *Program) program(act *activation) cel.Program {
	if p.small == nil {
		return p.prg
	}
	budget := smallWalkBudget
	for i := range act.names {
		v := any(nil)
		if i < len(act.vals) {
			v = act.vals[i]
		} else if j := i - len(act.vals); j < len(act.more) {
			v = act.more[j]
		}
		if !fitsSmall(v, &budget) {
			return p.prg
		}
	}
	return p.small
}

func (sizeEstimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// fieldPath recognizes an expression that is only a variable followed by
// field selections (record, record.a, acc.x.y): it returns the variable's
// index in vars and the field names, or -1.
func fieldPath(e celast.Expr, vars []string) (int, []string) {
	name, path, ok := selectPath(e)
	if !ok {
		return -1, nil
	}
	for i, v := range vars {
		if v == name {
			return i, path
		}
	}
	return -1, nil
}

// selectPath splits an identifier followed by field selections (b, b.t,
// record.a.b) into the identifier and the field names, in order; ok is
// false for anything else, a presence test (has) included.
func selectPath(e celast.Expr) (name string, path []string, ok bool) {
	n := 0
	for x := e; x.Kind() == celast.SelectKind; x = x.AsSelect().Operand() {
		if x.AsSelect().IsTestOnly() {
			return "", nil, false
		}
		n++
	}
	path = make([]string, n)
	for ; n > 0; n-- {
		path[n-1] = e.AsSelect().FieldName()
		e = e.AsSelect().Operand()
	}
	if e.Kind() != celast.IdentKind {
		return "", nil, false
	}
	return e.AsIdent(), path, true
}

// evalPath evaluates a plain field path with map and row lookups. It
// reports false when the value is not one CEL would hand back unchanged (a
// missing key, a non-map operand, a non-normalized value): the caller then
// evaluates with CEL, which gives the same result or error as before.
func (p *Program) evalPath(v any) (any, bool) {
	for _, f := range p.pathSites {
		var ok bool
		if v, ok = f.get(v); !ok {
			return nil, false
		}
	}
	return v, isNative(v)
}

func wantName(w Want) string {
	switch w {
	case Bool:
		return "bool"
	case List:
		return "list"
	case Map:
		return "map"
	}
	return "any"
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " | ")), " ")
}

// activation resolves the program's variables from a small fixed array,
// avoiding a map per evaluation.
type activation struct {
	names []string
	vals  [4]any
	more  []any
	// locals are the fast evaluator's comprehension variables.
	locals []any
	// cost bounds CEL's cost of the fast evaluation so far (fastCountCost).
	cost uint64
	// scratch, when set, is an empty map the fast evaluator may fill as
	// the result instead of allocating one (Evaluator.EvalInto).
	scratch map[string]any
	// buf is where string concatenations are built (compileConcat).
	buf []byte
	// rows, when set (Evaluator.EvalInto), holds per scratch map literal
	// that builds rows the row it returned last, refilled instead of
	// allocating one.
	rows []*value.Row
}

func (a *activation) ResolveName(name string) (any, bool) {
	for i, n := range a.names {
		if n == name {
			if i < len(a.vals) {
				return a.vals[i], true
			}
			return a.more[i-len(a.vals)], true
		}
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// actPool recycles activations: passed to CEL as an interface, an
// activation would otherwise escape to the heap on every evaluation.
var actPool = sync.Pool{New: func() any { return new(activation) }}

func (p *Program) getAct() *activation {
	act := actPool.Get().(*activation)
	act.names = p.names
	if cap(act.locals) < p.fastLocals {
		act.locals = make([]any, p.fastLocals)
	}
	act.locals = act.locals[:p.fastLocals]
	return act
}

// putAct clears act (keeping its locals' and buf's storage) and recycles it.
func putAct(act *activation) {
	locals := act.locals
	clear(locals)
	*act = activation{locals: locals[:0], buf: act.buf[:0]}
	actPool.Put(act)
}

// Eval evaluates with the variables' values in the order given to Compile.
func (p *Program) Eval(vals ...any) (any, error) {
	if p.pathVar >= 0 && p.pathVar < len(vals) {
		if v, ok := p.evalPath(vals[p.pathVar]); ok {
			return v, nil
		}
	}
	act := p.getAct()
	n := copy(act.vals[:], vals)
	if n < len(vals) {
		act.more = vals[n:]
	}
	if p.fast != nil {
		if v, ok := p.fast(act); ok {
			putAct(act)
			return v, nil
		}
	}
	out, err := p.run(act)
	putAct(act)
	if err != nil {
		return nil, err
	}
	return ToNative(out)
}

// Eval1 is Eval for one variable without the variadic slice.
func (p *Program) Eval1(v0 any) (any, error) {
	if p.pathVar == 0 {
		if v, ok := p.evalPath(v0); ok {
			return v, nil
		}
	}
	act := p.getAct()
	act.vals[0] = v0
	if p.fast != nil {
		if v, ok := p.fast(act); ok {
			putAct(act)
			return v, nil
		}
	}
	out, err := p.run(act)
	putAct(act)
	if err != nil {
		return nil, err
	}
	return ToNative(out)
}

// EvalBool evaluates a one-variable predicate.
func (p *Program) EvalBool(v0 any) (bool, error) {
	if p.pathVar == 0 {
		if v, ok := p.evalPath(v0); ok {
			if b, ok := v.(bool); ok {
				return b, nil
			}
		}
	}
	act := p.getAct()
	act.vals[0] = v0
	if p.fast != nil {
		if v, ok := p.fast(act); ok {
			if b, ok := v.(bool); ok {
				putAct(act)
				return b, nil
			}
		}
	}
	out, err := p.run(act)
	putAct(act)
	if err != nil {
		return false, err
	}
	return p.toBool(out)
}

func (p *Program) toBool(out ref.Val) (bool, error) {
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("CEL expression %q returned %s, want bool", p.src, out.Type().TypeName())
	}
	return bool(b), nil
}

// EvalVal evaluates and returns the CEL value.
func (p *Program) EvalVal(vals ...any) (ref.Val, error) {
	act := p.getAct()
	n := copy(act.vals[:], vals)
	if n < len(vals) {
		act.more = vals[n:]
	}
	out, err := p.run(act)
	putAct(act)
	return out, err
}

func (p *Program) run(act *activation) (ref.Val, error) {
	out, _, err := p.program(act).Eval(act)
	if err != nil {
		return nil, p.evalErr(err)
	}
	return out, nil
}

// Evaluator evaluates one Program from one goroutine (an operator of a
// subtask), reusing one activation for every evaluation. It is not safe
// for concurrent use; the Program it comes from is.
type Evaluator struct {
	p   *Program
	act activation
	// rows is activation.rows for EvalInto, kept between calls.
	rows []*value.Row
}

// Evaluator returns a new single-goroutine evaluator of p.
func (p *Program) Evaluator() *Evaluator {
	return &Evaluator{p: p, act: activation{names: p.names, locals: make([]any, p.fastLocals)}}
}

// Program returns the program being evaluated.
func (e *Evaluator) Program() *Program { return e.p }

// Source returns the expression text.
func (e *Evaluator) Source() string { return e.p.src }

// tryFast runs the fast evaluator on the activation's values, clearing
// them when it succeeds.
func (e *Evaluator) tryFast() (any, bool) {
	if e.p.fast == nil {
		return nil, false
	}
	v, ok := e.p.fast(&e.act)
	clear(e.act.locals)
	if ok {
		e.act.vals = [4]any{}
		e.act.more = nil
	}
	return v, ok
}

func (e *Evaluator) run() (ref.Val, error) {
	out, _, err := e.p.program(&e.act).Eval(&e.act)
	e.act.vals = [4]any{}
	e.act.more = nil
	if err != nil {
		return nil, e.p.evalErr(err)
	}
	return out, nil
}

// Eval1 is Program.Eval1.
func (e *Evaluator) Eval1(v0 any) (any, error) {
	p := e.p
	if p.pathVar == 0 {
		if v, ok := p.evalPath(v0); ok {
			return v, nil
		}
	}
	e.act.vals[0] = v0
	if v, ok := e.tryFast(); ok {
		return v, nil
	}
	out, err := e.run()
	if err != nil {
		return nil, err
	}
	return ToNative(out)
}

// Eval2 is Program.Eval with two variables.
func (e *Evaluator) Eval2(v0, v1 any) (any, error) {
	p := e.p
	switch p.pathVar {
	case 0:
		if v, ok := p.evalPath(v0); ok {
			return v, nil
		}
	case 1:
		if v, ok := p.evalPath(v1); ok {
			return v, nil
		}
	}
	e.act.vals[0], e.act.vals[1] = v0, v1
	if v, ok := e.tryFast(); ok {
		return v, nil
	}
	out, err := e.run()
	if err != nil {
		return nil, err
	}
	return ToNative(out)
}

// Eval is Program.Eval.
func (e *Evaluator) Eval(vals ...any) (any, error) {
	p := e.p
	if p.pathVar >= 0 && p.pathVar < len(vals) {
		if v, ok := p.evalPath(vals[p.pathVar]); ok {
			return v, nil
		}
	}
	n := copy(e.act.vals[:], vals)
	if n < len(vals) {
		e.act.more = vals[n:]
	}
	if v, ok := e.tryFast(); ok {
		return v, nil
	}
	out, err := e.run()
	if err != nil {
		return nil, err
	}
	return ToNative(out)
}

// EvalInto is Eval, except that a map the expression builds as its result
// (its outermost map literal, possibly under dyn() and conditionals) may be
// scratch itself, filled instead of a newly allocated map, or, where the
// literal builds a row (value.UseRows), the row this evaluator's EvalInto
// returned from that literal before, refilled. scratch must be non-nil and
// empty; the caller clears it before the next call, when done with the
// result (which it must not keep past the next call), and may find it
// partly filled when the result is another value.
func (e *Evaluator) EvalInto(scratch map[string]any, vals ...any) (any, error) {
	e.act.scratch = scratch
	if scratch != nil && e.p.rowSlots > 0 {
		if e.rows == nil {
			e.rows = make([]*value.Row, e.p.rowSlots)
		}
		e.act.rows = e.rows
	}
	v, err := e.Eval(vals...)
	e.act.scratch, e.act.rows = nil, nil
	return v, err
}

// EvalBool is Program.EvalBool.
func (e *Evaluator) EvalBool(v0 any) (bool, error) {
	p := e.p
	if p.pathVar == 0 {
		if v, ok := p.evalPath(v0); ok {
			if b, ok := v.(bool); ok {
				return b, nil
			}
		}
	}
	e.act.vals[0] = v0
	if v, ok := e.tryFast(); ok {
		if b, ok := v.(bool); ok {
			return b, nil
		}
		e.act.vals[0] = v0 // tryFast cleared it
	}
	out, err := e.run()
	if err != nil {
		return false, err
	}
	return p.toBool(out)
}

func (p *Program) evalErr(err error) error {
	return fmt.Errorf("CEL expression %q failed: %v", p.src, err)
}

// concatListType is the type of the lists CEL's + builds.
var concatListType = reflect.TypeOf(types.NewDynamicList(types.DefaultTypeAdapter, []any{int64(1)}).(traits.Adder).
	Add(types.NewDynamicList(types.DefaultTypeAdapter, []any{int64(2)})))

// ToNative converts a CEL value into the engine's dynamic values.
func ToNative(v ref.Val) (any, error) {
	switch x := v.(type) {
	case types.Null:
		return nil, nil
	case types.Bool:
		return bool(x), nil
	case types.Int:
		return int64(x), nil
	case types.Uint:
		return uint64(x), nil
	case types.Double:
		return float64(x), nil
	case types.String:
		return string(x), nil
	case types.Bytes:
		return []byte(x), nil
	case types.Timestamp:
		return x.Time.UTC().Format(time.RFC3339Nano), nil
	case types.Duration:
		return x.Duration.String(), nil
	case *types.Err:
		return nil, x
	case *types.Optional:
		if !x.HasValue() {
			return nil, nil
		}
		return ToNative(x.GetValue())
	}
	// Values that came from the input untouched keep their native form:
	// no copy for `record` passed through. A list CEL built by
	// concatenation also has a []any Value, made of its elements' CEL
	// Values (a null's is not nil, a map literal's has ref.Val keys):
	// that one is converted element by element.
	switch nv := v.Value().(type) {
	case map[string]any, *value.Row:
		return nv, nil
	case []any:
		if reflect.TypeOf(v) != concatListType {
			return nv, nil
		}
	}
	switch x := v.(type) {
	case traits.Lister:
		n := int(x.Size().(types.Int))
		out := make([]any, n)
		for i := 0; i < n; i++ {
			e, err := ToNative(x.Get(types.Int(i)))
			if err != nil {
				return nil, err
			}
			out[i] = e
		}
		return out, nil
	case traits.Mapper:
		out := make(map[string]any, int(x.Size().(types.Int)))
		it := x.Iterator()
		for it.HasNext() == types.True {
			k := it.Next()
			ks, ok := k.(types.String)
			if !ok {
				return nil, fmt.Errorf("map key %v is %s; record maps need string keys", k, k.Type().TypeName())
			}
			e, err := ToNative(x.Get(k))
			if err != nil {
				return nil, err
			}
			out[string(ks)] = e
		}
		return out, nil
	case *types.Unknown:
		return nil, fmt.Errorf("expression result is unknown")
	}
	return nil, fmt.Errorf("unsupported CEL result type %s", v.Type().TypeName())
}

// ToMillis converts an event-time value (an int of ms, a double, a CEL
// timestamp or an RFC 3339 string) to epoch milliseconds.
func ToMillis(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case uint64:
		return int64(x), nil
	case float64:
		return int64(x), nil
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return 0, fmt.Errorf("timestamp %q is not RFC 3339 or epoch milliseconds", x)
		}
		return t.UnixMilli(), nil
	}
	return 0, fmt.Errorf("timestamp has type %s, want int milliseconds or a timestamp", value.TypeName(v))
}
