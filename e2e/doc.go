// Package e2e is the end-to-end suite of the flinkjob operator: Ginkgo specs
// that install the Helm chart into the cluster KUBECONFIG points to and run
// FlinkJobs there with kubectl, their data in a real MinIO.
//
// It is built only with the e2e build tag (plain `go test ./...` does not
// compile it: it needs a cluster), normally
// through `make e2e` (the local cluster of hack/cluster, brought up and torn
// down as needed) or `make e2e-kind` (a kind cluster); see hack/e2e.sh and
// hack/kind/e2e.sh. The images must already be in the cluster.
//
// Environment (defaults fit the local cluster of hack/cluster):
//
//	KUBECONFIG                the cluster
//	E2E_KUBECTL, E2E_HELM     the binaries (default: kubectl; bin/helm, else helm)
//	E2E_MINIO_ENDPOINT        MinIO as the test process reaches it (10.244.0.1:19400;
//	                          host:port is plain HTTP, or give an http(s):// URL)
//	E2E_MINIO_POD_ENDPOINT    MinIO as pods reach it: spec.storage.s3.endpoint
//	                          (http://minio.default.svc:9000)
//	E2E_MINIO_ACCESS_KEY      credentials (flinkjob / flinkjob-secret), put into
//	E2E_MINIO_SECRET_KEY      a Secret in the test namespace
//	E2E_BUCKET                bucket, created if missing (flinkjob)
//	E2E_MANAGER_IMAGE         operator image (flinkjob-manager:v0.1.0)
//	E2E_WORKER_IMAGE          worker image (flinkjob-worker:v0.1.0)
//	E2E_IMAGE_PULL_POLICY     for both (IfNotPresent)
//	E2E_RELEASE               Helm release name (flinkjob-e2e)
//	E2E_OPERATOR_NAMESPACE    its namespace (flinkjob-e2e-system)
//	E2E_KEEP=1                leave the release, namespaces and objects behind
//	                          (for debugging a failure)
//
// Everything a run creates is named after a run id: the job namespace
// flinkjob-e2e-<id>, the MinIO prefix e2e/<id>/ (inputs, outputs and
// the jobs' intermediate data). A run removes all of it, uninstalls the
// release and deletes the CRD if the run installed it.
package e2e
