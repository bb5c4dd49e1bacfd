//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
)

const crdName = "flinkjobs.flinkjob.io"

// fullname is the chart's name prefix for the release's objects
// (charts/flinkjob-operator/templates/_helpers.tpl).
func fullname() string {
	n := cfg.release + "-flinkjob"
	if len(n) > 50 {
		n = strings.TrimSuffix(n[:50], "-")
	}
	return n
}

func webhookConfigName() string { return fullname() + "-validating-webhook" }

var crdGVK = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}

func getCRD(ctx context.Context) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(crdGVK)
	return u, kc.Get(ctx, types.NamespacedName{Name: crdName}, u)
}

func namespaceExists(ctx context.Context, name string) bool {
	err := kc.Get(ctx, types.NamespacedName{Name: name}, &corev1.Namespace{})
	return err == nil
}

// helmInstalled says whether the release is installed.
func helmInstalled(ctx context.Context) bool {
	out, err := run(ctx, cfg.helm, "status", cfg.release, "-n", cfg.operatorNS)
	return err == nil && strings.Contains(out, "STATUS: deployed")
}

// heavyJob is a 4-stage BATCH job whose stage 1 (of 0..3) burns about
// 2 ms of CPU per record (40,000 steps of a CEL expression that is always
// true, on the native fast path; 10 ms when CEL's interpreter ran it), so
// with heavyCount records a stage-1 subtask runs for about 10 s: long
// enough to act on it mid-run. Its result is exact: key
// k = 0..9 with n = count/10 each, written to a files sink under the
// returned prefix.
// heavyCount is the records of a heavyJob run (a multiple of 10).
const heavyCount = 12000

func heavyJob(name string, count int) ([]byte, string) {
	var nums []string
	for i := range 200 {
		nums = append(nums, fmt.Sprint(i))
	}
	l := "[" + strings.Join(nums, ", ") + "]"
	out := fmt.Sprintf("%s/out/%s", cfg.prefix, name)
	return flinkJob(name, map[string]any{
		"runtimeMode": "BATCH",
		"parallelism": 2,
		"storage": map[string]any{"s3": map[string]any{
			"endpoint": cfg.podEndpoint, "bucket": cfg.bucket, "prefix": cfg.prefix,
			"credentialsSecretRef": map[string]any{"name": credentialsSecret}}},
		"restartStrategy": map[string]any{"type": "fixed-delay", "delay": "1s", "maxAttempts": 3},
		"steps": []any{
			map[string]any{"name": "gen", "source": map[string]any{"datagen": map[string]any{
				"value": "{'k': seq % 10, 'n': 1}", "count": count}}},
			map[string]any{"name": "by-k", "keyBy": "record.k"},
			map[string]any{"name": "heavy", "map": fmt.Sprintf(
				"{'k': record.k, 'n': %s.all(a, %s.all(b, a * b >= 0)) ? record.n : 0}", l, l)},
			map[string]any{"name": "counts", "keyBy": "record.k",
				"reduce": "{'k': acc.k, 'n': acc.n + record.n}"},
			map[string]any{"name": "out", "parallelism": 1, "sink": map[string]any{"files": map[string]any{
				"path": fmt.Sprintf("s3://%s/%s/", cfg.bucket, out), "format": "jsonl"}}},
		},
	}), out
}

func heavyExpected(count int) []string {
	var want []string
	for k := range 10 {
		want = append(want, fmt.Sprintf(`{"k":%d,"n":%d}`, k, count/10))
	}
	sort.Strings(want)
	return want
}

