package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/internal/jobcheck"
)

// Labels on everything the operator creates for a job.
const (
	LabelJob     = "flinkjob.io/job"
	LabelStage   = "flinkjob.io/stage"
	LabelIndex   = "flinkjob.io/subtask"
	LabelAttempt = "flinkjob.io/attempt"
	LabelRole    = "flinkjob.io/role"
	// AnnotationRestarts on a pod is the job's status.restarts when the pod
	// was created: a retry pod carries the restart that made it, so a
	// restart is counted even when the status write after creating the
	// pod was lost to a conflict.
	AnnotationRestarts = "flinkjob.io/restarts"
	// RoleWorker runs a subtask; RoleFinalize runs the sinks' job-wide finish.
	RoleWorker   = "worker"
	RoleFinalize = "finalize"

	exchangePort = 7000
	httpPort     = 8080
	jobFileKey   = "job.json"
	jobMountPath = "/etc/flinkjob"
)

// shortName keeps generated names within DNS label limits: a long job
// name is cut and suffixed with a hash so names stay unique.
func shortName(job string, max int) string {
	if len(job) <= max {
		return job
	}
	h := sha256.Sum256([]byte(job))
	return job[:max-9] + "-" + hex.EncodeToString(h[:])[:8]
}

// serviceName is the headless Service giving STREAMING workers stable DNS names.
func serviceName(job *v1alpha1.FlinkJob) string { return shortName(job.Name, 55) + "-workers" }

// configMapName holds the job's dataflow for its workers.
func configMapName(job *v1alpha1.FlinkJob) string { return shortName(job.Name, 57) + "-job" }

// hostname is a worker's stable host name within the Service's subdomain.
func hostname(stage, index int) string { return fmt.Sprintf("s%d-%d", stage, index) }

// podName names a subtask's pod for one attempt; failed pods stay for
// their logs, so every attempt gets its own name.
func podName(job *v1alpha1.FlinkJob, stage, index, attempt int) string {
	return fmt.Sprintf("%s-s%d-%d-a%d", shortName(job.Name, 40), stage, index, attempt)
}

func finalizePodName(job *v1alpha1.FlinkJob, attempt int) string {
	return fmt.Sprintf("%s-finalize-a%d", shortName(job.Name, 40), attempt)
}

// peerPattern is how a STREAMING worker finds the subtasks it sends to.
func peerPattern(job *v1alpha1.FlinkJob) string {
	return fmt.Sprintf("s{stage}-{index}.%s.%s.svc:%d", serviceName(job), job.Namespace, exchangePort)
}

// namePrefix is the key prefix of everything stored for a job's name:
// its savepoints (kept after the FlinkJob is deleted, as in Flink) and one
// folder per incarnation (uid) of the job.
func namePrefix(job *v1alpha1.FlinkJob) string {
	p := ""
	if s := job.Spec.Storage; s != nil && s.S3 != nil && s.S3.Prefix != "" {
		p = strings.TrimSuffix(s.S3.Prefix, "/") + "/"
	}
	return fmt.Sprintf("%sflinkjob/%s/%s/", p, job.Namespace, job.Name)
}

// jobDataPrefix is the key prefix of a job's own data, deleted with it:
// shuffle/ (BATCH intermediate results), checkpoints/ and control/ (the
// JSON objects through which the manager and the job's checkpoint
// coordinator talk; see package worker/control).
func jobDataPrefix(job *v1alpha1.FlinkJob) string {
	return fmt.Sprintf("%s%s/", namePrefix(job), job.UID)
}

// shufflePrefix is the key prefix of a job's intermediate data in the bucket.
func shufflePrefix(job *v1alpha1.FlinkJob) string { return jobDataPrefix(job) + "shuffle/" }

// storageURL is the s3:// URL of key prefix p in the job's bucket, or ""
// without storage.
func storageURL(job *v1alpha1.FlinkJob, p string) string {
	if !jobcheck.HasStorage(job) {
		return ""
	}
	return "s3://" + job.Spec.Storage.S3.Bucket + "/" + p
}

func shuffleURL(job *v1alpha1.FlinkJob) string { return storageURL(job, shufflePrefix(job)) }
func jobDataURL(job *v1alpha1.FlinkJob) string { return storageURL(job, jobDataPrefix(job)) }
func checkpointsURL(job *v1alpha1.FlinkJob) string {
	return storageURL(job, jobDataPrefix(job)+"checkpoints/")
}
func controlURL(job *v1alpha1.FlinkJob) string { return storageURL(job, controlPrefix(job)) }

// controlPrefix is the key prefix of the job's control objects.
func controlPrefix(job *v1alpha1.FlinkJob) string { return jobDataPrefix(job) + "control/" }
func savepointsURL(job *v1alpha1.FlinkJob) string {
	return storageURL(job, namePrefix(job)+"savepoints/")
}

