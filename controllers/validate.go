package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
)

// PlanJob is the validation shared by the webhook and the reconciler: the
// engine's validation of the dataflow (the same the CLI runs), plus what only
// matters on a cluster. It returns the plan of a valid job.
func PlanJob(job *v1alpha1.FlinkJob) (*plan.Plan, error) {
	p, err := plan.New(&job.Spec.Job, plan.Options{})
	if err != nil {
		return nil, err
	}
	if p.Mode == spec.Batch && len(p.Edges) > 0 && (job.Spec.Storage == nil || job.Spec.Storage.S3 == nil) {
		return nil, &plan.ValidationError{Errors: []plan.FieldError{{Path: "spec.storage",
			Msg: fmt.Sprintf("a BATCH job with %d stages materializes each stage's output for the next; set spec.storage.s3 (an S3-compatible bucket)", len(p.Stages))}}}
	}
	return p, nil
}

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

// ValidateUpdate validates the new spec and refuses changes to the
// dataflow and its storage: the workers read the dataflow from a ConfigMap
// written once, and the status's stages (and the materialized output of
// finished BATCH stages) belong to the plan the job started with. As with
// a Kubernetes Job's template (or a Flink job graph), a different dataflow
// is a new FlinkJob. How the pods run (image, resources, podTemplate),
// suspend, restartStrategy and ttlSecondsAfterFinished may change.
func (v Validator) ValidateUpdate(_ context.Context, old, job *v1alpha1.FlinkJob) (admission.Warnings, error) {
	if !job.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	if w, err := v.validate(job); err != nil {
		return w, err
	}
	if errs := dataflowChanges(old, job); len(errs) > 0 {
		return nil, newInvalid(job, errs)
	}
	return nil, nil
}

// dataflowChanges lists the fields that may not change once a job exists.
func dataflowChanges(old, job *v1alpha1.FlinkJob) field.ErrorList {
	const msg = "the dataflow of a FlinkJob cannot change once it was created; create a new FlinkJob (or delete and recreate this one)"
	spec := field.NewPath("spec")
	o, n := &old.Spec, &job.Spec
	var errs field.ErrorList
	for _, f := range []struct {
		name string
		same bool
	}{
		{"runtimeMode", o.RuntimeMode == n.RuntimeMode},
		{"parallelism", o.Parallelism == n.Parallelism},
		{"batchProcessingTime", o.BatchProcessingTime == n.BatchProcessingTime},
		{"steps", equality.Semantic.DeepEqual(o.Steps, n.Steps)},
		{"storage", equality.Semantic.DeepEqual(o.Storage, n.Storage)},
	} {
		if !f.same {
			errs = append(errs, field.Forbidden(spec.Child(f.name), msg))
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
