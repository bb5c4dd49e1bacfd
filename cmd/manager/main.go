// Command manager runs the flinkjob operator: the FlinkJob controller and
// the validating admission webhook, with leader election, health probes and
// Prometheus metrics.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/flinkjob/flinkjob/api/v1alpha1"
	"github.com/flinkjob/flinkjob/controllers"
	"github.com/flinkjob/flinkjob/internal/certs"
)

// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete
// Leader election records its "became leader" Event through the core API.
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

func main() {
	var (
		metricsAddr, probeAddr, workerImage, certDir, webhookConfig, serviceName, namespace string
		leaderElect, enableWebhook, selfSigned                                              bool
		webhookPort                                                                         int
		savepointTimeout                                                                    time.Duration
	)
	flag.DurationVar(&savepointTimeout, "savepoint-timeout", controllers.DefaultSavepointTimeout, "how long a savepoint may take before the operator gives up (a stop-with-savepoint then falls back to the latest checkpoint)")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443", "metrics address (0 disables)")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "health probe address")
	flag.BoolVar(&leaderElect, "leader-elect", false, "elect a leader so only one manager reconciles")
	flag.StringVar(&workerImage, "worker-image", "flinkjob-worker:latest", "worker image for jobs without spec.image")
	flag.BoolVar(&enableWebhook, "enable-webhook", true, "serve the validating admission webhook")
	flag.IntVar(&webhookPort, "webhook-port", 9443, "webhook server port")
	flag.StringVar(&certDir, "webhook-cert-dir", filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs"), "directory with tls.crt and tls.key")
	flag.BoolVar(&selfSigned, "webhook-self-signed", true, "generate a self-signed webhook certificate and inject its CA (turn off with cert-manager)")
	flag.StringVar(&webhookConfig, "webhook-config-name", "flinkjob-validating-webhook", "ValidatingWebhookConfiguration to inject the CA into")
	flag.StringVar(&serviceName, "webhook-service-name", "flinkjob-webhook", "Service in front of the webhook")
	flag.StringVar(&namespace, "namespace", os.Getenv("POD_NAMESPACE"), "namespace the manager runs in")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))

	var caPEM []byte
	if enableWebhook && selfSigned {
		if namespace == "" {
			namespace = "default"
		}
		names := []string{
			fmt.Sprintf("%s.%s.svc", serviceName, namespace),
			fmt.Sprintf("%s.%s.svc.cluster.local", serviceName, namespace),
		}
		var err error
		if caPEM, err = certs.Generate(certDir, names, 10*365*24*time.Hour); err != nil {
			log.Error(err, "generating webhook certificate")
			os.Exit(1)
		}
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: probeAddr,
		LeaderElection:         leaderElect,
		// The Helm chart creates this Lease (templates/lease.yaml) so that
		// helm uninstall removes it; keep the two names equal.
		LeaderElectionID: "flinkjob-operator.flinkjob.io",
		WebhookServer:    webhook.NewServer(webhook.Options{Port: webhookPort, CertDir: certDir}),
	})
	if err != nil {
		log.Error(err, "creating manager")
		os.Exit(1)
	}
	r := &controllers.FlinkJobReconciler{
		Client:           mgr.GetClient(),
		Recorder:         mgr.GetEventRecorder("flinkjob-operator"),
		WorkerImage:      workerImage,
		Storage:          controllers.S3Storage{Client: mgr.GetAPIReader()},
		SavepointTimeout: savepointTimeout,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		log.Error(err, "setting up the controller")
		os.Exit(1)
	}
	if enableWebhook {
		if err := ctrl.NewWebhookManagedBy(mgr, &v1alpha1.FlinkJob{}).WithValidator(controllers.Validator{}).Complete(); err != nil {
			log.Error(err, "setting up the webhook")
			os.Exit(1)
		}
		if caPEM != nil {
			// Inject the CA once the cache-backed client works.
			if err := mgr.Add(runnable(func(ctx context.Context) error {
				c, err := client.New(mgr.GetConfig(), client.Options{Scheme: scheme})
				if err != nil {
					return err
				}
				for {
					err := certs.InjectCABundle(ctx, c, webhookConfig, caPEM)
					if err == nil {
						log.Info("webhook CA bundle injected", "configuration", webhookConfig)
						return nil
					}
					log.Error(err, "injecting the webhook CA bundle; retrying")
					select {
					case <-ctx.Done():
						return nil
					case <-time.After(5 * time.Second):
					}
				}
			})); err != nil {
				log.Error(err, "adding CA injector")
				os.Exit(1)
			}
		}
		utilruntime.Must(mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()))
	}
	utilruntime.Must(mgr.AddHealthzCheck("healthz", healthz.Ping))
	utilruntime.Must(mgr.AddReadyzCheck("readyz", healthz.Ping))
	log.Info("starting manager", "workerImage", workerImage, "webhook", enableWebhook)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

type runnable func(ctx context.Context) error

func (f runnable) Start(ctx context.Context) error { return f(ctx) }
