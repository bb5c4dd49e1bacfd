package connector

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// This file is the one place that knows where files live. Sources and sinks
// talk to a Location (a local directory or an S3 bucket prefix) so the file
// formats in files.go are written once and work on both.

// S3Config says how to reach an S3-compatible store (MinIO, AWS S3, ...).
// It is passed in rather than read from the environment inside the
// connector so a worker, the CLI and tests can each decide where it comes
// from (a Kubernetes secret, flags, a test server).
type S3Config struct {
	// Endpoint is host:port, e.g. "127.0.0.1:9000" or "s3.amazonaws.com".
	// An http:// or https:// scheme is accepted and overrides Secure.
	Endpoint string
	// AccessKey and SecretKey are static credentials; both empty means
	// anonymous access.
	AccessKey string
	SecretKey string
	// Region is the bucket region; empty lets the client discover it.
	Region string
	// Secure uses HTTPS.
	Secure bool
	// InsecureSkipVerify accepts any server certificate (self-signed test
	// setups only).
	InsecureSkipVerify bool
	// CAPEM is PEM CA certificates to trust for HTTPS in addition to the
	// system roots (a store whose certificate a private CA signed). A
	// string, not bytes, so that S3Config stays comparable: clients are
	// cached by their config.
	CAPEM string
}

// S3ConfigFromEnv reads an S3Config from FLINKJOB_S3_ENDPOINT,
// FLINKJOB_S3_ACCESS_KEY, FLINKJOB_S3_SECRET_KEY, FLINKJOB_S3_REGION,
// FLINKJOB_S3_SECURE and FLINKJOB_S3_INSECURE_SKIP_VERIFY (booleans as
// strconv.ParseBool reads them; anything else is false) and
// FLINKJOB_S3_CA_PEM (the operator sets it from the job's
// spec.storage.s3.tls.caSecretRef). The keys fall back
// to AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the region to AWS_REGION,
// so the standard AWS variables work unchanged.
func S3ConfigFromEnv() S3Config { return S3ConfigFrom(os.Getenv) }

// EnvOf is a getenv over vars (name, value pairs), falling back to
// fallback (nil: unset) for the names vars does not set.
func EnvOf(vars [][2]string, fallback func(string) string) func(string) string {
	return func(k string) string {
		for _, kv := range vars {
			if kv[0] == k {
				return kv[1]
			}
		}
		if fallback != nil {
			return fallback(k)
		}
		return ""
	}
}

// S3ConfigFrom is S3ConfigFromEnv reading the variables through getenv
// (the operator and the CLI read a job's storage as the same variables
// its workers get).
func S3ConfigFrom(getenv func(string) string) S3Config {
	envBool := func(k string) bool {
		b, _ := strconv.ParseBool(getenv(k))
		return b
	}
	firstEnv := func(keys ...string) string {
		for _, k := range keys {
			if v := getenv(k); v != "" {
				return v
			}
		}
		return ""
	}
	return S3Config{
		Endpoint:           getenv("FLINKJOB_S3_ENDPOINT"),
		AccessKey:          firstEnv("FLINKJOB_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID"),
		SecretKey:          firstEnv("FLINKJOB_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"),
		Region:             firstEnv("FLINKJOB_S3_REGION", "AWS_REGION"),
		Secure:             envBool("FLINKJOB_S3_SECURE"),
		InsecureSkipVerify: envBool("FLINKJOB_S3_INSECURE_SKIP_VERIFY"),
		CAPEM:              getenv("FLINKJOB_S3_CA_PEM"),
	}
}

// FileInfo describes one file of a Location.
type FileInfo struct {
	// Name is the file's path relative to the location, "/"-separated. It is
	// empty when the location itself is a file.
	Name string
	// Size is the file's length in bytes.
	Size int64
}

// FileWriter is a file being written. Nothing is visible under the final
// name until Commit returns, so a crashed or aborted writer never leaves a
// half-written file where readers look.
type FileWriter interface {
	io.Writer
	// Commit makes the written bytes visible under the final name.
	Commit() error
	// Abort discards what was written. It is a no-op after Commit.
	Abort()
}

