package controllers

import (
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/shuffle"
)

var _ = Describe("Suspend and resume", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("BATCH: deletes the pods, keeps finished stages, and continues at the current stage", func(ctx SpecContext) {
		job := create(ctx, newJob(ns, "pausable", fmt.Sprintf(threeStages, "BATCH", 2), withStorage()))
		finishStage(ctx, job, 0, 2, true)
		job = fetch(ctx, job)
		Eventually(workerNames(ctx, job, -1)).WithTimeout(10 * time.Second).Should(Equal(stagePods(job, 1, 2, 0)))
		for _, p := range workers(ctx, job, 1) {
			run(ctx, p)
		}

		By("suspending")
		patchSpec(ctx, job, func(j *v1alpha1.FlinkJob) { j.Spec.Suspend = true })
		Eventually(func() []corev1.Pod { return jobPods(ctx, job) }).Should(BeEmpty())
		Eventually(status(ctx, job)).Should(And(
			HaveField("Phase", v1alpha1.PhaseSuspended),
			HaveField("StagesSummary", "1/3"),
			HaveField("Stages", HaveExactElements(
				HaveField("Phase", v1alpha1.StageSucceeded),
				HaveField("Phase", v1alpha1.StagePending),
				HaveField("Phase", v1alpha1.StagePending))),
			haveCondition(v1alpha1.ConditionSuspended, metav1.ConditionTrue, "Suspended"),
			haveCondition(v1alpha1.ConditionRunning, metav1.ConditionFalse),
		))
		Consistently(func() []corev1.Pod { return jobPods(ctx, job) }).WithTimeout(500 * time.Millisecond).Should(BeEmpty())

		By("resuming: stage 1 again, stage 0 not rerun")
		patchSpec(ctx, job, func(j *v1alpha1.FlinkJob) { j.Spec.Suspend = false })
		Eventually(workerNames(ctx, job, -1)).Should(Equal(stagePods(job, 1, 2, 0)))
		Eventually(status(ctx, job)).Should(And(
			HaveField("Phase", v1alpha1.PhaseRunning),
			haveCondition(v1alpha1.ConditionSuspended, metav1.ConditionFalse, "Resumed"),
		))
		Expect(status(ctx, job)(Default).Stages[1].Attempts).To(Equal(int32(2)))
		Eventually(eventReasons(ctx, job)).Should(ContainElements("Normal/Suspended", "Normal/Resumed"))

		By("finishing as if nothing happened")
		finishStage(ctx, job, 1, 2, true)
		finishStage(ctx, job, 2, 1, false)
		finishFinalize(ctx, job)
		Eventually(phaseOf(ctx, job)).Should(Equal(v1alpha1.PhaseSucceeded))
	})

	It("STREAMING: deletes every pod and brings them back with a new attempt", func(ctx SpecContext) {
		job := create(ctx, newJob(ns, "stream-pause", unbounded))
		job = fetch(ctx, job)
		Eventually(workerNames(ctx, job, -1)).Should(Equal(stagePods(job, 0, 1, 0)))
		run(ctx, workers(ctx, job, 0)[0])
		Eventually(phaseOf(ctx, job)).Should(Equal(v1alpha1.PhaseRunning))
		patchSpec(ctx, job, func(j *v1alpha1.FlinkJob) { j.Spec.Suspend = true })
		Eventually(workerNames(ctx, job, -1)).Should(BeEmpty())
		Eventually(phaseOf(ctx, job)).Should(Equal(v1alpha1.PhaseSuspended))
		patchSpec(ctx, job, func(j *v1alpha1.FlinkJob) { j.Spec.Suspend = false })
		Eventually(workerNames(ctx, job, -1)).Should(Equal(stagePods(job, 0, 1, 1)))
		Eventually(status(ctx, job)).Should(And(HaveField("Attempt", int32(1)), HaveField("Restarts", int32(0))))
		run(ctx, workers(ctx, job, 0)[0])
		Eventually(phaseOf(ctx, job)).Should(Equal(v1alpha1.PhaseRunning))
	})
})