// stateEnv is the checkpoint/savepoint configuration of a worker (the
// contract with the worker: FLINKJOB_CHECKPOINT_* and friends).
func stateEnv(job *v1alpha1.FlinkJob) []corev1.EnvVar {
	if !jobcheck.HasStorage(job) {
		return nil
	}
	env := []corev1.EnvVar{
		{Name: "FLINKJOB_CHECKPOINT_URL", Value: checkpointsURL(job)},
		{Name: "FLINKJOB_SAVEPOINT_URL", Value: savepointsURL(job)},
		{Name: "FLINKJOB_CONTROL_URL", Value: controlURL(job)},
	}
	if c := job.Spec.Checkpointing; c != nil {
		retain := c.Retain
		if retain <= 0 {
			retain = 3
		}
		env = append(env,
			corev1.EnvVar{Name: "FLINKJOB_CHECKPOINT_INTERVAL", Value: string(c.Interval)},
			corev1.EnvVar{Name: "FLINKJOB_CHECKPOINT_RETAIN", Value: strconv.Itoa(int(retain))})
	}
	if job.Spec.FinalSavepoint {
		env = append(env, corev1.EnvVar{Name: "FLINKJOB_FINAL_SAVEPOINT", Value: "true"})
	}
	return env
}

// restoreEnv is FLINKJOB_RESTORE_FROM for a STREAMING attempt: what
// status.startedFrom decided for it before its pods were created.
func restoreEnv(job *v1alpha1.FlinkJob, attempt int) []corev1.EnvVar {
	sf := job.Status.StartedFrom
	if sf == nil || int(sf.Attempt) != attempt {
		return nil
	}
	switch sf.Kind {
	case v1alpha1.StartCheckpoint:
		return []corev1.EnvVar{{Name: "FLINKJOB_RESTORE_FROM", Value: "latest"}}
	case v1alpha1.StartSavepoint:
		return []corev1.EnvVar{{Name: "FLINKJOB_RESTORE_FROM", Value: sf.Path}}
	}
	return nil
}

func ownerRef(job *v1alpha1.FlinkJob) metav1.OwnerReference {
	return *metav1.NewControllerRef(job, v1alpha1.GroupVersion.WithKind("FlinkJob"))
}

func jobLabels(job *v1alpha1.FlinkJob) map[string]string {
	return map[string]string{LabelJob: job.Name, "app.kubernetes.io/managed-by": "flinkjob-operator"}
}

// desiredConfigMap carries the job's dataflow (spec.Job) to the workers.
func desiredConfigMap(job *v1alpha1.FlinkJob) (*corev1.ConfigMap, error) {
	b, err := json.Marshal(job.Spec.Job)
	if err != nil {
		return nil, err
	}
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: configMapName(job), Namespace: job.Namespace,
			Labels: jobLabels(job), OwnerReferences: []metav1.OwnerReference{ownerRef(job)}},
		Data: map[string]string{jobFileKey: string(b)},
	}, nil
}

// desiredService is the headless Service behind the workers' DNS names.
func desiredService(job *v1alpha1.FlinkJob) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: serviceName(job), Namespace: job.Namespace,
			Labels: jobLabels(job), OwnerReferences: []metav1.OwnerReference{ownerRef(job)}},
		Spec: corev1.ServiceSpec{
			ClusterIP:                corev1.ClusterIPNone,
			Selector:                 map[string]string{LabelJob: job.Name, LabelRole: RoleWorker},
			PublishNotReadyAddresses: true, // peers connect while starting
			Ports:                    []corev1.ServicePort{{Name: "exchange", Port: exchangePort}},
		},
	}
}

