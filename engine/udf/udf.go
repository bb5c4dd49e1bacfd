// Package udf is the Go SDK of flinkjob: for logic CEL cannot express, a user
// registers named Go functions in their own worker (or CLI) binary, usually
// from an init function, and refers to them by name in the manifest
// (`call: name` for a step, `sink: {call: name}` for a sink).
package udf

import (
	"fmt"
	"sort"
	"sync"

	"github.com/flinkjob/flinkjob/engine/connector"
)

// Func processes one record value and emits zero or more output values.
// It covers map (emit once), filter (emit the input or not) and flatMap.
// Values are the engine's dynamic values (maps are map[string]any); do not
// modify the input in place.
//
// The engine may hold a map value as a *value.Row (the same fields, by
// index). A function registered with Register, Map or Filter never sees
// one: it gets value.Plain of its input. One registered with RegisterRows
// or MapRows gets the values as the engine holds them and must read maps
// with value.Field, value.RangeFields and the like (it saves the copy).
type Func func(v any, emit func(any)) error

var (
	mu    sync.RWMutex
	funcs = map[string]Func{}
	rows  = map[string]bool{} // functions that take rows
	peeks = map[string]func(any) error{}
	sinks = map[string]connector.Sink{}
)

// Register makes fn callable as `call: name`. Registering a name twice panics.
func Register(name string, fn Func) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := funcs[name]; dup {
		panic(fmt.Sprintf("udf: function %q registered twice", name))
	}
	funcs[name] = fn
}

// RegisterRows is Register for a function that reads the engine's rows
// itself (see Func).
func RegisterRows(name string, fn Func) {
	Register(name, fn)
	mu.Lock()
	defer mu.Unlock()
	rows[name] = true
}

// AcceptsRows reports whether the function name was registered to take
// rows (RegisterRows, MapRows).
func AcceptsRows(name string) bool {
	mu.RLock()
	defer mu.RUnlock()
	return rows[name]
}

// MapRows is Map for a function that reads the engine's rows itself (see
// Func).
func MapRows(name string, fn func(v any) (any, error)) {
	RegisterRows(name, mapFunc(fn))
}

// Map registers a one-to-one function.
func Map(name string, fn func(v any) (any, error)) {
	Register(name, mapFunc(fn))
}

// mapFunc makes a one-to-one function a Func: it emits fn's result unless
// fn failed.
func mapFunc(fn func(v any) (any, error)) Func {
	return func(v any, emit func(any)) error {
		out, err := fn(v)
		if err == nil {
			emit(out)
		}
		return err
	}
}

// Peek registers an observer, as Java streams' peek: fn sees each value
// as the engine holds it (rows included, see Func) and the value goes on
// unchanged, or the job fails with fn's error. fn must not change the
// value or keep it (or any part of it) after it returns. Knowing that,
// the engine can treat the step as absent, for instance to go on reusing
// the values a source built when a filter after the peek rejects them.
// For metrics, tracing and tests.
func Peek(name string, fn func(v any) error) {
	RegisterRows(name, func(v any, emit func(any)) error {
		if err := fn(v); err != nil {
			return err
		}
		emit(v)
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	peeks[name] = fn
}

// LookupPeek returns the observer of a function registered with Peek (nil
// for any other).
func LookupPeek(name string) func(any) error {
	mu.RLock()
	defer mu.RUnlock()
	return peeks[name]
}

// Filter registers a predicate.
func Filter(name string, fn func(v any) (bool, error)) {
	Register(name, func(v any, emit func(any)) error {
		keep, err := fn(v)
		if err == nil && keep {
			emit(v)
		}
		return err
	})
}

// RegisterSink makes a sink usable as `sink: {call: name}`.
func RegisterSink(name string, s connector.Sink) {
	mu.Lock()
	defer mu.Unlock()
	sinks[name] = s
}

// Lookup returns a registered function.
func Lookup(name string) (Func, bool) {
	mu.RLock()
	defer mu.RUnlock()
	f, ok := funcs[name]
	return f, ok
}

// LookupSink returns a registered sink.
func LookupSink(name string) (connector.Sink, bool) {
	mu.RLock()
	defer mu.RUnlock()
	s, ok := sinks[name]
	return s, ok
}

// Known reports whether a function or sink of that name is registered.
func Known(name string) bool {
	mu.RLock()
	defer mu.RUnlock()
	_, f := funcs[name]
	_, s := sinks[name]
	return f || s
}

// Names lists registered functions, for error messages.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	var out []string
	for n := range funcs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