var _ = Describe("Deletion and TTL", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("removes the pods and the job's intermediate data before the job goes", func(ctx SpecContext) {
		job := create(ctx, newJob(ns, "doomed", fmt.Sprintf(threeStages, "BATCH", 2), withStorage()))
		job = fetch(ctx, job)
		Eventually(workerNames(ctx, job, -1)).Should(HaveLen(2))
		Eventually(func() []string { return fetch(ctx, job).Finalizers }).Should(ContainElement(Finalizer))

		By("putting stage 0's output and some other job's data into the bucket")
		loc := shuffleLocation(job)
		writeManifest(ctx, job, 0, 0)
		putObject(ctx, loc, shuffle.PartitionPath(0, 0, 0), []byte("records"))
		putObject(ctx, loc, shuffle.PartitionPath(0, 1, 0), []byte("records"))
		other, err := connector.ParseLocation("s3://"+testBucket+"/flinkjob/"+ns+"/other/uid/shuffle/", s3cfg)
		Expect(err).NotTo(HaveOccurred())
		putObject(ctx, other, "stage-0/subtask-0.manifest", []byte("{}"))
		Expect(objectsUnder(ctx, loc)).To(HaveLen(3))

		Expect(k8sClient.Delete(ctx, job)).To(Succeed())
		Eventually(isNotFound(ctx, job)).Should(BeTrue())
		Expect(jobPods(ctx, job)).To(BeEmpty())
		Expect(objectsUnder(ctx, loc)).To(BeEmpty())
		Expect(objectsUnder(ctx, other)).To(HaveLen(1), "only the job's own prefix is removed")
	})

	It("lets a job go when its credentials Secret is already gone (namespace teardown), with a warning", func(ctx SpecContext) {
		job := create(ctx, newJob(ns, "orphan", fmt.Sprintf(threeStages, "BATCH", 2), withStorage()))
		Eventually(workerNames(ctx, job, -1)).Should(HaveLen(2))
		Expect(k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: ns}})).To(Succeed())
		Expect(k8sClient.Delete(ctx, job)).To(Succeed())
		Eventually(isNotFound(ctx, job)).Should(BeTrue())
		Expect(jobPods(ctx, job)).To(BeEmpty())
		Eventually(eventReasons(ctx, job)).Should(ContainElement("Warning/CleanupSkipped"))
	})

	It("deletes a finished job ttlSecondsAfterFinished after it finished", func(ctx SpecContext) {
		job := create(ctx, newJob(ns, "short-lived", fmt.Sprintf(oneStage, "BATCH"), withTTL(1)))
		finishStage(ctx, job, 0, 1, false)
		finishFinalize(ctx, job)
		Eventually(phaseOf(ctx, job)).Should(Equal(v1alpha1.PhaseSucceeded))
		finishedAt := time.Now()
		Expect(isNotFound(ctx, job)()).To(BeFalse())
		Eventually(isNotFound(ctx, job)).WithTimeout(10 * time.Second).Should(BeTrue())
		Expect(time.Since(finishedAt)).To(BeNumerically(">", 800*time.Millisecond), "not before the TTL")
		Eventually(eventReasons(ctx, job)).Should(ContainElement("Normal/Expired"))
	})

	It("keeps a finished job without ttlSecondsAfterFinished", func(ctx SpecContext) {
		job := create(ctx, newJob(ns, "kept", fmt.Sprintf(oneStage, "BATCH")))
		finishStage(ctx, job, 0, 1, false)
		finishFinalize(ctx, job)
		Eventually(phaseOf(ctx, job)).Should(Equal(v1alpha1.PhaseSucceeded))
		Consistently(isNotFound(ctx, job)).WithTimeout(1500 * time.Millisecond).Should(BeFalse())
	})
})

