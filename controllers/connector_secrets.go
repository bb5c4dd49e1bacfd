package controllers

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/spec"
)

// connectorSecretEnv passes every Secret a connector of the job refers to
// (Kafka TLS and SASL) to the worker as the environment variable the engine
// reads it from (spec.SecretEnvName), so secrets never appear in the job
// file or the pod spec itself. A missing Secret or key keeps the pod from
// starting (CreateContainerConfigError), which names it.
func connectorSecretEnv(job *v1alpha1.FlinkJob) []corev1.EnvVar {
	var env []corev1.EnvVar
	for _, ref := range job.Spec.Job.SecretRefs() {
		env = append(env, corev1.EnvVar{Name: spec.SecretEnvName(ref), ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: ref.Name}, Key: ref.Key}}})
	}
	return env
}