// stageRunningMidway waits until a BATCH job's stage 0 succeeded and every
// subtask of stage 1 runs (pod Running and ready), none finished yet.
func stageRunningMidway(ctx context.Context, name string, parallelism int) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		job, err := getJob(ctx, name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(job.Status.Phase).NotTo(Equal(v1alpha1.PhaseFailed), job.Status.Message)
		g.Expect(job.Status.Stages).To(HaveLen(4))
		g.Expect(job.Status.Stages[0].Phase).To(Equal(v1alpha1.StageSucceeded))
		g.Expect(job.Status.Stages[1].Phase).To(Equal(v1alpha1.StageRunning))
		g.Expect(job.Status.Stages[1].SubtasksSucceeded).To(BeZero(), "stage 1 finished before the spec could act on it")
		pods, err := jobPods(ctx, name)
		g.Expect(err).NotTo(HaveOccurred())
		ready := 0
		for _, p := range pods {
			if p.Labels[labelStage] == "1" && p.Status.Phase == corev1.PodRunning && podReady(&p) {
				ready++
			}
		}
		g.Expect(ready).To(Equal(parallelism), "stage-1 pods running and ready")
	}).WithContext(ctx).WithTimeout(3 * time.Minute).WithPolling(250 * time.Millisecond).Should(Succeed())
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func expectNoPods(ctx context.Context, name string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		pods, err := jobPods(ctx, name)
		g.Expect(err).NotTo(HaveOccurred())
		var names []string
		for _, p := range pods {
			names = append(names, p.Name)
		}
		g.Expect(names).To(BeEmpty(), "pods of the deleted FlinkJob %s", name)
	}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
}

func expectGone(ctx context.Context, obj client.Object, name string) {
	GinkgoHelper()
	Eventually(func() bool {
		err := kc.Get(ctx, types.NamespacedName{Namespace: cfg.ns, Name: name}, obj)
		return apierrors.IsNotFound(err)
	}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(time.Second).Should(BeTrue(),
		"%T %s still exists", obj, name)
}

func expectEmptyPrefix(ctx context.Context, prefix string) {
	GinkgoHelper()
	keys, err := listKeys(ctx, prefix)
	Expect(err).NotTo(HaveOccurred())
	Expect(keys).To(BeEmpty(), "intermediate data left under s3://%s/%s", cfg.bucket, prefix)
}

// cleanupJobs deletes every FlinkJob of the run while the operator still
// runs (its finalizer needs it); a job whose finalizer cannot run any more
// (no operator) loses the finalizer so its namespace can go.
func cleanupJobs(ctx context.Context) {
	var list v1alpha1.FlinkJobList
	if err := kc.List(ctx, &list, client.InNamespace(cfg.ns)); err != nil || len(list.Items) == 0 {
		return
	}
	if helmInstalled(ctx) {
		_, _ = kubectl(ctx, "-n", cfg.ns, "delete", "flinkjobs", "--all", "--wait=true", "--timeout=120s")
	}
	if err := kc.List(ctx, &list, client.InNamespace(cfg.ns)); err != nil {
		return
	}
	for i := range list.Items {
		j := &list.Items[i]
		_ = kc.Patch(ctx, j, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))
		_ = kc.Delete(ctx, j)
	}
}