var _ = Describe("Manager restarts and concurrent reconcilers", Ordered, func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("continues where a stopped manager left off, without duplicating pods", func(ctx SpecContext) {
		pw := watchPods(ctx, ns)
		defer pw.stop()
		job := create(ctx, newJob(ns, "survivor", fmt.Sprintf(threeStages, "BATCH", 2), withStorage()))
		finishStage(ctx, job, 0, 2, true)
		job = fetch(ctx, job)
		Eventually(workerNames(ctx, job, -1)).WithTimeout(10 * time.Second).Should(Equal(stagePods(job, 1, 2, 0)))
		running := workers(ctx, job, 1)
		for _, p := range running {
			run(ctx, p)
		}

		By("restarting the manager while stage 1 runs")
		mgr.stop()
		mgr = startManager(true)
		Consistently(func() []corev1.Pod { return workers(ctx, job, -1) }).WithTimeout(time.Second).Should(HaveExactElements(
			HaveField("UID", running[0].UID), HaveField("UID", running[1].UID)))

		By("finishing stage 1 while no manager runs")
		mgr.stop()
		finishStage(ctx, job, 1, 2, true)
		mgr = startManager(true)
		Eventually(workerNames(ctx, job, -1)).WithTimeout(10 * time.Second).Should(Equal(stagePods(job, 2, 1, 0)))
		finishStage(ctx, job, 2, 1, false)
		finishFinalize(ctx, job)
		Eventually(status(ctx, job)).Should(And(HaveField("Phase", v1alpha1.PhaseSucceeded), HaveField("Restarts", int32(0))))
		created := pw.createdNames()
		Expect(created).To(HaveLen(6), "2+2+1 workers and one finalize pod: %v", created)
		Expect(created).To(HaveEach(1))
	})

	It("keeps status consistent with two managers reconciling the same jobs", func(ctx SpecContext) {
		second := startManager(false)
		defer second.stop()

		pw := watchPods(ctx, ns)
		defer pw.stop()
		var (
			mu       sync.Mutex
			statuses []v1alpha1.FlinkJobStatus
		)
		w, err := k8sClient.Watch(ctx, &v1alpha1.FlinkJobList{}, client.InNamespace(ns))
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		go func() {
			defer GinkgoRecover()
			for ev := range w.ResultChan() {
				if j, ok := ev.Object.(*v1alpha1.FlinkJob); ok && ev.Type == watch.Modified {
					mu.Lock()
					statuses = append(statuses, *j.Status.DeepCopy())
					mu.Unlock()
				}
			}
		}()

		job := create(ctx, newJob(ns, "contested", fmt.Sprintf(threeStages, "BATCH", 2), withStorage(),
			withRestart(v1alpha1.RestartFixedDelay, "300ms", 3)))
		finishStage(ctx, job, 0, 2, true)
		job = fetch(ctx, job)
		Eventually(workerNames(ctx, job, -1)).WithTimeout(10 * time.Second).Should(Equal(stagePods(job, 1, 2, 0)))
		fail(ctx, workers(ctx, job, 1)[0], "oom")
		Eventually(workerNames(ctx, job, 1)).WithTimeout(5 * time.Second).Should(ContainElement(podName(job, 1, 0, 1)))
		Eventually(status(ctx, job)).Should(HaveField("Restarts", int32(1)))
		Consistently(func() int32 { return status(ctx, job)(Default).Restarts }).WithTimeout(time.Second).Should(Equal(int32(1)))
		for _, p := range workers(ctx, job, 1) {
			if p.Status.Phase != corev1.PodFailed {
				writeManifest(ctx, job, 1, labelInt(&p, LabelIndex))
				succeed(ctx, p)
			}
		}
		Eventually(workerNames(ctx, job, -1)).WithTimeout(10 * time.Second).Should(Equal(stagePods(job, 2, 1, 0)))
		finishStage(ctx, job, 2, 1, false)
		finishFinalize(ctx, job)
		Eventually(status(ctx, job)).Should(And(HaveField("Phase", v1alpha1.PhaseSucceeded), HaveField("Restarts", int32(1))))

		created := pw.createdNames()
		Expect(created).To(HaveLen(7), "2+2+1 workers, one retry and one finalize pod: %v", created)
		Expect(created).To(HaveKey(podName(job, 1, 0, 1)))
		Expect(created).NotTo(HaveKey(podName(job, 1, 0, 2)))

		mu.Lock()
		defer mu.Unlock()
		var done, restarts int32
		phases := map[v1alpha1.Phase]bool{}
		for i, st := range statuses {
			Expect(st.StagesDone).To(BeNumerically(">=", done), "status %d went back: %+v", i, st)
			Expect(st.Restarts).To(BeNumerically(">=", restarts), "status %d went back: %+v", i, st)
			done, restarts = st.StagesDone, st.Restarts
			if phases[v1alpha1.PhaseSucceeded] {
				Expect(st.Phase).To(Equal(v1alpha1.PhaseSucceeded), "a finished job stays finished")
			}
			phases[st.Phase] = true
		}
	})
})