// podSpec builds a worker pod. It meets the restricted Pod Security
// Standard: non-root, no privilege escalation, no capabilities, seccomp
// RuntimeDefault.
func (r *FlinkJobReconciler) podSpec(job *v1alpha1.FlinkJob, mode spec.RuntimeMode, name string, labels map[string]string, args []string, extraEnv []corev1.EnvVar) *corev1.Pod {
	image := job.Spec.Image
	if image == "" {
		image = r.WorkerImage
	}
	env := []corev1.EnvVar{
		{Name: "FLINKJOB_JOB_FILE", Value: jobMountPath + "/" + jobFileKey},
		{Name: "FLINKJOB_MODE", Value: string(mode)},
		{Name: "FLINKJOB_TERMINATION_LOG", Value: "/dev/termination-log"},
	}
	if s := job.Spec.Storage; s != nil && s.S3 != nil {
		for _, kv := range s.S3.WorkerEnv() {
			env = append(env, corev1.EnvVar{Name: kv[0], Value: kv[1]})
		}
		if s.S3.TLS != nil && s.S3.TLS.CASecretRef != nil {
			// The PEM itself, from the Secret (connector.S3ConfigFromEnv).
			ref := s.S3.TLS.CASecretRef
			env = append(env, corev1.EnvVar{Name: "FLINKJOB_S3_CA_PEM", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: ref.Name}, Key: ref.Key}}})
		}
		if ref := s.S3.CredentialsSecretRef; ref != nil {
			ak, sk := ref.AccessKeyKey, ref.SecretKeyKey
			if ak == "" {
				ak = "accessKey"
			}
			if sk == "" {
				sk = "secretKey"
			}
			env = append(env,
				corev1.EnvVar{Name: "FLINKJOB_S3_ACCESS_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: ref.Name}, Key: ak}}},
				corev1.EnvVar{Name: "FLINKJOB_S3_SECRET_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: ref.Name}, Key: sk}}})
		}
	}
	if su := shuffleURL(job); su != "" {
		env = append(env, corev1.EnvVar{Name: "FLINKJOB_SHUFFLE_URL", Value: su})
	}
	env = append(env, stateEnv(job)...)
	env = append(env, connectorSecretEnv(job)...)
	env = append(env, extraEnv...)
	ctr := corev1.Container{
		Name:            "worker",
		Image:           image,
		ImagePullPolicy: job.Spec.ImagePullPolicy,
		Args:            args,
		Env:             env,
		Resources:       job.Spec.Resources,
		Ports: []corev1.ContainerPort{
			{Name: "exchange", ContainerPort: exchangePort},
			{Name: "http", ContainerPort: httpPort},
		},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstrPort(httpPort)}},
			PeriodSeconds: 2},
		LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstrPort(httpPort)}},
			PeriodSeconds: 10, FailureThreshold: 6},
		VolumeMounts:             []corev1.VolumeMount{{Name: "job", MountPath: jobMountPath, ReadOnly: true}, {Name: "tmp", MountPath: "/tmp"}},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			RunAsNonRoot:             ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: job.Namespace, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{ownerRef(job)}},
		Spec: corev1.PodSpec{
			RestartPolicy:                corev1.RestartPolicyNever,
			AutomountServiceAccountToken: ptr.To(false),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To(int64(65532)),
				RunAsGroup:     ptr.To(int64(65532)),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{ctr},
			Volumes: []corev1.Volume{
				{Name: "job", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: configMapName(job)}}}},
				{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
		},
	}
	applyPodTemplate(pod, job.Spec.PodTemplate)
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[AnnotationRestarts] = strconv.Itoa(int(job.Status.Restarts))
	return pod
}

// subtaskPod is the pod of one subtask attempt.
func (r *FlinkJobReconciler) subtaskPod(job *v1alpha1.FlinkJob, mode spec.RuntimeMode, stage, index, attempt int) *corev1.Pod {
	labels := jobLabels(job)
	labels[LabelRole] = RoleWorker
	labels[LabelStage] = strconv.Itoa(stage)
	labels[LabelIndex] = strconv.Itoa(index)
	labels[LabelAttempt] = strconv.Itoa(attempt)
	args := []string{"--stage", strconv.Itoa(stage), "--index", strconv.Itoa(index), "--attempt", strconv.Itoa(attempt),
		"--listen", fmt.Sprintf(":%d", exchangePort), "--http", fmt.Sprintf(":%d", httpPort)}
	if mode == spec.Streaming {
		args = append(args, "--peer-pattern", peerPattern(job))
	}
	var extra []corev1.EnvVar
	if mode == spec.Streaming {
		extra = restoreEnv(job, attempt)
	}
	pod := r.podSpec(job, mode, podName(job, stage, index, attempt), labels, args, extra)
	if mode == spec.Streaming {
		pod.Spec.Hostname = hostname(stage, index)
		pod.Spec.Subdomain = serviceName(job)
	}
	return pod
}

// finalizePod runs the sinks' job-wide finish step once every stage succeeded.
func (r *FlinkJobReconciler) finalizePod(job *v1alpha1.FlinkJob, mode spec.RuntimeMode, attempt int) *corev1.Pod {
	labels := jobLabels(job)
	labels[LabelRole] = RoleFinalize
	labels[LabelAttempt] = strconv.Itoa(attempt)
	pod := r.podSpec(job, mode, finalizePodName(job, attempt), labels, []string{"--finalize", "--http", ""}, nil)
	pod.Spec.Containers[0].ReadinessProbe = nil
	pod.Spec.Containers[0].LivenessProbe = nil
	pod.Spec.Containers[0].Ports = nil
	return pod
}

func applyPodTemplate(pod *corev1.Pod, t *v1alpha1.PodTemplate) {
	if t == nil {
		return
	}
	for k, v := range t.Labels {
		if _, reserved := pod.Labels[k]; !reserved {
			pod.Labels[k] = v
		}
	}
	if len(t.Annotations) > 0 {
		pod.Annotations = map[string]string{}
		for k, v := range t.Annotations {
			pod.Annotations[k] = v
		}
	}
	pod.Spec.NodeSelector = t.NodeSelector
	pod.Spec.Tolerations = t.Tolerations
	pod.Spec.PriorityClassName = t.PriorityClassName
	if t.ServiceAccountName != "" {
		pod.Spec.ServiceAccountName = t.ServiceAccountName
	}
	pod.Spec.ImagePullSecrets = t.ImagePullSecrets
	if t.SecurityContext != nil {
		pod.Spec.SecurityContext = t.SecurityContext
	}
	if t.ContainerSecurityContext != nil {
		pod.Spec.Containers[0].SecurityContext = t.ContainerSecurityContext
	}
	pod.Spec.Containers[0].Env = append(pod.Spec.Containers[0].Env, t.Env...)
}
