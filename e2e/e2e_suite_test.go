//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
)

// config is the suite's view of its environment (see doc.go).
type config struct {
	repoRoot string
	kubectl  string
	helm     string
	chart    string

	release     string
	operatorNS  string
	managerRepo string
	managerTag  string
	workerRepo  string
	workerTag   string
	pullPolicy  string

	s3Endpoint  string // for the test process, without scheme
	s3Secure    bool
	podEndpoint string // spec.storage.s3.endpoint
	accessKey   string
	secretKey   string
	bucket      string

	runID  string
	ns     string // the namespace the jobs run in
	prefix string // e2e/<runID>: every object of this run in the bucket
	keep   bool
}

var (
	cfg     config
	restCfg *rest.Config
	scheme  = runtime.NewScheme()
	kc      client.Client        // controller-runtime client: typed reads
	cs      kubernetes.Interface // client-go: pod logs and watches
	s3      *minio.Client
)

// credentialsSecret is the Secret with the MinIO credentials in cfg.ns.
const credentialsSecret = "minio-credentials"

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	suite, reporter := GinkgoConfiguration()
	if os.Getenv("E2E_VERBOSE") != "0" {
		reporter.Verbose = true
	}
	RunSpecs(t, "flinkjob end-to-end suite", suite, reporter)
}

func getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// splitImage splits repo:tag (a registry port is not a tag).
func splitImage(img string) (string, string) {
	i := strings.LastIndex(img, ":")
	if i < 0 || strings.Contains(img[i:], "/") {
		return img, "latest"
	}
	return img[:i], img[i+1:]
}

func loadConfig() config {
	root, err := filepath.Abs("..")
	Expect(err).NotTo(HaveOccurred())
	c := config{
		repoRoot:   root,
		kubectl:    getenv("E2E_KUBECTL", "kubectl"),
		chart:      filepath.Join(root, "charts", "flinkjob-operator"),
		release:    getenv("E2E_RELEASE", "flinkjob-e2e"),
		operatorNS: getenv("E2E_OPERATOR_NAMESPACE", "flinkjob-e2e-system"),
		pullPolicy: getenv("E2E_IMAGE_PULL_POLICY", "IfNotPresent"),
		accessKey:  getenv("E2E_MINIO_ACCESS_KEY", "flinkjob"),
		secretKey:  getenv("E2E_MINIO_SECRET_KEY", "flinkjob-secret"),
		bucket:     getenv("E2E_BUCKET", "flinkjob"),
		keep:       os.Getenv("E2E_KEEP") == "1",
	}
	c.helm = os.Getenv("E2E_HELM")
	if c.helm == "" {
		c.helm = "helm"
		if _, err := os.Stat(filepath.Join(root, "bin", "helm")); err == nil {
			c.helm = filepath.Join(root, "bin", "helm")
		}
	}
	c.managerRepo, c.managerTag = splitImage(getenv("E2E_MANAGER_IMAGE", "flinkjob-manager:v0.1.0"))
	c.workerRepo, c.workerTag = splitImage(getenv("E2E_WORKER_IMAGE", "flinkjob-worker:v0.1.0"))

	ep := getenv("E2E_MINIO_ENDPOINT", "10.244.0.1:19400")
	switch {
	case strings.HasPrefix(ep, "https://"):
		c.s3Endpoint, c.s3Secure = strings.TrimPrefix(ep, "https://"), true
	default:
		c.s3Endpoint = strings.TrimPrefix(ep, "http://")
	}
	c.s3Endpoint = strings.TrimSuffix(c.s3Endpoint, "/")
	c.podEndpoint = getenv("E2E_MINIO_POD_ENDPOINT", "http://minio.default.svc:9000")

	c.runID = fmt.Sprintf("%x", time.Now().UnixNano()/int64(time.Millisecond))[3:]
	c.ns = "flinkjob-e2e-" + c.runID
	c.prefix = "e2e/" + c.runID
	return c
}

var _ = BeforeSuite(func(ctx SpecContext) {
	cfg = loadConfig()
	By(fmt.Sprintf("run %s: namespace %s, objects under s3://%s/%s/, release %s in %s",
		cfg.runID, cfg.ns, cfg.bucket, cfg.prefix, cfg.release, cfg.operatorNS))

	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	var err error
	restCfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
	Expect(err).NotTo(HaveOccurred(), "KUBECONFIG")
	restCfg.QPS, restCfg.Burst = 50, 100
	kc, err = client.New(restCfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	cs, err = kubernetes.NewForConfig(restCfg)
	Expect(err).NotTo(HaveOccurred())
	_, err = cs.Discovery().ServerVersion()
	Expect(err).NotTo(HaveOccurred(), "the cluster in KUBECONFIG is not reachable")

	out, err := run(ctx, cfg.kubectl, "version", "--client")
	Expect(err).NotTo(HaveOccurred(), "kubectl (%s): %s", cfg.kubectl, out)
	out, err = run(ctx, cfg.helm, "version", "--short")
	Expect(err).NotTo(HaveOccurred(), "helm (%s): %s", cfg.helm, out)

	s3, err = minio.New(cfg.s3Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(cfg.accessKey, cfg.secretKey, ""), Secure: cfg.s3Secure})
	Expect(err).NotTo(HaveOccurred())
	Eventually(func(g Gomega) {
		ok, err := s3.BucketExists(ctx, cfg.bucket)
		g.Expect(err).NotTo(HaveOccurred(), "MinIO at %s (E2E_MINIO_ENDPOINT)", cfg.s3Endpoint)
		if !ok {
			g.Expect(s3.MakeBucket(ctx, cfg.bucket, minio.MakeBucketOptions{})).To(Succeed())
		}
	}).WithContext(ctx).WithTimeout(60 * time.Second).WithPolling(2 * time.Second).Should(Succeed())
}, NodeTimeout(3*time.Minute))

var _ = AfterSuite(func(ctx SpecContext) {
	if cfg.keep {
		By("E2E_KEEP=1: leaving namespace " + cfg.ns + ", release " + cfg.release + " and s3://" + cfg.bucket + "/" + cfg.prefix + "/")
		return
	}
	if s3 != nil && cfg.prefix != "" {
		By("removing s3://" + cfg.bucket + "/" + cfg.prefix + "/")
		Expect(deletePrefix(ctx, cfg.prefix+"/")).To(Succeed())
	}
}, NodeTimeout(2*time.Minute))
