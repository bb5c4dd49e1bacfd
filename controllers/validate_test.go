package controllers

import (
	"encoding/json"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
)

// badMap passes the CRD schema (a map is any string) but not the engine:
// its CEL expression does not parse.
const badMap = `
runtimeMode: BATCH
parallelism: 1
steps:
  - name: src
    source: {elements: [{w: a}]}
  - name: m
    map: "{'x': record.w +"
  - name: out
    sink: {print: {}}
`

const badInput = `
steps:
  - name: src
    source: {elements: [{w: a}]}
  - name: out
    inputs: [nope]
    sink: {print: {}}
`

var _ = Describe("PlanJob (the validation the webhook and the reconciler share)", func() {
	DescribeTable("valid jobs are planned",
		func(specYAML string, storage bool, mode spec.RuntimeMode, stages []string, parallelism []int) {
			opts := []jobOption{}
			if storage {
				opts = append(opts, withStorage())
			}
			p, err := PlanJob(newJob("ns", "j", specYAML, opts...))
			Expect(err).NotTo(HaveOccurred())
			Expect(p.Mode).To(Equal(mode))
			var gotNames []string
			var gotPar []int
			for _, st := range p.Stages {
				gotNames = append(gotNames, st.Name)
				gotPar = append(gotPar, st.Parallelism)
			}
			Expect(gotNames).To(Equal(stages))
			Expect(gotPar).To(Equal(parallelism))
		},
		Entry("BATCH, three stages, with storage", fmt.Sprintf(threeStages, "BATCH", 2), true, spec.Batch, threeStageNames, []int{2, 2, 1}),
		Entry("STREAMING needs no storage", fmt.Sprintf(threeStages, "STREAMING", 2), false, spec.Streaming, threeStageNames, []int{2, 2, 1}),
		Entry("AUTOMATIC with bounded sources is BATCH", fmt.Sprintf(threeStages, "AUTOMATIC", 3), true, spec.Batch, threeStageNames, []int{3, 3, 1}),
		Entry("AUTOMATIC with an unbounded source is STREAMING", unbounded, false, spec.Streaming, []string{"clicks->even->out"}, []int{1}),
		Entry("single-stage BATCH needs no storage", fmt.Sprintf(oneStage, "BATCH"), false, spec.Batch, []string{"src->out"}, []int{1}),
	)

	DescribeTable("invalid jobs are refused with field paths",
		func(specYAML string, storage bool, path, msg string) {
			opts := []jobOption{}
			if storage {
				opts = append(opts, withStorage())
			}
			_, err := PlanJob(newJob("ns", "j", specYAML, opts...))
			Expect(err).To(HaveOccurred())
			var ve *plan.ValidationError
			Expect(err).To(BeAssignableToTypeOf(ve))
			errs := FieldErrors(err)
			Expect(errs).NotTo(BeEmpty())
			Expect(errs[0].Field).To(Equal(path))
			Expect(errs.ToAggregate().Error()).To(ContainSubstring(msg))
		},
		Entry("CEL syntax error", badMap, true, "spec.steps[1].map", "does not compile"),
		Entry("unknown input", badInput, false, "spec.steps[1].inputs[0]", `"nope"`),
		Entry("multi-stage BATCH without storage", fmt.Sprintf(threeStages, "BATCH", 2), false, "spec.storage", "set spec.storage.s3"),
		Entry("multi-stage AUTOMATIC (resolving to BATCH) without storage", fmt.Sprintf(threeStages, "AUTOMATIC", 2), false, "spec.storage", "3 stages"),
	)

	It("turns errors that are not validation errors into an internal error on spec", func() {
		errs := FieldErrors(fmt.Errorf("boom"))
		Expect(errs).To(HaveLen(1))
		Expect(errs[0].Field).To(Equal("spec"))
	})
})

