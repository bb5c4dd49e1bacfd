package controllers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	miniogo "github.com/minio/minio-go/v7"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/checkpoint"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/shuffle"
	"github.com/flinkjob/flinkjob/worker/control"
)

func apiInvalid(gk schema.GroupKind, name string, errs field.ErrorList) error {
	return errors.NewInvalid(gk, name, errs)
}

// Storage is what the controller needs from a job's object storage.
type Storage interface {
	// ManifestExists reports whether a BATCH subtask's output manifest is there.
	ManifestExists(ctx context.Context, job *v1alpha1.FlinkJob, stage, index int) (bool, error)
	// DeleteJobData removes the job's own data (intermediate results,
	// checkpoints, control objects); savepoints stay.
	DeleteJobData(ctx context.Context, job *v1alpha1.FlinkJob) error

	// ReadControl returns a control object (e.g. "checkpoint-latest.json")
	// of the job, or nil without error when it does not exist.
	ReadControl(ctx context.Context, job *v1alpha1.FlinkJob, name string) ([]byte, error)
	// ReadControlIfChanged is ReadControl for a caller that already read
	// the object when its ETag was etag: while the ETag is the same it
	// returns Unchanged and transfers nothing. etag "" reads the object.
	ReadControlIfChanged(ctx context.Context, job *v1alpha1.FlinkJob, name, etag string) (ControlRead, error)
	// WriteControl writes a control object (e.g. "savepoint-request.json").
	WriteControl(ctx context.Context, job *v1alpha1.FlinkJob, name string, data []byte) error
	// DeleteControl removes a control object; a missing one is no error.
	DeleteControl(ctx context.Context, job *v1alpha1.FlinkJob, name string) error
	// LatestCheckpoint returns the newest complete checkpoint (one with a
	// _COMPLETED marker) under the job's checkpoints URL; id 0 when none.
	LatestCheckpoint(ctx context.Context, job *v1alpha1.FlinkJob) (id int64, url string, err error)
	// ClearCheckpoints removes every checkpoint of the job and the
	// control object naming the latest one.
	ClearCheckpoints(ctx context.Context, job *v1alpha1.FlinkJob) error
	// DeleteSavepoint removes a savepoint directory (an s3:// URL under the
	// job's savepoints URL; anything else is refused).
	DeleteSavepoint(ctx context.Context, job *v1alpha1.FlinkJob, url string) error
}

// ControlRead is what ReadControlIfChanged found.
type ControlRead struct {
	// Data is the object; nil when it does not exist or is Unchanged.
	Data []byte
	// ETag identifies the content of the object read ("" when it does not
	// exist; the etag passed in when Unchanged).
	ETag string
	// Unchanged: the object's ETag is still the one passed in.
	Unchanged bool
}

// CredentialsNotFoundError says the job's S3 credentials Secret does not exist.
type CredentialsNotFoundError struct {
	Secret string
	Err    error
}

func (e *CredentialsNotFoundError) Error() string {
	return fmt.Sprintf("reading S3 credentials: Secret %q not found", e.Secret)
}

func (e *CredentialsNotFoundError) Unwrap() error { return e.Err }

// S3Storage reaches a job's bucket with the credentials from its Secret.
type S3Storage struct {
	Client client.Reader
}

func (s S3Storage) location(ctx context.Context, job *v1alpha1.FlinkJob) (connector.Location, error) {
	return s.locationAt(ctx, job, shuffleURL(job))
}

// locationAt reaches url (in the job's bucket) with the job's credentials.
func (s S3Storage) locationAt(ctx context.Context, job *v1alpha1.FlinkJob, url string) (connector.Location, error) {
	cfg, err := s.s3Config(ctx, job)
	if err != nil {
		return nil, err
	}
	return connector.ParseLocation(url, cfg)
}

