//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
)

// countingJob is a bounded STREAMING job of parallelism 2 with
// checkpoints every second: count records (keys k = seq % 10) at rate
// records per second through a rolling count per key into the
// exactly-once files sink under the returned prefix. Its output is exact
// whatever the failures: for each key the lines total = 1..count/10, once.
func countingJob(name string, count, rate int, extra map[string]any) ([]byte, string) {
	out := fmt.Sprintf("%s/out/%s", cfg.prefix, name)
	sp := map[string]any{
		"runtimeMode": "STREAMING",
		"parallelism": 2,
		"storage": map[string]any{"s3": map[string]any{
			"endpoint": cfg.podEndpoint, "bucket": cfg.bucket, "prefix": cfg.prefix,
			"credentialsSecretRef": map[string]any{"name": credentialsSecret}}},
		"checkpointing":   map[string]any{"interval": "1s"},
		"restartStrategy": map[string]any{"type": "fixed-delay", "delay": "1s", "maxAttempts": 3},
		"steps": []any{
			map[string]any{"name": "gen", "source": map[string]any{"datagen": map[string]any{
				"value": "{'k': seq % 10}", "count": count, "ratePerSecond": rate}}},
			map[string]any{"name": "counts", "keyBy": "record.k",
				"aggregate": map[string]any{"fields": []any{map[string]any{"name": "total", "count": true}}}},
			map[string]any{"name": "out", "sink": map[string]any{"files": map[string]any{
				"path": fmt.Sprintf("s3://%s/%s/", cfg.bucket, out), "format": "jsonl"}}},
		},
	}
	for k, v := range extra {
		sp[k] = v
	}
	return flinkJob(name, sp), out
}

// countingExpected is countingJob's output, sorted.
func countingExpected(count int) []string {
	var want []string
	for k := range 10 {
		for n := 1; n <= count/10; n++ {
			want = append(want, fmt.Sprintf(`{"key":%d,"total":%d}`, k, n))
		}
	}
	sort.Strings(want)
	return want
}

// committedOutput reads the published part files of a files sink, sorted:
// parts staged under _-prefixed folders (not yet committed by a
// checkpoint) are not output.
func committedOutput(ctx context.Context, prefix string) []string {
	GinkgoHelper()
	keys, err := listKeys(ctx, prefix+"/")
	Expect(err).NotTo(HaveOccurred())
	var lines []string
	for _, k := range keys {
		rel := strings.TrimPrefix(k, prefix+"/")
		hidden := false
		for _, seg := range strings.Split(rel, "/") {
			hidden = hidden || strings.HasPrefix(seg, "_") || strings.HasPrefix(seg, ".")
		}
		if hidden || !strings.HasPrefix(rel[strings.LastIndex(rel, "/")+1:], "part-") {
			continue
		}
		b, err := readObject(ctx, k)
		Expect(err).NotTo(HaveOccurred())
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
	}
	sort.Strings(lines)
	return lines
}