var _ = Describe("Validation", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	Context("the admission webhook", func() {
		It("refuses a spec the CRD schema accepts but the engine does not, naming the field", func(ctx SpecContext) {
			err := k8sClient.Create(ctx, newJob(ns, "bad-cel", badMap, withStorage()))
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
			Expect(err.Error()).To(ContainSubstring("spec.steps[1].map"))
			Expect(err.Error()).To(ContainSubstring("does not compile"))
			status := err.(apierrors.APIStatus).Status()
			Expect(status.Details).NotTo(BeNil())
			Expect(status.Details.Causes).To(ContainElement(HaveField("Field", "spec.steps[1].map")))
			Expect(isNotFound(ctx, &v1alpha1.FlinkJob{ObjectMeta: metav1.ObjectMeta{Name: "bad-cel", Namespace: ns}})()).To(BeTrue())
		})

		It("refuses a multi-stage BATCH job without storage", func(ctx SpecContext) {
			err := k8sClient.Create(ctx, newJob(ns, "no-storage", fmt.Sprintf(threeStages, "BATCH", 2)))
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
			Expect(err.Error()).To(ContainSubstring("spec.storage"))
		})

		It("refuses an update that makes a job invalid, and allows valid ones", func(ctx SpecContext) {
			job := create(ctx, newJob(ns, "edit", fmt.Sprintf(oneStage, "BATCH")))
			var err error
			// The operator writes the job too (finalizer, status): retry conflicts.
			Eventually(func() bool {
				latest := fetch(ctx, job)
				latest.Spec.Steps[1].Inputs = []string{"nope"}
				err = k8sClient.Update(ctx, latest)
				return apierrors.IsConflict(err)
			}).Should(BeFalse())
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
			Expect(err.Error()).To(ContainSubstring("spec.steps[1].inputs[0]"))
			patchSpec(ctx, job, func(j *v1alpha1.FlinkJob) { j.Spec.Suspend = true })
		})

		It("refuses a change to the dataflow or the storage of an existing job, but not to how it runs", func(ctx SpecContext) {
			job := create(ctx, newJob(ns, "frozen", fmt.Sprintf(threeStages, "BATCH", 2), withStorage()))
			update := func(mutate func(*v1alpha1.FlinkJob)) error {
				var err error
				Eventually(func() bool {
					latest := fetch(ctx, job)
					mutate(latest)
					err = k8sClient.Update(ctx, latest)
					return apierrors.IsConflict(err)
				}).Should(BeFalse())
				return err
			}
			err := update(func(j *v1alpha1.FlinkJob) { j.Spec.Steps[1].Map = "{'word': record.w, 'n': 2}" })
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
			Expect(err.Error()).To(And(ContainSubstring("spec.steps: Forbidden"), ContainSubstring("create a new FlinkJob")))
			err = update(func(j *v1alpha1.FlinkJob) { j.Spec.Parallelism = 3; j.Spec.Storage.S3.Bucket = "elsewhere" })
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
			Expect(err.Error()).To(And(ContainSubstring("spec.parallelism"), ContainSubstring("spec.storage")))
			Expect(update(func(j *v1alpha1.FlinkJob) {
				j.Spec.Image = "registry.example/worker:v2"
				j.Spec.TTLSecondsAfterFinished = ptr.To(int32(60))
				j.Spec.RestartStrategy.MaxAttempts = ptr.To(int32(9))
				j.Labels = map[string]string{"team": "data"}
			})).To(Succeed())
		})
	})

	Context("the reconciler (for jobs that got past admission)", func() {
		It("fails an invalid job with the validation message and starts nothing", func(ctx SpecContext) {
			job := create(ctx, newJob(ns, "bad-cel", badMap, withStorage(), withLabel(skipWebhookLabel, "true")))
			Eventually(status(ctx, job)).Should(And(
				HaveField("Phase", v1alpha1.PhaseFailed),
				HaveField("Message", ContainSubstring("spec.steps[1].map")),
				haveCondition(v1alpha1.ConditionPlanned, metav1.ConditionFalse, "InvalidSpec"),
				haveCondition(v1alpha1.ConditionFailed, metav1.ConditionTrue, "InvalidSpec"),
			))
			st := status(ctx, job)(Default)
			Expect(st.FinishTime).NotTo(BeNil())
			Expect(condition(st, v1alpha1.ConditionFailed).Message).To(ContainSubstring("does not compile"))
			Eventually(eventReasons(ctx, job)).Should(ContainElement("Warning/InvalidSpec"))
			Consistently(func() []corev1.Pod { return jobPods(ctx, job) }).WithTimeout(500 * time.Millisecond).Should(BeEmpty())
		})
	})

	It("plans a valid BATCH job: resolved mode, stages, Planned condition and the job's ConfigMap", func(ctx SpecContext) {
		job := create(ctx, newJob(ns, "wordcount", fmt.Sprintf(threeStages, "BATCH", 2), withStorage()))
		Eventually(status(ctx, job)).Should(And(
			HaveField("ResolvedMode", spec.Batch),
			HaveField("StagesTotal", int32(3)),
			HaveField("StagesSummary", "0/3"),
			haveCondition(v1alpha1.ConditionPlanned, metav1.ConditionTrue, "Planned"),
		))
		st := status(ctx, job)(Default)
		var gotNames []string
		var gotPar []int32
		for i, s := range st.Stages {
			Expect(s.Index).To(Equal(int32(i)))
			gotNames = append(gotNames, s.Name)
			gotPar = append(gotPar, s.Parallelism)
		}
		Expect(gotNames).To(Equal(threeStageNames))
		Expect(gotPar).To(Equal([]int32{2, 2, 1}))
		Expect(st.Stages[0].Steps).To(Equal([]string{"src", "words"}))
		Expect(st.Stages[1].Steps).To(Equal([]string{"counts"}))
		Expect(st.ObservedGeneration).To(Equal(fetch(ctx, job).Generation))
		Expect(fetch(ctx, job).Finalizers).To(ContainElement(Finalizer))

		var cm corev1.ConfigMap
		Eventually(func() error {
			return k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: configMapName(job)}, &cm)
		}).Should(Succeed())
		var got spec.Job
		Expect(json.Unmarshal([]byte(cm.Data[jobFileKey]), &got)).To(Succeed())
		Expect(got.RuntimeMode).To(Equal(spec.Batch))
		Expect(got.Steps).To(HaveLen(4))
		Expect(got.Steps[2].KeyBy).To(Equal("record.word"))
		Expect(cm.OwnerReferences).To(ContainElement(HaveField("UID", fetch(ctx, job).UID)))
		Eventually(eventReasons(ctx, job)).Should(ContainElement("Normal/Planned"))
	})

	It("resolves AUTOMATIC: BATCH when every source is bounded, STREAMING otherwise", func(ctx SpecContext) {
		bounded := create(ctx, newJob(ns, "auto-bounded", fmt.Sprintf(oneStage, "AUTOMATIC")))
		open := create(ctx, newJob(ns, "auto-unbounded", unbounded))
		Eventually(status(ctx, bounded)).Should(HaveField("ResolvedMode", spec.Batch))
		Eventually(status(ctx, open)).Should(HaveField("ResolvedMode", spec.Streaming))
		Eventually(workerNames(ctx, bounded, -1)).Should(Equal(stagePods(bounded, 0, 1, 0)))
		Expect(envOf(workers(ctx, bounded, 0)[0])).To(HaveKeyWithValue("FLINKJOB_MODE", "BATCH"))
		Eventually(workerNames(ctx, open, -1)).Should(Equal(stagePods(open, 0, 1, 0)))
		Expect(envOf(workers(ctx, open, 0)[0])).To(HaveKeyWithValue("FLINKJOB_MODE", "STREAMING"))
	})
})