// Location is a place where files live: a local directory (or file) or an
// S3 bucket prefix (or object). Names are relative to the location and
// "/"-separated; the empty name means the location itself, which is how a
// location naming a single file is read.
type Location interface {
	// String is the location as a path or s3:// URL.
	String() string
	// URL is the full path or s3:// URL of name, for messages.
	URL(name string) string
	// List returns the files under the location, recursively, sorted by
	// name. Files and directories whose name starts with "_" or "." are
	// skipped (markers such as _SUCCESS and in-progress temp files), as
	// Hadoop and Flink do. A location that is itself a file lists as one
	// entry with an empty name. A location that does not exist is an error.
	List(ctx context.Context) ([]FileInfo, error)
	// Open streams a file; the content is never held in memory whole.
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	// OpenAt opens a file for reads at offsets (formats such as Parquet
	// whose index is at the end) and returns its size. On S3 each read is
	// a ranged GET.
	OpenAt(ctx context.Context, name string) (readerAtCloser, int64, error)
	// Rename moves a complete file to a new name, replacing what is there:
	// a rename locally (atomic), a server-side copy then a delete on S3
	// (the new name appears whole; a crash between the two leaves both,
	// so callers must be able to redo it).
	Rename(ctx context.Context, from, to string) error
	// Create starts writing a file that appears only on Commit.
	Create(ctx context.Context, name string) (FileWriter, error)
	// Sub is the location of the directory dir under this one.
	Sub(dir string) Location
	// Exists reports whether the file exists.
	Exists(ctx context.Context, name string) (bool, error)
	// DeletePrefix deletes every file whose name starts with prefix
	// (hidden ones included; "" deletes everything). A missing location is
	// not an error. Writes in progress are not files: see abortUploads.
	DeletePrefix(ctx context.Context, prefix string) error
}

// ParseLocation turns a path into a Location: "s3://bucket/prefix" (or
// s3a://, as Hadoop users write it) is an S3 location reached through cfg;
// "file:///abs/path" and plain paths are local. cfg is only used for S3.
func ParseLocation(p string, cfg S3Config) (Location, error) {
	if p == "" {
		return nil, errors.New("empty path")
	}
	scheme, rest, ok := strings.Cut(p, "://")
	if !ok {
		return &localLocation{root: filepath.Clean(p)}, nil
	}
	switch strings.ToLower(scheme) {
	case "file":
		if rest == "" {
			return nil, fmt.Errorf("%s: no path after file://", p)
		}
		return &localLocation{root: filepath.Clean(filepath.FromSlash(rest))}, nil
	case "s3", "s3a":
		bucket, prefix, _ := strings.Cut(rest, "/")
		if bucket == "" {
			return nil, fmt.Errorf("%s: no bucket in s3 URL", p)
		}
		client, err := NewS3Client(cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return &s3Location{client: client, bucket: bucket, prefix: prefix}, nil
	default:
		return nil, fmt.Errorf("%s: unsupported scheme %q (use a local path or s3://bucket/prefix)", p, scheme)
	}
}

// NewS3Client builds a minio-go client from cfg: an http:// or https://
// endpoint overrides Secure; no endpoint is an error rather than AWS by
// default. The checkpoint store shares it.
func NewS3Client(cfg S3Config) (*minio.Client, error) {
	endpoint, secure := cfg.Endpoint, cfg.Secure
	if strings.Contains(endpoint, "://") {
		u, err := url.Parse(endpoint)
		if err != nil {
			return nil, fmt.Errorf("S3 endpoint %q: %w", endpoint, err)
		}
		switch u.Scheme {
		case "http":
			secure = false
		case "https":
			secure = true
		default:
			return nil, fmt.Errorf("S3 endpoint %q: scheme must be http or https", endpoint)
		}
		endpoint = u.Host
	}
	if endpoint == "" {
		// Defaulting to AWS would turn a forgotten setting into confusing
		// credential errors against the wrong service.
		return nil, errors.New("no S3 endpoint configured (set FLINKJOB_S3_ENDPOINT or the job's storage endpoint)")
	}
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, err
	}
	if cfg.InsecureSkipVerify && tr.TLSClientConfig != nil {
		tr.TLSClientConfig.InsecureSkipVerify = true
	}
	if cfg.CAPEM != "" && tr.TLSClientConfig != nil {
		// In addition to the system roots, as the field says: a bucket
		// behind a public certificate keeps working.
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM([]byte(cfg.CAPEM)) {
			return nil, errors.New("S3 CA certificates (spec.storage.s3.tls.caSecretRef or FLINKJOB_S3_CA_PEM): no PEM certificate in them")
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return minio.New(endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    secure,
		Region:    cfg.Region,
		Transport: tr,
	})
}

// EnsureBucket creates bucket unless it exists, so a fresh MinIO (tests, the
// local CLI) can be written to without a separate admin tool.
func EnsureBucket(ctx context.Context, cfg S3Config, bucket string) error {
	client, err := NewS3Client(cfg)
	if err != nil {
		return err
	}
	ok, err := client.BucketExists(ctx, bucket)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", bucket, err)
	}
	if ok {
		return nil
	}
	err = client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: cfg.Region})
	if err != nil && minio.ToErrorResponse(err).Code != minio.BucketAlreadyOwnedByYou {
		return fmt.Errorf("bucket %s: %w", bucket, err)
	}
	return nil
}

