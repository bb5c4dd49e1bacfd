package controllers

// The controller suite runs the FlinkJob reconciler and the admission
// webhook in a real manager against a real kube-apiserver and etcd
// (envtest) and a real MinIO. There is no kubelet, scheduler or garbage
// collector: the tests play the kubelet by writing pod status (phase,
// the worker container's termination state and message) and the worker
// by writing output manifests to MinIO. A pod deleted without finalizers
// disappears at once (it was never scheduled).
//
// Binaries: KUBEBUILDER_ASSETS when set, else hack/envtest.sh path (built
// by hack/envtest.sh install when missing: minutes the first time). MinIO:
// MINIO_ENDPOINT/MINIO_ACCESS_KEY/MINIO_SECRET_KEY when set (make test),
// else internal/testminio's private server, stopped after the suite.
// Nothing skips.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/yaml"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/internal/testminio"
)

const (
	testImage  = "flinkjob-worker:envtest"
	testBucket = "flinkjob-envtest"
	// skipWebhookLabel exempts a FlinkJob from the admission webhook (the
	// suite installs the webhook with an objectSelector on it), so specs
	// can reach the reconciler's own validation with an invalid spec.
	skipWebhookLabel = "flinkjob.io/envtest-skip-webhook"
	// testSavepointTimeout is the manager's SavepointTimeout in this suite.
	testSavepointTimeout = 4 * time.Second
)

var (
	repoRoot  string
	testEnv   *envtest.Environment
	restCfg   *rest.Config
	scheme    = runtime.NewScheme()
	k8sClient client.WithWatch
	s3cfg     connector.S3Config
	minio     *testMinio
	// mgr is the manager the specs run against; the restart spec replaces it.
	mgr *testManager
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controllers suite (envtest)")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true), zap.Level(zapLevel())))
	// Restart delays are whole seconds once stored (metav1.Time), and CI
	// machines are slow: give every Eventually room.
	SetDefaultEventuallyTimeout(10 * time.Second)
	SetDefaultEventuallyPollingInterval(20 * time.Millisecond)
	var err error
	repoRoot, err = filepath.Abs("..")
	Expect(err).NotTo(HaveOccurred())

	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))

	By("finding (or building) kube-apiserver and etcd")
	Expect(ensureEnvtestAssets()).To(Succeed())

	By("starting MinIO")
	minio, err = startTestMinio()
	Expect(err).NotTo(HaveOccurred())
	s3cfg = minio.cfg
	// MinIO answers its liveness probe before it serves requests
	// ("Server not initialized yet").
	Eventually(func() error { return connector.EnsureBucket(ctx, s3cfg, testBucket) }).
		WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())

	By("starting kube-apiserver and etcd with the CRD and the webhook configuration")
	hooks, err := webhookConfigurations(filepath.Join(repoRoot, "config", "webhook", "manifests.yaml"))
	Expect(err).NotTo(HaveOccurred())
	testEnv = &envtest.Environment{
		Scheme:                scheme,
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{ValidatingWebhooks: hooks},
	}
	restCfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		By("stopping kube-apiserver and etcd")
		Expect(testEnv.Stop()).To(Succeed())
	})
	k8sClient, err = client.NewWithWatch(restCfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	By("starting the manager")
	mgr = startManager(true)
}, NodeTimeout(20*time.Minute))

var _ = AfterSuite(func() {
	if mgr != nil {
		mgr.stop()
	}
	// testEnv stops through DeferCleanup (after this); MinIO last.
	DeferCleanup(func() {
		if minio != nil {
			minio.stop()
		}
	})
})

func zapLevel() zapcore.Level {
	if os.Getenv("FLINKJOB_TEST_VERBOSE") != "" {
		return -1
	}
	return 0
}

// webhookConfigurations reads the generated webhook configuration and
// exempts objects carrying skipWebhookLabel; envtest then points it at the
// local webhook server with its own CA.
func webhookConfigurations(path string) ([]*admissionv1.ValidatingWebhookConfiguration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*admissionv1.ValidatingWebhookConfiguration
	for _, doc := range strings.Split(string(data), "\n---") {
		if strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(doc), "---")) == "" {
			continue
		}
		var vwc admissionv1.ValidatingWebhookConfiguration
		if err := yaml.UnmarshalStrict([]byte(doc), &vwc); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if vwc.Kind != "ValidatingWebhookConfiguration" {
			continue
		}
		for i := range vwc.Webhooks {
			vwc.Webhooks[i].ObjectSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: skipWebhookLabel, Operator: metav1.LabelSelectorOpDoesNotExist}}}
		}
		out = append(out, &vwc)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no ValidatingWebhookConfiguration", path)
	}
	return out, nil
}

