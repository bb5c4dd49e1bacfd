package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/spec"
)

// runBatch runs the stages one after another. Only the current stage's
// pods exist; a stage counts as done when every subtask succeeded and its
// output manifest is in storage. A failed subtask is re-run alone (its
// inputs are the materialized outputs of the stages before it), as long as
// the restart strategy allows.
func (r *FlinkJobReconciler) runBatch(ctx context.Context, s *state) error {
	job := s.job
	cur := -1
	for i, st := range job.Status.Stages {
		if st.Phase != v1alpha1.StageSucceeded {
			cur = i
			break
		}
	}
	// Pods of finished stages go, so only the current stage's pods exist
	// (FLIP-134: a parallelism-1 job has one worker pod at a time).
	oldPods := false
	for i := range s.pods {
		p := &s.pods[i]
		if p.Labels[LabelRole] == RoleWorker && (cur < 0 || labelInt(p, LabelStage) < cur) {
			oldPods = true
			if err := r.deletePod(ctx, p); err != nil {
				return err
			}
		}
	}
	if cur < 0 {
		// The finalize pod, too, waits for the last stage's pods to be gone.
		if oldPods {
			s.requeue = time.Second
			return nil
		}
		return r.runFinalize(ctx, s)
	}
	pst := s.plan.Stages[cur]
	st := &job.Status.Stages[cur]
	if st.Phase == v1alpha1.StagePending {
		// Wait for earlier stages' pods to be gone before starting this one.
		if oldPods {
			s.requeue = time.Second
			return nil
		}
		now := metav1.NewTime(r.now())
		st.Phase, st.StartTime = v1alpha1.StageRunning, &now
		st.Attempts++
		if job.Status.StartTime == nil {
			job.Status.StartTime = &now
		}
		r.event(job, corev1.EventTypeNormal, "StageStarted", fmt.Sprintf("stage %d (%s): starting %d subtasks", cur, st.Name, pst.Parallelism))
	}
	var running, succeeded, failed int32
	var in, out int64
	for i := 0; i < pst.Parallelism; i++ {
		pods := s.subtaskPods(cur, i)
		if done := succeededPod(pods); done != nil {
			succeeded++
			_, res := terminated(done)
			in += res.RecordsIn
			out += res.RecordsOut
			continue
		}
		// Pods being deleted (by a suspend, say) no longer count, but
		// their names stay taken until they are gone.
		live := alivePods(pods)
		if len(live) == 0 {
			if err := r.createIfMissing(ctx, r.subtaskPod(job, spec.Batch, cur, i, nextAttempt(pods))); err != nil {
				return err
			}
			running++
			continue
		}
		last := live[len(live)-1]
		if last.Status.Phase != corev1.PodFailed {
			running++
			continue
		}
		failed++
		pol := policyOf(job)
		if pol.exhausted(job.Status.Restarts) {
			msg := fmt.Sprintf("stage %d (%s) subtask %d failed and the restart strategy allows no more restarts (%d used): %s",
				cur, st.Name, i, job.Status.Restarts, failureMessage(last))
			st.Phase = v1alpha1.StageFailed
			st.SubtasksFailed = failed
			return r.fail(s, "SubtaskFailed", msg)
		}
		r.noteFailure(job)
		if left := r.waitLeft(job); left > 0 {
			s.requeue = minPositive(s.requeue, left)
			continue
		}
		job.Status.Restarts++
		job.Status.LastFailureTime = nil
		st.Attempts++
		restartsTotal.WithLabelValues(string(spec.Batch)).Inc()
		next := nextAttempt(pods)
		r.event(job, corev1.EventTypeWarning, "SubtaskRestarted", fmt.Sprintf("stage %d subtask %d failed (%s); re-running it alone (attempt %d)", cur, i, failureMessage(last), next))
		if err := r.createIfMissing(ctx, r.subtaskPod(job, spec.Batch, cur, i, next)); err != nil {
			return err
		}
	}
	st.SubtasksRunning, st.SubtasksSucceeded, st.SubtasksFailed = running, succeeded, failed
	st.RecordsIn, st.RecordsOut = in, out
	setCondition(job, v1alpha1.ConditionRunning, metav1.ConditionTrue, "StageRunning", fmt.Sprintf("stage %d of %d (%s) running", cur+1, len(job.Status.Stages), st.Name))
	r.setPhase(s, v1alpha1.PhaseRunning, "Running", fmt.Sprintf("stage %d of %d (%s): %d/%d subtasks done", cur+1, len(job.Status.Stages), st.Name, succeeded, pst.Parallelism))
	if int(succeeded) < pst.Parallelism {
		return nil
	}
	// Every subtask succeeded: the stage's output counts once its
	// manifests are in storage.
	if len(pst.Outputs) > 0 && r.Storage != nil {
		for i := 0; i < pst.Parallelism; i++ {
			ok, err := r.Storage.ManifestExists(ctx, job, cur, i)
			if err != nil {
				return err
			}
			if !ok {
				r.event(job, corev1.EventTypeWarning, "ManifestMissing", fmt.Sprintf("stage %d subtask %d succeeded but its output manifest is not in storage yet", cur, i))
				s.requeue = minPositive(s.requeue, 2*time.Second)
				return nil
			}
		}
	}
	now := metav1.NewTime(r.now())
	st.Phase, st.FinishTime, st.SubtasksRunning = v1alpha1.StageSucceeded, &now, 0
	if st.StartTime != nil {
		stageDuration.WithLabelValues(string(spec.Batch)).Observe(now.Sub(st.StartTime.Time).Seconds())
	}
	r.event(job, corev1.EventTypeNormal, "StageSucceeded", fmt.Sprintf("stage %d (%s) succeeded: %d records in, %d out", cur, st.Name, in, out))
	s.requeue = minPositive(s.requeue, time.Millisecond)
	return nil
}

