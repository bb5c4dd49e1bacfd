// Command slowworker is the flinkjob worker with slow Go functions
// registered through the Go SDK (package udf), for tests that need a
// consumer slower than its producer (backpressure) or a subtask that is
// still running when it is killed (BATCH recovery). It is built by the
// tests (go build ./worker/testdata/slowworker), never shipped.
//
//   - sink "slow" (`sink: {call: slow}`) waits SLOW_SINK_DELAY per record
//     (a Go duration, default 20µs), counts the records and their record.id
//     values, and at Close writes a JSON summary (count, sum of ids,
//     duplicates, min and max id) to $SLOW_SINK_OUT-<subtask>.json.
//   - map "slow" (`call: slow`) waits SLOW_MAP_DELAY per record (default
//     100µs) and passes the record on unchanged.
//
// Waits are paid in slices of at least a millisecond, so short per-record
// delays add up to their nominal total rather than to the OS timer's
// granularity per record.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/udf"
	"github.com/flinkjob/flinkjob/engine/value"
	"github.com/flinkjob/flinkjob/worker"
)

func main() {
	udf.RegisterSink("slow", slowSink{delay: envDuration("SLOW_SINK_DELAY", 20*time.Microsecond), out: os.Getenv("SLOW_SINK_OUT")})
	var p pacer
	p.delay = envDuration("SLOW_MAP_DELAY", 100*time.Microsecond)
	udf.Map("slow", func(v any) (any, error) {
		p.pay()
		return v, nil
	})
	os.Exit(worker.Main(os.Args[1:]))
}

func envDuration(key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(key)); err == nil {
		return d
	}
	return def
}

// pacer sleeps delay per call on average.
type pacer struct {
	delay, debt time.Duration
}

func (p *pacer) pay() {
	p.debt += p.delay
	if p.debt >= time.Millisecond {
		start := time.Now()
		time.Sleep(p.debt)
		p.debt -= time.Since(start)
	}
}

// Summary is what the slow sink writes at Close.
type Summary struct {
	Subtask    int   `json:"subtask"`
	Count      int64 `json:"count"`
	Sum        int64 `json:"sum"`
	Duplicates int64 `json:"duplicates"`
	Min        int64 `json:"min"`
	Max        int64 `json:"max"`
	ElapsedMs  int64 `json:"elapsedMs"`
}

type slowSink struct {
	delay time.Duration
	out   string
}

func (s slowSink) Open(_ context.Context, index, _ int) (connector.Writer, error) {
	if s.out == "" {
		return nil, fmt.Errorf("sink slow: SLOW_SINK_OUT is not set")
	}
	return &slowWriter{sink: s, sum: Summary{Subtask: index, Min: -1, Max: -1}, seen: map[int64]struct{}{}, pacer: pacer{delay: s.delay}}, nil
}

type slowWriter struct {
	sink  slowSink
	sum   Summary
	seen  map[int64]struct{}
	pacer pacer
	start time.Time
}

func (w *slowWriter) Write(r *value.Record) error {
	if w.start.IsZero() {
		w.start = time.Now()
	}
	m, ok := r.Value.(map[string]any)
	if !ok {
		return fmt.Errorf("sink slow: record is %T, want a map with an id", r.Value)
	}
	id, ok := m["id"].(int64)
	if !ok {
		return fmt.Errorf("sink slow: record.id is %T, want an int", m["id"])
	}
	if _, dup := w.seen[id]; dup {
		w.sum.Duplicates++
	}
	w.seen[id] = struct{}{}
	w.sum.Count++
	w.sum.Sum += id
	if w.sum.Min < 0 || id < w.sum.Min {
		w.sum.Min = id
	}
	w.sum.Max = max(w.sum.Max, id)
	w.pacer.pay()
	return nil
}

func (w *slowWriter) Close() error {
	if !w.start.IsZero() {
		w.sum.ElapsedMs = time.Since(w.start).Milliseconds()
	}
	b, _ := json.Marshal(w.sum)
	path := fmt.Sprintf("%s-%d.json", w.sink.out, w.sum.Subtask)
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (w *slowWriter) Abort() {}
