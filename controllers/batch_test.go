package controllers

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/spec"
)

var _ = Describe("BATCH", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("runs the stages one after another, waits for manifests, finalizes the sinks and succeeds", func(ctx SpecContext) {
		job := create(ctx, newJob(ns, "wordcount", fmt.Sprintf(threeStages, "BATCH", 2), withStorage()))
		job = fetch(ctx, job)

		By("starting only stage 0's pods")
		Eventually(workerNames(ctx, job, -1)).Should(Equal(stagePods(job, 0, 2, 0)))
		Consistently(workerNames(ctx, job, -1)).WithTimeout(300 * time.Millisecond).Should(Equal(stagePods(job, 0, 2, 0)))
		Eventually(status(ctx, job)).Should(And(
			HaveField("Phase", v1alpha1.PhaseRunning),
			HaveField("StartTime", Not(BeNil())),
			HaveField("Stages", HaveExactElements(
				HaveField("Phase", v1alpha1.StageRunning),
				HaveField("Phase", v1alpha1.StagePending),
				HaveField("Phase", v1alpha1.StagePending))),
			haveCondition(v1alpha1.ConditionRunning, metav1.ConditionTrue),
		))
		p := workers(ctx, job, 0)[0]
		Expect(envOf(p)).To(And(
			HaveKeyWithValue("FLINKJOB_MODE", "BATCH"),
			HaveKeyWithValue("FLINKJOB_SHUFFLE_URL", shuffleURL(job)),
			HaveKeyWithValue("FLINKJOB_S3_ENDPOINT", job.Spec.Storage.S3.Endpoint)))
		Expect(p.Spec.Containers[0].Image).To(Equal(testImage))
		Expect(p.Spec.Containers[0].Args).To(ContainElements("--stage", "0", "--index", "--attempt"))
		Expect(p.Spec.Subdomain).To(BeEmpty(), "BATCH workers need no peer DNS")
		Expect(p.OwnerReferences).To(ContainElement(And(HaveField("UID", job.UID), HaveField("Controller", HaveValue(BeTrue())))))

		By("holding stage 1 back while a subtask's output manifest is missing")
		for _, p := range workers(ctx, job, 0) {
			run(ctx, p)
		}
		Eventually(status(ctx, job)).Should(HaveField("Stages", ContainElement(And(HaveField("Index", int32(0)), HaveField("SubtasksRunning", int32(2))))))
		writeManifest(ctx, job, 0, 0)
		for _, p := range workers(ctx, job, 0) {
			succeed(ctx, p)
		}
		Eventually(eventReasons(ctx, job)).Should(ContainElement("Warning/ManifestMissing"))
		Consistently(func(g Gomega) {
			g.Expect(workers(ctx, job, 1)).To(BeEmpty())
			g.Expect(status(ctx, job)(g).Stages[0].Phase).To(Equal(v1alpha1.StageRunning))
		}).WithTimeout(1500 * time.Millisecond).Should(Succeed())
		Expect(status(ctx, job)(Default).Stages[0].SubtasksSucceeded).To(Equal(int32(2)))

		By("starting stage 1 once every manifest is there, and deleting stage 0's pods")
		writeManifest(ctx, job, 0, 1)
		Eventually(workerNames(ctx, job, -1)).WithTimeout(10 * time.Second).Should(Equal(stagePods(job, 1, 2, 0)))
		st := status(ctx, job)(Default)
		Expect(st.Stages[0]).To(And(
			HaveField("Phase", v1alpha1.StageSucceeded),
			HaveField("RecordsIn", int64(20)),
			HaveField("RecordsOut", int64(10)),
			HaveField("FinishTime", Not(BeNil()))))
		Expect(st.StagesSummary).To(Equal("1/3"))

		By("running stage 2 (the sink: no manifest needed) and then the finalize pod")
		finishStage(ctx, job, 1, 2, true)
		Eventually(workerNames(ctx, job, -1)).Should(Equal(stagePods(job, 2, 1, 0)))
		finishStage(ctx, job, 2, 1, false)
		Eventually(func() []corev1.Pod { return finalizers(ctx, job) }).Should(HaveLen(1))
		fin := finalizers(ctx, job)[0]
		Expect(fin.Name).To(Equal(finalizePodName(job, 0)))
		Expect(fin.Spec.Containers[0].Args).To(ContainElement("--finalize"))
		Expect(workers(ctx, job, -1)).To(BeEmpty(), "the finalize pod runs alone")
		Expect(phaseOf(ctx, job)(Default)).To(Equal(v1alpha1.PhaseRunning))

		By("succeeding when the finalize pod does")
		succeed(ctx, fin)
		Eventually(status(ctx, job)).Should(And(
			HaveField("Phase", v1alpha1.PhaseSucceeded),
			HaveField("StagesSummary", "3/3"),
			HaveField("StagesDone", int32(3)),
			HaveField("FinishTime", Not(BeNil())),
			haveCondition(v1alpha1.ConditionSucceeded, metav1.ConditionTrue, "Succeeded"),
			haveCondition(v1alpha1.ConditionRunning, metav1.ConditionFalse),
		))
		Eventually(func() []corev1.Pod { return jobPods(ctx, job) }).Should(BeEmpty())
		Eventually(eventReasons(ctx, job)).Should(ContainElements(
			"Normal/Planned", "Normal/StageStarted", "Normal/Running", "Normal/StageSucceeded", "Normal/Succeeded"))
		Expect(eventNote(ctx, job, "Succeeded")()).To(ContainSubstring("Running -> Succeeded"))
	})

	It("FLIP-134: runs a multi-stage job at parallelism 1 with never more than one pod alive", func(ctx SpecContext) {
		pw := watchPods(ctx, ns)
		job := create(ctx, newJob(ns, "one-slot", fmt.Sprintf(threeStages, "BATCH", 1), withStorage()))
		for stage := 0; stage < 3; stage++ {
			Eventually(workerNames(ctx, job, -1)).WithTimeout(10 * time.Second).Should(Equal(stagePods(fetch(ctx, job), stage, 1, 0)))
			run(ctx, workers(ctx, job, stage)[0])
			finishStage(ctx, job, stage, 1, stage < 2)
		}
		finishFinalize(ctx, job)
		Eventually(phaseOf(ctx, job)).Should(Equal(v1alpha1.PhaseSucceeded))
		pw.stop()
		max, at := pw.max()
		Expect(max).To(Equal(1), "pods alive at once: %v", at)
		Expect(pw.createdNames()).To(HaveLen(4), "3 stages and the finalize step, one pod each")
	})

	It("re-runs only the failed subtask after the restart delay, and fails the job when restarts run out", func(ctx SpecContext) {
		job := create(ctx, newJob(ns, "flaky", fmt.Sprintf(threeStages, "BATCH", 2), withStorage(),
			withRestart(v1alpha1.RestartFixedDelay, "1s", 2)))
		finishStage(ctx, job, 0, 2, true)
		job = fetch(ctx, job)
		Eventually(workerNames(ctx, job, -1)).WithTimeout(10 * time.Second).Should(Equal(stagePods(job, 1, 2, 0)))
		healthy := workers(ctx, job, 1)[0]
		Expect(labelInt(&healthy, LabelIndex)).To(Equal(0))
		run(ctx, healthy)

		By("failing subtask 1 of stage 1")
		failing := workers(ctx, job, 1)[1]
		failedAt := time.Now()
		fail(ctx, failing, "boom: disk full")
		retry := podName(job, 1, 1, 1)
		Consistently(workerNames(ctx, job, 1)).WithTimeout(700 * time.Millisecond).ShouldNot(ContainElement(retry))
		Eventually(workerNames(ctx, job, 1)).WithTimeout(5 * time.Second).Should(ContainElement(retry))
		Expect(time.Since(failedAt)).To(BeNumerically(">=", 900*time.Millisecond), "the 1s restart delay")

		// The status is written after the pod is created.
		Eventually(status(ctx, job)).Should(HaveField("Restarts", int32(1)))
		st := status(ctx, job)(Default)
		Expect(st.Stages[0].Phase).To(Equal(v1alpha1.StageSucceeded), "earlier stages are not rerun")
		Expect(st.Stages[1].Attempts).To(Equal(int32(2)))
		Expect(workers(ctx, job, 0)).To(BeEmpty())
		Expect(workerNames(ctx, job, 1)()).To(Equal([]string{podName(job, 1, 0, 0), podName(job, 1, 1, 0), retry}),
			"the failed pod stays for its logs; the healthy subtask is untouched")
		Expect(workers(ctx, job, 1)[0].UID).To(Equal(healthy.UID))
		Eventually(eventNote(ctx, job, "SubtaskRestarted")).Should(And(ContainSubstring("stage 1 subtask 1"), ContainSubstring("boom: disk full")))

		By("failing the retry too: a second restart")
		fail(ctx, workers(ctx, job, 1)[2], "boom: disk full")
		Eventually(workerNames(ctx, job, 1)).WithTimeout(5 * time.Second).Should(ContainElement(podName(job, 1, 1, 2)))
		Eventually(status(ctx, job)).Should(HaveField("Restarts", int32(2)))

		By("failing once more: the restart strategy gives up")
		var third corev1.Pod
		for _, p := range workers(ctx, job, 1) {
			if p.Name == podName(job, 1, 1, 2) {
				third = p
			}
		}
		fail(ctx, third, "boom: disk full")
		Eventually(status(ctx, job)).Should(And(
			HaveField("Phase", v1alpha1.PhaseFailed),
			HaveField("Message", And(ContainSubstring("stage 1 (counts) subtask 1"), ContainSubstring("boom: disk full"))),
			HaveField("FinishTime", Not(BeNil())),
			HaveField("Restarts", int32(2)),
			haveCondition(v1alpha1.ConditionFailed, metav1.ConditionTrue, "SubtaskFailed"),
			haveCondition(v1alpha1.ConditionRunning, metav1.ConditionFalse),
		))
		Expect(status(ctx, job)(Default).Stages[1].Phase).To(Equal(v1alpha1.StageFailed))
		Eventually(eventReasons(ctx, job)).Should(ContainElement("Warning/SubtaskFailed"))
		Expect(eventNote(ctx, job, "SubtaskFailed")()).To(ContainSubstring("boom: disk full"))
		By("stopping the pods still running")
		Eventually(workerNames(ctx, job, -1)).Should(Equal([]string{podName(job, 1, 1, 0), podName(job, 1, 1, 1), podName(job, 1, 1, 2)}))
		Consistently(func() []corev1.Pod { return finalizers(ctx, job) }).WithTimeout(300 * time.Millisecond).Should(BeEmpty())
	})

	It("retries a failed finalize step", func(ctx SpecContext) {
		job := create(ctx, newJob(ns, "finalize-retry", fmt.Sprintf(oneStage, "BATCH"), withRestart(v1alpha1.RestartFixedDelay, "100ms", 1)))
		Expect(job.Spec.Storage).To(BeNil())
		finishStage(ctx, job, 0, 1, false)
		Eventually(func() []corev1.Pod { return finalizers(ctx, job) }).Should(HaveLen(1))
		fail(ctx, finalizers(ctx, job)[0], "commit failed")
		Eventually(func() []string { return names(finalizers(ctx, job)) }).Should(ContainElement(finalizePodName(job, 1)))
		for _, p := range finalizers(ctx, job) {
			if p.Name == finalizePodName(job, 1) {
				succeed(ctx, p)
			}
		}
		Eventually(status(ctx, job)).Should(And(HaveField("Phase", v1alpha1.PhaseSucceeded), HaveField("Restarts", int32(1))))
		Expect(status(ctx, job)(Default).ResolvedMode).To(Equal(spec.Batch))
	})
})
