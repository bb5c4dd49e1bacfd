package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strings"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/shuffle"
	"github.com/flinkjob/flinkjob/engine/spec"
)

// Dataflows the specs run. threeStages plans to
//
//	stage 0 "src->words" (parallelism P) -HASH-> stage 1 "counts" (P) -REBALANCE-> stage 2 "out" (1)
//
// so the sink stage has no outputs (needs no manifest) and the others do.
const threeStages = `
runtimeMode: %s
parallelism: %d
steps:
  - name: src
    source: {elements: [{w: a}, {w: b}, {w: a}]}
  - name: words
    map: "{'word': record.w, 'n': 1}"
  - name: counts
    keyBy: record.word
    reduce: "{'word': acc.word, 'n': acc.n + record.n}"
  - name: out
    parallelism: 1
    partitioning: REBALANCE
    sink: {print: {}}
`

// oneStage is a source chained to its sink: one stage, no shuffle, so even
// BATCH needs no storage.
const oneStage = `
runtimeMode: %s
parallelism: 1
steps:
  - name: src
    source: {elements: [{n: 1}, {n: 2}]}
  - name: out
    sink: {print: {}}
`

// unbounded never ends (datagen without count).
const unbounded = `
runtimeMode: AUTOMATIC
parallelism: 1
steps:
  - name: clicks
    source: {datagen: {value: "{'seq': seq}", ratePerSecond: 10}}
  - name: even
    filter: "record.seq % 2 == 0"
  - name: out
    sink: {print: {}}
`

var threeStageNames = []string{"src->words", "counts", "out"}

type jobOption func(*v1alpha1.FlinkJob)

// newJob builds a FlinkJob from a spec in YAML (as a user writes it).
func newJob(ns, name, specYAML string, opts ...jobOption) *v1alpha1.FlinkJob {
	GinkgoHelper()
	job := &v1alpha1.FlinkJob{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	Expect(yaml.UnmarshalStrict([]byte(specYAML), &job.Spec)).To(Succeed())
	for _, o := range opts {
		o(job)
	}
	return job
}

// withStorage points the job at the suite's MinIO bucket, with credentials
// from the namespace's "s3" Secret.
func withStorage() jobOption {
	return func(j *v1alpha1.FlinkJob) {
		ep := s3cfg.Endpoint
		if !strings.Contains(ep, "://") {
			ep = "http://" + ep
		}
		j.Spec.Storage = &v1alpha1.Storage{S3: &v1alpha1.S3Storage{Endpoint: ep, Bucket: testBucket,
			CredentialsSecretRef: &v1alpha1.S3CredentialsSecretRef{Name: "s3"}}}
	}
}

func withRestart(typ v1alpha1.RestartStrategyType, delay string, maxAttempts int32) jobOption {
	return func(j *v1alpha1.FlinkJob) {
		j.Spec.RestartStrategy = &v1alpha1.RestartStrategy{Type: typ, Delay: spec.Duration(delay), MaxAttempts: ptr.To(maxAttempts)}
	}
}

func withTTL(seconds int32) jobOption {
	return func(j *v1alpha1.FlinkJob) { j.Spec.TTLSecondsAfterFinished = ptr.To(seconds) }
}

func withLabel(k, v string) jobOption {
	return func(j *v1alpha1.FlinkJob) {
		if j.Labels == nil {
			j.Labels = map[string]string{}
		}
		j.Labels[k] = v
	}
}

func randSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newNamespace creates a namespace enforcing the restricted Pod Security
// Standard (so the API server refuses any worker pod that does not meet
// it) with the S3 credentials Secret the jobs refer to.
func newNamespace(ctx context.Context) string {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fj-" + randSuffix(), Labels: map[string]string{
		"pod-security.kubernetes.io/enforce":         "restricted",
		"pod-security.kubernetes.io/enforce-version": "latest",
	}}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: ns.Name},
		Data: map[string][]byte{"accessKey": []byte(s3cfg.AccessKey), "secretKey": []byte(s3cfg.SecretKey)}}
	Expect(k8sClient.Create(ctx, sec)).To(Succeed())
	return ns.Name
}

