// Package connector holds the sources and sinks a job reads from and writes
// to: inline elements, datagen, files (local paths and s3:// through
// minio-go), print and discard. Each source says whether it is bounded, as
// Flink defines it, because that decides what AUTOMATIC resolves to and
// whether BATCH may run the job at all.
//
// Sources are split across parallel subtasks: subtask i of n reads its own
// share. Sinks are opened once per subtask and finished once per job.
package connector

import (
	"context"

	"github.com/flinkjob/flinkjob/engine/value"
)

// Source creates one reader per parallel subtask.
type Source interface {
	// Bounded reports whether the source ends by itself.
	Bounded() bool
	// Open starts reading the share of subtask index of parallelism.
	Open(ctx context.Context, index, parallelism int) (Reader, error)
}

// Reader reads one subtask's share of a source.
type Reader interface {
	// Read emits up to max values through emit and returns. It blocks only
	// until at least one value is available (or ctx is done), so the caller
	// can flush its output buffers between calls. At the end of a bounded
	// input it returns io.EOF (possibly after emitting the last values).
	Read(ctx context.Context, max int, emit func(v any)) error
	// Close releases the reader's resources.
	Close() error
}

// Sink creates one writer per parallel subtask.
type Sink interface {
	// Open starts the writer of subtask index of parallelism.
	Open(ctx context.Context, index, parallelism int) (Writer, error)
}

// Writer writes one subtask's records.
type Writer interface {
	// Write writes one record; the sink owns nothing after it returns.
	Write(r *value.Record) error
	// Close makes everything written visible under its final name.
	Close() error
	// Abort discards what was written and not yet made visible.
	Abort()
}

// Finisher is implemented by sinks that do job-wide work once every writer
// of every subtask has closed (e.g. write a _SUCCESS marker).
type Finisher interface {
	Finish(ctx context.Context) error
}
