package controllers

import (
	"testing"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/spec"
)

func TestConnectorSecretEnv(t *testing.T) {
	pass := &spec.SecretRef{Name: "kafka-creds", Key: "password"}
	sec := &spec.KafkaSecurity{SASL: &spec.KafkaSASL{Mechanism: "PLAIN", Username: "u", PasswordSecretRef: pass},
		TLS: &spec.KafkaTLS{CASecretRef: &spec.SecretRef{Name: "kafka-ca", Key: "ca.crt"}}}
	job := &v1alpha1.FlinkJob{}
	job.Spec.Steps = []spec.Step{
		{Name: "in", Source: &spec.Source{Kafka: &spec.KafkaSource{Topics: []string{"t"}, Security: sec}}},
		{Name: "out", Sink: &spec.Sink{Kafka: &spec.KafkaSink{Topic: "o", Security: &spec.KafkaSecurity{SASL: sec.SASL}}}},
	}
	env := connectorSecretEnv(job)
	if len(env) != 2 {
		t.Fatalf("env = %v, want 2 variables (the shared password once)", env)
	}
	for i, want := range []struct{ name, secret, key string }{
		{"FLINKJOB_SECRET_KAFKA_CA_CA_CRT", "kafka-ca", "ca.crt"},
		{"FLINKJOB_SECRET_KAFKA_CREDS_PASSWORD", "kafka-creds", "password"},
	} {
		e := env[i]
		if e.Name != want.name || e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
			e.ValueFrom.SecretKeyRef.Name != want.secret || e.ValueFrom.SecretKeyRef.Key != want.key {
			t.Errorf("env[%d] = %+v, want %s from secret %s key %s", i, e, want.name, want.secret, want.key)
		}
	}
	var r FlinkJobReconciler
	pod := r.podSpec(job, spec.Streaming, "p", nil, nil, nil)
	found := false
	for _, e := range pod.Spec.Containers[0].Env {
		found = found || e.Name == "FLINKJOB_SECRET_KAFKA_CREDS_PASSWORD"
	}
	if !found {
		t.Fatal("podSpec does not pass the Kafka password secret")
	}
}

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
