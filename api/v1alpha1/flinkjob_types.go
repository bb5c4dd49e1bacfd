package v1alpha1

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flinkjob/flinkjob/engine/spec"
)

// FlinkJob runs one Flink-style dataflow job on the cluster. Its spec holds
// the dataflow (named steps with CEL expressions) and how to run it; its
// status shows the resolved runtime mode, the phase and per-stage progress.
// The same manifest gives the same final results in STREAMING and BATCH mode;
// only how it runs changes.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:path=flinkjobs,singular=flinkjob,scope=Namespaced,shortName=fj
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.status.resolvedMode`,description="The runtime mode the job runs in (AUTOMATIC resolved to STREAMING or BATCH)."
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`,description="Pending, Running, Succeeded, Failed or Suspended."
// +kubebuilder:printcolumn:name="Stages",type=string,JSONPath=`.status.stagesSummary`,description="Stages succeeded / stages planned."
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1,description="Why the job is in its phase."
type FlinkJob struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the dataflow and how to run it.
	// +required
	Spec FlinkJobSpec `json:"spec"`

	// status is the observed state of the job, written by the operator.
	// +optional
	Status FlinkJobStatus `json:"status,omitempty"`
}

// FlinkJobList is a list of FlinkJobs.
//
// +kubebuilder:object:root=true
type FlinkJobList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the FlinkJobs.
	Items []FlinkJob `json:"items"`
}

