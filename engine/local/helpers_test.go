package local_test

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/enginetest"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// Helpers shared by the known-answer, property and executor tests of this
// package. Expected results are always written by hand as JSON; norm turns
// them into the canonical form the engine's value.ToJSON produces (sorted
// map keys, doubles with a decimal point), so comparisons are exact.

var modes = []spec.RuntimeMode{spec.Streaming, spec.Batch}

// norm canonicalises hand-written JSON values.
func norm(t testing.TB, js ...string) []string {
	t.Helper()
	out := make([]string, 0, len(js))
	for _, j := range js {
		v, err := value.FromJSON([]byte(j))
		if err != nil {
			t.Fatalf("bad expected JSON %s: %v", j, err)
		}
		out = append(out, string(value.ToJSON(v)))
	}
	return out
}

// sortedNorm is norm sorted: a multiset.
func sortedNorm(t testing.TB, js ...string) []string {
	t.Helper()
	out := norm(t, js...)
	sort.Strings(out)
	return out
}

// inOrder returns the JSON of what sink name received, in arrival order.
func inOrder(c *enginetest.Collect, name string) []string {
	var out []string
	for _, r := range c.Records(name) {
		out = append(out, string(value.ToJSON(r.Value)))
	}
	return out
}

// sameMultiset fails unless got (any order) equals want (hand-written JSON).
func sameMultiset(t testing.TB, what string, c *enginetest.Collect, sink string, want ...string) {
	t.Helper()
	got := c.SortedJSON(sink)
	w := sortedNorm(t, want...)
	if len(got) == 0 && len(w) == 0 {
		return
	}
	if !reflect.DeepEqual(got, w) {
		t.Errorf("%s: sink %q got %d records:\n  %s\nwant %d:\n  %s", what, sink, len(got), strings.Join(got, "\n  "), len(w), strings.Join(w, "\n  "))
	}
}

// sameSequence fails unless got equals want in order.
func sameSequence(t testing.TB, what string, c *enginetest.Collect, sink string, want ...string) {
	t.Helper()
	got := inOrder(c, sink)
	w := norm(t, want...)
	if len(got) == 0 && len(w) == 0 {
		return
	}
	if !reflect.DeepEqual(got, w) {
		t.Errorf("%s: sink %q got, in order:\n  %s\nwant:\n  %s", what, sink, strings.Join(got, "\n  "), strings.Join(w, "\n  "))
	}
}

// run parses and runs a job in mode.
func run(t testing.TB, src string, mode spec.RuntimeMode, opts local.Options) *enginetest.Collect {
	t.Helper()
	return enginetest.Run(t, enginetest.Parse(t, src), mode, opts)
}

// forModes runs f as a subtest per mode.
func forModes(t *testing.T, f func(t *testing.T, mode spec.RuntimeMode)) {
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) { f(t, m) })
	}
}

// stampedSink is a `sink: {call: ...}` that keeps records with the wall
// clock time of their arrival and can be slowed down per record.
type stampedSink struct {
	mu    sync.Mutex
	recs  []value.Record
	at    []time.Time
	delay time.Duration
	// onWrite, if set, runs for every record (under no lock).
	onWrite func(r *value.Record)
}

func (s *stampedSink) Open(context.Context, int, int) (connector.Writer, error) {
	return stampedWriter{s}, nil
}

type stampedWriter struct{ s *stampedSink }

func (w stampedWriter) Write(r *value.Record) error {
	if w.s.delay > 0 {
		time.Sleep(w.s.delay)
	}
	if w.s.onWrite != nil {
		w.s.onWrite(r)
	}
	w.s.mu.Lock()
	w.s.recs = append(w.s.recs, value.Record{Value: r.Value, Ts: r.Ts})
	w.s.at = append(w.s.at, time.Now())
	w.s.mu.Unlock()
	return nil
}
func (stampedWriter) Close() error { return nil }
func (stampedWriter) Abort()       {}

func (s *stampedSink) records() []value.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]value.Record(nil), s.recs...)
}

// newPlan plans a YAML job in mode.
func newPlan(t testing.TB, src string, mode spec.RuntimeMode) *plan.Plan {
	t.Helper()
	p, err := plan.New(enginetest.Parse(t, src), plan.Options{Mode: mode})
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return p
}

// sinks builds an Env.CallSink from named sinks.
func sinks(m map[string]connector.Sink) func(string) (connector.Sink, bool) {
	return func(name string) (connector.Sink, bool) {
		s, ok := m[name]
		return s, ok
	}
}

// tryRun parses and runs a job in mode and returns the error.
func tryRun(t testing.TB, src string, mode spec.RuntimeMode, opts local.Options) (*enginetest.Collect, error) {
	t.Helper()
	return enginetest.TryRun(enginetest.Parse(t, src), mode, opts)
}

var sprintf = fmt.Sprintf
