// Package expr compiles and evaluates the per-record logic of a job, written
// in CEL (the expression language Kubernetes uses). An expression is
// compiled and type-checked once per step, then evaluated per record with a
// cost limit, so a runaway expression fails the job instead of stalling it.
//
// Values cross into CEL as this engine's dynamic values (map[string]any,
// []any, int64, ...) and come back the same way, so operators never see CEL
// types.
package expr

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"
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
		cel.CrossTypeNumericComparisons(true),
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
	prg, err := e.Program(ast, cel.CostLimit(DefaultCostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fmt.Errorf("CEL expression %q: %v", src, err)
	}
	return &Program{src: src, names: vars, prg: prg}, nil
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

// Eval evaluates with the variables' values in the order given to Compile.
func (p *Program) Eval(vals ...any) (any, error) {
	v, err := p.EvalVal(vals...)
	if err != nil {
		return nil, err
	}
	return ToNative(v)
}

// Eval1 is Eval for one variable without the variadic slice.
func (p *Program) Eval1(v0 any) (any, error) {
	act := activation{names: p.names}
	act.vals[0] = v0
	out, _, err := p.prg.Eval(&act)
	if err != nil {
		return nil, p.evalErr(err)
	}
	return ToNative(out)
}

// EvalBool evaluates a one-variable predicate.
func (p *Program) EvalBool(v0 any) (bool, error) {
	act := activation{names: p.names}
	act.vals[0] = v0
	out, _, err := p.prg.Eval(&act)
	if err != nil {
		return false, p.evalErr(err)
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("CEL expression %q returned %s, want bool", p.src, out.Type().TypeName())
	}
	return bool(b), nil
}

// EvalVal evaluates and returns the CEL value.
func (p *Program) EvalVal(vals ...any) (ref.Val, error) {
	act := activation{names: p.names}
	n := copy(act.vals[:], vals)
	if n < len(vals) {
		act.more = vals[n:]
	}
	out, _, err := p.prg.Eval(&act)
	if err != nil {
		return nil, p.evalErr(err)
	}
	return out, nil
}

func (p *Program) evalErr(err error) error {
	return fmt.Errorf("CEL expression %q failed: %v", p.src, err)
}

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
	// no copy for `record` passed through.
	switch nv := v.Value().(type) {
	case map[string]any:
		return nv, nil
	case []any:
		return nv, nil
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
	return 0, fmt.Errorf("timestamp has type %T, want int milliseconds or a timestamp", v)
}

// SortedKeys lists a map's keys in order (for deterministic errors and output).
func SortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