// FlinkJobSpec is the desired state of a FlinkJob: the dataflow (runtimeMode,
// parallelism, batchProcessingTime and steps, shared with the local CLI) and
// how its worker pods run.
//
// +kubebuilder:validation:XValidation:rule="self.steps.all(s, self.steps.exists_one(t, t.name == s.name))",message="step names must be unique"
// +kubebuilder:validation:XValidation:rule="!has(self.runtimeMode) || self.runtimeMode != 'BATCH' || self.steps.all(s, !has(s.source) || ((!has(s.source.datagen) || has(s.source.datagen.count)) && (!has(s.source.nexmark) || has(s.source.nexmark.events))))",messageExpression="'runtimeMode BATCH needs bounded sources: source step %s is unbounded (a datagen without count or a nexmark without events); bound it, or use STREAMING or AUTOMATIC'.format([self.steps.filter(s, has(s.source) && ((has(s.source.datagen) && !has(s.source.datagen.count)) || (has(s.source.nexmark) && !has(s.source.nexmark.events))))[0].name])",reason=FieldValueInvalid,fieldPath=".steps"
// +kubebuilder:validation:XValidation:rule="!has(self.checkpointing) || has(self.storage)",message="checkpointing needs spec.storage: checkpoints are written to its bucket",fieldPath=".checkpointing",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="!has(self.upgradeMode) || self.upgradeMode != 'savepoint' || has(self.storage)",message="upgradeMode savepoint needs spec.storage: savepoints are written to its bucket",fieldPath=".upgradeMode",reason=FieldValueInvalid
// +kubebuilder:validation:XValidation:rule="!has(self.upgradeMode) || self.upgradeMode != 'last-state' || has(self.checkpointing)",message="upgradeMode last-state needs spec.checkpointing: it restarts from the latest checkpoint",fieldPath=".upgradeMode",reason=FieldValueInvalid
// +kubebuilder:validation:XValidation:rule="!has(self.savepointTriggerNonce) || has(self.storage)",message="savepointTriggerNonce needs spec.storage: savepoints are written to its bucket",fieldPath=".savepointTriggerNonce",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="!has(self.finalSavepoint) || !self.finalSavepoint || has(self.storage)",message="finalSavepoint needs spec.storage: savepoints are written to its bucket",fieldPath=".finalSavepoint",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="!has(self.initialSavepointPath) || (has(self.storage) && self.initialSavepointPath.startsWith('s3://' + self.storage.s3.bucket + '/'))",message="initialSavepointPath must be an s3:// URL in spec.storage's bucket",fieldPath=".initialSavepointPath",reason=FieldValueInvalid
type FlinkJobSpec struct {
	spec.Job `json:",inline"`

	// image is the worker container image. It must contain the flinkjob worker
	// binary and any Go functions the steps call by name (call). Empty means
	// the operator's default worker image.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Image string `json:"image,omitempty"`

	// imagePullPolicy of the worker container: Always, IfNotPresent or Never.
	// Empty means the Kubernetes default (Always for :latest, else IfNotPresent).
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// resources are the compute resources of each worker container (one
	// container per subtask).
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// podTemplate customizes the worker pods: labels, annotations,
	// scheduling, service account, security contexts and environment.
	// +optional
	PodTemplate *PodTemplate `json:"podTemplate,omitempty"`

	// storage is the S3-compatible object storage the job uses for BATCH
	// blocking shuffles (each stage's output, partitioned, with a manifest)
	// and STREAMING checkpoints. A multi-stage BATCH job and a STREAMING job
	// that should recover from checkpoints need it.
	// +optional
	Storage *Storage `json:"storage,omitempty"`

	// restartStrategy says how the job recovers from failed subtasks, as
	// Flink's restart-strategy: STREAMING restarts every stage from the
	// latest completed checkpoint, BATCH re-runs only the failed subtask,
	// from the materialized results of the stages before it.
	// +kubebuilder:default={}
	// +optional
	RestartStrategy *RestartStrategy `json:"restartStrategy,omitempty"`

	// suspend stops the job: the operator deletes its worker pods and keeps
	// its progress (BATCH keeps the finished stages' results). A running
	// STREAMING job stops as spec.upgradeMode says: savepoint takes a
	// savepoint first (the pods stay until it exists) and resumes from it;
	// last-state resumes from the latest checkpoint; stateless resumes from
	// empty state. Setting it back to false resumes the job.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// ttlSecondsAfterFinished deletes the FlinkJob this many seconds after it
	// succeeded or failed, with its pods and stored intermediate data. Absent
	// means it is kept; 0 means it is deleted right after it finishes.
	// +kubebuilder:validation:Minimum=0
	// +optional
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`

	// checkpointing turns on periodic checkpoints of a STREAMING job (aligned
	// barriers, state snapshots in spec.storage): after a worker failure every
	// stage restarts from the latest completed checkpoint, so state and the
	// exactly-once sinks see every record once. BATCH jobs ignore it (they
	// recover from materialized stage outputs). Needs spec.storage.
	// +optional
	Checkpointing *Checkpointing `json:"checkpointing,omitempty"`

	// upgradeMode is how a running STREAMING job carries its state across a
	// spec change (steps, parallelism, image, resources, podTemplate,
	// checkpointing) and across suspend/resume, as the Flink Kubernetes
	// operator's job.upgradeMode: stateless (the default, as in Flink)
	// restarts from empty state; last-state restarts from the latest
	// completed checkpoint (needs spec.checkpointing); savepoint stops the job
	// with a savepoint and restarts from it (needs spec.storage; if the
	// savepoint fails or times out it falls back to the latest checkpoint,
	// as Flink's last-state fallback).
	// +kubebuilder:validation:Enum=stateless;last-state;savepoint
	// +kubebuilder:default=stateless
	// +optional
	UpgradeMode UpgradeMode `json:"upgradeMode,omitempty"`

	// savepointTriggerNonce triggers a savepoint of the running STREAMING job
	// when it changes to a different value, as in the Flink Kubernetes
	// operator. The result is recorded in status.savepointInfo. Needs
	// spec.storage.
	// +optional
	SavepointTriggerNonce *int64 `json:"savepointTriggerNonce,omitempty"`

	// initialSavepointPath is the s3:// URL of a savepoint (or checkpoint)
	// directory in spec.storage's bucket that a STREAMING job restores its
	// state from the first time it starts. Later restarts and upgrades use
	// the job's own checkpoints and savepoints; changing it later has no
	// effect, as in Flink.
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^s3://[a-z0-9][a-z0-9.-]*[a-z0-9]/.+$`
	// +optional
	InitialSavepointPath string `json:"initialSavepointPath,omitempty"`

	// finalSavepoint makes a bounded job end with a savepoint of its final
	// keyed state (trigger type FINAL in status.savepointInfo): a STREAMING
	// job takes it once every source reached its end, before the end of
	// input fires the remaining event-time timers; a BATCH job writes every
	// keyed step's state after all input. An unbounded STREAMING job with the
	// same keyed step names restores it through initialSavepointPath: the
	// state bootstrap path. Needs spec.storage and bounded sources.
	// +optional
	FinalSavepoint bool `json:"finalSavepoint,omitempty"`

	// savepointHistory bounds the savepoints kept in status and in storage:
	// savepoints beyond maxCount or older than maxAge are disposed (their
	// objects deleted), as the Flink operator's
	// kubernetes.operator.savepoint.history.max.count/max.age. The latest
	// savepoint and one the job starts from are never disposed.
	// +kubebuilder:default={}
	// +optional
	SavepointHistory *SavepointHistory `json:"savepointHistory,omitempty"`
}

