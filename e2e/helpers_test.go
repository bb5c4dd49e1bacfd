//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
)

// Labels the operator puts on a job's pods (controllers/resources.go).
const (
	labelJob     = "flinkjob.io/job"
	labelStage   = "flinkjob.io/stage"
	labelSubtask = "flinkjob.io/subtask"
	labelAttempt = "flinkjob.io/attempt"
	labelRole    = "flinkjob.io/role"
)

// run runs a command and returns its combined output.
func run(ctx context.Context, name string, args ...string) (string, error) {
	return runIn(ctx, nil, name, args...)
}

func runIn(ctx context.Context, stdin []byte, name string, args ...string) (string, error) {
	fmt.Fprintf(GinkgoWriter, "$ %s %s\n", filepath.Base(name), strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	s := out.String()
	if strings.TrimSpace(s) != "" {
		fmt.Fprintf(GinkgoWriter, "%s\n", strings.TrimRight(indent(s, "  "), "\n"))
	}
	if err != nil {
		return s, fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(s))
	}
	return s, nil
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix) + "\n"
}

func kubectl(ctx context.Context, args ...string) (string, error) {
	return run(ctx, cfg.kubectl, args...)
}

// kubectlApply applies a manifest (kubectl apply -f FILE).
func kubectlApply(ctx context.Context, manifest []byte) (string, error) {
	f, err := os.CreateTemp("", "flinkjob-e2e-*.yaml")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(manifest); err != nil {
		return "", err
	}
	f.Close()
	return kubectl(ctx, "apply", "-f", f.Name())
}

// flinkJob is the manifest of a FlinkJob in the test namespace.
func flinkJob(name string, spec map[string]any) []byte {
	b, err := yaml.Marshal(map[string]any{
		"apiVersion": "flinkjob.io/v1alpha1", "kind": "FlinkJob",
		"metadata": map[string]any{"name": name, "namespace": cfg.ns},
		"spec":     spec,
	})
	Expect(err).NotTo(HaveOccurred())
	return b
}

// getJob reads a FlinkJob.
func getJob(ctx context.Context, name string) (*v1alpha1.FlinkJob, error) {
	job := &v1alpha1.FlinkJob{}
	err := kc.Get(ctx, types.NamespacedName{Namespace: cfg.ns, Name: name}, job)
	return job, err
}

// waitSucceeded runs `kubectl wait --for=condition=Succeeded` on a job and
// gives up early when the job fails (kubectl would wait out its timeout).
func waitSucceeded(ctx context.Context, name string, timeout time.Duration) {
	GinkgoHelper()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	failed := make(chan string, 1)
	go func() {
		defer GinkgoRecover()
		for wctx.Err() == nil {
			if job, err := getJob(wctx, name); err == nil {
				if c := meta.FindStatusCondition(job.Status.Conditions, v1alpha1.ConditionFailed); c != nil && c.Status == metav1.ConditionTrue {
					failed <- c.Reason + ": " + c.Message
					cancel()
					return
				}
			}
			select {
			case <-wctx.Done():
			case <-time.After(2 * time.Second):
			}
		}
	}()
	out, err := kubectl(wctx, "-n", cfg.ns, "wait", "--for=condition=Succeeded", "flinkjob/"+name,
		fmt.Sprintf("--timeout=%ds", int(timeout.Seconds())))
	select {
	case msg := <-failed:
		Fail(fmt.Sprintf("FlinkJob %s failed: %s", name, msg))
	default:
	}
	Expect(err).NotTo(HaveOccurred(), "kubectl wait for FlinkJob %s to succeed", name)
	Expect(out).To(ContainSubstring("condition met"))
}

// jobPods lists a job's pods.
func jobPods(ctx context.Context, name string) ([]corev1.Pod, error) {
	var list corev1.PodList
	err := kc.List(ctx, &list, client.InNamespace(cfg.ns), client.MatchingLabels{labelJob: name})
	return list.Items, err
}

// dumpJob writes what explains a failed spec to the spec's output: the
// job's status, events, pods and their logs, and the operator's log.
func dumpJob(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := GinkgoWriter
	fmt.Fprintf(w, "\n===== FlinkJob %s/%s =====\n", cfg.ns, name)
	if job, err := getJob(ctx, name); err == nil {
		b, _ := json.MarshalIndent(job.Status, "", "  ")
		fmt.Fprintf(w, "status: %s\n", b)
	} else {
		fmt.Fprintf(w, "get: %v\n", err)
	}
	_, _ = kubectl(ctx, "-n", cfg.ns, "get", "events", "--sort-by=.lastTimestamp",
		"--field-selector", "involvedObject.name="+name)
	pods, _ := jobPods(ctx, name)
	for _, p := range pods {
		fmt.Fprintf(w, "--- pod %s: %s %s\n", p.Name, p.Status.Phase, p.Status.Message)
		if logs, err := podLogs(ctx, p.Name, 40); err == nil {
			fmt.Fprint(w, indent(logs, "    "))
		}
	}
	_, _ = kubectl(ctx, "-n", cfg.operatorNS, "logs", "--tail=60", "-l", "app.kubernetes.io/instance="+cfg.release)
}

