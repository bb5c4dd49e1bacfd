package connector

import (
	"context"
	"io"

	"github.com/flinkjob/flinkjob/engine/expr"
)

// Datagen generates records from their sequence number with a CEL
// expression over `seq`, like Flink's DataGeneratorSource with a generator
// function. With a count it is bounded; without, unbounded. Subtask i of n
// generates the sequence numbers i, i+n, i+2n, ... so the output is the same
// at any parallelism. A rate limits records per second over all subtasks.
type Datagen struct {
	Value *expr.Program
	// Count bounds the source; negative means unbounded.
	Count         int64
	RatePerSecond int64
}

func (d Datagen) Bounded() bool { return d.Count >= 0 }

func (d Datagen) Open(_ context.Context, index, parallelism int) (Reader, error) {
	return &datagenReader{d: d, strided: newStrided("datagen", index, parallelism, d.RatePerSecond)}, nil
}

// datagenReader's position is the next sequence number (strided).
type datagenReader struct {
	d Datagen
	strided
}

func (r *datagenReader) Read(ctx context.Context, max int, emit func(any)) error {
	n, err := r.pace.due(ctx, max)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if r.d.Count >= 0 && r.next >= r.d.Count {
			return io.EOF
		}
		v, err := r.d.Value.Eval1(r.next)
		if err != nil {
			return err
		}
		emit(v)
		r.next += r.step
		r.pace.sent(1)
	}
	if r.d.Count >= 0 && r.next >= r.d.Count {
		return io.EOF
	}
	return nil
}

func (r *datagenReader) Close() error { return nil }