// UpgradeMode is how state survives a spec change or suspension.
type UpgradeMode string

const (
	// UpgradeStateless restarts from empty state.
	UpgradeStateless UpgradeMode = "stateless"
	// UpgradeLastState restarts from the latest completed checkpoint.
	UpgradeLastState UpgradeMode = "last-state"
	// UpgradeSavepoint stops with a savepoint and restarts from it.
	UpgradeSavepoint UpgradeMode = "savepoint"
)

// Checkpointing configures periodic checkpoints.
type Checkpointing struct {
	// interval between checkpoints, as a Go duration such as "10s" (at least
	// 100ms), as Flink's execution.checkpointing.interval.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('100ms')",message="interval must be at least 100ms"
	// +required
	Interval spec.Duration `json:"interval"`

	// retain is how many completed checkpoints are kept (older ones are
	// deleted), as Flink's state.checkpoints.num-retained.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=3
	// +optional
	Retain int32 `json:"retain,omitempty"`
}

// SavepointHistory bounds the savepoint history.
type SavepointHistory struct {
	// maxCount is how many savepoints are kept.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=10
	// +optional
	MaxCount int32 `json:"maxCount,omitempty"`

	// maxAge disposes savepoints older than this Go duration (e.g. "24h").
	// +kubebuilder:default="24h"
	// +optional
	MaxAge spec.Duration `json:"maxAge,omitempty"`
}

// PodTemplate is the part of the worker pods a user may set. The operator
// owns the rest (container command, ports, subtask identity).
type PodTemplate struct {
	// labels are added to every worker pod.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// annotations are added to every worker pod.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`

	// nodeSelector restricts the worker pods to nodes with these labels.
	// +optional
	// +mapType=atomic
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// tolerations let the worker pods run on tainted nodes.
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// priorityClassName is the priority class of the worker pods.
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`

	// serviceAccountName is the service account the worker pods run as.
	// Workers need no Kubernetes API access. Empty means the namespace's
	// default.
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// imagePullSecrets are the secrets used to pull the worker image.
	// +optional
	// +listType=atomic
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// securityContext is the pod-level security context of the worker pods.
	// Absent means the operator's restricted default (non-root, no privilege
	// escalation, RuntimeDefault seccomp).
	// +optional
	SecurityContext *corev1.PodSecurityContext `json:"securityContext,omitempty"`

	// containerSecurityContext is the security context of the worker
	// container. Absent means the operator's restricted default.
	// +optional
	ContainerSecurityContext *corev1.SecurityContext `json:"containerSecurityContext,omitempty"`

	// env are extra environment variables of the worker container, for
	// example configuration read by Go functions in a custom worker image.
	// +optional
	// +listType=map
	// +listMapKey=name
	Env []corev1.EnvVar `json:"env,omitempty"`
}

// Storage is where the job keeps intermediate data and checkpoints.
type Storage struct {
	// s3 is an S3-compatible object store (AWS S3, MinIO, ...).
	// +required
	S3 *S3Storage `json:"s3"`
}

// S3Storage is an S3-compatible bucket. Credentials come only from a Secret
// (credentialsSecretRef), never from the manifest itself.
type S3Storage struct {
	// endpoint is the address of the S3 service: http://host:port for plain
	// HTTP, https://host:port or a bare host[:port] for HTTPS (for example
	// http://minio.minio:9000 or s3.eu-west-1.amazonaws.com).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^(https?://)?[^/\s?#]+/?$`
	// +required
	Endpoint string `json:"endpoint"`

	// bucket is the bucket name. The operator does not create it.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9][a-z0-9.-]*[a-z0-9]$`
	// +required
	Bucket string `json:"bucket"`

	// prefix is a key prefix (no leading slash) under which the job's data is
	// stored; the operator adds one folder per job below it. Empty means the
	// bucket's root.
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^([^/].*)?$`
	// +optional
	Prefix string `json:"prefix,omitempty"`

	// region of the bucket; empty lets the client discover it (MinIO ignores it).
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Region string `json:"region,omitempty"`

	// tls configures certificate checks for an HTTPS endpoint.
	// +optional
	TLS *S3TLS `json:"tls,omitempty"`

	// credentialsSecretRef names a Secret in the FlinkJob's namespace holding
	// the access key and secret key. Absent means anonymous requests (a
	// public bucket): workers still take AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY from their environment (podTemplate env), but
	// the operator's own reads of the storage stay anonymous. Cloud
	// identity (IRSA, workload identity) is not supported yet.
	// +optional
	CredentialsSecretRef *S3CredentialsSecretRef `json:"credentialsSecretRef,omitempty"`
}

// S3TLS configures TLS to the S3 endpoint.
// +kubebuilder:validation:XValidation:rule="!(has(self.insecureSkipVerify) && self.insecureSkipVerify && has(self.caSecretRef))",message="set either insecureSkipVerify or caSecretRef, not both"
type S3TLS struct {
	// insecureSkipVerify disables certificate verification. For tests only.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`

	// caSecretRef names a key of a Secret in the FlinkJob's namespace holding
	// PEM CA certificates to trust in addition to the system roots.
	// +optional
	CASecretRef *SecretKeyRef `json:"caSecretRef,omitempty"`
}

