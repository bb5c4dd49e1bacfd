// Package jobcheck is the validation of a whole FlinkJob: the engine's
// validation of its dataflow (engine/plan) plus the checks that only matter
// on a cluster (storage for multi-stage BATCH jobs, checkpoint and savepoint
// fields). The admission webhook, the reconciler and `flinkjob validate
// --cluster` share it, so the CLI can say exactly what admission will say.
// It imports no controller-runtime: the CLI stays light.
package jobcheck

import (
	"fmt"
	"strings"
	"time"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
)

// HasStorage reports whether the job names its S3-compatible storage.
func HasStorage(job *v1alpha1.FlinkJob) bool {
	return job.Spec.Storage != nil && job.Spec.Storage.S3 != nil
}

// Plan validates job as the admission webhook does: the engine's validation
// of the dataflow, plus what only matters on a cluster. It returns the plan
// of a valid job, else a *plan.ValidationError with every problem.
func Plan(job *v1alpha1.FlinkJob) (*plan.Plan, error) {
	p, err := plan.New(&job.Spec.Job, plan.Options{})
	if err != nil {
		return nil, err
	}
	if p.Mode == spec.Batch && len(p.Edges) > 0 && !HasStorage(job) {
		return nil, &plan.ValidationError{Errors: []plan.FieldError{{Path: "spec.storage",
			Msg: fmt.Sprintf("a BATCH job with %d stages materializes each stage's output for the next; set spec.storage.s3 (an S3-compatible bucket)", len(p.Stages))}}}
	}
	if errs := stateErrors(job, p); len(errs) > 0 {
		return nil, &plan.ValidationError{Errors: errs}
	}
	return p, nil
}

// stateErrors checks the checkpoint and savepoint fields. The CRD's rules
// check the same (except what needs the plan); this is what the reconciler
// and `flinkjob validate --cluster` see for jobs that never met those rules.
func stateErrors(job *v1alpha1.FlinkJob, p *plan.Plan) []plan.FieldError {
	js := &job.Spec
	storage := HasStorage(job)
	var errs []plan.FieldError
	add := func(path, msg string) { errs = append(errs, plan.FieldError{Path: path, Msg: msg}) }
	const inBucket = ": savepoints are written to its bucket"
	if c := js.Checkpointing; c != nil {
		if !storage {
			add("spec.checkpointing", "checkpointing needs spec.storage: checkpoints are written to its bucket")
		}
		if d, err := c.Interval.Get(); err != nil || d < 100*time.Millisecond {
			add("spec.checkpointing.interval", fmt.Sprintf("%q is not a Go duration of at least 100ms", c.Interval))
		}
	}
	switch js.UpgradeMode {
	case "", v1alpha1.UpgradeStateless:
	case v1alpha1.UpgradeSavepoint:
		if !storage {
			add("spec.upgradeMode", "upgradeMode savepoint needs spec.storage"+inBucket)
		}
	case v1alpha1.UpgradeLastState:
		if js.Checkpointing == nil {
			add("spec.upgradeMode", "upgradeMode last-state needs spec.checkpointing: it restarts from the latest checkpoint")
		}
	default:
		add("spec.upgradeMode", fmt.Sprintf("%q is not stateless, last-state or savepoint", js.UpgradeMode))
	}
	if js.SavepointTriggerNonce != nil && !storage {
		add("spec.savepointTriggerNonce", "savepointTriggerNonce needs spec.storage"+inBucket)
	}
	if js.FinalSavepoint {
		if !storage {
			add("spec.finalSavepoint", "finalSavepoint needs spec.storage"+inBucket)
		}
		if name := UnboundedSource(p); name != "" {
			add("spec.finalSavepoint", fmt.Sprintf("a final savepoint is taken when every source ended, and source step %s is unbounded", name))
		}
	}
	if sp := js.InitialSavepointPath; sp != "" {
		switch {
		case !storage:
			add("spec.initialSavepointPath", "initialSavepointPath needs spec.storage: it must be in its bucket")
		case !strings.HasPrefix(sp, "s3://"+js.Storage.S3.Bucket+"/") || len(sp) <= len("s3://"+js.Storage.S3.Bucket+"/"):
			add("spec.initialSavepointPath", fmt.Sprintf("%q must be an s3:// URL of a savepoint directory in spec.storage's bucket %s", sp, js.Storage.S3.Bucket))
		}
		if p.Mode == spec.Batch {
			add("spec.initialSavepointPath", "only a STREAMING job restores state; this job runs in BATCH mode")
		}
	}
	if h := js.SavepointHistory; h != nil && h.MaxAge != "" {
		if d, err := h.MaxAge.Get(); err != nil || d <= 0 {
			add("spec.savepointHistory.maxAge", fmt.Sprintf("%q is not a positive Go duration", h.MaxAge))
		}
	}
	return errs
}

// UnboundedSource names the first source step that never ends, if any
// (the planner's judgement: a datagen without count, a nexmark without
// events, a kafka source without stoppingOffsets, a monitored files source).
func UnboundedSource(p *plan.Plan) string {
	for _, st := range p.Stages {
		for _, n := range st.Chain {
			if n.Step != nil && n.Step.Source != nil && !n.Bounded {
				return n.Name
			}
		}
	}
	return ""
}