func create(ctx context.Context, job *v1alpha1.FlinkJob) *v1alpha1.FlinkJob {
	GinkgoHelper()
	Expect(k8sClient.Create(ctx, job)).To(Succeed())
	return job
}

// fetch returns the job as stored now.
func fetch(ctx context.Context, job *v1alpha1.FlinkJob) *v1alpha1.FlinkJob {
	GinkgoHelper()
	got := &v1alpha1.FlinkJob{}
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(job), got)).To(Succeed())
	return got
}

// status is for Eventually: the job's status as stored now.
func status(ctx context.Context, job *v1alpha1.FlinkJob) func(Gomega) v1alpha1.FlinkJobStatus {
	return func(g Gomega) v1alpha1.FlinkJobStatus {
		got := &v1alpha1.FlinkJob{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(job), got)).To(Succeed())
		return got.Status
	}
}

func phaseOf(ctx context.Context, job *v1alpha1.FlinkJob) func(Gomega) v1alpha1.Phase {
	return func(g Gomega) v1alpha1.Phase { return status(ctx, job)(g).Phase }
}

func condition(st v1alpha1.FlinkJobStatus, typ string) *metav1.Condition {
	return meta.FindStatusCondition(st.Conditions, typ)
}

// haveCondition matches a status with condition typ at status (and reason,
// when given).
func haveCondition(typ string, s metav1.ConditionStatus, reason ...string) OmegaMatcher {
	m := []OmegaMatcher{HaveField("Type", typ), HaveField("Status", s)}
	if len(reason) > 0 {
		m = append(m, HaveField("Reason", reason[0]))
	}
	return HaveField("Conditions", ContainElement(And(m...)))
}

func patchSpec(ctx context.Context, job *v1alpha1.FlinkJob, mutate func(*v1alpha1.FlinkJob)) {
	GinkgoHelper()
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		got := fetch(ctx, job)
		mutate(got)
		return k8sClient.Update(ctx, got)
	})).To(Succeed())
}

// ---- pods, as the kubelet would run them ----

// jobPods lists the job's pods (any role, including ones being deleted).
func jobPods(ctx context.Context, job *v1alpha1.FlinkJob) []corev1.Pod {
	GinkgoHelper()
	var list corev1.PodList
	Expect(k8sClient.List(ctx, &list, client.InNamespace(job.Namespace), client.MatchingLabels{LabelJob: job.Name})).To(Succeed())
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	return list.Items
}

// workers lists the job's worker pods of stage (all stages when stage < 0)
// that are not being deleted.
func workers(ctx context.Context, job *v1alpha1.FlinkJob, stage int) []corev1.Pod {
	GinkgoHelper()
	var out []corev1.Pod
	for _, p := range jobPods(ctx, job) {
		if p.Labels[LabelRole] == RoleWorker && p.DeletionTimestamp.IsZero() && (stage < 0 || labelInt(&p, LabelStage) == stage) {
			out = append(out, p)
		}
	}
	return out
}

func finalizers(ctx context.Context, job *v1alpha1.FlinkJob) []corev1.Pod {
	GinkgoHelper()
	var out []corev1.Pod
	for _, p := range jobPods(ctx, job) {
		if p.Labels[LabelRole] == RoleFinalize && p.DeletionTimestamp.IsZero() {
			out = append(out, p)
		}
	}
	return out
}

func names(pods []corev1.Pod) []string {
	out := []string{}
	for _, p := range pods {
		out = append(out, p.Name)
	}
	sort.Strings(out)
	return out
}

// workerNames is for Eventually: the names of the job's live worker pods of stage.
func workerNames(ctx context.Context, job *v1alpha1.FlinkJob, stage int) func() []string {
	return func() []string { return names(workers(ctx, job, stage)) }
}

// podNames are the names the operator gives the subtasks' pods.
func podNames(job *v1alpha1.FlinkJob, attempt int, stageSubtasks ...[2]int) []string {
	out := []string{}
	for _, ss := range stageSubtasks {
		out = append(out, podName(job, ss[0], ss[1], attempt))
	}
	sort.Strings(out)
	return out
}