// SecretKeyRef selects one key of a Secret in the FlinkJob's namespace.
type SecretKeyRef struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`

	// key in the Secret's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:default="ca.crt"
	// +optional
	Key string `json:"key,omitempty"`
}

// S3CredentialsSecretRef names the Secret holding S3 credentials.
type S3CredentialsSecretRef struct {
	// name of the Secret, in the FlinkJob's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`

	// accessKeyKey is the Secret key holding the access key ID.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:default=accessKey
	// +optional
	AccessKeyKey string `json:"accessKeyKey,omitempty"`

	// secretKeyKey is the Secret key holding the secret access key.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:default=secretKey
	// +optional
	SecretKeyKey string `json:"secretKeyKey,omitempty"`
}

// RestartStrategyType is fixed-delay, exponential-delay or none, as Flink's
// restart-strategy.type.
// +kubebuilder:validation:Enum=fixed-delay;exponential-delay;none
type RestartStrategyType string

const (
	// RestartFixedDelay waits delay between attempts.
	RestartFixedDelay RestartStrategyType = "fixed-delay"
	// RestartExponentialDelay waits delay, then multiplies the wait by
	// backoffMultiplier after each attempt, up to maxDelay.
	RestartExponentialDelay RestartStrategyType = "exponential-delay"
	// RestartNone fails the job at the first failure.
	RestartNone RestartStrategyType = "none"
)

// RestartStrategy is how failures are retried, as Flink's restart strategies.
// +kubebuilder:validation:XValidation:rule="!has(self.type) || self.type != 'exponential-delay' || !has(self.delay) || !has(self.maxDelay) || duration(self.delay) <= duration(self.maxDelay)",message="exponential-delay: delay must not exceed maxDelay"
type RestartStrategy struct {
	// type is fixed-delay, exponential-delay (default) or none.
	// +kubebuilder:default=exponential-delay
	// +optional
	Type RestartStrategyType `json:"type,omitempty"`

	// maxAttempts is how many restarts are tried before the job fails.
	// Ignored by type none.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	// +kubebuilder:default=3
	// +optional
	MaxAttempts *int32 `json:"maxAttempts,omitempty"`

	// delay is the wait before a restart (fixed-delay), or before the first
	// restart (exponential-delay), as a Go duration such as "1s".
	// +kubebuilder:default="1s"
	// +optional
	Delay spec.Duration `json:"delay,omitempty"`

	// maxDelay caps the wait of exponential-delay, as a Go duration.
	// +kubebuilder:default="1m"
	// +optional
	MaxDelay spec.Duration `json:"maxDelay,omitempty"`

	// backoffMultiplier multiplies the wait after each exponential-delay
	// attempt; a decimal number of at least 1, written as a string (e.g. "1.5").
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="double(self) >= 1.0",message="backoffMultiplier must be at least 1"
	// +kubebuilder:default="1.5"
	// +optional
	BackoffMultiplier string `json:"backoffMultiplier,omitempty"`
}

