package controllers

import (
	"testing"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/spec"
)

// A files source's own S3 keys reach the worker pod as the variables the
// connector reads, through the same path as Kafka's secrets.
func TestConnectorSecretEnvFilesS3(t *testing.T) {
	job := &v1alpha1.FlinkJob{}
	job.Spec.Steps = []spec.Step{
		{Name: "in", Source: &spec.Source{Files: &spec.FileSource{Path: "s3://partner/in/", S3: &spec.FileS3{
			AccessKeySecretRef: &spec.SecretRef{Name: "partner-s3", Key: "access-key"},
			SecretKeySecretRef: &spec.SecretRef{Name: "partner-s3", Key: "secret-key"}}}}},
		{Name: "out", Sink: &spec.Sink{Print: &spec.PrintSink{}}},
	}
	var r FlinkJobReconciler
	pod := r.podSpec(job, spec.Streaming, "p", nil, nil, nil)
	got := map[string]string{}
	for _, e := range pod.Spec.Containers[0].Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			got[e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		}
	}
	for name, ref := range map[string]string{
		"FLINKJOB_SECRET_PARTNER_S3_ACCESS_KEY": "partner-s3/access-key",
		"FLINKJOB_SECRET_PARTNER_S3_SECRET_KEY": "partner-s3/secret-key",
	} {
		if got[name] != ref {
			t.Errorf("worker env %s = %q, want from secret %s (env from secrets: %v)", name, got[name], ref, got)
		}
	}
}
