package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/minio/minio-go/v7"

	"github.com/flinkjob/flinkjob/engine/connector"
)

// S3Store is a Store under a prefix of an S3 bucket (MinIO, AWS S3, ...):
// the store of a job running as worker pods, where every subtask writes its
// own snapshots straight to object storage and only small acknowledgements
// go to the coordinator (see the worker package).
//
// Every object is written with one PUT of known size, so it appears whole
// or not at all; together with this package writing a directory's
// _COMPLETED marker last (MarkComplete, Copy) that gives write-then-complete
// semantics: a reader that sees the marker sees every snapshot.
//
// It talks to S3 with minio-go directly rather than through
// connector.Location: a Location hides names starting with "_" (the
// _COMPLETED marker among them) from listings, as data readers must, and
// streams uploads through multipart buffers sized for big part files,
// where snapshots are many small objects.
type S3Store struct {
	client *minio.Client
	bucket string
	prefix string // "" or ending in '/'
}

// NewS3Store opens the store at an s3://bucket/prefix/ URL (s3a:// too),
// reached with cfg. Nothing is contacted until the first call.
func NewS3Store(rawURL string, cfg connector.S3Config) (*S3Store, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok || (scheme != "s3" && scheme != "s3a") {
		return nil, fmt.Errorf("checkpoint store %q: not an s3://bucket/prefix/ URL", rawURL)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return nil, fmt.Errorf("checkpoint store %q: no bucket", rawURL)
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	client, err := connector.NewS3Client(cfg)
	if err != nil {
		return nil, fmt.Errorf("checkpoint store %q: %w", rawURL, err)
	}
	return &S3Store{client: client, bucket: bucket, prefix: prefix}, nil
}

// URL is the store's s3:// URL, ending in '/'.
func (s *S3Store) URL() string { return "s3://" + s.bucket + "/" + s.prefix }

func (s *S3Store) String() string { return s.URL() }

func (s *S3Store) key(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains("/"+name+"/", "/../") {
		return "", fmt.Errorf("checkpoint: bad object name %q", name)
	}
	return s.prefix + name, nil
}

// Put writes one object in a single PUT.
func (s *S3Store) Put(ctx context.Context, name string, data []byte) error {
	k, err := s.key(name)
	if err != nil {
		return err
	}
	_, err = s.client.PutObject(ctx, s.bucket, k, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true})
	if err != nil {
		return fmt.Errorf("checkpoint: writing s3://%s/%s: %w", s.bucket, k, err)
	}
	return nil
}

// Get reads one object; ErrNotFound if there is none.
func (s *S3Store) Get(ctx context.Context, name string) ([]byte, error) {
	k, err := s.key(name)
	if err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, k, minio.GetObjectOptions{})
	if err == nil {
		defer obj.Close()
		var b []byte
		if b, err = io.ReadAll(obj); err == nil {
			return b, nil
		}
	}
	if code := minio.ToErrorResponse(err).Code; code == minio.NoSuchKey {
		return nil, ErrNotFound
	}
	return nil, fmt.Errorf("checkpoint: reading s3://%s/%s: %w", s.bucket, k, err)
}

// List returns the names (relative to the store) of the objects whose name
// starts with prefix, markers included, sorted.
func (s *S3Store) List(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("checkpoint: listing s3://%s/%s: %w", s.bucket, s.prefix+prefix, obj.Err)
		}
		if strings.HasSuffix(obj.Key, "/") {
			continue // a directory marker some tools create
		}
		out = append(out, strings.TrimPrefix(obj.Key, s.prefix))
	}
	sort.Strings(out)
	return out, nil
}

// Delete removes every object whose name starts with prefix.
func (s *S3Store) Delete(ctx context.Context, prefix string) error {
	if s.prefix+prefix == "" {
		// Never empty a whole bucket by accident of an empty prefix.
		return errors.New("checkpoint: refusing to delete a whole bucket")
	}
	objs := make(chan minio.ObjectInfo)
	var listErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(objs)
		for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
			if obj.Err != nil {
				listErr = obj.Err
				return
			}
			select {
			case objs <- obj:
			case <-ctx.Done():
				return
			}
		}
	}()
	var rmErr error
	for e := range s.client.RemoveObjects(ctx, s.bucket, objs, minio.RemoveObjectsOptions{}) {
		if rmErr == nil && minio.ToErrorResponse(e.Err).Code != minio.NoSuchKey {
			rmErr = fmt.Errorf("checkpoint: deleting s3://%s/%s: %w", s.bucket, e.ObjectName, e.Err)
		}
	}
	wg.Wait()
	if listErr != nil {
		return fmt.Errorf("checkpoint: listing s3://%s/%s: %w", s.bucket, s.prefix+prefix, listErr)
	}
	if rmErr != nil {
		return rmErr
	}
	return ctx.Err()
}

// OpenURL is the Opener of a worker: s3:// and s3a:// URLs open an
// S3Store reached with cfg, anything else a LocalStore.
func OpenURL(cfg connector.S3Config) Opener {
	return func(u string) (Store, error) {
		if scheme, _, ok := strings.Cut(u, "://"); ok && (scheme == "s3" || scheme == "s3a") {
			return NewS3Store(u, cfg)
		}
		return OpenLocal(u)
	}
}