// toDump are the jobs of the current spec to dump if it fails.
var toDump []string

// dumpOnFailure names jobs to dump if the current spec fails. The dump
// runs in an AfterEach (dumpFailedJobs): a DeferCleanup of an ordered
// container's last spec would only run after its AfterAll removed them.
func dumpOnFailure(names ...string) { toDump = append(toDump, names...) }

// dumpFailedJobs dumps the jobs named by a failed spec.
func dumpFailedJobs() {
	if CurrentSpecReport().Failed() {
		for _, n := range toDump {
			dumpJob(n)
		}
	}
	toDump = nil
}

func podLogs(ctx context.Context, pod string, tail int64) (string, error) {
	opts := &corev1.PodLogOptions{}
	if tail > 0 {
		opts.TailLines = &tail
	}
	b, err := cs.CoreV1().Pods(cfg.ns).GetLogs(pod, opts).DoRaw(ctx)
	return string(b), err
}

// deleteJob deletes a FlinkJob with kubectl and waits until it is gone
// (its finalizer has removed its pods and intermediate data).
func deleteJob(ctx context.Context, name string, timeout time.Duration) {
	GinkgoHelper()
	_, err := kubectl(ctx, "-n", cfg.ns, "delete", "flinkjob", name, "--ignore-not-found",
		"--wait=true", fmt.Sprintf("--timeout=%ds", int(timeout.Seconds())))
	Expect(err).NotTo(HaveOccurred())
	_, err = getJob(ctx, name)
	Expect(apierrors.IsNotFound(err)).To(BeTrue(), "FlinkJob %s still there after kubectl delete: %v", name, err)
}

// --- MinIO ------------------------------------------------------------

func putObject(ctx context.Context, key string, data []byte) error {
	_, err := s3.PutObject(ctx, cfg.bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
	return err
}

// uploadDir copies a local directory tree to prefix/ in the bucket.
func uploadDir(ctx context.Context, dir, prefix string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return putObject(ctx, prefix+"/"+filepath.ToSlash(rel), b)
	})
}

// listKeys lists the keys under prefix (recursively).
func listKeys(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	for o := range s3.ListObjects(ctx, cfg.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, o.Err
		}
		keys = append(keys, o.Key)
	}
	sort.Strings(keys)
	return keys, nil
}

func readObject(ctx context.Context, key string) ([]byte, error) {
	o, err := s3.GetObject(ctx, cfg.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	defer o.Close()
	return io.ReadAll(o)
}

func deletePrefix(ctx context.Context, prefix string) error {
	objs := make(chan minio.ObjectInfo)
	var listErr error
	go func() {
		defer close(objs)
		for o := range s3.ListObjects(ctx, cfg.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if o.Err != nil {
				listErr = o.Err
				return
			}
			objs <- o
		}
	}()
	for e := range s3.RemoveObjects(ctx, cfg.bucket, objs, minio.RemoveObjectsOptions{}) {
		if e.Err != nil {
			return e.Err
		}
	}
	return listErr
}

// sinkOutput reads a files sink's output under prefix/: the JSON lines of
// its part files, and whether the _SUCCESS marker is there.
func sinkOutput(ctx context.Context, prefix string) (lines []string, success bool, err error) {
	keys, err := listKeys(ctx, prefix+"/")
	if err != nil {
		return nil, false, err
	}
	for _, k := range keys {
		base := k[strings.LastIndex(k, "/")+1:]
		switch {
		case base == "_SUCCESS":
			success = true
		case strings.HasPrefix(base, "part-"):
			b, err := readObject(ctx, k)
			if err != nil {
				return nil, false, err
			}
			sc := bufio.NewScanner(bytes.NewReader(b))
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				if l := strings.TrimSpace(sc.Text()); l != "" {
					lines = append(lines, l)
				}
			}
		}
	}
	return lines, success, nil
}

