package spec

import (
	"fmt"
	"net/url"
	"strings"
)

// FileS3 is a files source's or sink's own S3 store, for a bucket that the
// job's storage settings do not reach: another endpoint, or the same one
// with other credentials. The keys come from Secret references only: on
// Kubernetes the operator passes them to the workers as environment
// variables (SecretEnvName), as it does for Kafka; locally the CLI reads
// the same variables. The job's own storage credentials are never sent to
// the endpoint named here.
// +kubebuilder:validation:XValidation:rule="has(self.accessKeySecretRef) == has(self.secretKeySecretRef)",message="set both accessKeySecretRef and secretKeySecretRef, or neither"
type FileS3 struct {
	// endpoint is host[:port], or http:// or https:// followed by
	// host[:port]; a bare host[:port] is reached over HTTPS. Absent means
	// the job's storage endpoint (and its TLS setting).
	// +kubebuilder:validation:Pattern=`^(https?://)?[^/\s?#]+/?$`
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// region of the bucket; absent lets the client discover it.
	// +optional
	Region string `json:"region,omitempty"`
	// insecureSkipVerify accepts any server certificate. For tests only.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
	// accessKeySecretRef holds the access key id. With secretKeySecretRef
	// absent too, access is anonymous (public buckets).
	// +optional
	AccessKeySecretRef *SecretRef `json:"accessKeySecretRef,omitempty"`
	// secretKeySecretRef holds the secret access key.
	// +optional
	SecretKeySecretRef *SecretRef `json:"secretKeySecretRef,omitempty"`
}

// ParseS3Endpoint checks an S3 endpoint written as host[:port] (reached
// over HTTPS) or as http:// or https:// followed by host[:port], and
// returns host[:port] and whether to use TLS. Validation and the connector
// both call it, so they agree on what an endpoint is.
func ParseS3Endpoint(s string) (hostport string, secure bool, err error) {
	secure = true
	rest := s
	if scheme, r, ok := strings.Cut(s, "://"); ok {
		switch scheme {
		case "http":
			secure = false
		case "https":
		default:
			return "", false, fmt.Errorf("scheme must be http or https, not %q", scheme)
		}
		rest = strings.TrimSuffix(r, "/")
	}
	u, err := url.Parse("http://" + rest)
	if rest == "" || err != nil || u.Host != rest || u.Hostname() == "" || strings.HasSuffix(rest, ":") {
		return "", false, fmt.Errorf("%q is not host[:port], optionally after http:// or https:// (no path, user or query)", s)
	}
	return rest, secure, nil
}
