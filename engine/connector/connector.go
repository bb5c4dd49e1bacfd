// Package connector holds the sources and sinks a job reads from and writes
// to: inline elements, datagen, the Nexmark generator, files (local paths
// and s3:// through minio-go) and Kafka (franz-go) as sources; print,
// discard, files and Kafka as sinks (Go sinks, `call`, come from
// engine/udf). Each source says whether it is bounded, as
// Flink defines it, because that decides what AUTOMATIC resolves to and
// whether BATCH may run the job at all.
//
// Sources are split across parallel subtasks: subtask i of n reads its own
// share. Sinks are opened once per subtask and finished once per job.
package connector

import (
	"context"
	"fmt"
	"strconv"
	"strings"

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

// Recycler is implemented by readers that can reuse the memory of a value
// they emitted once the job is done with it. The task hands a value back
// only when it provably kept no reference to it: a filter chained right
// after the source rejected it, or a map step there computed an output
// that shares no map or list with it, or picked a part of it (which is
// then cut out of it first: the values a reader builds must be trees, no
// map, row or list reachable twice). See operator.Chain.RecycleSourceValues.
// Recycle runs on the reader's goroutine, between its emits.
type Recycler interface {
	Recycle(v any)
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

// ValueReleaser is implemented by writers, and by a chain's output
// collectors, that can say they keep no reference to a record's value
// (nor to the maps, rows and lists in it) once Write or Collect returns: they
// encode or count it at once (a STREAMING edge does not: it buffers
// records until it flushes; a wrapper answers for what it wraps). The
// task may then reuse the memory of the values it hands them for the
// next record (see operator.Chain.Open). Values themselves (strings, byte
// slices) are never changed, only the maps, rows and lists holding them
// are refilled.
type ValueReleaser interface {
	ReleasesValues() bool
}

// ReleasesValues reports whether x says it keeps no reference to the
// values it is given (ValueReleaser).
func ReleasesValues(x any) bool {
	r, ok := x.(ValueReleaser)
	return ok && r.ReleasesValues()
}

// Finisher is implemented by sinks that do job-wide work once every writer
// of every subtask has closed (e.g. write a _SUCCESS marker).
type Finisher interface {
	Finish(ctx context.Context) error
}

// Positioned is implemented by readers that can report and restore how far
// they have read, so a checkpoint can store a source's position and a
// restore can resume right after it (exactly-once STREAMING, issue #7).
// Position is taken between two Read calls; Seek is called on a freshly
// opened reader (same index and parallelism) before its first Read.
type Positioned interface {
	// Position encodes the reader's position: the next value to read.
	Position() ([]byte, error)
	// Seek moves the reader to a position that Position returned.
	Seek(pos []byte) error
}

// PositionedFor is implemented by Positioned readers that need to know
// which checkpoint a position belongs to, for example a Kafka reader that
// commits exactly checkpoint id's offsets to its consumer group when
// CheckpointListener.CheckpointComplete(id) arrives (completion
// notifications may be merged or skipped, so counting positions is not
// enough). At checkpoint id's barrier the task calls PositionFor(id)
// instead of Position; Position is still used for a position that belongs
// to no checkpoint (a finished source's end position).
type PositionedFor interface {
	Positioned
	PositionFor(id int64) ([]byte, error)
}

// encodeInts and decodeInts are the text encoding of reader positions.
func encodeInts(v ...int64) []byte {
	var b []byte
	for i, x := range v {
		if i > 0 {
			b = append(b, ':')
		}
		b = strconv.AppendInt(b, x, 10)
	}
	return b
}

func decodeInts(pos []byte, n int) ([]int64, error) {
	parts := strings.Split(string(pos), ":")
	if len(parts) != n {
		return nil, fmt.Errorf("bad source position %q", pos)
	}
	out := make([]int64, n)
	for i, p := range parts {
		x, err := strconv.ParseInt(p, 10, 64)
		if err != nil || x < 0 {
			return nil, fmt.Errorf("bad source position %q", pos)
		}
		out[i] = x
	}
	return out, nil
}

// The writers that keep nothing say so (a method of another signature
// would silently turn reuse off).
var (
	_ ValueReleaser = (*printWriter)(nil)
	_ ValueReleaser = discardWriter{}
	_ ValueReleaser = (*fileWriter)(nil)
)
