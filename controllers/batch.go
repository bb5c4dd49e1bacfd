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
	for i := range s.pods {
		p := &s.pods[i]
		if p.Labels[LabelRole] == RoleWorker && (cur < 0 || labelInt(p, LabelStage) < cur) {
			if err := r.deletePod(ctx, p); err != nil {
				return err
			}
		}
	}
	if cur < 0 {
		return r.runFinalize(ctx, s)
	}
	pst := s.plan.Stages[cur]
	st := &job.Status.Stages[cur]
	if st.Phase == v1alpha1.StagePending {
		// Wait for earlier stages' pods to be gone before starting this one.
		for i := range s.pods {
			if p := &s.pods[i]; p.Labels[LabelRole] == RoleWorker && labelInt(p, LabelStage) < cur {
				s.requeue = time.Second
				return nil
			}
		}
		now := metav1.NewTime(r.now())
		st.Phase, st.StartTime, st.Attempts = v1alpha1.StageRunning, &now, 1
		if job.Status.StartTime == nil {
			job.Status.StartTime = &now
		}
		r.event(job, corev1.EventTypeNormal, "StageStarted", fmt.Sprintf("stage %d (%s): starting %d subtasks", cur, st.Name, pst.Parallelism))
	}
	var running, succeeded, failed int32
	var in, out int64
	for i := 0; i < pst.Parallelism; i++ {
		pods := s.subtaskPods(cur, i)
		var done *corev1.Pod
		for _, p := range pods {
			if p.Status.Phase == corev1.PodSucceeded {
				done = p
			}
		}
		if done != nil {
			succeeded++
			_, res := terminated(done)
			in += res.RecordsIn
			out += res.RecordsOut
			continue
		}
		if len(pods) == 0 {
			if err := r.createIfMissing(ctx, r.subtaskPod(job, spec.Batch, cur, i, 0)); err != nil {
				return err
			}
			running++
			continue
		}
		last := pods[len(pods)-1]
		if last.Status.Phase != corev1.PodFailed {
			running++
			continue
		}
		failed++
		attempt := labelInt(last, LabelAttempt)
		pol := policyOf(job)
		if pol.exhausted(job.Status.Restarts) {
			msg := fmt.Sprintf("stage %d (%s) subtask %d failed after %d attempts: %s", cur, st.Name, i, attempt+1, failureMessage(last))
			st.Phase = v1alpha1.StageFailed
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
		r.event(job, corev1.EventTypeWarning, "SubtaskRestarted", fmt.Sprintf("stage %d subtask %d failed (%s); re-running it alone (attempt %d)", cur, i, failureMessage(last), attempt+2))
		if err := r.createIfMissing(ctx, r.subtaskPod(job, spec.Batch, cur, i, attempt+1)); err != nil {
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
	if len(pods) == 0 {
		return r.createIfMissing(ctx, r.finalizePod(job, s.plan.Mode, 0))
	}
	last := pods[len(pods)-1]
	switch last.Status.Phase {
	case corev1.PodSucceeded:
		if err := r.deletePod(ctx, last); err != nil {
			return err
		}
		setCondition(job, v1alpha1.ConditionRunning, metav1.ConditionFalse, "Finished", "all stages finished")
		setCondition(job, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, "Succeeded", "every stage succeeded and the sinks were committed")
		r.setPhase(s, v1alpha1.PhaseSucceeded, "Succeeded", "every stage succeeded and the sinks were committed")
		return nil
	case corev1.PodFailed:
		attempt := labelInt(last, LabelAttempt)
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
		return r.createIfMissing(ctx, r.finalizePod(job, s.plan.Mode, attempt+1))
	}
	return nil
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
