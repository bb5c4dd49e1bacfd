package connector

import (
	"context"
	"fmt"
	"io"
	"time"

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
	r := &datagenReader{d: d, seq: int64(index), step: int64(parallelism), start: time.Now()}
	if d.RatePerSecond > 0 {
		// This subtask's share of the rate: one record every `every`.
		r.every = time.Duration(float64(time.Second) * float64(parallelism) / float64(d.RatePerSecond))
	}
	return r, nil
}

type datagenReader struct {
	d         Datagen
	seq, step int64
	emitted   int64
	start     time.Time
	every     time.Duration
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
	r.seq, r.emitted, r.start = v[0], 0, time.Now()
	return nil
}

func (r *datagenReader) Read(ctx context.Context, max int, emit func(any)) error {
	n := max
	if r.every > 0 {
		// Emit what is due now; wait for the next one if nothing is.
		due := int64(time.Since(r.start)/r.every) + 1 - r.emitted
		if due <= 0 {
			wait := time.Until(r.start.Add(time.Duration(r.emitted) * r.every))
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
			due = 1
		}
		if int64(n) > due {
			n = int(due)
		}
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
		r.emitted++
	}
	if r.d.Count >= 0 && r.seq >= r.d.Count {
		return io.EOF
	}
	return nil
}

func (r *datagenReader) Close() error { return nil }