var _ = Describe("flinkjob operator", Ordered, ContinueOnFailure, func() {
	var crdBefore, operatorNSBefore bool

	BeforeAll(func(ctx SpecContext) {
		_, err := getCRD(ctx)
		crdBefore = err == nil
		operatorNSBefore = namespaceExists(ctx, cfg.operatorNS)

		// A second operator would reconcile the suite's jobs too.
		vwcs := newList("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfigurationList")
		Expect(kc.List(ctx, vwcs)).To(Succeed())
		for _, v := range vwcs.Items {
			hooks, _, _ := unstructured.NestedSlice(v.Object, "webhooks")
			for _, h := range hooks {
				if n, _, _ := unstructured.NestedString(h.(map[string]any), "name"); n == "vflinkjob.flinkjob.io" && v.GetName() != webhookConfigName() {
					Fail(fmt.Sprintf("another flinkjob operator is installed (ValidatingWebhookConfiguration %s): uninstall it, or set E2E_RELEASE/E2E_OPERATOR_NAMESPACE to its release", v.GetName()))
				}
			}
		}

		By("helm install " + cfg.release + " (chart " + cfg.chart + ") into " + cfg.operatorNS)
		_, err = run(ctx, cfg.helm, "upgrade", "--install", cfg.release, cfg.chart,
			"--namespace", cfg.operatorNS, "--create-namespace", "--wait", "--timeout", "3m",
			"--set", "image.manager.repository="+cfg.managerRepo, "--set", "image.manager.tag="+cfg.managerTag,
			"--set", "image.worker.repository="+cfg.workerRepo, "--set", "image.worker.tag="+cfg.workerTag,
			"--set", "image.pullPolicy="+cfg.pullPolicy)
		Expect(err).NotTo(HaveOccurred())

		By("namespace " + cfg.ns + " with the MinIO credentials Secret")
		_, err = kubectl(ctx, "create", "namespace", cfg.ns)
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "-n", cfg.ns, "create", "secret", "generic", credentialsSecret,
			"--from-literal=accessKey="+cfg.accessKey, "--from-literal=secretKey="+cfg.secretKey)
		Expect(err).NotTo(HaveOccurred())

		By("the samples' input data copied to s3://" + cfg.bucket + "/" + cfg.prefix + "/data/")
		Expect(uploadDir(ctx, filepath.Join(samplesDir(), "data"), cfg.prefix+"/data")).To(Succeed())

		// The manager signs its own webhook certificate and injects its
		// CA; until then the API server cannot call the webhook and every
		// FlinkJob is refused. A server-side dry run goes through it.
		By("waiting for the webhook to admit a valid FlinkJob")
		valid := fmt.Sprintf(`apiVersion: flinkjob.io/v1alpha1
kind: FlinkJob
metadata: {name: dry-run, namespace: %s}
spec:
  steps:
    - {name: nums, source: {elements: [1, 2, 3]}}
    - {name: out, sink: {print: {}}}
`, cfg.ns)
		Eventually(func() error {
			_, err := runIn(ctx, []byte(valid), cfg.kubectl, "apply", "--dry-run=server", "-f", "-")
			return err
		}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(2 * time.Second).Should(Succeed())
	}, NodeTimeout(7*time.Minute))

	AfterEach(dumpFailedJobs)

	AfterAll(func(ctx SpecContext) {
		if cfg.keep {
			return
		}
		cleanupJobs(ctx)
		_, _ = kubectl(ctx, "delete", "namespace", cfg.ns, "--ignore-not-found", "--wait=true", "--timeout=120s")
		if helmInstalled(ctx) {
			_, _ = run(ctx, cfg.helm, "uninstall", cfg.release, "-n", cfg.operatorNS, "--wait", "--timeout", "2m")
		}
		if !operatorNSBefore {
			_, _ = kubectl(ctx, "delete", "namespace", cfg.operatorNS, "--ignore-not-found", "--wait=true", "--timeout=120s")
		}
		if !crdBefore {
			_, _ = kubectl(ctx, "delete", "crd", crdName, "--ignore-not-found", "--wait=true", "--timeout=60s")
		}
	}, NodeTimeout(8*time.Minute))

	It("is installed by Helm: CRD established, manager available, webhook CA injected and serving", func(ctx SpecContext) {
		crd, err := getCRD(ctx)
		Expect(err).NotTo(HaveOccurred())
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		Expect(conds).To(ContainElement(And(HaveKeyWithValue("type", "Established"), HaveKeyWithValue("status", "True"))))

		var dep appsv1.Deployment
		Expect(kc.Get(ctx, types.NamespacedName{Namespace: cfg.operatorNS, Name: fullname() + "-manager"}, &dep)).To(Succeed())
		Expect(dep.Status.AvailableReplicas).To(BeNumerically(">=", 1))
		Expect(dep.Spec.Template.Spec.Containers[0].Image).To(Equal(cfg.managerRepo + ":" + cfg.managerTag))

		Eventually(func(g Gomega) {
			var vwc unstructured.Unstructured
			vwc.SetGroupVersionKind(schema.GroupVersionKind{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "ValidatingWebhookConfiguration"})
			g.Expect(kc.Get(ctx, types.NamespacedName{Name: webhookConfigName()}, &vwc)).To(Succeed())
			hooks, _, _ := unstructured.NestedSlice(vwc.Object, "webhooks")
			g.Expect(hooks).NotTo(BeEmpty())
			ca, _, _ := unstructured.NestedString(hooks[0].(map[string]any), "clientConfig", "caBundle")
			g.Expect(ca).NotTo(BeEmpty(), "caBundle of %s", webhookConfigName())
		}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(2 * time.Second).Should(Succeed())
		// The chart creates the manager's leader-election Lease, so that
		// helm uninstall removes it: the manager must be using that one.
		Eventually(func(g Gomega) {
			lease := &unstructured.Unstructured{}
			lease.SetGroupVersionKind(schema.GroupVersionKind{Group: "coordination.k8s.io", Version: "v1", Kind: "Lease"})
			g.Expect(kc.Get(ctx, types.NamespacedName{Namespace: cfg.operatorNS, Name: "flinkjob-operator.flinkjob.io"}, lease)).To(Succeed())
			g.Expect(lease.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "Helm"))
			holder, _, _ := unstructured.NestedString(lease.Object, "spec", "holderIdentity")
			g.Expect(holder).To(HavePrefix(fullname()+"-manager-"), "the manager holds the chart's Lease")
		}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(time.Second).Should(Succeed())
		// BeforeAll waited for the webhook to admit a valid job.
	})

	It("covers every sample in config/samples", func() {
		files, err := filepath.Glob(filepath.Join(samplesDir(), "*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		var have []string
		for _, s := range boundedSamples {
			have = append(have, s.file)
			m, err := loadManifest(s.file)
			Expect(err).NotTo(HaveOccurred())
			Expect(isUnbounded(m)).To(BeFalse(), "%s is listed as bounded", s.file)
		}
		for _, f := range unboundedSamples {
			have = append(have, f)
			m, err := loadManifest(f)
			Expect(err).NotTo(HaveOccurred())
			Expect(isUnbounded(m)).To(BeTrue(), "%s is listed as unbounded", f)
		}
		var found []string
		for _, f := range files {
			found = append(found, filepath.Base(f))
		}
		Expect(found).To(ConsistOf(have), "a sample without an e2e spec: add it to boundedSamples or unboundedSamples")
	})

	Context("bounded samples, in both modes, with data in MinIO", Ordered, func() {
		outputs := map[string]string{}

		BeforeAll(func(ctx SpecContext) {
			// All at once: they run side by side as on a shared cluster.
			for _, s := range boundedSamples {
				for _, mode := range modes {
					m, err := loadManifest(s.file)
					Expect(err).NotTo(HaveOccurred())
					name := sampleName(s, mode)
					manifest, outs, err := forCluster(m, name, mode)
					Expect(err).NotTo(HaveOccurred())
					Expect(outs).To(HaveLen(1), "%s: want one files sink", s.file)
					outputs[name] = outs[0]
					out, err := kubectlApply(ctx, manifest)
					Expect(err).NotTo(HaveOccurred())
					Expect(out).To(ContainSubstring("flinkjob.flinkjob.io/" + name + " created"))
				}
			}
		}, NodeTimeout(2*time.Minute))

		for _, s := range boundedSamples {
			for _, mode := range modes {
				It(fmt.Sprintf("%s in %s mode succeeds with the expected output", s.file, mode), func(ctx SpecContext) {
					name := sampleName(s, mode)
					dumpOnFailure(name)
					waitSucceeded(ctx, name, 6*time.Minute)

					job, err := getJob(ctx, name)
					Expect(err).NotTo(HaveOccurred())
					Expect(string(job.Status.ResolvedMode)).To(Equal(mode))
					Expect(job.Status.Phase).To(Equal(v1alpha1.PhaseSucceeded))
					Expect(job.Status.StagesDone).To(Equal(job.Status.StagesTotal))
					Expect(job.Status.StagesTotal).To(BeNumerically(">=", 1))

					lines, success, err := sinkOutput(ctx, outputs[name])
					Expect(err).NotTo(HaveOccurred())
					Expect(success).To(BeTrue(), "no _SUCCESS under s3://%s/%s/", cfg.bucket, outputs[name])
					want, err := expectedLines(s.expected)
					Expect(err).NotTo(HaveOccurred())
					if s.rollingKey != "" && mode == "STREAMING" {
						Expect(len(lines)).To(BeNumerically(">", len(want)), "a rolling reduce writes an update per record")
						lines, err = lastPerKey(lines, s.rollingKey)
						Expect(err).NotTo(HaveOccurred())
					}
					sort.Strings(lines)
					Expect(lines).To(Equal(want))
				}, NodeTimeout(7*time.Minute))
			}
		}
	})

	It("re-runs only the failed subtask when a worker pod of the second stage (stage 1) is deleted mid-run (BATCH), with the exact result", func(ctx SpecContext) {
		const name, count = "recovery", heavyCount
		dumpOnFailure(name)
		rec := recordPods(ctx, name)
		manifest, out := heavyJob(name, count)
		_, err := kubectlApply(ctx, manifest)
		Expect(err).NotTo(HaveOccurred())

		stageRunningMidway(ctx, name, 2)
		victim := name + "-s1-0-a0"
		By("deleting " + victim + " while stage 1 runs")
		_, err = kubectl(ctx, "-n", cfg.ns, "delete", "pod", victim, "--wait=false")
		Expect(err).NotTo(HaveOccurred())

		waitSucceeded(ctx, name, 5*time.Minute)
		lines, success, err := sinkOutput(ctx, out)
		Expect(err).NotTo(HaveOccurred())
		Expect(success).To(BeTrue())
		sort.Strings(lines)
		Expect(lines).To(Equal(heavyExpected(count)))

		fmt.Fprintf(GinkgoWriter, "pod events:\n%s", indent(rec.timeline(), "  "))
		// Every pod the job ever had: stage 1 subtask 0 twice, the rest once.
		var keys []string
		for _, p := range rec.created() {
			keys = append(keys, podKey(p))
			if p.Name == victim {
				Expect(p.Status.Phase).NotTo(Equal(corev1.PodSucceeded), "%s finished before it was deleted", victim)
			}
		}
		Expect(keys).To(ConsistOf(
			"0/0/0", "0/1/0", // stage 0 ran once: its materialized output was reused
			"1/0/0", "1/0/1", "1/1/0", // only the deleted subtask ran again
			"2/0/0", "2/1/0", "3/0/0", "finalize/0"), "pods created (stage/subtask/attempt)")
		job, err := getJob(ctx, name)
		Expect(err).NotTo(HaveOccurred())
		Expect(job.Status.Stages[0].Attempts).To(BeEquivalentTo(1))
	}, NodeTimeout(8*time.Minute))

	It("runs a multi-stage BATCH job with parallelism 1 with at most one worker pod alive at a time (FLIP-134)", func(ctx SpecContext) {
		const name = "flip134"
		dumpOnFailure(name)
		m, err := loadManifest("wordcount-batch.yaml")
		Expect(err).NotTo(HaveOccurred())
		m["spec"].(map[string]any)["parallelism"] = 1
		for _, st := range steps(m) {
			delete(st, "parallelism")
		}
		manifest, outs, err := forCluster(m, name, "BATCH")
		Expect(err).NotTo(HaveOccurred())
		rec := recordPods(ctx, name)
		_, err = kubectlApply(ctx, manifest)
		Expect(err).NotTo(HaveOccurred())
		waitSucceeded(ctx, name, 5*time.Minute)

		job, err := getJob(ctx, name)
		Expect(err).NotTo(HaveOccurred())
		Expect(len(job.Status.Stages)).To(BeNumerically(">=", 2), "a multi-stage job")
		stages := map[string]bool{}
		for _, p := range rec.created() {
			if p.Labels[labelRole] == "worker" {
				stages[p.Labels[labelStage]] = true
			}
		}
		Expect(stages).To(HaveLen(len(job.Status.Stages)), "a worker pod per stage")
		fmt.Fprintf(GinkgoWriter, "pod events:\n%s", indent(rec.timeline(), "  "))
		existing, existingAt, active, activeAt := rec.maxConcurrent()
		Expect(active).To(Equal(1), "worker pods alive at once: %v", activeAt)
		Expect(existing).To(Equal(1), "pods existing at once (the operator starts a stage once the last one's pods are gone): %v", existingAt)

		lines, success, err := sinkOutput(ctx, outs[0])
		Expect(err).NotTo(HaveOccurred())
		Expect(success).To(BeTrue())
		want, err := expectedLines("wordcount.jsonl")
		Expect(err).NotTo(HaveOccurred())
		sort.Strings(lines)
		Expect(lines).To(Equal(want))
	}, NodeTimeout(6*time.Minute))

	It("runs an unbounded STREAMING job with every stage up and its output growing", func(ctx SpecContext) {
		const name = "datagen-unbounded"
		dumpOnFailure(name)
		m, err := loadManifest("datagen-unbounded.yaml")
		Expect(err).NotTo(HaveOccurred())
		manifest, _, err := forCluster(m, name, "") // AUTOMATIC, as written
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectlApply(ctx, manifest)
		Expect(err).NotTo(HaveOccurred())

		var sinkStage string
		Eventually(func(g Gomega) {
			job, err := getJob(ctx, name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(job.Status.ResolvedMode).To(BeEquivalentTo("STREAMING"))
			c := meta.FindStatusCondition(job.Status.Conditions, v1alpha1.ConditionRunning)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Reason).To(Equal("AllStagesRunning"))
			g.Expect(len(job.Status.Stages)).To(BeNumerically(">=", 2))
			want := 0
			for _, st := range job.Status.Stages {
				g.Expect(st.Phase).To(Equal(v1alpha1.StageRunning), "stage %d", st.Index)
				g.Expect(st.SubtasksRunning).To(Equal(st.Parallelism), "stage %d", st.Index)
				want += int(st.Parallelism)
				if slices.Contains(st.Steps, "out") {
					sinkStage = fmt.Sprint(st.Index)
				}
			}
			pods, err := jobPods(ctx, name)
			g.Expect(err).NotTo(HaveOccurred())
			running := 0
			for _, p := range pods {
				if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
					running++
				}
			}
			g.Expect(running).To(Equal(want), "worker pods running at once")
		}).WithContext(ctx).WithTimeout(3 * time.Minute).WithPolling(time.Second).Should(Succeed())
		Expect(sinkStage).NotTo(BeEmpty())

		views := func(g Gomega) int {
			pods, err := jobPods(ctx, name)
			g.Expect(err).NotTo(HaveOccurred())
			n := 0
			for _, p := range pods {
				if p.Labels[labelStage] != sinkStage {
					continue
				}
				logs, err := podLogs(ctx, p.Name, 0)
				g.Expect(err).NotTo(HaveOccurred())
				for _, l := range strings.Split(logs, "\n") {
					rest, ok := strings.CutPrefix(l, "views: ")
					if !ok {
						continue
					}
					var v struct {
						Key         string  `json:"key"`
						Views       float64 `json:"views"`
						WindowStart float64 `json:"windowStart"`
						WindowEnd   float64 `json:"windowEnd"`
					}
					g.Expect(json.Unmarshal([]byte(rest), &v)).To(Succeed(), "%q", l)
					g.Expect(v.Key).To(BeElementOf("home", "cart", "help"), "%q", l)
					g.Expect(v.Views).To(BeNumerically(">", 0), "%q", l)
					g.Expect(v.WindowEnd-v.WindowStart).To(BeNumerically("==", 2000), "a 2 s sliding window: %q", l)
					n++
				}
			}
			return n
		}
		last := 0
		for range 3 {
			Eventually(func(g Gomega) {
				n := views(g)
				g.Expect(n).To(BeNumerically(">", last), "window results printed by stage %s", sinkStage)
				last = n
			}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(2 * time.Second).Should(Succeed())
		}
		job, err := getJob(ctx, name)
		Expect(err).NotTo(HaveOccurred())
		Expect(job.Status.Phase).To(Equal(v1alpha1.PhaseRunning))

		By("deleting the running job: its pods and Service go")
		deleteJob(ctx, name, 2*time.Minute)
		expectNoPods(ctx, name)
		expectGone(ctx, &corev1.Service{}, name+"-workers")
		expectGone(ctx, &corev1.ConfigMap{}, name+"-job")
	}, NodeTimeout(8*time.Minute))

	DescribeTable("refuses invalid manifests at admission, naming the field",
		func(ctx SpecContext, edit func(m map[string]any), wantPath, wantMsg string) {
			m, err := loadManifest("wordcount-batch.yaml")
			Expect(err).NotTo(HaveOccurred())
			edit(m)
			manifest, _, err := forCluster(m, "invalid", "")
			Expect(err).NotTo(HaveOccurred())
			out, err := kubectlApply(ctx, manifest)
			Expect(err).To(HaveOccurred(), "kubectl apply accepted an invalid FlinkJob")
			Expect(out).To(ContainSubstring(wantPath))
			Expect(out).To(ContainSubstring(wantMsg))
			_, err = getJob(ctx, "invalid")
			Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the invalid FlinkJob was stored")
		},
		Entry("a CEL expression that does not compile (webhook)", func(m map[string]any) {
			steps(m)[1]["flatMap"] = "record.line.split(' ') +"
		}, "spec.steps[1].flatMap", "does not compile"),
		Entry("an input that names no step (webhook)", func(m map[string]any) {
			steps(m)[3]["inputs"] = []any{"nope"}
		}, "spec.steps[3].inputs[0]", `no step or side output is named "nope"`),
		Entry("BATCH with an unbounded source (schema rule)", func(m map[string]any) {
			m["spec"].(map[string]any)["runtimeMode"] = "BATCH"
			steps(m)[0]["source"] = map[string]any{"datagen": map[string]any{"value": "{'line': 'a b'}"}}
		}, "spec.steps", "source step lines is unbounded (a datagen without count"),
	)

	It("reports webhook denials as the webhook's", func(ctx SpecContext) {
		// kubectl reformats an Invalid status as "The FlinkJob ... is
		// invalid"; the API's own message says who refused it.
		m, err := loadManifest("wordcount-batch.yaml")
		Expect(err).NotTo(HaveOccurred())
		steps(m)[2]["reduce"] = "acc +"
		manifest, _, err := forCluster(m, "invalid", "")
		Expect(err).NotTo(HaveOccurred())
		var job v1alpha1.FlinkJob
		Expect(yaml.Unmarshal(manifest, &job)).To(Succeed())
		err = kc.Create(ctx, &job)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring(`admission webhook "vflinkjob.flinkjob.io" denied the request`))
		Expect(err.Error()).To(ContainSubstring("spec.steps[2].reduce"))
	})

	It("removes a deleted job's pods and intermediate data, mid-run", func(ctx SpecContext) {
		const name, count = "deleted-midrun", heavyCount
		dumpOnFailure(name)
		manifest, _ := heavyJob(name, count)
		_, err := kubectlApply(ctx, manifest)
		Expect(err).NotTo(HaveOccurred())
		stageRunningMidway(ctx, name, 2)

		job, err := getJob(ctx, name)
		Expect(err).NotTo(HaveOccurred())
		prefix := shufflePrefix(job)
		keys, err := listKeys(ctx, prefix)
		Expect(err).NotTo(HaveOccurred())
		Expect(keys).NotTo(BeEmpty(), "stage 0's materialized output under s3://%s/%s", cfg.bucket, prefix)

		deleteJob(ctx, name, 2*time.Minute)
		expectEmptyPrefix(ctx, prefix)
		expectNoPods(ctx, name)
		expectGone(ctx, &corev1.ConfigMap{}, name+"-job")
		// A pod that was still stopping must not have written anything since.
		expectEmptyPrefix(ctx, prefix)
	}, NodeTimeout(6*time.Minute))

	It("removes the pods and intermediate data of deleted finished jobs", func(ctx SpecContext) {
		var list v1alpha1.FlinkJobList
		Expect(kc.List(ctx, &list, client.InNamespace(cfg.ns))).To(Succeed())
		Expect(list.Items).NotTo(BeEmpty())
		prefixes := map[string]string{}
		withData := 0
		for _, j := range list.Items {
			p := shufflePrefix(&j)
			prefixes[j.Name] = p
			keys, err := listKeys(ctx, p)
			Expect(err).NotTo(HaveOccurred())
			if len(keys) > 0 {
				withData++
			}
		}
		Expect(withData).To(BeNumerically(">", 0), "no finished job had intermediate data to remove")
		_, err := kubectl(ctx, "-n", cfg.ns, "delete", "flinkjobs", "--all", "--wait=true", "--timeout=120s")
		Expect(err).NotTo(HaveOccurred())
		for name, p := range prefixes {
			expectEmptyPrefix(ctx, p)
			expectNoPods(ctx, name)
		}
	}, NodeTimeout(5*time.Minute))

	checkpointSpecs()

	kafkaSpecs()

	It("is uninstalled by Helm without leaving anything behind but the CRD", func(ctx SpecContext) {
		cleanupJobs(ctx)
		_, err := run(ctx, cfg.helm, "uninstall", cfg.release, "-n", cfg.operatorNS, "--wait", "--timeout", "2m")
		Expect(err).NotTo(HaveOccurred())

		// What Kubernetes puts in every namespace. Anything else left is
		// the release's, or made by the operator at run time and never
		// cleaned up (its leader-election Lease was, until the chart
		// created it).
		builtin := map[string]bool{"ServiceAccount/default": true, "ConfigMap/kube-root-ca.crt": true}
		namespaced := []client.ObjectList{
			&appsv1.DeploymentList{}, &appsv1.ReplicaSetList{}, &corev1.PodList{}, &corev1.ServiceList{},
			&corev1.ServiceAccountList{}, &corev1.ConfigMapList{}, &corev1.SecretList{},
			newList("rbac.authorization.k8s.io", "v1", "RoleList"), newList("rbac.authorization.k8s.io", "v1", "RoleBindingList"),
			newList("coordination.k8s.io", "v1", "LeaseList"), newList("discovery.k8s.io", "v1", "EndpointSliceList"),
		}
		Eventually(func(g Gomega) {
			var left []string
			for _, l := range namespaced {
				g.Expect(kc.List(ctx, l, client.InNamespace(cfg.operatorNS))).To(Succeed())
				items, err := meta.ExtractList(l)
				g.Expect(err).NotTo(HaveOccurred())
				for _, o := range items {
					mo, _ := meta.Accessor(o)
					k := kindOf(l) + "/" + mo.GetName()
					if !builtin[k] {
						left = append(left, k)
					}
				}
			}
			g.Expect(left).To(BeEmpty(), "left in namespace %s", cfg.operatorNS)
		}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(2 * time.Second).Should(Succeed())

		clusterScoped := []client.ObjectList{
			newList("rbac.authorization.k8s.io", "v1", "ClusterRoleList"),
			newList("rbac.authorization.k8s.io", "v1", "ClusterRoleBindingList"),
			newList("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfigurationList"),
			newList("admissionregistration.k8s.io", "v1", "MutatingWebhookConfigurationList"),
		}
		var left []string
		for _, l := range clusterScoped {
			Expect(kc.List(ctx, l)).To(Succeed())
			items, err := meta.ExtractList(l)
			Expect(err).NotTo(HaveOccurred())
			for _, o := range items {
				mo, _ := meta.Accessor(o)
				if strings.HasPrefix(mo.GetName(), fullname()) || mo.GetLabels()["app.kubernetes.io/instance"] == cfg.release {
					left = append(left, kindOf(l)+"/"+mo.GetName())
				}
			}
		}
		Expect(left).To(BeEmpty(), "cluster-scoped objects of release %s", cfg.release)

		// Helm installs crds/ but never deletes them (by design: deleting
		// a CRD deletes every FlinkJob in the cluster).
		_, err = getCRD(ctx)
		Expect(err).NotTo(HaveOccurred(), "the CRD is kept by helm uninstall")
	}, NodeTimeout(5*time.Minute))
})

func newList(group, version, kind string) *unstructured.UnstructuredList {
	l := &unstructured.UnstructuredList{}
	l.SetGroupVersionKind(schema.GroupVersionKind{Group: group, Version: version, Kind: kind})
	return l
}

func kindOf(l client.ObjectList) string {
	if u, ok := l.(*unstructured.UnstructuredList); ok {
		return strings.TrimSuffix(u.GetKind(), "List")
	}
	t := fmt.Sprintf("%T", l)
	return strings.TrimSuffix(t[strings.LastIndex(t, ".")+1:], "List")
}
