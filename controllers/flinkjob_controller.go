// Package controllers holds the FlinkJob reconciler: it turns a FlinkJob
// into worker pods per stage, keeps the status true and recovers from
// failures as Flink does, plus the validating admission webhook. It uses the
// engine only to validate and plan jobs; the workers run them.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/internal/jobcheck"
)

// Finalizer removes a job's pods and intermediate data before it goes.
const Finalizer = "flinkjob.io/cleanup"

// FlinkJobReconciler reconciles FlinkJobs as a state machine, one function
// per phase:
//
//	          validate ──invalid──> Failed
//	             │
//	(new) ──> Pending ──launch pods──> Running ──all stages done──> finalize sinks ──> Succeeded
//	             ▲                       │  │
//	             └──── resume ──┐        │  └─ a subtask failed ─> retry (restart strategy) ─┐
//	                         Suspended <─┘ spec.suspend            └─ attempts exhausted ──> Failed
//
//	deleted ──> finalizer: pods stopped, intermediate S3 data removed
//	Succeeded/Failed ──ttlSecondsAfterFinished──> deleted
//
// STREAMING launches the pods of every stage at once and restarts them all
// on any failure. BATCH launches only the current stage's pods; the next
// stage starts when every subtask succeeded and wrote its output manifest,
// and a failed subtask is re-run alone from the materialized inputs.
//
// All state lives in the FlinkJob's status and in labelled pods, so a
// restarted manager picks up where it left off; creating an existing pod is
// a no-op.
//
// The job and its pods are read from the API server, not the informer
// cache: every decision (start the next stage, retry a subtask, give up)
// depends on the pods this reconciler just created or deleted, and a cache
// that has not seen them yet would retry a subtask twice or fail a job
// whose retry is already running. Watches still come from the cache.
type FlinkJobReconciler struct {
	client.Client
	// APIReader reads the job and its pods uncached; SetupWithManager sets
	// it to the manager's API reader. Nil means Client.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// WorkerImage is used when spec.image is empty.
	WorkerImage string
	// Storage reads output manifests and removes intermediate data.
	Storage Storage
	// Now is the clock (tests may replace it).
	Now func() time.Time
	// SavepointTimeout is how long a savepoint may take; 0 means
	// DefaultSavepointTimeout.
	SavepointTimeout time.Duration

	// checkpointSeen is the checkpoint-latest.json last read per job
	// (observeCheckpoint).
	checkpointSeen checkpointMemo
}

// +kubebuilder:rbac:groups=flinkjob.io,resources=flinkjobs,verbs=get;list;watch;update;patch;delete
// +kubebuilder:rbac:groups=flinkjob.io,resources=flinkjobs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=flinkjob.io,resources=flinkjobs/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=services;configmaps,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the reconciler.
func (r *FlinkJobReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.FlinkJob{}).
		Owns(&corev1.Pod{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.Service{}).
		Named("flinkjob").
		Complete(r)
}

// state is one reconcile's view of a job.
type state struct {
	job  *v1alpha1.FlinkJob
	orig *v1alpha1.FlinkJob
	plan *plan.Plan
	pods []corev1.Pod
	// requeue asks for another look after a delay (restart backoff, TTL).
	requeue time.Duration
}

// requeueWithin asks for another look within d (the earliest request wins).
func (s *state) requeueWithin(d time.Duration) {
	if s.requeue == 0 || d < s.requeue {
		s.requeue = d
	}
}

// planStages is the status of a plan's stages before any ran.
func planStages(p *plan.Plan) []v1alpha1.StageStatus {
	var out []v1alpha1.StageStatus
	for _, st := range p.Stages {
		var steps []string
		for _, n := range st.Chain {
			steps = append(steps, n.Name)
		}
		out = append(out, v1alpha1.StageStatus{
			Index: int32(st.ID), Name: st.Name, Steps: steps, Parallelism: int32(st.Parallelism), Phase: v1alpha1.StagePending})
	}
	return out
}

