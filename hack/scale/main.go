// Command scale is the operator's scale run (make scale): it starts a real
// kube-apiserver and etcd (envtest, binaries from hack/envtest.sh), runs the
// FlinkJob controller in this process, creates N FlinkJobs and waits until
// every one is reconciled (planned, its pods created, status written). It
// prints the time taken, reconcile errors and the manager's memory.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/controllers"
)

const jobYAML = `
runtimeMode: STREAMING
parallelism: 2
steps:
  - name: gen
    source: {datagen: {value: "{'k': seq % 10}", ratePerSecond: 10}}
  - name: counts
    keyBy: record.k
    aggregate: {fields: [{name: c, count: true}]}
  - name: out
    sink: {print: {}}
`

func main() {
	n := flag.Int("jobs", 500, "how many FlinkJobs to create")
	timeout := flag.Duration("timeout", 15*time.Minute, "give up after this long")
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.Level(zapcore.ErrorLevel)))
	if err := run(*n, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func repoRoot() string {
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		wd, _ := os.Getwd()
		return wd
	}
	return strings.TrimSpace(string(out))
}

func run(n int, timeout time.Duration) error {
	root := repoRoot()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		out, err := exec.Command(filepath.Join(root, "hack/envtest.sh"), "path").Output()
		if err != nil {
			return err
		}
		assets = strings.TrimSpace(string(out))
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join(root, "config/crd/bases")}, BinaryAssetsDirectory: assets,
		ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("starting envtest (run hack/envtest.sh install first): %w", err)
	}
	defer env.Stop()
	cfg.QPS, cfg.Burst = 200, 400

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return err
	}
	r := &controllers.FlinkJobReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("scale"), WorkerImage: "flinkjob-worker:v0.1.0"}
	if err := r.SetupWithManager(mgr); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	mgrCtx, stopMgr := context.WithCancel(ctx)
	mgrDone := make(chan struct{})
	go func() { _ = mgr.Start(mgrCtx); close(mgrDone) }()
	// Stop the manager before the API server so shutdown logs no errors.
	defer func() { stopMgr(); <-mgrDone }()
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}

	var base v1alpha1.FlinkJobSpec
	if err := yaml.Unmarshal([]byte(jobYAML), &base.Job); err != nil {
		return err
	}
	var ms0 goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&ms0)
	start := time.Now()
	for i := 0; i < n; i++ {
		j := &v1alpha1.FlinkJob{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("job-%04d", i), Namespace: "default"}, Spec: *base.DeepCopy()}
		if err := c.Create(ctx, j); err != nil {
			return fmt.Errorf("creating job %d: %w", i, err)
		}
	}
	created := time.Since(start)
	p, err := controllers.PlanJob(&v1alpha1.FlinkJob{Spec: base})
	if err != nil {
		return err
	}
	podsPerJob := 0
	for _, st := range p.Stages {
		podsPerJob += st.Parallelism
	}
	wantPods := n * podsPerJob
	var peakHeap uint64
	lastReport := time.Now()
	for {
		var jobs v1alpha1.FlinkJobList
		if err := c.List(ctx, &jobs); err != nil {
			return err
		}
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace("default")); err != nil {
			return err
		}
		reconciled := 0
		for _, j := range jobs.Items {
			if j.Status.Phase != "" && j.Status.ObservedGeneration == j.Generation && len(j.Status.Stages) == len(p.Stages) {
				reconciled++
			}
		}
		var ms goruntime.MemStats
		goruntime.ReadMemStats(&ms)
		if ms.HeapInuse > peakHeap {
			peakHeap = ms.HeapInuse
		}
		if reconciled == n && len(pods.Items) >= wantPods {
			break
		}
		if time.Since(lastReport) > 10*time.Second {
			lastReport = time.Now()
			fmt.Printf("scale: %s: %d/%d jobs reconciled, %d/%d pods\n", time.Since(start).Round(time.Second), reconciled, n, len(pods.Items), wantPods)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("timed out: %d/%d jobs reconciled, %d/%d pods", reconciled, n, len(pods.Items), wantPods)
		}
		time.Sleep(250 * time.Millisecond)
	}
	elapsed := time.Since(start)
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	fmt.Printf("scale: %d FlinkJobs (%d worker pods) reconciled in %s (creating them took %s)\n", n, wantPods, elapsed.Round(time.Millisecond), created.Round(time.Millisecond))
	fmt.Printf("scale: reconcile errors: %v\n", reconcileErrors())
	fmt.Printf("scale: manager heap in use: peak %.1f MiB, now %.1f MiB; process RSS %s\n", float64(peakHeap)/(1<<20), float64(ms.HeapInuse)/(1<<20), rss())
	if e := reconcileErrors(); e > 0 {
		return fmt.Errorf("%v reconcile errors", e)
	}
	return nil
}

func reconcileErrors() float64 {
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		return -1
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "controller_runtime_reconcile_errors_total" {
			for _, m := range mf.GetMetric() {
				total += counterValue(m)
			}
		}
	}
	return total
}

func counterValue(m *dto.Metric) float64 {
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return 0
}

func rss() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") || strings.HasPrefix(l, "VmRSS:") {
			if strings.HasPrefix(l, "VmHWM:") {
				return "peak " + strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:"))
			}
		}
	}
	return "unknown"
}
