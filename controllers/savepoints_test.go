package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/worker/control"
)

// The specs here play the worker side of the checkpoint/savepoint contract
// by writing the control objects and checkpoint/savepoint directories the
// job's leader would write (that is the protocol boundary); the operator
// side runs for real against the API server and MinIO.

// counting is an unbounded keyed STREAMING job (two stages).
const counting = `
runtimeMode: STREAMING
parallelism: %d
steps:
  - name: clicks
    source: {datagen: {value: "{'user': seq %% 10, 'n': 1}"}}
  - name: counts
    keyBy: record.user
    reduce: "{'user': acc.user, 'n': acc.n + record.n}"
  - name: out
    sink: {print: {}}
`

func withCheckpointing(interval string) jobOption {
	return func(j *v1alpha1.FlinkJob) {
		j.Spec.Checkpointing = &v1alpha1.Checkpointing{Interval: spec.Duration(interval), Retain: 2}
	}
}

func withUpgradeMode(m v1alpha1.UpgradeMode) jobOption {
	return func(j *v1alpha1.FlinkJob) { j.Spec.UpgradeMode = m }
}

// runningCounting creates counting at parallelism 1 with storage and a
// checkpoint every second (and opts), and runs its two pods.
func runningCounting(ctx context.Context, ns, name string, opts ...jobOption) *v1alpha1.FlinkJob {
	GinkgoHelper()
	opts = append([]jobOption{withStorage(), withCheckpointing("1s")}, opts...)
	job := fetch(ctx, create(ctx, newJob(ns, name, fmt.Sprintf(counting, 1), opts...)))
	runAll(ctx, job, 2)
	return job
}

func locationAt(url string) connector.Location {
	GinkgoHelper()
	loc, err := connector.ParseLocation(url, s3cfg)
	Expect(err).NotTo(HaveOccurred())
	return loc
}

// writeCheckpoint completes checkpoint id as the leader would: a snapshot,
// the _COMPLETED marker, then control/checkpoint-latest.json.
func writeCheckpoint(ctx context.Context, job *v1alpha1.FlinkJob, id int64) string {
	GinkgoHelper()
	loc := locationAt(checkpointsURL(job))
	dir := fmt.Sprintf("chk-%d/", id)
	putObject(ctx, loc, dir+"counts-0", []byte("state"))
	putObject(ctx, loc, dir+"_COMPLETED", nil)
	url := checkpointsURL(job) + dir
	b, _ := json.Marshal(control.LatestCheckpoint{ID: id, Path: url, TimeMs: time.Now().UnixMilli()})
	putObject(ctx, locationAt(controlURL(job)), control.LatestObject, b)
	return url
}

// savepointRequested is for Eventually: the request the operator wrote.
func savepointRequested(ctx context.Context, job *v1alpha1.FlinkJob) func(Gomega) control.SavepointRequest {
	return func(g Gomega) control.SavepointRequest {
		var req control.SavepointRequest
		loc := locationAt(controlURL(job))
		ok, err := loc.Exists(ctx, control.SavepointRequestObject)
		g.Expect(err).NotTo(HaveOccurred())
		if !ok {
			return req
		}
		rc, err := loc.Open(ctx, control.SavepointRequestObject)
		g.Expect(err).NotTo(HaveOccurred())
		defer rc.Close()
		g.Expect(json.NewDecoder(rc).Decode(&req)).To(Succeed())
		return req
	}
}

// completeSavepoint writes savepoint sp-<id>-<nonce>/ and its result, as
// the leader would; it returns the savepoint's URL.
func completeSavepoint(ctx context.Context, job *v1alpha1.FlinkJob, nonce string, id int64) string {
	GinkgoHelper()
	return completeSavepointAt(ctx, job, nonce, id, time.Now())
}

// completeSavepointAt is completeSavepoint with a result saying it
// completed at t.
func completeSavepointAt(ctx context.Context, job *v1alpha1.FlinkJob, nonce string, id int64, t time.Time) string {
	GinkgoHelper()
	dir := fmt.Sprintf("sp-%d-%s/", id, nonce)
	loc := locationAt(savepointsURL(job))
	putObject(ctx, loc, dir+"counts-0", []byte("state"))
	putObject(ctx, loc, dir+"_COMPLETED", nil)
	url := savepointsURL(job) + dir
	b, _ := json.Marshal(control.SavepointResult{Nonce: nonce, Path: url, CheckpointID: id, TimeMs: t.UnixMilli()})
	putObject(ctx, locationAt(controlURL(job)), control.SavepointResultObject(nonce), b)
	return url
}

func failSavepoint(ctx context.Context, job *v1alpha1.FlinkJob, nonce, why string) {
	GinkgoHelper()
	b, _ := json.Marshal(control.SavepointResult{Nonce: nonce, Error: why, TimeMs: time.Now().UnixMilli()})
	putObject(ctx, locationAt(controlURL(job)), control.SavepointResultObject(nonce), b)
}