// Reconcile moves a job one step through its state machine.
func (r *FlinkJobReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	job := &v1alpha1.FlinkJob{}
	if err := r.reader().Get(ctx, req.NamespacedName, job); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !job.DeletionTimestamp.IsZero() {
		return r.phaseDeleting(ctx, job)
	}
	if !controllerutil.ContainsFinalizer(job, Finalizer) {
		patch := client.MergeFrom(job.DeepCopy())
		controllerutil.AddFinalizer(job, Finalizer)
		if err := r.Patch(ctx, job, patch); err != nil {
			return ctrl.Result{}, err
		}
	}
	s := &state{job: job, orig: job.DeepCopy()}
	var err error
	switch {
	case job.Status.Phase == v1alpha1.PhaseSucceeded || job.Status.Phase == v1alpha1.PhaseFailed:
		err = r.phaseFinished(ctx, s)
	default:
		err = r.phaseValidate(ctx, s)
		if err == nil && s.plan != nil {
			if job.Spec.Suspend {
				err = r.phaseSuspended(ctx, s)
			} else {
				err = r.phaseRun(ctx, s)
			}
		}
	}
	if err != nil {
		log.Error(err, "reconcile failed", "phase", job.Status.Phase)
	}
	if perr := r.writeStatus(ctx, s); perr != nil {
		if apierrors.IsConflict(perr) {
			return ctrl.Result{Requeue: true}, nil
		}
		return ctrl.Result{}, perr
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: s.requeue}, nil
}

// writeStatus patches the status if it changed, with optimistic locking so
// a concurrent writer (a second reconcile, another manager) loses cleanly.
func (r *FlinkJobReconciler) writeStatus(ctx context.Context, s *state) error {
	s.job.Status.ObservedGeneration = s.job.Generation
	s.job.Status.SyncStageCounts()
	if equalStatus(&s.orig.Status, &s.job.Status) {
		return nil
	}
	return r.Status().Patch(ctx, s.job, client.MergeFromWithOptions(s.orig, client.MergeFromWithOptimisticLock{}))
}

func equalStatus(a, b *v1alpha1.FlinkJobStatus) bool {
	x, _ := jsonBytes(a)
	y, _ := jsonBytes(b)
	return string(x) == string(y)
}

// phaseValidate checks the spec with the shared validation and plans it.
// An invalid spec fails the job at once with the validation message.
func (r *FlinkJobReconciler) phaseValidate(ctx context.Context, s *state) error {
	job := s.job
	p, err := PlanJob(job)
	if err != nil {
		r.setPhase(s, v1alpha1.PhaseFailed, "InvalidSpec", err.Error())
		setCondition(job, v1alpha1.ConditionPlanned, metav1.ConditionFalse, "InvalidSpec", err.Error())
		setCondition(job, v1alpha1.ConditionFailed, metav1.ConditionTrue, "InvalidSpec", err.Error())
		return nil
	}
	s.plan = p
	if job.Status.Phase != "" && len(job.Status.Stages) != len(p.Stages) && p.Mode != spec.Streaming {
		// The dataflow was edited while the job ran: its progress no
		// longer maps onto the new plan (and indexing it would panic).
		msg := fmt.Sprintf("the dataflow changed while the job ran: it now plans %d stages, the job started with %d; create a new FlinkJob to run the new dataflow",
			len(p.Stages), len(job.Status.Stages))
		s.plan = nil
		return r.fail(s, "SpecChanged", msg)
	}
	if job.Status.Phase == "" {
		job.Status.ResolvedMode = p.Mode
		job.Status.Stages = planStages(p)
		msg := fmt.Sprintf("planned %d stages in %s mode", len(p.Stages), p.Mode)
		setCondition(job, v1alpha1.ConditionPlanned, metav1.ConditionTrue, "Planned", msg)
		r.setPhase(s, v1alpha1.PhasePending, "Planned", msg)
	}
	return nil
}