// hidden reports whether a relative name has a component starting with "_"
// or ".": such files are markers or in-progress writes, never data.
func hidden(name string) bool {
	for _, c := range strings.Split(name, "/") {
		if strings.HasPrefix(c, "_") || strings.HasPrefix(c, ".") {
			return true
		}
	}
	return false
}

// randomSuffix names temp files so concurrent or retried writers of the
// same final name never share one.
func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ---- local files ----

type localLocation struct {
	root string
}

func (l *localLocation) String() string { return l.root }

func (l *localLocation) path(name string) string {
	if name == "" {
		return l.root
	}
	return filepath.Join(l.root, filepath.FromSlash(name))
}

func (l *localLocation) URL(name string) string { return l.path(name) }

func (l *localLocation) Sub(dir string) Location { return &localLocation{root: l.path(dir)} }

func (l *localLocation) List(ctx context.Context) ([]FileInfo, error) {
	st, err := os.Stat(l.root)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []FileInfo{{Name: "", Size: st.Size()}}, nil
	}
	var out []FileInfo
	err = filepath.WalkDir(l.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == l.root {
			return nil
		}
		if n := d.Name(); strings.HasPrefix(n, "_") || strings.HasPrefix(n, ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(l.root, p)
		if err != nil {
			return err
		}
		out = append(out, FileInfo{Name: filepath.ToSlash(rel), Size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (l *localLocation) Open(_ context.Context, name string) (io.ReadCloser, error) {
	return os.Open(l.path(name))
}

func (l *localLocation) OpenAt(_ context.Context, name string) (readerAtCloser, int64, error) {
	f, err := os.Open(l.path(name))
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

func (l *localLocation) Rename(_ context.Context, from, to string) error {
	dst := l.path(to)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Rename(l.path(from), dst); err != nil {
		return err
	}
	// Persist the rename, as localWriter.Commit does.
	if d, err := os.Open(filepath.Dir(dst)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

func (l *localLocation) Create(_ context.Context, name string) (FileWriter, error) {
	final := l.path(name)
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// Same directory as the final name so the rename is atomic (one
	// file system); the leading dot hides it from List while in progress.
	tmp := filepath.Join(dir, "."+filepath.Base(final)+".tmp-"+randomSuffix())
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	return &localWriter{f: f, bw: bufio.NewWriterSize(f, 64<<10), tmp: tmp, final: final}, nil
}

func (l *localLocation) Exists(_ context.Context, name string) (bool, error) {
	_, err := os.Stat(l.path(name))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

func (l *localLocation) DeletePrefix(ctx context.Context, prefix string) error {
	st, err := os.Stat(l.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		if prefix == "" {
			return os.Remove(l.root)
		}
		return nil
	}
	return filepath.WalkDir(l.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(l.root, p)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(filepath.ToSlash(rel), prefix) {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	})
}

// localWriter writes a temp file and renames it over the final name on
// Commit, after an fsync, so the final name only ever holds complete data.
type localWriter struct {
	f     *os.File
	bw    *bufio.Writer
	tmp   string
	final string
	done  bool
}

func (w *localWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("write after commit or abort")
	}
	return w.bw.Write(p)
}

func (w *localWriter) Commit() error {
	if w.done {
		return errors.New("commit after commit or abort")
	}
	w.done = true
	err := w.bw.Flush()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.tmp, w.final)
	}
	if err != nil {
		_ = os.Remove(w.tmp)
		return fmt.Errorf("%s: %w", w.final, err)
	}
	// Persist the rename itself; without it a crash could lose a file the
	// job already reported as written.
	if d, err := os.Open(filepath.Dir(w.final)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

func (w *localWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	_ = w.f.Close()
	_ = os.Remove(w.tmp)
}

// ---- S3 ----

// s3PartSize is the multipart part size of streamed uploads. minio-go
// buffers one part per upload, so this bounds a writer's memory; with
// S3's 10,000-part limit it also bounds one object to 160 GiB. Left to
// itself minio-go would pick ~537 MiB parts for an unknown size.
const s3PartSize = 16 << 20

type s3Location struct {
	client *minio.Client
	bucket string
	prefix string
}

func (l *s3Location) String() string { return "s3://" + l.bucket + "/" + l.prefix }

// dirPrefix is the key prefix of the files under the location.
func (l *s3Location) dirPrefix() string {
	if l.prefix == "" || strings.HasSuffix(l.prefix, "/") {
		return l.prefix
	}
	return l.prefix + "/"
}

func (l *s3Location) key(name string) string {
	if name == "" {
		return l.prefix
	}
	return l.dirPrefix() + name
}

func (l *s3Location) URL(name string) string { return "s3://" + l.bucket + "/" + l.key(name) }

func (l *s3Location) Sub(dir string) Location {
	p := l.dirPrefix() + dir
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return &s3Location{client: l.client, bucket: l.bucket, prefix: p}
}

// errNoSuchPrefix is List's error for an S3 prefix with nothing under it;
// it matches fs.ErrNotExist like a missing local directory does.
type errNoSuchPrefix struct{}

func (errNoSuchPrefix) Error() string        { return "no such file or prefix" }
func (errNoSuchPrefix) Is(target error) bool { return target == fs.ErrNotExist }

func (l *s3Location) List(ctx context.Context) ([]FileInfo, error) {
	// A prefix that is itself an object is a single-file location, the S3
	// counterpart of a local path naming a file.
	if l.prefix != "" && !strings.HasSuffix(l.prefix, "/") {
		st, err := l.client.StatObject(ctx, l.bucket, l.prefix, minio.StatObjectOptions{})
		if err == nil {
			return []FileInfo{{Name: "", Size: st.Size}}, nil
		}
		if !isNotFound(err) {
			return nil, fmt.Errorf("%s: %w", l.String(), err)
		}
	}
	dp := l.dirPrefix()
	var out []FileInfo
	seen := 0
	for obj := range l.client.ListObjects(ctx, l.bucket, minio.ListObjectsOptions{Prefix: dp, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("%s: %w", l.String(), obj.Err)
		}
		seen++
		name := strings.TrimPrefix(obj.Key, dp)
		if name == "" || strings.HasSuffix(name, "/") || hidden(name) {
			continue // directory markers some tools create, and hidden files
		}
		out = append(out, FileInfo{Name: name, Size: obj.Size})
	}
	if seen == 0 {
		// S3 has no directories: nothing under the prefix is the only way
		// a typo in the path shows, so it must not read as empty input.
		return nil, fmt.Errorf("%s: %w", l.String(), errNoSuchPrefix{})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (l *s3Location) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	obj, err := l.client.GetObject(ctx, l.bucket, l.key(name), minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.URL(name), err)
	}
	// Stat issues the request now, so a missing object fails here with
	// its name rather than on the first Read deep inside a decoder.
	if _, err := obj.Stat(); err != nil {
		_ = obj.Close()
		return nil, fmt.Errorf("%s: %w", l.URL(name), err)
	}
	return obj, nil
}

func (l *s3Location) OpenAt(ctx context.Context, name string) (readerAtCloser, int64, error) {
	obj, err := l.client.GetObject(ctx, l.bucket, l.key(name), minio.GetObjectOptions{})
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", l.URL(name), err)
	}
	st, err := obj.Stat()
	if err != nil {
		_ = obj.Close()
		return nil, 0, fmt.Errorf("%s: %w", l.URL(name), err)
	}
	return obj, st.Size, nil
}

// Rename copies server side (ComposeObject, which also copies objects
// over S3's 5 GiB single-copy limit in parts) and deletes the source.
func (l *s3Location) Rename(ctx context.Context, from, to string) error {
	_, err := l.client.ComposeObject(ctx,
		minio.CopyDestOptions{Bucket: l.bucket, Object: l.key(to)},
		minio.CopySrcOptions{Bucket: l.bucket, Object: l.key(from)})
	if err != nil {
		return fmt.Errorf("copying %s to %s: %w", l.URL(from), l.URL(to), err)
	}
	if err := l.client.RemoveObject(ctx, l.bucket, l.key(from), minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
		return fmt.Errorf("%s: %w", l.URL(from), err)
	}
	return nil
}

func (l *s3Location) Create(ctx context.Context, name string) (FileWriter, error) {
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	w := &s3Writer{pw: pw, cancel: cancel, done: make(chan struct{}), url: l.URL(name)}
	w.bw = bufio.NewWriterSize(pw, 64<<10)
	go func() {
		defer close(w.done)
		// Size -1 makes minio-go stream a multipart upload, reading one
		// part at a time from the pipe. S3 shows the object only once the
		// upload completes, which is what makes Commit atomic; a failed or
		// aborted upload is aborted server side by minio-go.
		_, err := l.client.PutObject(ctx, l.bucket, l.key(name), pr, -1, minio.PutObjectOptions{
			PartSize:    s3PartSize,
			ContentType: contentType(name),
		})
		// Unblock a Write waiting on a reader that has given up.
		_ = pr.CloseWithError(errOr(err, io.ErrClosedPipe))
		w.err = err
	}()
	return w, nil
}

func errOr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".jsonl":
		return "application/x-ndjson"
	case ".csv":
		return "text/csv"
	case ".txt":
		return "text/plain; charset=utf-8"
	case ".parquet":
		return "application/vnd.apache.parquet"
	}
	return "application/octet-stream"
}

func (l *s3Location) Exists(ctx context.Context, name string) (bool, error) {
	_, err := l.client.StatObject(ctx, l.bucket, l.key(name), minio.StatObjectOptions{})
	if err == nil {
		return true, nil
	}
	if isNotFound(err) {
		return false, nil
	}
	return false, fmt.Errorf("%s: %w", l.URL(name), err)
}

func (l *s3Location) DeletePrefix(ctx context.Context, prefix string) error {
	if l.prefix != "" && !strings.HasSuffix(l.prefix, "/") && prefix == "" {
		// The location may be a single object; delete it and anything
		// under it as a directory.
		if err := l.client.RemoveObject(ctx, l.bucket, l.prefix, minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
			return fmt.Errorf("%s: %w", l.String(), err)
		}
	}
	full := l.dirPrefix() + prefix
	objs := make(chan minio.ObjectInfo)
	var listErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(objs)
		for obj := range l.client.ListObjects(ctx, l.bucket, minio.ListObjectsOptions{Prefix: full, Recursive: true}) {
			if obj.Err != nil {
				if !isNotFound(obj.Err) {
					listErr = obj.Err
				}
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
	for e := range l.client.RemoveObjects(ctx, l.bucket, objs, minio.RemoveObjectsOptions{}) {
		if rmErr == nil && !isNotFound(e.Err) {
			rmErr = fmt.Errorf("s3://%s/%s: %w", l.bucket, e.ObjectName, e.Err)
		}
	}
	wg.Wait()
	if listErr != nil {
		return fmt.Errorf("%s: %w", l.URL(prefix), listErr)
	}
	if rmErr != nil {
		return rmErr
	}
	return ctx.Err()
}

// abortUploads aborts the multipart uploads in progress under prefix of an
// S3 location: writes that a killed writer left open hold storage and, for
// the transactional file sink, data that must never appear. Local
// locations have nothing to do here (their temp files are files). The
// listing is bucket-wide and filtered here, because MinIO lists uploads by
// prefix only for a prefix that is a whole object name; so it is kept out
// of DeletePrefix, which other callers use often.
func abortUploads(ctx context.Context, loc Location, prefix string) error {
	l, ok := loc.(*s3Location)
	if !ok {
		return nil
	}
	full := l.dirPrefix() + prefix
	for u := range l.client.ListIncompleteUploads(ctx, l.bucket, "", true) {
		if u.Err != nil {
			if isNotFound(u.Err) {
				break
			}
			return fmt.Errorf("%s: listing incomplete uploads: %w", l.URL(prefix), u.Err)
		}
		if !strings.HasPrefix(u.Key, full) {
			continue
		}
		if err := l.client.RemoveIncompleteUpload(ctx, l.bucket, u.Key); err != nil && !isNotFound(err) {
			return fmt.Errorf("s3://%s/%s: aborting upload: %w", l.bucket, u.Key, err)
		}
	}
	return nil
}

func isNotFound(err error) bool {
	switch minio.ToErrorResponse(err).Code {
	case minio.NoSuchKey, minio.NoSuchBucket:
		return true
	}
	return false
}

// s3Writer feeds a streaming PutObject through a pipe. Commit closes the
// pipe (the upload completes and the object appears); Abort breaks it with
// an error (the upload is aborted and no object appears).
type s3Writer struct {
	pw     *io.PipeWriter
	bw     *bufio.Writer
	cancel context.CancelFunc
	done   chan struct{}
	err    error // the upload's result, read after done is closed
	url    string
	closed bool
}

var errAborted = errors.New("write aborted")

func (w *s3Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.New("write after commit or abort")
	}
	n, err := w.bw.Write(p)
	if err != nil {
		return n, w.uploadErr(err)
	}
	return n, nil
}

// uploadErr prefers the upload's own error (the cause) over the pipe's.
func (w *s3Writer) uploadErr(err error) error {
	select {
	case <-w.done:
		if w.err != nil {
			err = w.err
		}
	default:
	}
	return fmt.Errorf("%s: %w", w.url, err)
}

func (w *s3Writer) Commit() error {
	if w.closed {
		return errors.New("commit after commit or abort")
	}
	w.closed = true
	defer w.cancel()
	if err := w.bw.Flush(); err != nil {
		w.pw.CloseWithError(errAborted)
		<-w.done
		return w.uploadErr(err)
	}
	_ = w.pw.Close()
	<-w.done
	if w.err != nil {
		return fmt.Errorf("%s: %w", w.url, w.err)
	}
	return nil
}

func (w *s3Writer) Abort() {
	if w.closed {
		return
	}
	w.closed = true
	// The pipe error ends the upload through minio-go's own failure path,
	// which aborts the multipart upload on the server; cancelling as well
	// stops a part upload that is in flight.
	_ = w.pw.CloseWithError(errAborted)
	w.cancel()
	<-w.done
}
