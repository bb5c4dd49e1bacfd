package connector

import (
	"fmt"

	"github.com/flinkjob/flinkjob/engine/spec"
)

// withFileS3 is the S3Config a files source or sink with its own s3 block
// uses: the block's endpoint, region and keys (read from the Secret
// environment variables, as Kafka's are), falling back to def only for the
// endpoint and its TLS setting. def's keys are never kept: they belong to
// the job's storage and must not be sent to a store the block names. With
// no block, def is used as it is.
func withFileS3(def S3Config, o *spec.FileS3) (S3Config, error) {
	if o == nil {
		return def, nil
	}
	cfg := S3Config{Endpoint: def.Endpoint, Secure: def.Secure, Region: o.Region, InsecureSkipVerify: o.InsecureSkipVerify}
	if o.Endpoint != "" {
		ep, secure, err := spec.ParseS3Endpoint(o.Endpoint)
		if err != nil {
			return S3Config{}, fmt.Errorf("s3.endpoint: %w", err)
		}
		cfg.Endpoint, cfg.Secure = ep, secure
	}
	if (o.AccessKeySecretRef == nil) != (o.SecretKeySecretRef == nil) {
		return S3Config{}, fmt.Errorf("s3: set both accessKeySecretRef and secretKeySecretRef, or neither")
	}
	if o.AccessKeySecretRef != nil {
		var err error
		if cfg.AccessKey, err = LookupSecret(*o.AccessKeySecretRef); err != nil {
			return S3Config{}, fmt.Errorf("s3.accessKeySecretRef: %w", err)
		}
		if cfg.SecretKey, err = LookupSecret(*o.SecretKeySecretRef); err != nil {
			return S3Config{}, fmt.Errorf("s3.secretKeySecretRef: %w", err)
		}
	}
	return cfg, nil
}