// stagePods are the names of the pods of stage's parallelism subtasks at attempt.
func stagePods(job *v1alpha1.FlinkJob, stage, parallelism, attempt int) []string {
	var ss [][2]int
	for i := 0; i < parallelism; i++ {
		ss = append(ss, [2]int{stage, i})
	}
	return podNames(job, attempt, ss...)
}

// kubelet writes a pod's status as the kubelet would for the worker container.
func kubelet(ctx context.Context, name, ns string, phase corev1.PodPhase, exitCode int32, message string) {
	GinkgoHelper()
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var p corev1.Pod
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
			return err
		}
		now := metav1.Now()
		start := now
		if p.Status.StartTime != nil {
			start = *p.Status.StartTime
		}
		cs := corev1.ContainerStatus{Name: "worker", Image: p.Spec.Containers[0].Image, ImageID: "docker.io/library/" + testImage}
		switch phase {
		case corev1.PodRunning:
			cs.Ready, cs.Started = true, ptr.To(true)
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: now}
		case corev1.PodSucceeded, corev1.PodFailed:
			reason := "Completed"
			if phase == corev1.PodFailed {
				reason = "Error"
			}
			cs.Started = ptr.To(false)
			cs.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: exitCode, Reason: reason,
				Message: message, StartedAt: start, FinishedAt: now}
		}
		p.Status.Phase = phase
		p.Status.StartTime = &start
		p.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
		return k8sClient.Status().Update(ctx, &p)
	})).To(Succeed())
}

func run(ctx context.Context, p corev1.Pod) {
	kubelet(ctx, p.Name, p.Namespace, corev1.PodRunning, 0, "")
}

// succeed ends a pod as a worker that read 10 records and wrote 5.
func succeed(ctx context.Context, p corev1.Pod) {
	kubelet(ctx, p.Name, p.Namespace, corev1.PodSucceeded, 0, `{"recordsIn":10,"recordsOut":5}`)
}

// fail ends a pod as a worker whose subtask returned err.
func fail(ctx context.Context, p corev1.Pod, err string) {
	b, _ := json.Marshal(map[string]any{"recordsIn": 3, "recordsOut": 0, "error": err})
	kubelet(ctx, p.Name, p.Namespace, corev1.PodFailed, 1, string(b))
}

// ---- the job's storage, as the workers write it ----

func shuffleLocation(job *v1alpha1.FlinkJob) connector.Location {
	GinkgoHelper()
	Expect(job.UID).NotTo(BeEmpty(), "the job must be read back from the API server first")
	loc, err := connector.ParseLocation(shuffleURL(job), s3cfg)
	Expect(err).NotTo(HaveOccurred())
	return loc
}

func putObject(ctx context.Context, loc connector.Location, name string, data []byte) {
	GinkgoHelper()
	w, err := loc.Create(ctx, name)
	Expect(err).NotTo(HaveOccurred())
	_, err = w.Write(data)
	Expect(err).NotTo(HaveOccurred())
	Expect(w.Commit()).To(Succeed())
}

// writeManifest commits a subtask's output manifest where the worker
// would (shuffle.ManifestPath under the job's shuffle URL).
func writeManifest(ctx context.Context, job *v1alpha1.FlinkJob, stage, index int) {
	GinkgoHelper()
	b, err := json.Marshal(shuffle.Manifest{Stage: stage, Subtask: index, Records: 5, Bytes: 50, RecordsIn: 10})
	Expect(err).NotTo(HaveOccurred())
	putObject(ctx, shuffleLocation(job), shuffle.ManifestPath(stage, index), b)
}

func objectsUnder(ctx context.Context, loc connector.Location) []string {
	GinkgoHelper()
	files, err := loc.List(ctx)
	if err != nil {
		// A prefix with no objects left lists as missing.
		return nil
	}
	var out []string
	for _, f := range files {
		out = append(out, f.Name)
	}
	return out
}

// finishStage plays every live subtask pod of stage to success, writing
// its manifest first (unless the stage feeds nothing).
func finishStage(ctx context.Context, job *v1alpha1.FlinkJob, stage, parallelism int, manifests bool) {
	GinkgoHelper()
	job = fetch(ctx, job)
	Eventually(workerNames(ctx, job, stage)).Should(HaveLen(parallelism))
	for _, p := range workers(ctx, job, stage) {
		if manifests {
			writeManifest(ctx, job, stage, labelInt(&p, LabelIndex))
		}
		succeed(ctx, p)
	}
}