// runFinalize runs the sinks' job-wide finish (e.g. _SUCCESS markers) in a
// pod once every stage succeeded, then marks the job Succeeded.
func (r *FlinkJobReconciler) runFinalize(ctx context.Context, s *state) error {
	job := s.job
	pods := s.rolePods(RoleFinalize)
	if done := succeededPod(pods); done != nil {
		if err := r.recordFinalSavepoint(ctx, s); err != nil {
			return err
		}
		if err := r.deletePod(ctx, done); err != nil {
			return err
		}
		setCondition(job, v1alpha1.ConditionRunning, metav1.ConditionFalse, "Finished", "all stages finished")
		setCondition(job, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, "Succeeded", "every stage succeeded and the sinks were committed")
		r.setPhase(s, v1alpha1.PhaseSucceeded, "Succeeded", "every stage succeeded and the sinks were committed")
		return nil
	}
	live := alivePods(pods)
	if len(live) == 0 {
		return r.createIfMissing(ctx, r.finalizePod(job, s.plan.Mode, nextAttempt(pods)))
	}
	last := live[len(live)-1]
	if last.Status.Phase != corev1.PodFailed {
		return nil
	}
	if policyOf(job).exhausted(job.Status.Restarts) {
		return r.fail(s, "FinalizeFailed", "committing the sinks failed: "+failureMessage(last))
	}
	r.noteFailure(job)
	if left := r.waitLeft(job); left > 0 {
		s.requeue = left
		return nil
	}
	job.Status.Restarts++
	job.Status.LastFailureTime = nil
	r.event(job, corev1.EventTypeWarning, "FinalizeRestarted", "committing the sinks failed ("+failureMessage(last)+"); retrying")
	return r.createIfMissing(ctx, r.finalizePod(job, s.plan.Mode, nextAttempt(pods)))
}

// fail ends the job: status says why, an Event too.
func (r *FlinkJobReconciler) fail(s *state, reason, msg string) error {
	setCondition(s.job, v1alpha1.ConditionRunning, metav1.ConditionFalse, reason, msg)
	setCondition(s.job, v1alpha1.ConditionFailed, metav1.ConditionTrue, reason, msg)
	r.setPhase(s, v1alpha1.PhaseFailed, reason, msg)
	return nil
}

func minPositive(a, b time.Duration) time.Duration {
	if a <= 0 || (b > 0 && b < a) {
		return b
	}
	return a
}