var _ = Describe("Pod security", func() {
	It("creates worker and finalize pods that meet the restricted Pod Security Standard", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		By("checking the namespace really enforces it")
		bad := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "privileged", Namespace: ns},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox",
				SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}}}}
		err := k8sClient.Create(ctx, bad)
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)

		job := create(ctx, newJob(ns, "locked-down", fmt.Sprintf(oneStage, "BATCH")))
		Eventually(workerNames(ctx, job, -1)).Should(HaveLen(1))
		check := func(p corev1.Pod) {
			GinkgoHelper()
			Expect(p.Spec.AutomountServiceAccountToken).To(HaveValue(BeFalse()))
			Expect(p.Spec.SecurityContext.RunAsNonRoot).To(HaveValue(BeTrue()))
			Expect(p.Spec.SecurityContext.SeccompProfile).To(HaveValue(HaveField("Type", corev1.SeccompProfileTypeRuntimeDefault)))
			Expect(p.Spec.HostNetwork || p.Spec.HostPID || p.Spec.HostIPC).To(BeFalse())
			Expect(p.Spec.RestartPolicy).To(Equal(corev1.RestartPolicyNever))
			Expect(p.Spec.Containers).To(HaveLen(1))
			sc := p.Spec.Containers[0].SecurityContext
			Expect(sc).NotTo(BeNil())
			Expect(sc.AllowPrivilegeEscalation).To(HaveValue(BeFalse()))
			Expect(sc.Privileged).To(Or(BeNil(), HaveValue(BeFalse())))
			Expect(sc.RunAsNonRoot).To(HaveValue(BeTrue()))
			Expect(sc.ReadOnlyRootFilesystem).To(HaveValue(BeTrue()))
			Expect(sc.Capabilities).To(HaveValue(HaveField("Drop", ConsistOf(corev1.Capability("ALL")))))
			Expect(sc.Capabilities.Add).To(BeEmpty())
			Expect(sc.SeccompProfile).To(HaveValue(HaveField("Type", corev1.SeccompProfileTypeRuntimeDefault)))
			for _, port := range p.Spec.Containers[0].Ports {
				Expect(port.HostPort).To(BeZero())
			}
			for _, v := range p.Spec.Volumes {
				Expect(v.ConfigMap != nil || v.EmptyDir != nil).To(BeTrue(), "volume %s", v.Name)
			}
		}
		check(workers(ctx, job, 0)[0])
		finishStage(ctx, job, 0, 1, false)
		Eventually(func() []corev1.Pod { return finalizers(ctx, job) }).Should(HaveLen(1))
		check(finalizers(ctx, job)[0])
	})
})
