package connector

import (
	"context"
	"fmt"
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

// Position is the index of the next element.
func (r *elementsReader) Position() ([]byte, error) { return encodeInts(int64(r.pos)), nil }

// Seek resumes at an element index Position returned.
func (r *elementsReader) Seek(pos []byte) error {
	v, err := decodeInts(pos, 1)
	if err != nil {
		return err
	}
	if (int(v[0])-r.pos)%r.step != 0 {
		return fmt.Errorf("elements: position %d is not this subtask's", v[0])
	}
	r.pos = int(v[0])
	return nil
}