// ensureEnvtestAssets points KUBEBUILDER_ASSETS at the binaries, building
// them with hack/envtest.sh install when missing (under a lock, so
// packages tested in parallel do not build them twice).
func ensureEnvtestAssets() error {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		out, err := exec.Command(filepath.Join(repoRoot, "hack", "envtest.sh"), "path").Output()
		if err != nil {
			return fmt.Errorf("hack/envtest.sh path: %w", err)
		}
		dir = strings.TrimSpace(string(out))
	}
	have := func() bool {
		for _, b := range []string{"kube-apiserver", "etcd"} {
			if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if !have() {
		if os.Getenv("KUBEBUILDER_ASSETS") != "" {
			return fmt.Errorf("KUBEBUILDER_ASSETS=%s has no kube-apiserver and etcd", dir)
		}
		_ = os.MkdirAll(filepath.Join(repoRoot, "bin"), 0o755)
		unlock := flock(filepath.Join(repoRoot, "bin", ".envtest-install.lock"))
		defer unlock()
		if !have() {
			start := time.Now()
			fmt.Fprintf(GinkgoWriter, "building kube-apiserver and etcd with hack/envtest.sh install (minutes on a cold build cache)\n")
			cmd := exec.Command(filepath.Join(repoRoot, "hack", "envtest.sh"), "install")
			cmd.Dir = repoRoot
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("hack/envtest.sh install: %v\n%s", err, out)
			}
			fmt.Fprintf(GinkgoWriter, "built envtest binaries in %s\n", time.Since(start).Round(time.Second))
		}
	}
	return os.Setenv("KUBEBUILDER_ASSETS", dir)
}

// flock takes an exclusive lock on path, waiting for it.
func flock(path string) func() {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return func() {}
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return func() {}
	}
	return func() { f.Close() }
}

// testMinio is the suite's MinIO: internal/testminio's (the one in
// MINIO_ENDPOINT, or a private server on a port claimed with a lock file,
// so a concurrent run of this suite never adopts this one's server and
// wipes it when it stops, which showed as "bucket does not exist").
type testMinio struct {
	cfg connector.S3Config
}

func startTestMinio() (*testMinio, error) {
	cfg, err := testminio.Config()
	if err != nil {
		return nil, err
	}
	return &testMinio{cfg: cfg}, nil
}

func (m *testMinio) stop() { testminio.Stop() }

// testManager is a running manager with the FlinkJob controller (and,
// when asked, the webhook server envtest's configuration points at).
type testManager struct {
	cancel context.CancelFunc
	done   chan error
}

func startManager(withWebhook bool) *testManager {
	GinkgoHelper()
	opts := ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Several managers run in one process (restart, concurrency).
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	}
	if withWebhook {
		wio := &testEnv.WebhookInstallOptions
		opts.WebhookServer = webhook.NewServer(webhook.Options{
			Host: wio.LocalServingHost, Port: wio.LocalServingPort, CertDir: wio.LocalServingCertDir})
	}
	m, err := ctrl.NewManager(restCfg, opts)
	Expect(err).NotTo(HaveOccurred())
	r := &FlinkJobReconciler{
		Client:      m.GetClient(),
		Recorder:    m.GetEventRecorder("flinkjob-operator"),
		WorkerImage: testImage,
		// The real storage, its control object reads counted.
		Storage: countingStorage{Storage: S3Storage{Client: m.GetAPIReader()}, counts: controlReads},
		// Short, so the timeout fallback is testable; the specs that
		// complete savepoints answer well within it.
		SavepointTimeout: testSavepointTimeout,
	}
	Expect(r.SetupWithManager(m)).To(Succeed())
	if withWebhook {
		Expect(ctrl.NewWebhookManagedBy(m, &v1alpha1.FlinkJob{}).WithValidator(Validator{}).Complete()).To(Succeed())
	}
	ctx, cancel := context.WithCancel(context.Background())
	tm := &testManager{cancel: cancel, done: make(chan error, 1)}
	go func() {
		defer GinkgoRecover()
		tm.done <- m.Start(ctx)
	}()
	if withWebhook {
		check := m.GetWebhookServer().StartedChecker()
		Eventually(func() error { return check(nil) }).WithTimeout(30 * time.Second).Should(Succeed())
	}
	return tm
}

func (m *testManager) stop() {
	GinkgoHelper()
	m.cancel()
	Eventually(m.done).WithTimeout(time.Minute).Should(Receive(BeNil()))
}