// Phase is the phase of a FlinkJob.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed;Suspended
type Phase string

const (
	// PhasePending: accepted, worker pods not all running yet.
	PhasePending Phase = "Pending"
	// PhaseRunning: at least one stage is running.
	PhaseRunning Phase = "Running"
	// PhaseSucceeded: every stage finished (bounded jobs only).
	PhaseSucceeded Phase = "Succeeded"
	// PhaseFailed: the job failed and the restart strategy gave up, or the
	// spec cannot run (see message and conditions).
	PhaseFailed Phase = "Failed"
	// PhaseSuspended: spec.suspend is true and the worker pods are gone.
	PhaseSuspended Phase = "Suspended"
)

// StagePhase is the phase of one stage.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed
type StagePhase string

const (
	StagePending   StagePhase = "Pending"
	StageRunning   StagePhase = "Running"
	StageSucceeded StagePhase = "Succeeded"
	StageFailed    StagePhase = "Failed"
)

// Condition types the operator sets on a FlinkJob.
const (
	// ConditionPlanned is True when the spec was validated and planned into
	// stages; False with the reason and message when it was rejected.
	ConditionPlanned = "Planned"
	// ConditionRunning is True while worker pods are running.
	ConditionRunning = "Running"
	// ConditionSucceeded is True when the job succeeded, so
	// `kubectl wait --for=condition=Succeeded fj/NAME` waits for it.
	ConditionSucceeded = "Succeeded"
	// ConditionFailed is True when the job failed.
	ConditionFailed = "Failed"
	// ConditionSuspended is True while the job is suspended.
	ConditionSuspended = "Suspended"
)

// FlinkJobStatus is the observed state of a FlinkJob.
type FlinkJobStatus struct {
	// phase is Pending, Running, Succeeded, Failed or Suspended.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// resolvedMode is the runtime mode the job runs in: STREAMING or BATCH
	// (never AUTOMATIC, which resolves to BATCH when every source is bounded).
	// +optional
	ResolvedMode spec.RuntimeMode `json:"resolvedMode,omitempty"`

	// stages is the progress of each stage of the plan (a chain of steps cut
	// at shuffles), in plan order.
	// +optional
	// +listType=map
	// +listMapKey=index
	Stages []StageStatus `json:"stages,omitempty"`

	// stagesDone is how many stages succeeded.
	// +optional
	StagesDone int32 `json:"stagesDone,omitempty"`

	// stagesTotal is how many stages the plan has.
	// +optional
	StagesTotal int32 `json:"stagesTotal,omitempty"`

	// stagesSummary is "stagesDone/stagesTotal", for kubectl get.
	// +optional
	StagesSummary string `json:"stagesSummary,omitempty"`

	// observedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions are the latest observations of the job (Planned, Running,
	// Succeeded, Failed, Suspended).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// startTime is when the first worker pod was created.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// finishTime is when the job succeeded or failed.
	// +optional
	FinishTime *metav1.Time `json:"finishTime,omitempty"`

	// restarts counts recoveries from failures: STREAMING restarts every
	// stage's pods together; BATCH re-runs single failed subtasks.
	// +optional
	Restarts int32 `json:"restarts,omitempty"`

	// attempt numbers the current set of STREAMING worker pods; it grows on
	// every restart and every resume, so new pods never clash with old ones.
	// +optional
	Attempt int32 `json:"attempt,omitempty"`

	// lastFailureTime is when the latest worker failure was seen; restarts
	// wait the restart strategy's delay from it.
	// +optional
	LastFailureTime *metav1.Time `json:"lastFailureTime,omitempty"`

	// message is a human-readable explanation of the phase.
	// +optional
	Message string `json:"message,omitempty"`

	// lastCheckpoint is the latest completed checkpoint of a STREAMING job
	// with checkpointing, as its checkpoint coordinator reported it.
	// +optional
	LastCheckpoint *CheckpointInfo `json:"lastCheckpoint,omitempty"`

	// savepointInfo is the savepoint in progress, the latest savepoint and
	// the history of savepoints taken by the operator.
	// +optional
	SavepointInfo *SavepointInfo `json:"savepointInfo,omitempty"`

	// startedFrom is the state the current worker pods started from.
	// +optional
	StartedFrom *StartInfo `json:"startedFrom,omitempty"`

	// nextStart is the state the next set of worker pods will start from,
	// decided when the current ones were stopped (an upgrade or a suspend);
	// absent means recovery from the latest checkpoint, if any.
	// +optional
	NextStart *StartInfo `json:"nextStart,omitempty"`

	// appliedGeneration is the metadata.generation whose spec the worker
	// pods run; a newer generation with a different spec (see
	// appliedSpecHash) upgrades a STREAMING job per spec.upgradeMode.
	// +optional
	AppliedGeneration int64 `json:"appliedGeneration,omitempty"`

	// appliedSpecHash identifies the parts of the spec the worker pods run
	// (dataflow, image, resources, podTemplate, checkpointing).
	// +optional
	AppliedSpecHash string `json:"appliedSpecHash,omitempty"`
}

