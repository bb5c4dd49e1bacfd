package controllers

import (
	"context"
	"fmt"

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

// ValidateUpdate validates the new spec; a finished job's spec is not rerun.
func (v Validator) ValidateUpdate(_ context.Context, _, job *v1alpha1.FlinkJob) (admission.Warnings, error) {
	if !job.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	return v.validate(job)
}

// ValidateDelete allows every deletion.
func (Validator) ValidateDelete(context.Context, *v1alpha1.FlinkJob) (admission.Warnings, error) {
	return nil, nil
}

func newInvalid(job *v1alpha1.FlinkJob, errs field.ErrorList) error {
	return apiInvalid(v1alpha1.GroupVersion.WithKind("FlinkJob").GroupKind(), job.Name, errs)
}

var _ runtime.Object = &v1alpha1.FlinkJob{}
