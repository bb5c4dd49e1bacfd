package connector

import (
	"context"
	"io"
)

// Elements is a bounded source of inline values. Subtask i of n reads
// elements i, i+n, i+2n, ... so the split is deterministic.
type Elements struct{ Values []any }

func (Elements) Bounded() bool { return true }

func (e Elements) Open(_ context.Context, index, parallelism int) (Reader, error) {
	return &elementsReader{vals: e.Values, pos: index, step: parallelism}, nil
}

type elementsReader struct {
	vals      []any
	pos, step int
}

func (r *elementsReader) Read(_ context.Context, max int, emit func(any)) error {
	for n := 0; n < max && r.pos < len(r.vals); n++ {
		emit(r.vals[r.pos])
		r.pos += r.step
	}
	if r.pos >= len(r.vals) {
		return io.EOF
	}
	return nil
}

func (r *elementsReader) Close() error { return nil }
