package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/shuffle"
)

func apiInvalid(gk schema.GroupKind, name string, errs field.ErrorList) error {
	return errors.NewInvalid(gk, name, errs)
}

// Storage is what the controller needs from a job's object storage.
type Storage interface {
	// ManifestExists reports whether a BATCH subtask's output manifest is there.
	ManifestExists(ctx context.Context, job *v1alpha1.FlinkJob, stage, index int) (bool, error)
	// DeleteJobData removes the job's intermediate data.
	DeleteJobData(ctx context.Context, job *v1alpha1.FlinkJob) error
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

// s3Secure says whether an endpoint is reached over HTTPS: an http:// or
// https:// scheme decides, a bare host[:port] means HTTPS (as the API
// documents spec.storage.s3.endpoint).
func s3Secure(endpoint string) bool {
	return !strings.HasPrefix(strings.ToLower(endpoint), "http://")
}

// S3Storage reaches a job's bucket with the credentials from its Secret.
type S3Storage struct {
	Client client.Reader
}

func (s S3Storage) location(ctx context.Context, job *v1alpha1.FlinkJob) (connector.Location, error) {
	st := job.Spec.Storage.S3
	cfg := connector.S3Config{Endpoint: st.Endpoint, Region: st.Region, Secure: s3Secure(st.Endpoint)}
	if st.TLS != nil {
		cfg.InsecureSkipVerify = st.TLS.InsecureSkipVerify
	}
	if ref := st.CredentialsSecretRef; ref != nil {
		var sec corev1.Secret
		if err := s.Client.Get(ctx, types.NamespacedName{Namespace: job.Namespace, Name: ref.Name}, &sec); err != nil {
			if errors.IsNotFound(err) {
				return nil, &CredentialsNotFoundError{Secret: ref.Name, Err: err}
			}
			return nil, fmt.Errorf("reading S3 credentials from Secret %q: %w", ref.Name, err)
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
	return connector.ParseLocation(shuffleURL(job), cfg)
}

func (s S3Storage) ManifestExists(ctx context.Context, job *v1alpha1.FlinkJob, stage, index int) (bool, error) {
	loc, err := s.location(ctx, job)
	if err != nil {
		return false, err
	}
	return loc.Exists(ctx, shuffle.ManifestPath(stage, index))
}

func (s S3Storage) DeleteJobData(ctx context.Context, job *v1alpha1.FlinkJob) error {
	loc, err := s.location(ctx, job)
	if err != nil {
		return err
	}
	return loc.DeletePrefix(ctx, "")
}
