// Package enginetest helps tests run jobs in-process and look at what their
// sinks received. It is imported by tests only.
package enginetest

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// Collect is a sink that keeps every record it receives, by sink name.
// It keeps each value as it arrived, rows included (its writer is
// operator.RowsAware, so the engine hands it its own values), so a value
// the engine reused after handing it over still shows up changed; Records
// and Values return the maps those values stand for (value.Plain), so
// tests compare them with Go maps whether rows are on or off.
type Collect struct {
	mu   sync.Mutex
	recs map[string][]value.Record
}

// NewCollect returns an empty collector.
func NewCollect() *Collect { return &Collect{recs: map[string][]value.Record{}} }

// Sink returns the connector for `sink: {call: name}`.
func (c *Collect) Sink(name string) (connector.Sink, bool) {
	return collectSink{c, name}, true
}

// Records returns what sink name received, in arrival order, every row in
// the values turned into its map.
func (c *Collect) Records(name string) []value.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := append([]value.Record(nil), c.recs[name]...)
	for i := range out {
		out[i].Value = value.Plain(out[i].Value)
	}
	return out
}

// Values returns the values sink name received.
func (c *Collect) Values(name string) []any {
	var out []any
	for _, r := range c.Records(name) {
		out = append(out, r.Value)
	}
	return out
}

// SortedJSON returns the values as JSON strings, sorted: a multiset to
// compare results whose order depends on parallel execution.
func (c *Collect) SortedJSON(name string) []string {
	var out []string
	for _, r := range c.Records(name) {
		out = append(out, string(value.ToJSON(r.Value)))
	}
	sort.Strings(out)
	return out
}

type collectSink struct {
	c    *Collect
	name string
}

func (s collectSink) Open(context.Context, int, int) (connector.Writer, error) {
	return &collectWriter{s: s}, nil
}

type collectWriter struct {
	s collectSink
}

func (w *collectWriter) Write(r *value.Record) error {
	w.s.c.mu.Lock()
	w.s.c.recs[w.s.name] = append(w.s.c.recs[w.s.name], value.Record{Value: r.Value, Ts: r.Ts})
	w.s.c.mu.Unlock()
	return nil
}
func (w *collectWriter) Close() error { return nil }
func (w *collectWriter) Abort()       {}

// AcceptsRows (operator.RowsAware): the writer keeps the engine's values
// as they are, rows included; Records turns them into maps.
func (w *collectWriter) AcceptsRows() bool { return true }

// Parse reads a job from YAML (the spec part of a manifest).
func Parse(t testing.TB, src string) *spec.Job {
	t.Helper()
	var j spec.Job
	if err := yaml.UnmarshalStrict([]byte(src), &j); err != nil {
		t.Fatalf("parse job: %v", err)
	}
	return &j
}

// Run plans and runs a job in the given mode, collecting `call` sinks.
func Run(t testing.TB, job *spec.Job, mode spec.RuntimeMode, opts local.Options) *Collect {
	t.Helper()
	c, err := TryRun(job, mode, opts)
	if err != nil {
		t.Fatalf("run in %s: %v", mode, err)
	}
	return c
}

// TryRun is Run returning the error.
func TryRun(job *spec.Job, mode spec.RuntimeMode, opts local.Options) (*Collect, error) {
	p, err := plan.New(job, plan.Options{Mode: mode})
	if err != nil {
		return nil, err
	}
	c := NewCollect()
	opts.Env.CallSink = c.Sink
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return c, local.Run(ctx, p, opts)
}