// finishFinalize waits for the finalize pod and lets it succeed.
func finishFinalize(ctx context.Context, job *v1alpha1.FlinkJob) {
	GinkgoHelper()
	Eventually(func() []corev1.Pod { return finalizers(ctx, job) }).Should(HaveLen(1))
	succeed(ctx, finalizers(ctx, job)[0])
}

// ---- events ----

// eventsOf lists the Events (events.k8s.io/v1) about the job.
func eventsOf(ctx context.Context, job *v1alpha1.FlinkJob) []eventsv1.Event {
	GinkgoHelper()
	var list eventsv1.EventList
	Expect(k8sClient.List(ctx, &list, client.InNamespace(job.Namespace))).To(Succeed())
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "FlinkJob" && e.Regarding.Name == job.Name {
			out = append(out, e)
		}
	}
	return out
}

// eventReasons is for Eventually: "Type/Reason" of every Event about the job.
func eventReasons(ctx context.Context, job *v1alpha1.FlinkJob) func() []string {
	return func() []string {
		var out []string
		for _, e := range eventsOf(ctx, job) {
			out = append(out, e.Type+"/"+e.Reason)
		}
		return out
	}
}

// eventNote returns the note of the job's latest Event with reason.
func eventNote(ctx context.Context, job *v1alpha1.FlinkJob, reason string) func() string {
	return func() string {
		note := ""
		for _, e := range eventsOf(ctx, job) {
			if e.Reason == reason {
				note = e.Note
			}
		}
		return note
	}
}

// ---- watching pods over a whole run ----

// podWatch follows the pods of a namespace: which were ever created, and
// the most that were alive (created and not being deleted) at once.
type podWatch struct {
	mu       sync.Mutex
	alive    map[string]bool
	created  map[string]int
	maxAlive int
	atMax    []string
	cancel   context.CancelFunc
	done     chan struct{}
}

func watchPods(ctx context.Context, ns string) *podWatch {
	GinkgoHelper()
	wctx, cancel := context.WithCancel(ctx)
	w, err := k8sClient.Watch(wctx, &corev1.PodList{}, client.InNamespace(ns))
	Expect(err).NotTo(HaveOccurred())
	pw := &podWatch{alive: map[string]bool{}, created: map[string]int{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer GinkgoRecover()
		defer close(pw.done)
		defer w.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case ev, ok := <-w.ResultChan():
				if !ok {
					return
				}
				p, ok := ev.Object.(*corev1.Pod)
				if !ok {
					continue
				}
				pw.mu.Lock()
				switch ev.Type {
				case watch.Added:
					pw.created[p.Name]++
					pw.alive[p.Name] = p.DeletionTimestamp.IsZero()
				case watch.Modified:
					pw.alive[p.Name] = p.DeletionTimestamp.IsZero()
				case watch.Deleted:
					delete(pw.alive, p.Name)
				}
				n := 0
				var at []string
				for name, a := range pw.alive {
					if a {
						n++
						at = append(at, name)
					}
				}
				if n > pw.maxAlive {
					pw.maxAlive, pw.atMax = n, at
				}
				pw.mu.Unlock()
			}
		}
	}()
	return pw
}

func (pw *podWatch) stop() {
	pw.cancel()
	<-pw.done
}

// createdNames are the pods ever created, with how often each name was.
func (pw *podWatch) createdNames() map[string]int {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	out := map[string]int{}
	for k, v := range pw.created {
		out[k] = v
	}
	return out
}

func (pw *podWatch) max() (int, []string) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return pw.maxAlive, append([]string(nil), pw.atMax...)
}

func isNotFound(ctx context.Context, obj client.Object) func() bool {
	return func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj))
	}
}

func envOf(p corev1.Pod) map[string]string {
	out := map[string]string{}
	for _, e := range p.Spec.Containers[0].Env {
		out[e.Name] = e.Value
	}
	return out
}