// CheckpointInfo is one completed checkpoint.
type CheckpointInfo struct {
	// id is the checkpoint's number.
	// +optional
	ID int64 `json:"id,omitempty"`
	// path is the URL of the checkpoint's directory.
	// +optional
	Path string `json:"path,omitempty"`
	// time is when the checkpoint completed.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
}

// SavepointTriggerType says why a savepoint was taken.
// +kubebuilder:validation:Enum=MANUAL;UPGRADE;SUSPEND;FINAL
type SavepointTriggerType string

const (
	// SavepointManual was triggered by spec.savepointTriggerNonce.
	SavepointManual SavepointTriggerType = "MANUAL"
	// SavepointUpgrade stopped the job for a spec change (upgradeMode savepoint).
	SavepointUpgrade SavepointTriggerType = "UPGRADE"
	// SavepointSuspend stopped the job for spec.suspend (upgradeMode savepoint).
	SavepointSuspend SavepointTriggerType = "SUSPEND"
	// SavepointFinal is a bounded job's final state (spec.finalSavepoint).
	SavepointFinal SavepointTriggerType = "FINAL"
)

// Savepoint is a completed savepoint.
type Savepoint struct {
	// path is the URL of the savepoint's directory; initialSavepointPath
	// of another job may restore it.
	// +optional
	Path string `json:"path,omitempty"`
	// time is when the savepoint completed.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
	// triggerType is MANUAL, UPGRADE, SUSPEND or FINAL.
	// +optional
	TriggerType SavepointTriggerType `json:"triggerType,omitempty"`
	// triggerNonce identifies the request (spec.savepointTriggerNonce for MANUAL).
	// +optional
	TriggerNonce string `json:"triggerNonce,omitempty"`
	// checkpointId is the checkpoint number the savepoint was taken as.
	// +optional
	CheckpointID int64 `json:"checkpointId,omitempty"`
}

// SavepointInfo is the operator's savepoint bookkeeping, as the Flink
// operator's status.jobStatus.savepointInfo.
type SavepointInfo struct {
	// lastSavepoint is the latest completed savepoint.
	// +optional
	LastSavepoint *Savepoint `json:"lastSavepoint,omitempty"`

	// savepointHistory lists the retained savepoints, oldest first.
	// +optional
	// +listType=atomic
	SavepointHistory []Savepoint `json:"savepointHistory,omitempty"`

	// triggerNonce is the savepoint in progress, if any.
	// +optional
	TriggerNonce string `json:"triggerNonce,omitempty"`
	// triggerType is why the savepoint in progress was triggered.
	// +optional
	TriggerType SavepointTriggerType `json:"triggerType,omitempty"`
	// triggerTime is when the savepoint in progress was requested.
	// +optional
	TriggerTime *metav1.Time `json:"triggerTime,omitempty"`
	// triggerStop says the savepoint in progress stops the job.
	// +optional
	TriggerStop bool `json:"triggerStop,omitempty"`

	// lastTriggerNonce is the spec.savepointTriggerNonce last acted on
	// (whether the savepoint succeeded or failed).
	// +optional
	LastTriggerNonce *int64 `json:"lastTriggerNonce,omitempty"`
	// lastError is why the latest failed savepoint failed.
	// +optional
	LastError string `json:"lastError,omitempty"`
}

