package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/internal/jobcheck"
)

// runStreaming keeps the pods of every stage up at once. Any failed pod
// restarts them all, after the restart strategy's delay, with a new
// attempt number so new pods never share names or DNS with old ones; with
// spec.checkpointing they restore the latest completed checkpoint, so
// state and exactly-once sinks see every record once (see savepoints.go
// for what each attempt starts from). A spec change upgrades the job per
// spec.upgradeMode. A bounded job whose pods all succeed finalizes its
// sinks and succeeds.
func (r *FlinkJobReconciler) runStreaming(ctx context.Context, s *state) error {
	job := s.job
	attempt := int(job.Status.Attempt)
	var current, stale []*corev1.Pod
	for i := range s.pods {
		p := &s.pods[i]
		if p.Labels[LabelRole] != RoleWorker {
			continue
		}
		if labelInt(p, LabelAttempt) == attempt {
			current = append(current, p)
		} else {
			stale = append(stale, p)
		}
	}
	for _, p := range stale {
		if err := r.deletePod(ctx, p); err != nil {
			return err
		}
	}

	// A failure cancels every stage: the job moves to a new attempt, which
	// makes the current pods stale, and the new set starts once the
	// restart strategy's delay has passed since the failure
	// (lastFailureTime marks the pending restart). The status is written
	// first; the stale pods go on the next pass, so a lost status write
	// leaves nothing half done.
	stopping := pendingSavepoint(job) != nil && job.Status.SavepointInfo.TriggerStop
	// A failure during a stop-with-savepoint ends it first (below).
	if stage, msg := lostSubtask(job, current); msg != "" && !stopping {
		if stage >= 0 && stage < len(job.Status.Stages) {
			job.Status.Stages[stage].SubtasksFailed = 1
		}
		if policyOf(job).exhausted(job.Status.Restarts) {
			for _, q := range current {
				// A failed job keeps its finished pods for their logs.
				if q.Status.Phase == corev1.PodFailed || q.Status.Phase == corev1.PodSucceeded {
					continue
				}
				if err := r.deletePod(ctx, q); err != nil {
					return err
				}
			}
			return r.fail(s, "WorkerFailed", msg+"; restart attempts exhausted")
		}
		job.Status.Attempt++
		job.Status.LastFailureTime = nil
		r.noteFailure(job)
		wait := r.waitLeft(job)
		r.event(job, corev1.EventTypeWarning, "Restarting", msg+fmt.Sprintf("; restarting every stage in %s (restart %d)", wait.Round(time.Millisecond), job.Status.Restarts+1))
		r.setPhase(s, v1alpha1.PhaseRunning, "Restarting", msg+fmt.Sprintf("; restarting every stage in %s", wait.Round(time.Millisecond)))
		s.requeue = time.Millisecond
		return nil
	}
	if job.Status.LastFailureTime != nil {
		if left := r.waitLeft(job); left > 0 {
			s.requeue = left
			return nil
		}
		job.Status.Restarts++
		job.Status.LastFailureTime = nil
		restartsTotal.WithLabelValues(string(spec.Streaming)).Inc()
	}
	// New pods wait until the old ones are gone: they share host names
	// (and an old leader must not write checkpoints the new start clears).
	if len(stale) > 0 && len(current) == 0 {
		s.requeue = time.Second
		return nil
	}

	// A stop-with-savepoint (an upgrade, or a suspend undone meanwhile)
	// runs to its end; then the pods go and the next attempt starts.
	if stopping {
		done, err := r.stopWithSavepoint(ctx, s, current)
		if err != nil || !done {
			return err
		}
		job.Status.Attempt++
		s.requeue = time.Millisecond
		return nil
	}
	if len(current) > 0 && specChanged(job) {
		if pendingSavepoint(job) != nil {
			// A manual savepoint first: one request at a time.
			_, _, err := r.pollSavepoint(ctx, s)
			return err
		}
		return r.startUpgrade(ctx, s, job.Status.Phase == v1alpha1.PhaseRunning && allPodsRunning(current, job.Status.Stages))
	}
	if len(current) == 0 {
		if sf := job.Status.StartedFrom; sf == nil || int(sf.Attempt) != attempt || job.Status.AppliedSpecHash != specHash(job) {
			if err := r.prepareStart(ctx, s); err != nil {
				return err
			}
			// With storage the decision (and the checkpoints it cleared)
			// is written before any pod exists, so a lost status write
			// never leaves pods started from a state the status does not
			// name. Without storage there is no state to restore: the
			// pods start in this pass (one round trip less per start, for
			// the many-jobs case).
			if jobcheck.HasStorage(job) {
				return nil
			}
		}
	} else if sf := job.Status.StartedFrom; sf != nil && int(sf.Attempt) == attempt {
		// The pods exist: what they start from is settled.
		job.Status.NextStart = nil
	}
	if job.Status.AppliedSpecHash == "" {
		// Pods started by an operator without upgrades: adopt them.
		job.Status.AppliedGeneration, job.Status.AppliedSpecHash = job.Generation, specHash(job)
	}

	now := metav1.NewTime(r.now())
	if job.Status.StartTime == nil {
		job.Status.StartTime = &now
	}
	created := 0
	allSucceeded := true
	for _, pst := range s.plan.Stages {
		st := &job.Status.Stages[pst.ID]
		var running, succeeded int32
		var in, out int64
		for i := 0; i < pst.Parallelism; i++ {
			var pod *corev1.Pod
			for _, p := range current {
				if labelInt(p, LabelStage) == pst.ID && labelInt(p, LabelIndex) == i {
					pod = p
				}
			}
			if pod == nil {
				if err := r.createIfMissing(ctx, r.subtaskPod(job, spec.Streaming, pst.ID, i, attempt)); err != nil {
					return err
				}
				created++
				allSucceeded = false
				continue
			}
			switch pod.Status.Phase {
			case corev1.PodSucceeded:
				succeeded++
				_, res := terminated(pod)
				in += res.RecordsIn
				out += res.RecordsOut
			case corev1.PodRunning:
				running++
				allSucceeded = false
			default:
				allSucceeded = false
			}
		}
		st.SubtasksRunning, st.SubtasksSucceeded, st.SubtasksFailed = running, succeeded, 0
		st.Attempts = job.Status.Attempt + 1
		st.RecordsIn, st.RecordsOut = in, out
		switch {
		case succeeded == int32(pst.Parallelism):
			if st.Phase != v1alpha1.StageSucceeded {
				st.Phase, st.FinishTime = v1alpha1.StageSucceeded, &now
				if st.StartTime != nil {
					stageDuration.WithLabelValues(string(spec.Streaming)).Observe(now.Sub(st.StartTime.Time).Seconds())
				}
			}
		case running+succeeded == int32(pst.Parallelism):
			if st.Phase != v1alpha1.StageRunning {
				st.Phase, st.StartTime = v1alpha1.StageRunning, &now
			}
		default:
			st.Phase = v1alpha1.StagePending
		}
	}
	if sf := job.Status.StartedFrom; created == 0 && sf != nil && int(sf.Attempt) == attempt {
		// Every pod of the attempt exists: from now on a missing one was
		// deleted (see lostSubtask), never created late.
		sf.Launched = true
	}
	if allSucceeded {
		return r.runFinalize(ctx, s)
	}
	allUp := true
	for _, st := range job.Status.Stages {
		if st.Phase == v1alpha1.StagePending {
			allUp = false
		}
	}
	if allUp {
		setCondition(job, v1alpha1.ConditionRunning, metav1.ConditionTrue, "AllStagesRunning", "every stage's subtasks are running")
		r.setPhase(s, v1alpha1.PhaseRunning, "Running", fmt.Sprintf("all %d stages running", len(job.Status.Stages)))
		return r.whileRunning(ctx, s)
	} else if job.Status.Phase != v1alpha1.PhaseRunning {
		r.setPhase(s, v1alpha1.PhasePending, "Launching", "waiting for every stage's pods to run")
	}
	if pendingSavepoint(job) != nil {
		_, _, err := r.pollSavepoint(ctx, s)
		return err
	}
	return nil
}