// s3Config is how to reach the job's bucket, with the job's credentials.
func (s S3Storage) s3Config(ctx context.Context, job *v1alpha1.FlinkJob) (connector.S3Config, error) {
	st := job.Spec.Storage.S3
	// The storage as its workers reach it, without this process's env.
	cfg := connector.S3ConfigFrom(connector.EnvOf(st.WorkerEnv(), nil))
	// Each Secret is read once per call: the CA and the keys may share one.
	read := map[string]*corev1.Secret{}
	secret := func(name string) (*corev1.Secret, error) {
		if sec, ok := read[name]; ok {
			return sec, nil
		}
		sec := &corev1.Secret{}
		if err := s.Client.Get(ctx, types.NamespacedName{Namespace: job.Namespace, Name: name}, sec); err != nil {
			return nil, err
		}
		read[name] = sec
		return sec, nil
	}
	if st.TLS != nil {
		if ref := st.TLS.CASecretRef; ref != nil {
			sec, err := secret(ref.Name)
			if err != nil {
				return cfg, fmt.Errorf("reading the S3 CA certificates (spec.storage.s3.tls.caSecretRef) from Secret %q: %w", ref.Name, err)
			}
			ca, ok := sec.Data[ref.Key]
			if !ok {
				return cfg, fmt.Errorf("spec.storage.s3.tls.caSecretRef: Secret %q has no key %q", ref.Name, ref.Key)
			}
			cfg.CAPEM = string(ca)
		}
	}
	if ref := st.CredentialsSecretRef; ref != nil {
		sec, err := secret(ref.Name)
		if err != nil {
			if errors.IsNotFound(err) {
				return cfg, &CredentialsNotFoundError{Secret: ref.Name, Err: err}
			}
			return cfg, fmt.Errorf("reading S3 credentials from Secret %q: %w", ref.Name, err)
		}
		ak, sk := ref.AccessKeyKey, ref.SecretKeyKey
		if ak == "" {
			ak = "accessKey"
		}
		if sk == "" {
			sk = "secretKey"
		}
		cfg.AccessKey, cfg.SecretKey = string(sec.Data[ak]), string(sec.Data[sk])
	}
	return cfg, nil
}

func (s S3Storage) ManifestExists(ctx context.Context, job *v1alpha1.FlinkJob, stage, index int) (bool, error) {
	loc, err := s.location(ctx, job)
	if err != nil {
		return false, err
	}
	return loc.Exists(ctx, shuffle.ManifestPath(stage, index))
}

func (s S3Storage) DeleteJobData(ctx context.Context, job *v1alpha1.FlinkJob) error {
	loc, err := s.locationAt(ctx, job, jobDataURL(job))
	if err != nil {
		return err
	}
	return loc.DeletePrefix(ctx, "")
}

func (s S3Storage) ReadControl(ctx context.Context, job *v1alpha1.FlinkJob, name string) ([]byte, error) {
	rd, err := s.ReadControlIfChanged(ctx, job, name, "")
	return rd.Data, err
}

// ReadControlIfChanged is one GET, conditional on the ETag (If-None-Match)
// when there is one: a missing object (404) and an unchanged one (304)
// are answers, not errors, and neither transfers a body. (A plain
// Exists-then-Open would take two requests for every read.)
func (s S3Storage) ReadControlIfChanged(ctx context.Context, job *v1alpha1.FlinkJob, name, etag string) (ControlRead, error) {
	cfg, err := s.s3Config(ctx, job)
	if err != nil {
		return ControlRead{}, err
	}
	client, err := s3Clients.get(cfg)
	if err != nil {
		return ControlRead{}, err
	}
	bucket := job.Spec.Storage.S3.Bucket
	key := controlPrefix(job) + name
	var opts miniogo.GetObjectOptions
	if etag != "" {
		if err := opts.SetMatchETagExcept(etag); err != nil {
			return ControlRead{}, err
		}
	}
	obj, err := client.GetObject(ctx, bucket, key, opts)
	if err != nil {
		return ControlRead{}, fmt.Errorf("s3://%s/%s: %w", bucket, key, err)
	}
	defer obj.Close()
	// Stat sends the request (GetObject is lazy) and has its headers.
	st, err := obj.Stat()
	switch r := miniogo.ToErrorResponse(err); {
	case err == nil:
	case r.StatusCode == http.StatusNotModified:
		return ControlRead{ETag: etag, Unchanged: true}, nil
	case r.Code == miniogo.NoSuchKey || r.Code == miniogo.NoSuchBucket:
		return ControlRead{}, nil
	default:
		return ControlRead{}, fmt.Errorf("s3://%s/%s: %w", bucket, key, err)
	}
	// Control objects are a few hundred bytes; a cap keeps a corrupt one
	// from filling the manager's memory.
	b, err := io.ReadAll(io.LimitReader(obj, 1<<20))
	if err != nil {
		return ControlRead{}, fmt.Errorf("s3://%s/%s: %w", bucket, key, err)
	}
	return ControlRead{Data: b, ETag: st.ETag}, nil
}

