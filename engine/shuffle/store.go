package shuffle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Store holds the materialized output of BATCH stages.
//
// Layout (relative to the store's root):
//
//	edge-<edge>/part-<partition>/from-<producer>   records (value.RecordWriter frames)
//	stage-<stage>/subtask-<producer>.manifest      JSON Manifest, written last
//
// A producer's output counts only once its manifest exists; a re-run of a
// producer overwrites its own files and manifest, so retries are idempotent.
type Store interface {
	// Create opens a partition for writing; it becomes visible on Close.
	Create(ctx context.Context, edge, partition, producer int) (io.WriteCloser, error)
	// Open reads a partition written by Create.
	Open(ctx context.Context, edge, partition, producer int) (io.ReadCloser, error)
	// Commit writes a producer's manifest.
	Commit(ctx context.Context, stage, producer int, m Manifest) error
	// Manifest reads a producer's manifest; ErrNoManifest when absent.
	Manifest(ctx context.Context, stage, producer int) (Manifest, error)
}

// ErrNoManifest says a producer has not finished.
var ErrNoManifest = errors.New("shuffle: no manifest")

// Manifest describes one producer subtask's finished output.
type Manifest struct {
	Stage     int   `json:"stage"`
	Subtask   int   `json:"subtask"`
	Attempt   int   `json:"attempt"`
	Records   int64 `json:"records"`
	Bytes     int64 `json:"bytes"`
	RecordsIn int64 `json:"recordsIn"`
}

// PartitionPath is the store-relative name of a partition file.
func PartitionPath(edge, partition, producer int) string {
	return fmt.Sprintf("edge-%d/part-%d/from-%d", edge, partition, producer)
}

// ManifestPath is the store-relative name of a manifest.
func ManifestPath(stage, producer int) string {
	return fmt.Sprintf("stage-%d/subtask-%d.manifest", stage, producer)
}

// LocalStore is a Store in a local directory.
type LocalStore struct{ Dir string }

type localWriter struct {
	f     *os.File
	final string
}

func (w *localWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

// Abort drops the temp file: nothing appears under the final name.
func (w *localWriter) Abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

func (w *localWriter) Close() error {
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return err
	}
	return os.Rename(w.f.Name(), w.final)
}

func (s LocalStore) Create(_ context.Context, edge, partition, producer int) (io.WriteCloser, error) {
	final := filepath.Join(s.Dir, PartitionPath(edge, partition, producer))
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(final), ".tmp-*")
	if err != nil {
		return nil, err
	}
	return &localWriter{f: f, final: final}, nil
}

func (s LocalStore) Open(_ context.Context, edge, partition, producer int) (io.ReadCloser, error) {
	return os.Open(filepath.Join(s.Dir, PartitionPath(edge, partition, producer)))
}

func (s LocalStore) Commit(_ context.Context, stage, producer int, m Manifest) error {
	final := filepath.Join(s.Dir, ManifestPath(stage, producer))
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return err
	}
	b, _ := json.Marshal(m)
	tmp := final + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

func (s LocalStore) Manifest(_ context.Context, stage, producer int) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(filepath.Join(s.Dir, ManifestPath(stage, producer)))
	if errors.Is(err, os.ErrNotExist) {
		return m, ErrNoManifest
	}
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}
