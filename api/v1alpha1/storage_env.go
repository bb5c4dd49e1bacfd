package v1alpha1

import "strings"

// WorkerEnv is how a worker process reaches the storage: the FLINKJOB_S3_*
// variables it reads (connector.S3ConfigFromEnv), credentials aside (they
// come from the Secret). A bare host[:port] endpoint is HTTPS, an http://
// or https:// one says itself, as the endpoint's doc says. The operator's
// pods, the operator's own client and `flinkjob run` all read the storage
// through it.
func (s *S3Storage) WorkerEnv() [][2]string {
	env := [][2]string{{"FLINKJOB_S3_ENDPOINT", s.Endpoint}}
	if !strings.Contains(s.Endpoint, "://") {
		env = append(env, [2]string{"FLINKJOB_S3_SECURE", "true"})
	}
	if s.Region != "" {
		env = append(env, [2]string{"FLINKJOB_S3_REGION", s.Region})
	}
	if s.TLS != nil && s.TLS.InsecureSkipVerify {
		env = append(env, [2]string{"FLINKJOB_S3_INSECURE_SKIP_VERIFY", "true"})
	}
	return env
}
