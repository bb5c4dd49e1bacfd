package controllers

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flinkjob/flinkjob/engine/spec"
)

func jsonBytes(v any) ([]byte, error) { return json.Marshal(v) }

func intstrPort(p int) intstr.IntOrString { return intstr.FromInt32(int32(p)) }

// ensureConfig creates the job's ConfigMap (and, in STREAMING, its headless
// Service) if missing.
func (r *FlinkJobReconciler) ensureConfig(ctx context.Context, s *state) error {
	cm, err := desiredConfigMap(s.job)
	if err != nil {
		return err
	}
	if err := r.createIfMissing(ctx, cm); err != nil {
		return err
	}
	if s.plan.Mode == spec.Streaming {
		return r.createIfMissing(ctx, desiredService(s.job))
	}
	return nil
}

func (r *FlinkJobReconciler) createIfMissing(ctx context.Context, obj client.Object) error {
	err := r.Create(ctx, obj)
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// listPods reads the job's pods from the API server (see APIReader).
func (r *FlinkJobReconciler) listPods(ctx context.Context, s *state) error {
	var list corev1.PodList
	if err := r.reader().List(ctx, &list, client.InNamespace(s.job.Namespace), client.MatchingLabels{LabelJob: s.job.Name}); err != nil {
		return err
	}
	s.pods = list.Items
	return nil
}

func (r *FlinkJobReconciler) deletePod(ctx context.Context, p *corev1.Pod) error {
	if !p.DeletionTimestamp.IsZero() {
		return nil
	}
	return client.IgnoreNotFound(r.Delete(ctx, p, client.PropagationPolicy("Background")))
}

func labelInt(p *corev1.Pod, key string) int {
	v, err := strconv.Atoi(p.Labels[key])
	if err != nil {
		return -1
	}
	return v
}

// subtaskPods returns the pods of one subtask, oldest attempt first.
func (s *state) subtaskPods(stage, index int) []*corev1.Pod {
	var out []*corev1.Pod
	for i := range s.pods {
		p := &s.pods[i]
		if p.Labels[LabelRole] == RoleWorker && labelInt(p, LabelStage) == stage && labelInt(p, LabelIndex) == index {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return labelInt(out[i], LabelAttempt) < labelInt(out[j], LabelAttempt) })
	return out
}

// rolePods returns the pods of a role.
func (s *state) rolePods(role string) []*corev1.Pod {
	var out []*corev1.Pod
	for i := range s.pods {
		if s.pods[i].Labels[LabelRole] == role {
			out = append(out, &s.pods[i])
		}
	}
	sort.Slice(out, func(i, j int) bool { return labelInt(out[i], LabelAttempt) < labelInt(out[j], LabelAttempt) })
	return out
}

// succeededPod returns a pod that succeeded, if any: its output counts even
// when the pod is being deleted.
func succeededPod(pods []*corev1.Pod) *corev1.Pod {
	for _, p := range pods {
		if p.Status.Phase == corev1.PodSucceeded {
			return p
		}
	}
	return nil
}

// alivePods drops the pods being deleted.
func alivePods(pods []*corev1.Pod) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp.IsZero() {
			out = append(out, p)
		}
	}
	return out
}

// nextAttempt is the attempt number of a new pod for a subtask (or the
// finalize step): one past every attempt still around, so its name never
// clashes with a pod that is still terminating.
func nextAttempt(pods []*corev1.Pod) int {
	next := 0
	for _, p := range pods {
		if a := labelInt(p, LabelAttempt); a >= next {
			next = a + 1
		}
	}
	return next
}

// terminationResult is what a worker writes to its termination message.
type terminationResult struct {
	RecordsIn  int64  `json:"recordsIn"`
	RecordsOut int64  `json:"recordsOut"`
	Error      string `json:"error"`
}

// terminated returns the worker container's termination state, if any.
func terminated(p *corev1.Pod) (*corev1.ContainerStateTerminated, terminationResult) {
	var res terminationResult
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == "worker" && cs.State.Terminated != nil {
			_ = json.Unmarshal([]byte(cs.State.Terminated.Message), &res)
			return cs.State.Terminated, res
		}
	}
	return nil, res
}

// failureMessage explains why a pod failed, for status and Events.
func failureMessage(p *corev1.Pod) string {
	t, res := terminated(p)
	switch {
	case res.Error != "":
		return res.Error
	case t != nil && t.Message != "":
		return t.Message
	case t != nil:
		return "exit code " + strconv.Itoa(int(t.ExitCode)) + " (" + t.Reason + ")"
	case p.Status.Message != "":
		return p.Status.Message
	}
	return "pod " + string(p.Status.Phase) + " " + p.Status.Reason
}
