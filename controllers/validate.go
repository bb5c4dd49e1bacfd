package controllers

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/internal/jobcheck"
)

// PlanJob is the validation shared by the webhook and the reconciler
// (jobcheck.Plan, which `flinkjob validate --cluster` runs too). It returns
// the plan of a valid job.
func PlanJob(job *v1alpha1.FlinkJob) (*plan.Plan, error) { return jobcheck.Plan(job) }

// FieldErrors converts a validation error to Kubernetes field errors.
func FieldErrors(err error) field.ErrorList {
	var list field.ErrorList
	if ve, ok := err.(*plan.ValidationError); ok {
		for _, e := range ve.Errors {
			list = append(list, field.Invalid(field.NewPath(e.Path), nil, e.Msg))
		}
		return list
	}
	return field.ErrorList{field.InternalError(field.NewPath("spec"), err)}
}

// Validator is the validating admission webhook for FlinkJobs.
type Validator struct{}

// +kubebuilder:webhook:path=/validate-flinkjob-io-v1alpha1-flinkjob,mutating=false,failurePolicy=fail,sideEffects=None,groups=flinkjob.io,resources=flinkjobs,verbs=create;update,versions=v1alpha1,name=vflinkjob.flinkjob.io,admissionReviewVersions=v1

var _ admission.Validator[*v1alpha1.FlinkJob] = Validator{}

func (Validator) validate(job *v1alpha1.FlinkJob) (admission.Warnings, error) {
	if _, err := PlanJob(job); err != nil {
		return nil, newInvalid(job, FieldErrors(err))
	}
	return nil, nil
}

// ValidateCreate refuses invalid jobs with every problem and its field path.
func (v Validator) ValidateCreate(_ context.Context, job *v1alpha1.FlinkJob) (admission.Warnings, error) {
	return v.validate(job)
}

// ValidateUpdate validates the new spec and refuses changes that cannot
// be applied. The storage never changes: it holds the job's checkpoints
// and intermediate data. A STREAMING job (before and after the change) may
// change its dataflow: the operator upgrades it per spec.upgradeMode, as
// the Flink operator does. A BATCH job's dataflow is fixed: the status's
// stages and the materialized output of its finished stages belong to the
// plan it started with; as with a Kubernetes Job's template, a different
// dataflow is a new FlinkJob. How the pods run (image, resources,
// podTemplate), suspend, restartStrategy and ttlSecondsAfterFinished may
// always change.
func (v Validator) ValidateUpdate(_ context.Context, old, job *v1alpha1.FlinkJob) (admission.Warnings, error) {
	if !job.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	pn, err := PlanJob(job)
	if err != nil {
		return nil, newInvalid(job, FieldErrors(err))
	}
	// The old version is planned at most once, and only when a check needs it.
	po := sync.OnceValue(func() *plan.Plan {
		p, err := PlanJob(old)
		if err != nil {
			return nil
		}
		return p
	})
	streamingBoth := func() bool {
		return po() != nil && po().Mode == spec.Streaming && pn.Mode == spec.Streaming
	}
	if errs := dataflowChanges(old, job, streamingBoth); len(errs) > 0 {
		return nil, newInvalid(job, errs)
	}
	if errs := sourceRescales(job, po, pn, streamingBoth); len(errs) > 0 {
		return nil, newInvalid(job, errs)
	}
	return nil, nil
}

// sourceRescales refuses a stateful upgrade (upgradeMode last-state or
// savepoint) that changes a source step's parallelism: checkpointed source
// positions belong to their subtasks, and the restore would fail. Keyed
// steps may change parallelism (their state is stored by key group), and
// so may sources whose positions any subtask can resume
// (connector.RescalableSource: Kafka's partitions are reassigned on
// restore, as Flink's enumerator does).
// po plans the old version (nil when it is invalid), pn is the new one's
// plan, and streamingBoth reports whether both plan to STREAMING.
func sourceRescales(job *v1alpha1.FlinkJob, po func() *plan.Plan, pn *plan.Plan, streamingBoth func() bool) field.ErrorList {
	if upgradeModeOf(job) == v1alpha1.UpgradeStateless || !streamingBoth() {
		return nil
	}
	was := map[string]int{}
	for _, st := range po().Stages {
		for _, n := range st.Chain {
			if n.Step != nil && n.Step.Source != nil {
				was[n.Name] = st.Parallelism
			}
		}
	}
	var errs field.ErrorList
	for _, st := range pn.Stages {
		for _, n := range st.Chain {
			if n.Step == nil || n.Step.Source == nil || connector.RescalableSource(n.Step.Source) {
				continue
			}
			if p, ok := was[n.Name]; ok && p != st.Parallelism {
				path := field.NewPath("spec", "parallelism")
				for i := range job.Spec.Steps {
					if job.Spec.Steps[i].Name == n.Name && job.Spec.Steps[i].Parallelism != nil {
						path = field.NewPath("spec", "steps").Index(i).Child("parallelism")
					}
				}
				errs = append(errs, field.Forbidden(path, fmt.Sprintf(
					"source step %s would run with parallelism %d instead of %d: its checkpointed positions belong to its %d subtasks, so upgradeMode %s cannot restore them; keep the source's parallelism (set it on the step) or use upgradeMode stateless",
					n.Name, st.Parallelism, p, p, upgradeModeOf(job))))
			}
		}
	}
	return errs
}

// dataflowChanges lists the fields that may not change once a job exists;
// streamingBoth reports whether both versions plan to STREAMING.
func dataflowChanges(old, job *v1alpha1.FlinkJob, streamingBoth func() bool) field.ErrorList {
	const msg = "the dataflow of a BATCH FlinkJob cannot change once it was created (a STREAMING job's can: it is upgraded per spec.upgradeMode); create a new FlinkJob (or delete and recreate this one)"
	const storageMsg = "the storage of a FlinkJob cannot change: it holds the job's checkpoints, savepoints and intermediate data"
	path := field.NewPath("spec")
	o, n := &old.Spec, &job.Spec
	var errs field.ErrorList
	if !equality.Semantic.DeepEqual(o.Storage, n.Storage) {
		errs = append(errs, field.Forbidden(path.Child("storage"), storageMsg))
	}
	dataflow := []struct {
		name string
		same bool
	}{
		{"runtimeMode", o.RuntimeMode == n.RuntimeMode},
		{"parallelism", o.Parallelism == n.Parallelism},
		{"batchProcessingTime", o.BatchProcessingTime == n.BatchProcessingTime},
		{"steps", equality.Semantic.DeepEqual(o.Steps, n.Steps)},
	}
	changed := false
	for _, f := range dataflow {
		changed = changed || !f.same
	}
	if !changed || streamingBoth() {
		return errs
	}
	for _, f := range dataflow {
		if !f.same {
			errs = append(errs, field.Forbidden(path.Child(f.name), msg))
		}
	}
	return errs
}

// ValidateDelete allows every deletion.
func (Validator) ValidateDelete(context.Context, *v1alpha1.FlinkJob) (admission.Warnings, error) {
	return nil, nil
}

func newInvalid(job *v1alpha1.FlinkJob, errs field.ErrorList) error {
	return apiInvalid(v1alpha1.GroupVersion.WithKind("FlinkJob").GroupKind(), job.Name, errs)
}

var _ runtime.Object = &v1alpha1.FlinkJob{}