// runAll lets every live worker pod of the job run.
func runAll(ctx context.Context, job *v1alpha1.FlinkJob, n int) {
	GinkgoHelper()
	Eventually(workerNames(ctx, job, -1)).Should(HaveLen(n))
	for _, p := range workers(ctx, job, -1) {
		run(ctx, p)
	}
	Eventually(phaseOf(ctx, job)).Should(Equal(v1alpha1.PhaseRunning))
}

// workerEnv is for Eventually: the env of the live worker pods of attempt
// (nil until they all exist).
func workerEnv(ctx context.Context, job *v1alpha1.FlinkJob, attempt, n int) func() []map[string]string {
	return func() []map[string]string {
		ws := workers(ctx, job, -1)
		var out []map[string]string
		for _, p := range ws {
			if labelInt(&p, LabelAttempt) == attempt {
				out = append(out, envOf(p))
			}
		}
		if len(out) != n {
			return nil
		}
		return out
	}
}

func exists(ctx context.Context, url, name string) func() bool {
	return func() bool {
		ok, err := locationAt(url).Exists(ctx, name)
		Expect(err).NotTo(HaveOccurred())
		return ok
	}
}

var _ = Describe("Checkpoints and savepoints", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("passes the checkpoint contract to STREAMING pods, shows the latest checkpoint and restarts from it after a failure", func(ctx SpecContext) {
		job := create(ctx, newJob(ns, "ckpt", fmt.Sprintf(counting, 2), withStorage(), withCheckpointing("1s"),
			withRestart(v1alpha1.RestartFixedDelay, "1s", 3)))
		job = fetch(ctx, job)

		By("setting the checkpoint env on every pod, starting fresh")
		Eventually(workerEnv(ctx, job, 0, 4)).Should(HaveEach(And(
			HaveKeyWithValue("FLINKJOB_CHECKPOINT_INTERVAL", "1s"),
			HaveKeyWithValue("FLINKJOB_CHECKPOINT_RETAIN", "2"),
			HaveKeyWithValue("FLINKJOB_CHECKPOINT_URL", checkpointsURL(job)),
			HaveKeyWithValue("FLINKJOB_SAVEPOINT_URL", savepointsURL(job)),
			HaveKeyWithValue("FLINKJOB_CONTROL_URL", controlURL(job)),
			Not(HaveKey("FLINKJOB_RESTORE_FROM")),
			Not(HaveKey("FLINKJOB_FINAL_SAVEPOINT")),
		)))
		Expect(checkpointsURL(job)).To(Equal(fmt.Sprintf("s3://%s/flinkjob/%s/ckpt/%s/checkpoints/", testBucket, ns, job.UID)))
		Expect(savepointsURL(job)).To(Equal(fmt.Sprintf("s3://%s/flinkjob/%s/ckpt/savepoints/", testBucket, ns)))
		Eventually(status(ctx, job)).Should(HaveField("StartedFrom", beStart(0, v1alpha1.StartFresh, "")))

		By("showing the leader's latest completed checkpoint in status")
		runAll(ctx, job, 4)
		writeCheckpoint(ctx, job, 1)
		chk2 := writeCheckpoint(ctx, job, 2)
		Eventually(status(ctx, job)).WithTimeout(15 * time.Second).Should(HaveField("LastCheckpoint", And(
			Not(BeNil()), HaveField("ID", int64(2)), HaveField("Path", chk2), HaveField("Time", Not(BeNil())))))

		By("restarting every stage from the latest checkpoint after a failure")
		fail(ctx, workers(ctx, job, 1)[0], "killed")
		Eventually(workerEnv(ctx, job, 1, 4)).WithTimeout(15 * time.Second).Should(HaveEach(HaveKeyWithValue("FLINKJOB_RESTORE_FROM", "latest")))
		Expect(status(ctx, job)(Default).StartedFrom).To(beStart(1, v1alpha1.StartCheckpoint, chk2))
		Expect(exists(ctx, checkpointsURL(job), "chk-2/_COMPLETED")()).To(BeTrue(), "the checkpoints it restores from stay")
		Eventually(eventNote(ctx, job, "Restoring")).Should(ContainSubstring("attempt 1 starts from Checkpoint " + chk2))

		By("deleting checkpoints and control objects with the job, keeping savepoints")
		sp := completeSavepoint(ctx, job, "kept", 2)
		Expect(k8sClient.Delete(ctx, job)).To(Succeed())
		Eventually(isNotFound(ctx, job)).WithTimeout(20 * time.Second).Should(BeTrue())
		Expect(objectsUnder(ctx, locationAt(jobDataURL(job)))).To(BeEmpty())
		Expect(exists(ctx, sp, "counts-0")()).To(BeTrue())
	})

	It("reads checkpoint-latest.json again only once it changed, and keeps status.lastCheckpoint true meanwhile", func(ctx SpecContext) {
		job := runningCounting(ctx, ns, "unchanged")
		latest := control.LatestObject
		Expect(controlReads.reads(job, latest)).To(BeZero(), "nothing to read before the first checkpoint")

		By("reading the first checkpoint once")
		chk1 := writeCheckpoint(ctx, job, 1)
		Eventually(status(ctx, job)).Should(HaveField("LastCheckpoint", And(Not(BeNil()), HaveField("ID", int64(1)), HaveField("Path", chk1))))
		Expect(controlReads.reads(job, latest)).To(Equal(1))

		By("finding it unchanged on the next passes, without reading it")
		passes := controlReads.unchangedReads(job, latest)
		Eventually(func() int { return controlReads.unchangedReads(job, latest) }).WithTimeout(30 * time.Second).
			Should(BeNumerically(">=", passes+2))
		Expect(controlReads.reads(job, latest)).To(Equal(1))

		By("making good a lost status write from what it read before, still without reading it")
		Eventually(func() error {
			j := fetch(ctx, job)
			j.Status.LastCheckpoint = nil
			return k8sClient.Status().Update(ctx, j)
		}).Should(Succeed())
		Eventually(status(ctx, job)).WithTimeout(30 * time.Second).Should(HaveField("LastCheckpoint", And(Not(BeNil()), HaveField("ID", int64(1)), HaveField("Path", chk1))))
		Expect(controlReads.reads(job, latest)).To(Equal(1))

		By("reading it again once the leader wrote the next checkpoint")
		chk2 := writeCheckpoint(ctx, job, 2)
		Eventually(status(ctx, job)).WithTimeout(30 * time.Second).Should(HaveField("LastCheckpoint", And(Not(BeNil()), HaveField("ID", int64(2)), HaveField("Path", chk2))))
		Expect(controlReads.reads(job, latest)).To(Equal(2))
	})

	It("treats a deleted worker pod as a failure of every stage and never recreates it alone", func(ctx SpecContext) {
		pw := watchPods(ctx, ns)
		defer pw.stop()
		job := create(ctx, newJob(ns, "evicted", fmt.Sprintf(counting, 2), withStorage(), withCheckpointing("1s"),
			withRestart(v1alpha1.RestartFixedDelay, "1s", 3)))
		job = fetch(ctx, job)
		runAll(ctx, job, 4)
		Eventually(status(ctx, job)).Should(HaveField("StartedFrom.Launched", true))
		writeCheckpoint(ctx, job, 1)
		victim := workers(ctx, job, 1)[1]
		Expect(k8sClient.Delete(ctx, &victim)).To(Succeed())
		Eventually(workerEnv(ctx, job, 1, 4)).WithTimeout(15 * time.Second).Should(HaveEach(HaveKeyWithValue("FLINKJOB_RESTORE_FROM", "latest")))
		Eventually(eventNote(ctx, job, "Restarting")).Should(ContainSubstring("stage 1 subtask 1"))
		Expect(pw.createdNames()).To(HaveKeyWithValue(victim.Name, 1), "the deleted pod was not recreated in its attempt")
		Expect(status(ctx, job)(Default).Restarts).To(Equal(int32(1)))
	})

	It("starts from initialSavepointPath, restarts from it until a checkpoint completes, then from the checkpoint", func(ctx SpecContext) {
		initial := fmt.Sprintf("s3://%s/flinkjob/%s/bootstrap/savepoints/sp-4-final/", testBucket, ns)
		job := create(ctx, newJob(ns, "restored", fmt.Sprintf(counting, 1), withStorage(), withCheckpointing("1s"),
			withRestart(v1alpha1.RestartFixedDelay, "1s", 5),
			func(j *v1alpha1.FlinkJob) { j.Spec.InitialSavepointPath = initial }))
		job = fetch(ctx, job)
		Eventually(workerEnv(ctx, job, 0, 2)).Should(HaveEach(HaveKeyWithValue("FLINKJOB_RESTORE_FROM", initial)))
		Expect(status(ctx, job)(Default).StartedFrom).To(beStart(0, v1alpha1.StartSavepoint, initial))

		By("a failure before the first checkpoint restarts from the savepoint again, not from empty state")
		runAll(ctx, job, 2)
		fail(ctx, workers(ctx, job, 0)[0], "killed")
		Eventually(workerEnv(ctx, job, 1, 2)).WithTimeout(15 * time.Second).Should(HaveEach(HaveKeyWithValue("FLINKJOB_RESTORE_FROM", initial)))

		By("a failure after a checkpoint restarts from the latest checkpoint")
		runAll(ctx, job, 2)
		writeCheckpoint(ctx, job, 5)
		fail(ctx, workers(ctx, job, 0)[0], "killed")
		Eventually(workerEnv(ctx, job, 2, 2)).WithTimeout(15 * time.Second).Should(HaveEach(HaveKeyWithValue("FLINKJOB_RESTORE_FROM", "latest")))
	})

	It("keeps initialSavepointPath for the first start of a job created suspended", func(ctx SpecContext) {
		initial := fmt.Sprintf("s3://%s/flinkjob/%s/bootstrap/savepoints/sp-4-final/", testBucket, ns)
		job := create(ctx, newJob(ns, "created-suspended", fmt.Sprintf(counting, 1), withStorage(),
			func(j *v1alpha1.FlinkJob) { j.Spec.InitialSavepointPath = initial; j.Spec.Suspend = true }))
		Eventually(phaseOf(ctx, job)).Should(Equal(v1alpha1.PhaseSuspended))
		Expect(workerNames(ctx, job, -1)()).To(BeEmpty())
		patchSpec(ctx, job, func(j *v1alpha1.FlinkJob) { j.Spec.Suspend = false })
		Eventually(workerEnv(ctx, job, 1, 2)).Should(HaveEach(HaveKeyWithValue("FLINKJOB_RESTORE_FROM", initial)))
	})

	It("takes a savepoint when savepointTriggerNonce changes, records it, reports failures, and disposes savepoints beyond the history limit", func(ctx SpecContext) {
		job := create(ctx, newJob(ns, "manual", fmt.Sprintf(counting, 1), withStorage(),
			func(j *v1alpha1.FlinkJob) {
				j.Spec.SavepointTriggerNonce = ptr.To(int64(1))
				j.Spec.SavepointHistory = &v1alpha1.SavepointHistory{MaxCount: 2}
			}))
		job = fetch(ctx, job)
		runAll(ctx, job, 2)
		Consistently(savepointRequested(ctx, job)).WithTimeout(time.Second).Should(BeZero(), "the nonce a job is created with is no request")

		var paths []string
		for i, nonce := range []int64{2, 3, 4} {
			n := fmt.Sprint(nonce)
			By("nonce " + n)
			patchSpec(ctx, job, func(j *v1alpha1.FlinkJob) { j.Spec.SavepointTriggerNonce = ptr.To(nonce) })
			Eventually(savepointRequested(ctx, job)).Should(Equal(control.SavepointRequest{Nonce: n, Stop: false}))
			Eventually(status(ctx, job)).Should(HaveField("SavepointInfo", And(
				HaveField("TriggerNonce", n), HaveField("TriggerType", v1alpha1.SavepointManual), HaveField("TriggerStop", false))))
			paths = append(paths, completeSavepoint(ctx, job, n, int64(10+i)))
			Eventually(status(ctx, job)).Should(HaveField("SavepointInfo", And(
				HaveField("TriggerNonce", ""),
				HaveField("LastTriggerNonce", Equal(ptr.To(nonce))),
				HaveField("LastSavepoint", And(Not(BeNil()), HaveField("Path", paths[i]), HaveField("TriggerType", v1alpha1.SavepointManual),
					HaveField("TriggerNonce", n), HaveField("CheckpointID", int64(10+i)))))))
			Eventually(savepointRequested(ctx, job)).Should(BeZero(), "the handled request is removed")
		}
		Eventually(eventNote(ctx, job, "SavepointCompleted")).Should(ContainSubstring(paths[2]))

		By("keeping maxCount savepoints, disposing the oldest from status and storage")
		st := status(ctx, job)(Default)
		Expect(st.SavepointInfo.SavepointHistory).To(HaveLen(2))
		Expect(st.SavepointInfo.SavepointHistory[0].Path).To(Equal(paths[1]))
		Expect(st.SavepointInfo.SavepointHistory[1].Path).To(Equal(paths[2]))
		Expect(objectsUnder(ctx, locationAt(paths[0]))).To(BeEmpty())
		Expect(exists(ctx, paths[0], "_COMPLETED")()).To(BeFalse())
		Expect(exists(ctx, paths[1], "_COMPLETED")()).To(BeTrue())
		Eventually(eventNote(ctx, job, "SavepointDisposed")).Should(And(ContainSubstring(paths[0]), ContainSubstring("beyond maxCount 2")))
		Expect(counterValue(savepointsTotal.WithLabelValues("MANUAL", "completed"))).To(BeNumerically(">=", 3))
		Expect(counterValue(savepointsDisposedTotal)).To(BeNumerically(">=", 1))

		By("reporting a failed savepoint without touching the history")
		patchSpec(ctx, job, func(j *v1alpha1.FlinkJob) { j.Spec.SavepointTriggerNonce = ptr.To(int64(5)) })
		Eventually(savepointRequested(ctx, job)).Should(HaveField("Nonce", "5"))
		failSavepoint(ctx, job, "5", "subtask 0 of stage 1 declined the barrier")
		Eventually(status(ctx, job)).Should(HaveField("SavepointInfo", And(
			HaveField("TriggerNonce", ""), HaveField("LastError", ContainSubstring("declined the barrier")),
			HaveField("SavepointHistory", HaveLen(2)), HaveField("LastSavepoint.Path", paths[2]))))
		Eventually(eventNote(ctx, job, "SavepointFailed")).Should(ContainSubstring("declined the barrier"))
		Consistently(workerNames(ctx, job, -1)).WithTimeout(500*time.Millisecond).Should(HaveLen(2), "a manual savepoint never stops the job")
	})

	It("disposes savepoints older than maxAge, but never the latest one", func(ctx SpecContext) {
		job := create(ctx, newJob(ns, "aging", fmt.Sprintf(counting, 1), withStorage(),
			func(j *v1alpha1.FlinkJob) {
				j.Spec.SavepointHistory = &v1alpha1.SavepointHistory{MaxCount: 10, MaxAge: "3s"}
			}))
		job = fetch(ctx, job)
		runAll(ctx, job, 2)
		var paths []string
		for _, nonce := range []int64{1, 2} {
			patchSpec(ctx, job, func(j *v1alpha1.FlinkJob) { j.Spec.SavepointTriggerNonce = ptr.To(nonce) })
			Eventually(savepointRequested(ctx, job)).Should(HaveField("Nonce", fmt.Sprint(nonce)))
			paths = append(paths, completeSavepoint(ctx, job, fmt.Sprint(nonce), nonce))
			Eventually(status(ctx, job)).Should(HaveField("SavepointInfo.LastSavepoint.Path", paths[len(paths)-1]))
		}
		time.Sleep(4 * time.Second)
		patchSpec(ctx, job, func(j *v1alpha1.FlinkJob) { j.Spec.SavepointTriggerNonce = ptr.To(int64(3)) })
		Eventually(savepointRequested(ctx, job)).Should(HaveField("Nonce", "3"))
		failSavepoint(ctx, job, "3", "no")
		// Disposal runs when a savepoint completes (not when one fails).
		// Savepoint 4 reports a completion time already past maxAge: 1 and
		// 2 go, 4 stays because it is the latest.
		patchSpec(ctx, job, func(j *v1alpha1.FlinkJob) { j.Spec.SavepointTriggerNonce = ptr.To(int64(4)) })
		Eventually(savepointRequested(ctx, job)).Should(HaveField("Nonce", "4"))
		p4 := completeSavepointAt(ctx, job, "4", 4, time.Now().Add(-10*time.Second))
		Eventually(status(ctx, job)).Should(HaveField("SavepointInfo.LastSavepoint.Path", p4))
		Expect(status(ctx, job)(Default).SavepointInfo.SavepointHistory).To(HaveExactElements(HaveField("Path", p4)))
		Expect(exists(ctx, paths[0], "_COMPLETED")()).To(BeFalse())
		Expect(exists(ctx, paths[1], "_COMPLETED")()).To(BeFalse())
		Eventually(eventNote(ctx, job, "SavepointDisposed")).Should(ContainSubstring("older than maxAge 3s"))
	})

	It("suspends with upgradeMode savepoint by stopping with a savepoint, and resumes from it", func(ctx SpecContext) {
		job := runningCounting(ctx, ns, "pausable", withUpgradeMode(v1alpha1.UpgradeSavepoint))
		writeCheckpoint(ctx, job, 3)

		By("asking the leader to stop with a savepoint, keeping the pods until it answers")
		patchSpec(ctx, job, func(j *v1alpha1.FlinkJob) { j.Spec.Suspend = true })
		Eventually(savepointRequested(ctx, job)).Should(And(HaveField("Stop", true), HaveField("Nonce", Not(BeEmpty()))))
		nonce := savepointRequested(ctx, job)(Default).Nonce
		Eventually(status(ctx, job)).Should(HaveField("SavepointInfo", And(HaveField("TriggerType", v1alpha1.SavepointSuspend), HaveField("TriggerStop", true))))
		Consistently(workerNames(ctx, job, -1)).WithTimeout(time.Second).Should(HaveLen(2))

		By("deleting the pods once the savepoint exists")
		sp := completeSavepoint(ctx, job, nonce, 4)
		Eventually(workerNames(ctx, job, -1)).Should(BeEmpty())
		Eventually(status(ctx, job)).Should(And(
			HaveField("Phase", v1alpha1.PhaseSuspended),
			HaveField("NextStart", beStart(0, v1alpha1.StartSavepoint, sp)),
			HaveField("SavepointInfo.LastSavepoint", And(Not(BeNil()), HaveField("Path", sp), HaveField("TriggerType", v1alpha1.SavepointSuspend))),
		))

		By("resuming from the savepoint, with the older checkpoints cleared")
		patchSpec(ctx, job, func(j *v1alpha1.FlinkJob) { j.Spec.Suspend = false })
		Eventually(workerEnv(ctx, job, 1, 2)).Should(HaveEach(HaveKeyWithValue("FLINKJOB_RESTORE_FROM", sp)))
		Expect(exists(ctx, checkpointsURL(job), "chk-3/_COMPLETED")()).To(BeFalse())
		Expect(exists(ctx, controlURL(job), control.LatestObject)()).To(BeFalse())
		Eventually(status(ctx, job)).Should(And(
			HaveField("StartedFrom", beStart(1, v1alpha1.StartSavepoint, sp)),
			HaveField("NextStart", BeNil()), HaveField("LastCheckpoint", BeNil())))
	})

	It("falls back to the latest checkpoint when the stop-with-savepoint times out", func(ctx SpecContext) {
		job := runningCounting(ctx, ns, "slow-sp", withUpgradeMode(v1alpha1.UpgradeSavepoint))
		writeCheckpoint(ctx, job, 7)
		patchSpec(ctx, job, func(j *v1alpha1.FlinkJob) { j.Spec.Suspend = true })
		Eventually(savepointRequested(ctx, job)).Should(HaveField("Stop", true))
		// The suite's manager gives savepoints testSavepointTimeout.
		Eventually(phaseOf(ctx, job)).WithTimeout(testSavepointTimeout + 10*time.Second).Should(Equal(v1alpha1.PhaseSuspended))
		Expect(workerNames(ctx, job, -1)()).To(BeEmpty())
		Eventually(eventReasons(ctx, job)).Should(ContainElements("Warning/SavepointFailed", "Warning/LastStateFallback"))
		Expect(status(ctx, job)(Default).SavepointInfo.LastError).To(ContainSubstring("no result after"))
		patchSpec(ctx, job, func(j *v1alpha1.FlinkJob) { j.Spec.Suspend = false })
		Eventually(workerEnv(ctx, job, 1, 2)).Should(HaveEach(HaveKeyWithValue("FLINKJOB_RESTORE_FROM", "latest")))
	})

	It("suspends with upgradeMode stateless and resumes from empty state", func(ctx SpecContext) {
		job := runningCounting(ctx, ns, "forgetful")
		Expect(job.Spec.UpgradeMode).To(Equal(v1alpha1.UpgradeStateless), "Flink's default")
		writeCheckpoint(ctx, job, 2)
		patchSpec(ctx, job, func(j *v1alpha1.FlinkJob) { j.Spec.Suspend = true })
		Eventually(phaseOf(ctx, job)).Should(Equal(v1alpha1.PhaseSuspended))
		Expect(savepointRequested(ctx, job)(Default)).To(BeZero())
		patchSpec(ctx, job, func(j *v1alpha1.FlinkJob) { j.Spec.Suspend = false })
		Eventually(workerEnv(ctx, job, 1, 2)).Should(HaveEach(Not(HaveKey("FLINKJOB_RESTORE_FROM"))))
		Expect(exists(ctx, checkpointsURL(job), "chk-2/_COMPLETED")()).To(BeFalse())
	})

	Context("upgrades of a running STREAMING job after a spec change", func() {
		newMap := func(j *v1alpha1.FlinkJob) {
			j.Spec.Steps[1].Reduce = "{'user': acc.user, 'n': acc.n + record.n * 2}"
		}

		It("stateless: restarts every pod with the new dataflow from empty state", func(ctx SpecContext) {
			job := runningCounting(ctx, ns, "up-stateless")
			writeCheckpoint(ctx, job, 2)
			patchSpec(ctx, job, newMap)
			Eventually(workerEnv(ctx, job, 1, 2)).Should(HaveEach(Not(HaveKey("FLINKJOB_RESTORE_FROM"))))
			var cm corev1.ConfigMap
			Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: configMapName(job)}, &cm)).To(Succeed())
			Expect(cm.Data[jobFileKey]).To(ContainSubstring("record.n * 2"))
			Expect(exists(ctx, checkpointsURL(job), "chk-2/_COMPLETED")()).To(BeFalse())
			Eventually(eventNote(ctx, job, "Upgrading")).Should(ContainSubstring("upgradeMode stateless"))
			st := status(ctx, job)(Default)
			Expect(st.AppliedGeneration).To(Equal(fetch(ctx, job).Generation))
			Expect(st.Restarts).To(BeZero(), "an upgrade is no failure")
		})

		It("last-state: restarts from the latest checkpoint, also for an image change", func(ctx SpecContext) {
			job := runningCounting(ctx, ns, "up-last", withUpgradeMode(v1alpha1.UpgradeLastState))
			chk := writeCheckpoint(ctx, job, 9)
			patchSpec(ctx, job, func(j *v1alpha1.FlinkJob) { j.Spec.Image = "registry.example/worker:v2" })
			Eventually(workerEnv(ctx, job, 1, 2)).Should(HaveEach(HaveKeyWithValue("FLINKJOB_RESTORE_FROM", "latest")))
			Expect(workers(ctx, job, -1)[0].Spec.Containers[0].Image).To(Equal("registry.example/worker:v2"))
			Expect(status(ctx, job)(Default).StartedFrom).To(beStart(1, v1alpha1.StartCheckpoint, chk))

			By("not restarting for changes the pods do not run (restart strategy, ttl, the savepoint history)")
			runAll(ctx, job, 2)
			patchSpec(ctx, job, func(j *v1alpha1.FlinkJob) {
				j.Spec.RestartStrategy.MaxAttempts = ptr.To(int32(7))
				j.Spec.SavepointHistory.MaxCount = 3
			})
			Consistently(workerNames(ctx, job, -1)).WithTimeout(time.Second).Should(Equal(stagePodsAll(job, 1)))
			Eventually(status(ctx, job)).Should(HaveField("AppliedGeneration", fetch(ctx, job).Generation))
		})

		It("savepoint: stops with a savepoint, then starts the new plan from it", func(ctx SpecContext) {
			job := runningCounting(ctx, ns, "up-sp", withUpgradeMode(v1alpha1.UpgradeSavepoint))
			By("refusing a change of the source's parallelism: its positions could not be restored")
			err := k8sClient.Update(ctx, func() *v1alpha1.FlinkJob { j := fetch(ctx, job); j.Spec.Parallelism = 2; return j }())
			Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
			Expect(err.Error()).To(And(ContainSubstring("spec.parallelism"), ContainSubstring("source step clicks")))

			By("rescaling the keyed step and splitting off the sink: three stages")
			patchSpec(ctx, job, func(j *v1alpha1.FlinkJob) {
				j.Spec.Steps[1].Parallelism = ptr.To(int32(2))
				j.Spec.Steps[2].Parallelism = ptr.To(int32(1))
			})
			Eventually(savepointRequested(ctx, job)).Should(HaveField("Stop", true))
			req := savepointRequested(ctx, job)(Default)
			Expect(req.Nonce).To(HavePrefix("upgrade-"))
			Consistently(workerNames(ctx, job, -1)).WithTimeout(500*time.Millisecond).Should(HaveLen(2), "the old pods run until the savepoint exists")
			sp := completeSavepoint(ctx, job, req.Nonce, 12)
			Eventually(workerEnv(ctx, job, 1, 4)).Should(HaveEach(HaveKeyWithValue("FLINKJOB_RESTORE_FROM", sp)))
			Eventually(status(ctx, job)).Should(And(
				HaveField("Stages", HaveLen(3)),
				HaveField("StagesSummary", "0/3"),
				HaveField("SavepointInfo.LastSavepoint.TriggerType", v1alpha1.SavepointUpgrade),
				HaveField("StartedFrom", beStart(1, v1alpha1.StartSavepoint, sp)),
			))
			st := status(ctx, job)(Default)
			Expect([]int32{st.Stages[0].Parallelism, st.Stages[1].Parallelism, st.Stages[2].Parallelism}).To(Equal([]int32{1, 2, 1}))
			runAll(ctx, job, 4)
		})
	})

	It("passes FINAL_SAVEPOINT to a bounded job and records its final savepoint when it finishes", func(ctx SpecContext) {
		job := create(ctx, newJob(ns, "bootstrap", fmt.Sprintf(oneStage, "BATCH"), withStorage(),
			func(j *v1alpha1.FlinkJob) { j.Spec.FinalSavepoint = true }))
		job = fetch(ctx, job)
		Eventually(workerEnv(ctx, job, 0, 1)).Should(HaveEach(And(
			HaveKeyWithValue("FLINKJOB_FINAL_SAVEPOINT", "true"),
			HaveKeyWithValue("FLINKJOB_SAVEPOINT_URL", savepointsURL(job)),
			HaveKeyWithValue("FLINKJOB_CONTROL_URL", controlURL(job)))))
		finishStage(ctx, job, 0, 1, false)
		dir := savepointsURL(job) + "sp-0-final/"
		putObject(ctx, locationAt(dir), "_COMPLETED", nil)
		b, _ := json.Marshal(control.SavepointResult{Nonce: control.FinalNonce, Path: dir, TimeMs: time.Now().UnixMilli()})
		putObject(ctx, locationAt(controlURL(job)), control.SavepointFinalObject, b)
		Eventually(func() []corev1.Pod { return finalizers(ctx, job) }).Should(HaveLen(1))
		Expect(envOf(finalizers(ctx, job)[0])).To(HaveKeyWithValue("FLINKJOB_FINAL_SAVEPOINT", "true"))
		finishFinalize(ctx, job)
		Eventually(status(ctx, job)).Should(And(
			HaveField("Phase", v1alpha1.PhaseSucceeded),
			HaveField("SavepointInfo.LastSavepoint", And(Not(BeNil()), HaveField("Path", dir), HaveField("TriggerType", v1alpha1.SavepointFinal))),
		))
		Eventually(eventNote(ctx, job, "SavepointCompleted")).Should(ContainSubstring(dir))
	})

	Context("validation", func() {
		It("refuses inconsistent checkpoint and savepoint settings at admission, naming the field", func(ctx SpecContext) {
			for _, c := range []struct {
				name  string
				yaml  string
				opts  []jobOption
				field string
				msg   string
			}{
				{"ckpt-no-storage", fmt.Sprintf(counting, 1), []jobOption{withCheckpointing("1s")}, "spec.checkpointing", "needs spec.storage"},
				{"last-state", fmt.Sprintf(counting, 1), []jobOption{withStorage(), withUpgradeMode(v1alpha1.UpgradeLastState)}, "spec.upgradeMode", "needs spec.checkpointing"},
				{"sp-mode", fmt.Sprintf(counting, 1), []jobOption{withUpgradeMode(v1alpha1.UpgradeSavepoint)}, "spec.upgradeMode", "needs spec.storage"},
				{"nonce", fmt.Sprintf(counting, 1), []jobOption{func(j *v1alpha1.FlinkJob) { j.Spec.SavepointTriggerNonce = ptr.To(int64(1)) }}, "spec.savepointTriggerNonce", "needs spec.storage"},
				{"other-bucket", fmt.Sprintf(counting, 1), []jobOption{withStorage(), func(j *v1alpha1.FlinkJob) { j.Spec.InitialSavepointPath = "s3://elsewhere/sp/" }}, "spec.initialSavepointPath", "in spec.storage's bucket"},
				// Only the webhook knows the plan.
				{"final-unbounded", fmt.Sprintf(counting, 1), []jobOption{withStorage(), func(j *v1alpha1.FlinkJob) { j.Spec.FinalSavepoint = true }}, "spec.finalSavepoint", "source step clicks is unbounded"},
				{"batch-restore", fmt.Sprintf(oneStage, "BATCH"), []jobOption{withStorage(), func(j *v1alpha1.FlinkJob) {
					j.Spec.InitialSavepointPath = "s3://" + testBucket + "/sp/"
				}}, "spec.initialSavepointPath", "only a STREAMING job restores state"},
			} {
				err := k8sClient.Create(ctx, newJob(ns, c.name, c.yaml, c.opts...))
				Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%s: %v", c.name, err)
				causes := err.(apierrors.APIStatus).Status().Details.Causes
				Expect(causes).To(ContainElement(And(HaveField("Field", c.field), HaveField("Message", ContainSubstring(c.msg)))), c.name)
				// The shared validation (CLI, webhook, reconciler) says the same.
				_, perr := PlanJob(newJob(ns, c.name, c.yaml, c.opts...))
				Expect(perr).To(HaveOccurred(), c.name)
				Expect(FieldErrors(perr)).To(ContainElement(HaveField("Field", c.field)), c.name)
			}
		})

		It("lets a STREAMING job's dataflow change (an upgrade) but never its storage", func(ctx SpecContext) {
			job := create(ctx, newJob(ns, "editable", fmt.Sprintf(counting, 1), withStorage()))
			patchSpec(ctx, job, func(j *v1alpha1.FlinkJob) { j.Spec.Parallelism = 3 })
			var err error
			// The operator writes the job too (finalizer, status): retry conflicts.
			Eventually(func() bool {
				j := fetch(ctx, job)
				j.Spec.Storage.S3.Prefix = "moved"
				err = k8sClient.Update(ctx, j)
				return apierrors.IsConflict(err)
			}).Should(BeFalse())
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
			Expect(err.Error()).To(ContainSubstring("spec.storage: Forbidden"))
		})
	})
})

// beStart matches a status.startedFrom (or nextStart).
func beStart(attempt int32, kind v1alpha1.StartKind, path string) OmegaMatcher {
	return And(Not(BeNil()), HaveField("Attempt", attempt), HaveField("Kind", kind), HaveField("Path", path))
}

// stagePodsAll are the pod names of counting at parallelism 1 for attempt.
func stagePodsAll(job *v1alpha1.FlinkJob, attempt int) []string {
	return podNames(job, attempt, [2]int{0, 0}, [2]int{1, 0})
}

// counterValue reads a Prometheus counter of this process.
func counterValue(c prometheus.Counter) float64 {
	GinkgoHelper()
	var m dto.Metric
	Expect(c.Write(&m)).To(Succeed())
	return m.GetCounter().GetValue()
}