// StartKind is what state worker pods start from.
// +kubebuilder:validation:Enum=Fresh;Checkpoint;Savepoint
type StartKind string

const (
	// StartFresh starts with empty state.
	StartFresh StartKind = "Fresh"
	// StartCheckpoint restores the latest completed checkpoint.
	StartCheckpoint StartKind = "Checkpoint"
	// StartSavepoint restores a savepoint (or a named checkpoint directory).
	StartSavepoint StartKind = "Savepoint"
)

// StartInfo is the state a set of worker pods starts from.
type StartInfo struct {
	// attempt is the status.attempt of the pods.
	// +optional
	Attempt int32 `json:"attempt,omitempty"`
	// kind is Fresh, Checkpoint or Savepoint.
	// +optional
	Kind StartKind `json:"kind,omitempty"`
	// path is the savepoint's URL, or the latest completed checkpoint the
	// operator saw when it started the pods (the workers restore the newest
	// one they find).
	// +optional
	Path string `json:"path,omitempty"`
	// launched is set once every pod of the attempt was created: a pod
	// missing after that was deleted, and fails the attempt.
	// +optional
	Launched bool `json:"launched,omitempty"`
}

// StageStatus is the progress of one stage: a chain of steps run by
// parallelism subtasks (one worker pod each).
type StageStatus struct {
	// index is the stage's position in the plan, from 0.
	// +kubebuilder:validation:Minimum=0
	// +required
	Index int32 `json:"index"`

	// name names the stage after its steps (e.g. "lines+words").
	// +optional
	Name string `json:"name,omitempty"`

	// steps are the names of the steps chained in this stage.
	// +optional
	// +listType=atomic
	Steps []string `json:"steps,omitempty"`

	// parallelism is the number of subtasks of the stage.
	// +optional
	Parallelism int32 `json:"parallelism,omitempty"`

	// phase is Pending, Running, Succeeded or Failed.
	// +optional
	Phase StagePhase `json:"phase,omitempty"`

	// subtasksRunning is how many subtasks are running.
	// +optional
	SubtasksRunning int32 `json:"subtasksRunning,omitempty"`

	// subtasksSucceeded is how many subtasks finished successfully.
	// +optional
	SubtasksSucceeded int32 `json:"subtasksSucceeded,omitempty"`

	// subtasksFailed is how many subtasks failed in the current attempt.
	// +optional
	SubtasksFailed int32 `json:"subtasksFailed,omitempty"`

	// recordsIn is how many records the stage's finished subtasks read,
	// from their termination messages: a running subtask's count is on its
	// /metrics (flinkjob_worker_records_in_total), so an unbounded STREAMING
	// stage shows none here.
	// +optional
	RecordsIn int64 `json:"recordsIn,omitempty"`

	// recordsOut is how many records the stage's finished subtasks emitted
	// (as recordsIn: flinkjob_worker_records_out_total while they run).
	// +optional
	RecordsOut int64 `json:"recordsOut,omitempty"`

	// attempts counts the stage's starts: in BATCH 1 plus one per re-run
	// of a failed subtask; in STREAMING the attempt of the current pod set
	// plus 1 (it grows with every restart, upgrade and resume).
	// +optional
	Attempts int32 `json:"attempts,omitempty"`

	// startTime is when the stage's current attempt started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// finishTime is when the stage succeeded or failed.
	// +optional
	FinishTime *metav1.Time `json:"finishTime,omitempty"`
}

// SyncStageCounts sets stagesDone, stagesTotal and stagesSummary from stages.
// Status writers call it after changing stages so the printer columns agree.
func (s *FlinkJobStatus) SyncStageCounts() {
	var done int32
	for i := range s.Stages {
		if s.Stages[i].Phase == StageSucceeded {
			done++
		}
	}
	s.StagesDone = done
	s.StagesTotal = int32(len(s.Stages))
	s.StagesSummary = fmt.Sprintf("%d/%d", s.StagesDone, s.StagesTotal)
}