// waitFor polls the job until cond holds, failing early when it failed.
func waitFor(ctx context.Context, name, what string, timeout time.Duration, cond func(*v1alpha1.FlinkJob) bool) *v1alpha1.FlinkJob {
	GinkgoHelper()
	var job *v1alpha1.FlinkJob
	Eventually(func(g Gomega) {
		var err error
		job, err = getJob(ctx, name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(job.Status.Phase).NotTo(Equal(v1alpha1.PhaseFailed), job.Status.Message)
		g.Expect(cond(job)).To(BeTrue(), "waiting for %s (phase %s: %s)", what, job.Status.Phase, job.Status.Message)
	}).WithContext(ctx).WithTimeout(timeout).WithPolling(500 * time.Millisecond).Should(Succeed())
	return job
}

func patchJob(ctx context.Context, name string, mutate func(*v1alpha1.FlinkJob)) {
	GinkgoHelper()
	Eventually(func() error {
		job, err := getJob(ctx, name)
		if err != nil {
			return err
		}
		orig := job.DeepCopy()
		mutate(job)
		return kc.Patch(ctx, job, client.MergeFrom(orig))
	}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
}

func objectExists(ctx context.Context, url string) bool {
	key := strings.TrimPrefix(url, "s3://"+cfg.bucket+"/")
	keys, err := listKeys(ctx, key)
	return err == nil && len(keys) > 0
}

// checkpointSpecs are the checkpoint and savepoint specs (issue #7); the
// ordered operator container calls it, so they run with the operator
// installed.
func checkpointSpecs() {
	It("restarts a checkpointed STREAMING job from its latest checkpoint when a worker pod is deleted, with exactly the failure-free output", func(ctx SpecContext) {
		const name, count, rate = "ckpt-kill", 3000, 150
		dumpOnFailure(name)
		manifest, out := countingJob(name, count, rate, nil)
		_, err := kubectlApply(ctx, manifest)
		Expect(err).NotTo(HaveOccurred())

		job := waitFor(ctx, name, "two completed checkpoints", 3*time.Minute, func(j *v1alpha1.FlinkJob) bool {
			return j.Status.Phase == v1alpha1.PhaseRunning && j.Status.LastCheckpoint != nil && j.Status.LastCheckpoint.ID >= 2
		})
		Expect(job.Status.LastCheckpoint.Path).To(ContainSubstring("/checkpoints/chk-"))
		victim := fmt.Sprintf("%s-s1-1-a%d", name, job.Status.Attempt)
		By("deleting " + victim + " after checkpoint " + fmt.Sprint(job.Status.LastCheckpoint.ID))
		_, err = kubectl(ctx, "-n", cfg.ns, "delete", "pod", victim, "--wait=false")
		Expect(err).NotTo(HaveOccurred())

		waitSucceeded(ctx, name, 5*time.Minute)
		job, err = getJob(ctx, name)
		Expect(err).NotTo(HaveOccurred())
		Expect(job.Status.Restarts).To(BeNumerically(">=", 1), "the deleted pod restarted the job")
		Expect(job.Status.StartedFrom).NotTo(BeNil())
		Expect(job.Status.StartedFrom.Kind).To(Equal(v1alpha1.StartCheckpoint), "restored from a checkpoint")
		Expect(committedOutput(ctx, out)).To(Equal(countingExpected(count)), "no duplicate and no loss")
	}, NodeTimeout(10*time.Minute))

	It("takes a savepoint on savepointTriggerNonce, stops with a savepoint on suspend, and resumes from it with exactly the failure-free output", func(ctx SpecContext) {
		const name, count, rate = "ckpt-savepoint", 3000, 100
		dumpOnFailure(name)
		manifest, out := countingJob(name, count, rate, map[string]any{"upgradeMode": "savepoint"})
		_, err := kubectlApply(ctx, manifest)
		Expect(err).NotTo(HaveOccurred())
		waitFor(ctx, name, "a completed checkpoint", 3*time.Minute, func(j *v1alpha1.FlinkJob) bool {
			return j.Status.Phase == v1alpha1.PhaseRunning && j.Status.LastCheckpoint != nil
		})

		By("savepointTriggerNonce 1")
		patchJob(ctx, name, func(j *v1alpha1.FlinkJob) { n := int64(1); j.Spec.SavepointTriggerNonce = &n })
		job := waitFor(ctx, name, "the manual savepoint in status", 2*time.Minute, func(j *v1alpha1.FlinkJob) bool {
			si := j.Status.SavepointInfo
			return si != nil && si.LastSavepoint != nil && si.LastSavepoint.TriggerType == v1alpha1.SavepointManual
		})
		manual := job.Status.SavepointInfo.LastSavepoint
		Expect(manual.TriggerNonce).To(Equal("1"))
		Expect(manual.Path).To(HavePrefix(fmt.Sprintf("s3://%s/%s/flinkjob/%s/%s/savepoints/sp-", cfg.bucket, cfg.prefix, cfg.ns, name)))
		Expect(objectExists(ctx, manual.Path+"_COMPLETED")).To(BeTrue(), "%s_COMPLETED in MinIO", manual.Path)

		By("suspending: stop with a savepoint")
		patchJob(ctx, name, func(j *v1alpha1.FlinkJob) { j.Spec.Suspend = true })
		job = waitFor(ctx, name, "Suspended with a SUSPEND savepoint", 3*time.Minute, func(j *v1alpha1.FlinkJob) bool {
			si := j.Status.SavepointInfo
			return j.Status.Phase == v1alpha1.PhaseSuspended && si != nil && si.LastSavepoint != nil &&
				si.LastSavepoint.TriggerType == v1alpha1.SavepointSuspend
		})
		stop := job.Status.SavepointInfo.LastSavepoint.Path
		Expect(job.Status.SavepointInfo.SavepointHistory).To(HaveLen(2))
		Expect(job.Status.NextStart).NotTo(BeNil())
		Expect(job.Status.NextStart.Path).To(Equal(stop))
		partial := committedOutput(ctx, out)
		Expect(len(partial)).To(BeNumerically("<", count), "suspended before the end")

		By("resuming from " + stop)
		patchJob(ctx, name, func(j *v1alpha1.FlinkJob) { j.Spec.Suspend = false })
		waitSucceeded(ctx, name, 5*time.Minute)
		job, err = getJob(ctx, name)
		Expect(err).NotTo(HaveOccurred())
		Expect(job.Status.StartedFrom).NotTo(BeNil())
		Expect(job.Status.StartedFrom.Kind).To(Equal(v1alpha1.StartSavepoint))
		Expect(job.Status.StartedFrom.Path).To(Equal(stop))
		Expect(committedOutput(ctx, out)).To(Equal(countingExpected(count)), "the output continues exactly")
	}, NodeTimeout(12*time.Minute))

	It("upgrades a running job whose dataflow changed through a savepoint, carrying its keyed state, with exactly the failure-free output", func(ctx SpecContext) {
		const name, count, rate = "ckpt-upgrade", 3000, 100
		dumpOnFailure(name)
		manifest, out := countingJob(name, count, rate, map[string]any{"upgradeMode": "savepoint"})
		_, err := kubectlApply(ctx, manifest)
		Expect(err).NotTo(HaveOccurred())
		before := waitFor(ctx, name, "a completed checkpoint", 3*time.Minute, func(j *v1alpha1.FlinkJob) bool {
			return j.Status.Phase == v1alpha1.PhaseRunning && j.Status.LastCheckpoint != nil
		})

		By("adding a step after the keyed counts (a new plan; the keyed step keeps its name and state)")
		patchJob(ctx, name, func(j *v1alpha1.FlinkJob) {
			var keep v1alpha1.FlinkJob
			Expect(yaml.Unmarshal([]byte(`{"spec": {"steps": [{"name": "keep", "filter": "record.total > 0"}]}}`), &keep)).To(Succeed())
			steps := j.Spec.Steps
			j.Spec.Steps = append(append(steps[:2:2], keep.Spec.Steps[0]), steps[2])
		})
		job := waitFor(ctx, name, "the upgrade savepoint and the new pods", 3*time.Minute, func(j *v1alpha1.FlinkJob) bool {
			si := j.Status.SavepointInfo
			return si != nil && si.LastSavepoint != nil && si.LastSavepoint.TriggerType == v1alpha1.SavepointUpgrade &&
				j.Status.StartedFrom != nil && j.Status.StartedFrom.Attempt > before.Status.Attempt
		})
		Expect(job.Status.StartedFrom.Kind).To(Equal(v1alpha1.StartSavepoint))
		Expect(job.Status.StartedFrom.Path).To(Equal(job.Status.SavepointInfo.LastSavepoint.Path))
		Expect(job.Status.AppliedGeneration).To(Equal(job.Generation))

		waitSucceeded(ctx, name, 5*time.Minute)
		job, err = getJob(ctx, name)
		Expect(err).NotTo(HaveOccurred())
		Expect(job.Status.Restarts).To(BeZero(), "an upgrade is no failure")
		Expect(committedOutput(ctx, out)).To(Equal(countingExpected(count)), "the upgraded job continued the counts exactly")
	}, NodeTimeout(12*time.Minute))

	It("bootstraps a STREAMING job's keyed state from a BATCH job's final savepoint (initialSavepointPath)", func(ctx SpecContext) {
		const boot, cont, count = "ckpt-boot", "ckpt-continue", 1000
		dumpOnFailure(boot, cont)
		manifest, _ := countingJob(boot, count, 0, map[string]any{"runtimeMode": "BATCH", "finalSavepoint": true})
		_, err := kubectlApply(ctx, manifest)
		Expect(err).NotTo(HaveOccurred())
		waitSucceeded(ctx, boot, 5*time.Minute)
		job, err := getJob(ctx, boot)
		Expect(err).NotTo(HaveOccurred())
		Expect(job.Status.SavepointInfo).NotTo(BeNil())
		final := job.Status.SavepointInfo.LastSavepoint
		Expect(final).NotTo(BeNil())
		Expect(final.TriggerType).To(Equal(v1alpha1.SavepointFinal))
		Expect(objectExists(ctx, final.Path+"_COMPLETED")).To(BeTrue(), "%s_COMPLETED in MinIO", final.Path)

		By("a STREAMING job with the same keyed step restores " + final.Path)
		manifest, out := countingJob(cont, count/2, 0, map[string]any{"initialSavepointPath": final.Path})
		_, err = kubectlApply(ctx, manifest)
		Expect(err).NotTo(HaveOccurred())
		waitSucceeded(ctx, cont, 5*time.Minute)
		job, err = getJob(ctx, cont)
		Expect(err).NotTo(HaveOccurred())
		Expect(job.Status.StartedFrom).NotTo(BeNil())
		Expect(job.Status.StartedFrom.Kind).To(Equal(v1alpha1.StartSavepoint))
		// Every key counted count/10 records in the BATCH job: the
		// STREAMING counts continue from there.
		var want []string
		for k := range 10 {
			for n := count/10 + 1; n <= count/10+count/20; n++ {
				want = append(want, fmt.Sprintf(`{"key":%d,"total":%d}`, k, n))
			}
		}
		sort.Strings(want)
		Expect(committedOutput(ctx, out)).To(Equal(want))
	}, NodeTimeout(12*time.Minute))
}