// shufflePrefix is where the operator keeps a job's intermediate data
// (controllers/resources.go: <storage prefix>/flinkjob/<ns>/<name>/<uid>/shuffle/).
func shufflePrefix(job *v1alpha1.FlinkJob) string {
	return fmt.Sprintf("%s/flinkjob/%s/%s/%s/shuffle/", cfg.prefix, job.Namespace, job.Name, job.UID)
}

// --- a pod watch --------------------------------------------------------

// podRecorder records every change of a job's pods from before the job
// exists, so specs can check what was alive at the same time.
type podRecorder struct {
	mu     sync.Mutex
	events []podEvent
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

type podEvent struct {
	typ watch.EventType
	pod *corev1.Pod
}

// recordPods starts watching the pods labelled with the job's name.
func recordPods(ctx context.Context, job string) *podRecorder {
	GinkgoHelper()
	sel := labelJob + "=" + job
	list, err := cs.CoreV1().Pods(cfg.ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	Expect(err).NotTo(HaveOccurred())
	Expect(list.Items).To(BeEmpty(), "pods of %s exist before the job", job)
	wctx, cancel := context.WithCancel(context.Background())
	lw := &cache.ListWatch{WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		o.LabelSelector = sel
		return cs.CoreV1().Pods(cfg.ns).Watch(ctx, o)
	}}
	w, err := watchtools.NewRetryWatcherWithContext(wctx, list.ResourceVersion, lw)
	Expect(err).NotTo(HaveOccurred())
	r := &podRecorder{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		defer w.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case ev, ok := <-w.ResultChan():
				if !ok {
					return
				}
				if ev.Type == watch.Error {
					r.mu.Lock()
					r.err = apierrors.FromObject(ev.Object)
					r.mu.Unlock()
					continue
				}
				if p, ok := ev.Object.(*corev1.Pod); ok {
					r.mu.Lock()
					r.events = append(r.events, podEvent{ev.Type, p})
					r.mu.Unlock()
				}
			}
		}
	}()
	DeferCleanup(r.stop)
	return r
}

func (r *podRecorder) stop() {
	r.cancel()
	<-r.done
}

func (r *podRecorder) snapshot() ([]podEvent, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]podEvent(nil), r.events...), r.err
}

func terminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// maxConcurrent replays the events and returns the largest number of the
// job's pods that existed at once (created, not yet deleted) and that
// were active at once (existing and not Succeeded or Failed), each with
// the pods of one such moment.
func (r *podRecorder) maxConcurrent() (existing int, existingAt []string, active int, activeAt []string) {
	evs, _ := r.snapshot()
	state := map[string]*corev1.Pod{}
	for _, ev := range evs {
		if ev.typ == watch.Deleted {
			delete(state, ev.pod.Name)
		} else {
			state[ev.pod.Name] = ev.pod
		}
		var ex, ac []string
		for n, p := range state {
			ex = append(ex, n+"("+string(p.Status.Phase)+")")
			if !terminal(p) {
				ac = append(ac, n+"("+string(p.Status.Phase)+")")
			}
		}
		if len(ex) > existing {
			sort.Strings(ex)
			existing, existingAt = len(ex), ex
		}
		if len(ac) > active {
			sort.Strings(ac)
			active, activeAt = len(ac), ac
		}
	}
	return
}

// timeline describes the recorded pod changes, one per line.
func (r *podRecorder) timeline() string {
	evs, _ := r.snapshot()
	var b strings.Builder
	for _, ev := range evs {
		del := ""
		if ev.pod.DeletionTimestamp != nil {
			del = " (deleting)"
		}
		fmt.Fprintf(&b, "%-8s %s %s%s\n", ev.typ, ev.pod.Name, ev.pod.Status.Phase, del)
	}
	return b.String()
}

// created returns the job's pods in the order they were created, as last
// seen by the watch.
func (r *podRecorder) created() []*corev1.Pod {
	evs, _ := r.snapshot()
	var order []string
	last := map[string]*corev1.Pod{}
	for _, ev := range evs {
		if _, seen := last[ev.pod.Name]; !seen {
			order = append(order, ev.pod.Name)
		}
		last[ev.pod.Name] = ev.pod
	}
	out := make([]*corev1.Pod, 0, len(order))
	for _, n := range order {
		out = append(out, last[n])
	}
	return out
}

// podKey is how a spec names a worker pod: stage/subtask/attempt.
func podKey(p *corev1.Pod) string {
	if p.Labels[labelRole] != "worker" {
		return p.Labels[labelRole] + "/" + p.Labels[labelAttempt]
	}
	return p.Labels[labelStage] + "/" + p.Labels[labelSubtask] + "/" + p.Labels[labelAttempt]
}