// allPodsRunning reports whether every subtask of the stages the pods run
// (the status's, which may differ from a changed spec's plan) has a
// running pod.
func allPodsRunning(current []*corev1.Pod, stages []v1alpha1.StageStatus) bool {
	n := 0
	for _, st := range stages {
		n += int(st.Parallelism)
	}
	running := 0
	for _, pod := range current {
		if pod.Status.Phase == corev1.PodRunning {
			running++
		}
	}
	return running >= n
}

// lostSubtask names a subtask of the current attempt that failed, or whose
// pod was deleted or is gone (kubectl delete, eviction, a lost node) once
// every pod of the attempt had been created. Any of them fails the
// attempt: a pod recreated alone would start from the attempt's initial
// state while its peers went on, and state and exactly-once sinks would
// see records twice. Pods of other attempts are stale, deleted by the
// operator itself.
func lostSubtask(job *v1alpha1.FlinkJob, current []*corev1.Pod) (int, string) {
	for _, p := range current {
		if p.Status.Phase == corev1.PodFailed {
			stage := labelInt(p, LabelStage)
			return stage, fmt.Sprintf("stage %d subtask %d failed: %s", stage, labelInt(p, LabelIndex), failureMessage(p))
		}
	}
	for _, p := range current {
		if !p.DeletionTimestamp.IsZero() && p.Status.Phase != corev1.PodSucceeded {
			stage := labelInt(p, LabelStage)
			return stage, fmt.Sprintf("stage %d subtask %d: its pod %s was deleted", stage, labelInt(p, LabelIndex), p.Name)
		}
	}
	sf := job.Status.StartedFrom
	if sf == nil || !sf.Launched || int(sf.Attempt) != int(job.Status.Attempt) {
		return -1, ""
	}
	for _, st := range job.Status.Stages {
		for i := 0; i < int(st.Parallelism); i++ {
			found := false
			for _, p := range current {
				if labelInt(p, LabelStage) == int(st.Index) && labelInt(p, LabelIndex) == i {
					found = true
					break
				}
			}
			if !found {
				return int(st.Index), fmt.Sprintf("stage %d subtask %d: its pod %s is gone", st.Index, i, podName(job, int(st.Index), i, int(job.Status.Attempt)))
			}
		}
	}
	return -1, ""
}
