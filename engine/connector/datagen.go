package connector

import (
	"context"
	"fmt"
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
	return &datagenReader{d: d, seq: int64(index), step: int64(parallelism), pace: newPacer(d.RatePerSecond, parallelism)}, nil
}

type datagenReader struct {
	d         Datagen
	seq, step int64
	pace      pacer
}

// Position is the next sequence number (what a checkpoint stores).
func (r *datagenReader) Position() ([]byte, error) { return encodeInts(r.seq), nil }

// Seek resumes at a sequence number Position returned. A rate starts over
// from now.
func (r *datagenReader) Seek(pos []byte) error {
	v, err := decodeInts(pos, 1)
	if err != nil {
		return err
	}
	if (v[0]-r.seq)%r.step != 0 {
		return fmt.Errorf("datagen: position %d is not this subtask's (first %d, step %d)", v[0], r.seq, r.step)
	}
	r.seq = v[0]
	r.pace.restart()
	return nil
}

func (r *datagenReader) Read(ctx context.Context, max int, emit func(any)) error {
	n, err := r.pace.due(ctx, max)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if r.d.Count >= 0 && r.seq >= r.d.Count {
			return io.EOF
		}
		v, err := r.d.Value.Eval1(r.seq)
		if err != nil {
			return err
		}
		emit(v)
		r.seq += r.step
		r.pace.sent(1)
	}
	if r.d.Count >= 0 && r.seq >= r.d.Count {
		return io.EOF
	}
	return nil
}

func (r *datagenReader) Close() error { return nil }
