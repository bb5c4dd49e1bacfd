package connector

import (
	"context"
	"io"
	"sync"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// printSink writes every record as one JSON line. All subtasks share one
// writer and one mutex: each line goes out in a single Write under the lock,
// so lines of parallel subtasks interleave but never tear.
type printSink struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
}

// NewPrintSink writes `<prefix><JSON of the record value>\n` per record to
// w (keys sorted, so output is deterministic and diffable in tests).
func NewPrintSink(s spec.PrintSink, w io.Writer) Sink {
	return &printSink{w: w, prefix: s.Prefix}
}

func (s *printSink) Open(context.Context, int, int) (Writer, error) {
	return &printWriter{sink: s}, nil
}

type printWriter struct {
	sink *printSink
	buf  []byte
}

func (w *printWriter) Write(r *value.Record) error {
	b := append(w.buf[:0], w.sink.prefix...)
	b = value.AppendJSON(b, r.Value)
	b = append(b, '\n')
	w.buf = b
	w.sink.mu.Lock()
	defer w.sink.mu.Unlock()
	_, err := w.sink.w.Write(b)
	return err
}

// ReleasesValues: a line is encoded before Write returns.
func (w *printWriter) ReleasesValues() bool { return true }

// Close does nothing: every line was written when it was printed.
func (w *printWriter) Close() error { return nil }

// Abort does nothing: printed lines cannot be taken back, which is why
// print is for debugging, not for exactly-once output.
func (w *printWriter) Abort() {}

// discardSink drops every record, for benchmarks that measure the job
// without its output.
type discardSink struct{}

// NewDiscardSink returns a sink that drops every record.
func NewDiscardSink() Sink { return discardSink{} }

func (discardSink) Open(context.Context, int, int) (Writer, error) { return discardWriter{}, nil }

type discardWriter struct{}

func (discardWriter) Write(*value.Record) error { return nil }
func (discardWriter) Close() error              { return nil }
func (discardWriter) Abort()                    {}
func (discardWriter) ReleasesValues() bool      { return true }
