package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/value"
)

// txSink is a small exactly-once sink for the checkpoint tests, until the
// files connector's own exactly-once sink is used: records become visible
// (part-<subtask>-<checkpoint>.jsonl in the directory) only once the
// checkpoint that covers them completes.
//
//   - Write buffers a JSON line per record in memory.
//   - PreCommit(id) hands the lines written since the last checkpoint over
//     as the committable, which the task stores in checkpoint id's snapshot
//     (in S3): the transaction's content is durable with the checkpoint.
//   - Commit(id) writes the pending transactions up to id to their part
//     files (temp file and rename, so a name holds the whole file or none;
//     rewriting one gives the same content, so commits are idempotent).
//   - Recover(state) commits the restored transaction again (idempotent).
//   - Open deletes what an earlier attempt of this subtask staged at its end
//     (.staged-<subtask>-*); Close stages what is left (pending
//     transactions and the open one), and Finish, run once after every
//     subtask succeeded, makes the staged files visible.
type txSink struct{ dir string }

type txWriter struct {
	dir     string
	index   int
	buf     []byte
	pending map[int64][]byte
}

func (s txSink) Open(_ context.Context, index, _ int) (connector.Writer, error) {
	if s.dir == "" {
		return nil, fmt.Errorf("sink tx: TX_SINK_DIR is not set")
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	old, _ := filepath.Glob(filepath.Join(s.dir, fmt.Sprintf(".staged-%d-*", index)))
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return nil, err
		}
	}
	return &txWriter{dir: s.dir, index: index, pending: map[int64][]byte{}}, nil
}

func (w *txWriter) Write(r *value.Record) error {
	b, err := json.Marshal(r.Value)
	if err != nil {
		return err
	}
	w.buf = append(append(w.buf, b...), '\n')
	return nil
}

func (w *txWriter) PreCommit(_ context.Context, id int64) ([]byte, error) {
	w.pending[id] = w.buf
	state := binary.AppendVarint(nil, id)
	state = append(state, w.buf...)
	w.buf = nil
	return state, nil
}

func (w *txWriter) Commit(_ context.Context, id int64) error {
	ids := make([]int64, 0, len(w.pending))
	for p := range w.pending {
		if p <= id {
			ids = append(ids, p)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, p := range ids {
		if err := w.publish(fmt.Sprintf("part-%d-%d.jsonl", w.index, p), w.pending[p]); err != nil {
			return err
		}
		delete(w.pending, p)
	}
	return nil
}

func (w *txWriter) Recover(_ context.Context, state []byte) error {
	id, n := binary.Varint(state)
	if n <= 0 {
		return fmt.Errorf("sink tx: bad committable")
	}
	return w.publish(fmt.Sprintf("part-%d-%d.jsonl", w.index, id), state[n:])
}

// publish writes data under name in the directory, atomically.
func (w *txWriter) publish(name string, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	tmp := filepath.Join(w.dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(w.dir, name))
}

func (w *txWriter) Close() error {
	for p, data := range w.pending {
		if err := w.publish(fmt.Sprintf(".staged-%d-%d", w.index, p), data); err != nil {
			return err
		}
	}
	return w.publish(fmt.Sprintf(".staged-%d-final", w.index), w.buf)
}

func (w *txWriter) Abort() {}

// Finish makes every staged file visible.
func (s txSink) Finish(context.Context) error {
	staged, err := filepath.Glob(filepath.Join(s.dir, ".staged-*"))
	if err != nil {
		return err
	}
	for _, f := range staged {
		name := "part-" + strings.TrimPrefix(filepath.Base(f), ".staged-") + ".jsonl"
		if err := os.Rename(f, filepath.Join(s.dir, name)); err != nil {
			return err
		}
	}
	return nil
}