// s3Clients are the S3 clients of ReadControlIfChanged, one per endpoint
// and credentials. The control objects of every running STREAMING job are
// read every few seconds: a new client per read would open a new
// connection (and TLS handshake) each time and leave its idle socket
// behind for a minute, while a kept client reuses its connections.
var s3Clients = clientCache{max: 64}

// clientCache keeps up to max clients; past that it starts over
// (credentials change rarely, so it rarely fills).
type clientCache struct {
	mu      sync.Mutex
	max     int
	clients map[connector.S3Config]*miniogo.Client
}

func (c *clientCache) get(cfg connector.S3Config) (*miniogo.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clients[cfg]; ok {
		return cl, nil
	}
	cl, err := connector.NewS3Client(cfg)
	if err != nil {
		return nil, err
	}
	if c.clients == nil || len(c.clients) >= c.max {
		c.clients = map[connector.S3Config]*miniogo.Client{}
	}
	c.clients[cfg] = cl
	return cl, nil
}

func (s S3Storage) WriteControl(ctx context.Context, job *v1alpha1.FlinkJob, name string, data []byte) error {
	loc, err := s.locationAt(ctx, job, controlURL(job))
	if err != nil {
		return err
	}
	w, err := loc.Create(ctx, name)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return err
	}
	return w.Commit()
}

func (s S3Storage) DeleteControl(ctx context.Context, job *v1alpha1.FlinkJob, name string) error {
	loc, err := s.locationAt(ctx, job, controlURL(job))
	if err != nil {
		return err
	}
	return loc.DeletePrefix(ctx, name)
}

// LatestCheckpoint asks checkpoint.Latest, as a worker restoring from
// "latest" does, so both agree on which checkpoint that is.
func (s S3Storage) LatestCheckpoint(ctx context.Context, job *v1alpha1.FlinkJob) (int64, string, error) {
	cfg, err := s.s3Config(ctx, job)
	if err != nil {
		return 0, "", err
	}
	store, err := checkpoint.NewS3Store(checkpointsURL(job), cfg)
	if err != nil {
		return 0, "", err
	}
	id, ok, err := checkpoint.Latest(ctx, store)
	if err != nil || !ok {
		return 0, "", err
	}
	return id, checkpointsURL(job) + checkpoint.DirName(id), nil
}

func (s S3Storage) ClearCheckpoints(ctx context.Context, job *v1alpha1.FlinkJob) error {
	loc, err := s.locationAt(ctx, job, checkpointsURL(job))
	if err != nil {
		return err
	}
	if err := loc.DeletePrefix(ctx, ""); err != nil {
		return err
	}
	return s.DeleteControl(ctx, job, control.LatestObject)
}

func (s S3Storage) DeleteSavepoint(ctx context.Context, job *v1alpha1.FlinkJob, url string) error {
	if !savepointUnderJob(job, url) {
		return fmt.Errorf("%s is not under the job's savepoints %s: not deleting it", url, savepointsURL(job))
	}
	if !strings.HasSuffix(url, "/") {
		url += "/"
	}
	loc, err := s.locationAt(ctx, job, url)
	if err != nil {
		return err
	}
	return loc.DeletePrefix(ctx, "")
}