// phaseRun makes sure the job's worker pods are what its mode needs.
func (r *FlinkJobReconciler) phaseRun(ctx context.Context, s *state) error {
	job := s.job
	if job.Status.Phase == v1alpha1.PhaseSuspended {
		setCondition(job, v1alpha1.ConditionSuspended, metav1.ConditionFalse, "Resumed", "spec.suspend is false")
		job.Status.Attempt++
		r.setPhase(s, v1alpha1.PhasePending, "Resumed", "the job was resumed")
	}
	if err := r.ensureConfig(ctx, s); err != nil {
		return err
	}
	if err := r.listPods(ctx, s); err != nil {
		return err
	}
	recoverRestarts(s)
	if s.plan.Mode == spec.Batch {
		return r.runBatch(ctx, s)
	}
	return r.runStreaming(ctx, s)
}

// phaseSuspended deletes the worker pods and keeps the job's progress. A
// running STREAMING job is stopped as spec.upgradeMode says: with a
// savepoint (the pods stay until it exists), keeping its checkpoints
// (last-state), or dropping its state (stateless).
func (r *FlinkJobReconciler) phaseSuspended(ctx context.Context, s *state) error {
	if err := r.listPods(ctx, s); err != nil {
		return err
	}
	if s.plan.Mode == spec.Streaming && s.job.Status.Phase != v1alpha1.PhaseSuspended {
		if done, err := r.suspendStreaming(ctx, s); err != nil || !done {
			return err
		}
	}
	for i := range s.pods {
		if err := r.deletePod(ctx, &s.pods[i]); err != nil {
			return err
		}
	}
	if s.job.Status.Phase != v1alpha1.PhaseSuspended {
		for i := range s.job.Status.Stages {
			st := &s.job.Status.Stages[i]
			if st.Phase == v1alpha1.StageRunning {
				st.Phase = v1alpha1.StagePending
				st.SubtasksRunning = 0
			}
		}
		// A restart that was waiting for its delay is moot: resuming
		// starts fresh pods anyway.
		s.job.Status.LastFailureTime = nil
		setCondition(s.job, v1alpha1.ConditionRunning, metav1.ConditionFalse, "Suspended", "spec.suspend is true")
		setCondition(s.job, v1alpha1.ConditionSuspended, metav1.ConditionTrue, "Suspended", "spec.suspend is true: worker pods deleted")
		r.setPhase(s, v1alpha1.PhaseSuspended, "Suspended", "spec.suspend is true: worker pods deleted")
	}
	return nil
}

// phaseFinished keeps a finished job until its TTL runs out.
func (r *FlinkJobReconciler) phaseFinished(ctx context.Context, s *state) error {
	job := s.job
	// Stop anything still running (e.g. a sink that outlived a failure).
	if err := r.listPods(ctx, s); err != nil {
		return err
	}
	for i := range s.pods {
		if p := &s.pods[i]; p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			if err := r.deletePod(ctx, p); err != nil {
				return err
			}
		}
	}
	ttl := job.Spec.TTLSecondsAfterFinished
	if ttl == nil || job.Status.FinishTime == nil {
		return nil
	}
	expires := job.Status.FinishTime.Add(time.Duration(*ttl) * time.Second)
	if *ttl > 0 {
		// finishTime is stored in whole seconds (cut, not rounded): the
		// job may have finished up to a second later than it says.
		expires = expires.Add(time.Second)
	}
	if left := expires.Sub(r.now()); left > 0 {
		s.requeue = left
		return nil
	}
	r.event(job, corev1.EventTypeNormal, "Expired", fmt.Sprintf("deleting the job %ds after it finished (ttlSecondsAfterFinished)", *ttl))
	return client.IgnoreNotFound(r.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground)))
}

// podGoneTimeout bounds how long a deleted job waits for its pods to go
// before removing its data (see phaseDeleting).
const podGoneTimeout = 2 * time.Minute

