package controllers

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/spec"
)

// allStreamingPods are the pods of threeStages at parallelism 2.
func allStreamingPods(job *v1alpha1.FlinkJob, attempt int) []string {
	return podNames(job, attempt, [2]int{0, 0}, [2]int{0, 1}, [2]int{1, 0}, [2]int{1, 1}, [2]int{2, 0})
}

var _ = Describe("STREAMING", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("runs every stage at once, restarts them all after a failure and the delay, and succeeds when they finish", func(ctx SpecContext) {
		job := create(ctx, newJob(ns, "pipeline", fmt.Sprintf(threeStages, "STREAMING", 2),
			withRestart(v1alpha1.RestartFixedDelay, "1s", 3)))
		job = fetch(ctx, job)

		By("creating the pods of every stage and the headless Service")
		Eventually(workerNames(ctx, job, -1)).Should(Equal(allStreamingPods(job, 0)))
		var svc corev1.Service
		Eventually(func() error {
			return k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: serviceName(job)}, &svc)
		}).Should(Succeed())
		Expect(svc.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))
		Expect(svc.Spec.PublishNotReadyAddresses).To(BeTrue())
		Expect(svc.Spec.Selector).To(Equal(map[string]string{LabelJob: job.Name, LabelRole: RoleWorker}))
		Expect(svc.Spec.Ports).To(ContainElement(HaveField("Port", int32(exchangePort))))
		for _, p := range workers(ctx, job, -1) {
			Expect(p.Spec.Hostname).To(Equal(fmt.Sprintf("s%s-%s", p.Labels[LabelStage], p.Labels[LabelIndex])))
			Expect(p.Spec.Subdomain).To(Equal(serviceName(job)))
			Expect(envOf(p)).To(HaveKeyWithValue("FLINKJOB_MODE", "STREAMING"))
			Expect(p.Spec.Containers[0].Args).To(ContainElements("--peer-pattern", peerPattern(job)))
		}
		Eventually(status(ctx, job)).Should(And(HaveField("Phase", v1alpha1.PhasePending), HaveField("ResolvedMode", spec.Streaming)))

		By("being Running once every pod runs")
		for _, p := range workers(ctx, job, -1) {
			run(ctx, p)
		}
		Eventually(status(ctx, job)).Should(And(
			HaveField("Phase", v1alpha1.PhaseRunning),
			HaveField("Stages", HaveEach(HaveField("Phase", v1alpha1.StageRunning))),
			haveCondition(v1alpha1.ConditionRunning, metav1.ConditionTrue, "AllStagesRunning"),
		))

		By("restarting every stage, after the delay, when one pod fails")
		var victim corev1.Pod
		for _, p := range workers(ctx, job, 1) {
			if p.Labels[LabelIndex] == "0" {
				victim = p
			}
		}
		failedAt := time.Now()
		fail(ctx, victim, "connection reset by peer")
		Eventually(workerNames(ctx, job, -1)).Should(BeEmpty(), "a failure cancels every stage")
		Expect(time.Since(failedAt)).To(BeNumerically("<", 900*time.Millisecond))
		Eventually(status(ctx, job)).Should(And(HaveField("Attempt", int32(1)), HaveField("Restarts", int32(0))))
		Consistently(workerNames(ctx, job, -1)).WithTimeout(600 * time.Millisecond).Should(BeEmpty())
		Eventually(workerNames(ctx, job, -1)).WithTimeout(5 * time.Second).Should(Equal(allStreamingPods(job, 1)))
		Expect(time.Since(failedAt)).To(BeNumerically(">=", 900*time.Millisecond), "the 1s restart delay")
		Eventually(status(ctx, job)).Should(And(HaveField("Attempt", int32(1)), HaveField("Restarts", int32(1)), HaveField("LastFailureTime", BeNil())))
		Eventually(eventNote(ctx, job, "Restarting")).Should(And(ContainSubstring("stage 1 subtask 0"), ContainSubstring("connection reset by peer")))
		Consistently(workerNames(ctx, job, -1)).WithTimeout(300 * time.Millisecond).Should(Equal(allStreamingPods(job, 1)))

		By("finalizing and succeeding once every pod succeeded")
		for _, p := range workers(ctx, job, -1) {
			run(ctx, p)
		}
		for _, p := range workers(ctx, job, -1) {
			succeed(ctx, p)
		}
		finishFinalize(ctx, job)
		Eventually(status(ctx, job)).Should(And(
			HaveField("Phase", v1alpha1.PhaseSucceeded),
			HaveField("StagesSummary", "3/3"),
			HaveField("Stages", HaveEach(And(HaveField("Phase", v1alpha1.StageSucceeded), HaveField("Attempts", int32(2))))),
			haveCondition(v1alpha1.ConditionSucceeded, metav1.ConditionTrue),
		))
		Expect(status(ctx, job)(Default).Stages[1].RecordsIn).To(Equal(int64(20)))
	})

	It("fails the job, stopping every pod, when the restart strategy is none", func(ctx SpecContext) {
		job := create(ctx, newJob(ns, "fragile", fmt.Sprintf(threeStages, "STREAMING", 2),
			func(j *v1alpha1.FlinkJob) {
				j.Spec.RestartStrategy = &v1alpha1.RestartStrategy{Type: v1alpha1.RestartNone}
			}))
		Eventually(workerNames(ctx, job, -1)).Should(HaveLen(5))
		for _, p := range workers(ctx, job, -1) {
			run(ctx, p)
		}
		victim := workers(ctx, job, 2)[0]
		fail(ctx, victim, "sink rejected a record")
		Eventually(status(ctx, job)).Should(And(
			HaveField("Phase", v1alpha1.PhaseFailed),
			HaveField("Message", And(ContainSubstring("stage 2 subtask 0"), ContainSubstring("sink rejected a record"))),
			HaveField("Restarts", int32(0)),
			haveCondition(v1alpha1.ConditionFailed, metav1.ConditionTrue, "WorkerFailed"),
		))
		Eventually(workerNames(ctx, job, -1)).Should(Equal([]string{victim.Name}), "the failed pod stays for its logs")
		Eventually(eventReasons(ctx, job)).Should(ContainElement("Warning/WorkerFailed"))
	})
})
