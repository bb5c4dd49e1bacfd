package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/shuffle"
)

// LocationStore is a shuffle.Store on a connector.Location: an S3 prefix
// (through minio-go: multipart streaming uploads, visible only when
// complete; streaming reads) or a local directory. Re-running a producer
// overwrites its own objects, so retries are idempotent.
type LocationStore struct {
	Loc connector.Location
}

// NewLocationStore opens the store at url (s3://bucket/prefix or a path).
func NewLocationStore(url string, s3 connector.S3Config) (*LocationStore, error) {
	loc, err := connector.ParseLocation(url, s3)
	if err != nil {
		return nil, err
	}
	return &LocationStore{Loc: loc}, nil
}

type commitOnClose struct{ w connector.FileWriter }

func (c commitOnClose) Write(p []byte) (int, error) { return c.w.Write(p) }
func (c commitOnClose) Close() error                { return c.w.Commit() }

// Abort discards the partition (an aborted multipart upload on S3, the
// temp file locally); a failing producer should call it rather than leave
// the upload to die with the process.
func (c commitOnClose) Abort() { c.w.Abort() }

func (s *LocationStore) Create(ctx context.Context, edge, partition, producer int) (io.WriteCloser, error) {
	w, err := s.Loc.Create(ctx, shuffle.PartitionPath(edge, partition, producer))
	if err != nil {
		return nil, err
	}
	return commitOnClose{w}, nil
}

func (s *LocationStore) Open(ctx context.Context, edge, partition, producer int) (io.ReadCloser, error) {
	return s.Loc.Open(ctx, shuffle.PartitionPath(edge, partition, producer))
}

func (s *LocationStore) Commit(ctx context.Context, stage, producer int, m shuffle.Manifest) error {
	w, err := s.Loc.Create(ctx, shuffle.ManifestPath(stage, producer))
	if err != nil {
		return err
	}
	b, _ := json.Marshal(m)
	if _, err := w.Write(b); err != nil {
		w.Abort()
		return err
	}
	return w.Commit()
}

func (s *LocationStore) Manifest(ctx context.Context, stage, producer int) (shuffle.Manifest, error) {
	var m shuffle.Manifest
	name := shuffle.ManifestPath(stage, producer)
	ok, err := s.Loc.Exists(ctx, name)
	if err != nil {
		return m, err
	}
	if !ok {
		return m, shuffle.ErrNoManifest
	}
	rc, err := s.Loc.Open(ctx, name)
	if err != nil {
		return m, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(rc, 1<<20)); err != nil {
		return m, err
	}
	return m, json.Unmarshal(buf.Bytes(), &m)
}

// noStore is the store of a BATCH stage that has no shuffle (a job of one
// stage) run without a shuffle location: such a stage reads and writes no
// partitions, so only its manifest arrives, and nobody reads it.
type noStore struct{}

var errNoStore = errors.New("no shuffle location: give --shuffle (s3://bucket/prefix/ or a directory)")

func (noStore) Create(context.Context, int, int, int) (io.WriteCloser, error) { return nil, errNoStore }
func (noStore) Open(context.Context, int, int, int) (io.ReadCloser, error)    { return nil, errNoStore }
func (noStore) Commit(context.Context, int, int, shuffle.Manifest) error      { return nil }
func (noStore) Manifest(context.Context, int, int) (shuffle.Manifest, error) {
	return shuffle.Manifest{}, shuffle.ErrNoManifest
}