// phaseDeleting stops the pods and, once they are gone, removes the job's
// own data (DeleteJobData: savepoints stay), then lets the job go.
func (r *FlinkJobReconciler) phaseDeleting(ctx context.Context, job *v1alpha1.FlinkJob) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(job, Finalizer) {
		return ctrl.Result{}, nil
	}
	s := &state{job: job}
	if err := r.listPods(ctx, s); err != nil {
		return ctrl.Result{}, err
	}
	for i := range s.pods {
		if err := r.deletePod(ctx, &s.pods[i]); err != nil {
			return ctrl.Result{}, err
		}
	}
	// The data goes only once every pod is gone: a worker still stopping
	// (in its grace period, or finishing a write when the signal came)
	// could otherwise write after the cleanup and leave its output behind.
	// A pod still there podGoneTimeout after its deletion is on a node
	// that stopped answering: it is not waited for, or the job (and its
	// namespace) would never go. The pods' deletion requeues the job; the
	// timer is a safety net.
	for _, p := range s.pods {
		if p.DeletionTimestamp.IsZero() || r.now().Sub(p.DeletionTimestamp.Time) < podGoneTimeout {
			return ctrl.Result{RequeueAfter: 2 * time.Second}, nil
		}
	}
	if r.Storage != nil && jobcheck.HasStorage(job) {
		err := r.Storage.DeleteJobData(ctx, job)
		var noCreds *CredentialsNotFoundError
		switch {
		case errors.As(err, &noCreds):
			// The Secret went first (a namespace being deleted removes
			// everything at once): without credentials the data cannot
			// be reached, and waiting would hold the job, and its
			// namespace, forever.
			r.event(job, corev1.EventTypeWarning, "CleanupSkipped", fmt.Sprintf(
				"intermediate data under %s left in place: %v", shuffleURL(job), err))
		case err != nil:
			r.event(job, corev1.EventTypeWarning, "CleanupFailed", "removing intermediate data: "+err.Error())
			return ctrl.Result{}, err
		}
	}
	patch := client.MergeFrom(job.DeepCopy())
	controllerutil.RemoveFinalizer(job, Finalizer)
	if err := r.Patch(ctx, job, patch); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	forgetPhase(job.UID)
	return ctrl.Result{}, nil
}

// reader is where the job and its pods are read: the API server when set.
func (r *FlinkJobReconciler) reader() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

func (r *FlinkJobReconciler) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}

// setPhase changes the phase, records an Event for the transition and
// updates the phase metric.
func (r *FlinkJobReconciler) setPhase(s *state, p v1alpha1.Phase, reason, msg string) {
	job := s.job
	job.Status.Message = msg
	if job.Status.Phase == p {
		return
	}
	old := job.Status.Phase
	job.Status.Phase = p
	now := metav1.NewTime(r.now())
	switch p {
	case v1alpha1.PhaseSucceeded, v1alpha1.PhaseFailed:
		job.Status.FinishTime = &now
	}
	typ := corev1.EventTypeNormal
	if p == v1alpha1.PhaseFailed {
		typ = corev1.EventTypeWarning
	}
	r.event(job, typ, reason, fmt.Sprintf("%s -> %s: %s", orNew(old), p, msg))
	jobPhaseTransitions.WithLabelValues(string(p)).Inc()
	trackPhase(job, p)
}

func orNew(p v1alpha1.Phase) string {
	if p == "" {
		return "New"
	}
	return string(p)
}

// maxEventNote is the longest note events.k8s.io/v1 accepts; a longer one
// (a worker's error can be 4 KiB) makes the API server drop the Event.
const maxEventNote = 1024

func (r *FlinkJobReconciler) event(job *v1alpha1.FlinkJob, typ, reason, msg string) {
	msg = truncate(msg, maxEventNote)
	if r.Recorder != nil {
		r.Recorder.Eventf(job, nil, typ, reason, reason, "%s", msg)
	}
}

// truncate cuts s to at most n bytes without splitting a UTF-8 character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ell = "..."
	cut := n - len(ell)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ell
}

func setCondition(job *v1alpha1.FlinkJob, typ string, status metav1.ConditionStatus, reason, msg string) {
	msg = truncate(msg, 32000)
	meta.SetStatusCondition(&job.Status.Conditions, metav1.Condition{Type: typ, Status: status, Reason: reason,
		Message: msg, ObservedGeneration: job.Generation})
}
