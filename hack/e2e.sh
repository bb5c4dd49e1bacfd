#!/usr/bin/env bash
# hack/e2e.sh: run the end-to-end suite (e2e/, Ginkgo) against a cluster.
#
#   hack/e2e.sh [GO_TEST_ARGS...]        (make e2e; e.g. -ginkgo.focus=FLIP-134)
#
# Without KUBECONFIG (or with KUBECONFIG=<repo>/.cluster/kubeconfig) it uses
# the local cluster of hack/cluster:
#   - starts it when it is not running (make cluster-up), and then stops it
#     again at the end (make cluster-down);
#   - builds the images and imports them (make images images-import);
#   - starts the cluster's MinIO when it is not running (make cluster-minio),
#     and then stops it at the end;
#   - points the suite at that MinIO (E2E_MINIO_* defaults) and that kubectl.
# Only what this script started is stopped; E2E_KEEP_CLUSTER=1 keeps it.
#
# With KUBECONFIG pointing elsewhere the cluster is used as it is: its nodes
# must already have the images (E2E_MANAGER_IMAGE, E2E_WORKER_IMAGE) and
# E2E_MINIO_ENDPOINT / E2E_MINIO_POD_ENDPOINT / E2E_MINIO_ACCESS_KEY /
# E2E_MINIO_SECRET_KEY must say where MinIO is (see e2e/doc.go;
# hack/kind/e2e.sh does all that for a kind cluster).
#
# Environment: E2E_TIMEOUT (go test -timeout, default 45m), SUDO (default
# sudo unless root), HELM_VERSION (helm installed into bin/ when missing).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${REPO_ROOT}"
# shellcheck source=hack/cluster/lib.sh
source "${REPO_ROOT}/hack/cluster/lib.sh"

SUDO="${SUDO-$([[ ${EUID} -eq 0 ]] || echo sudo)}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
started_cluster=0
started_minio=0

# ensure_helm installs the pinned helm into bin/ as hack/chart-check.sh does.
ensure_helm() {
	local helm="${BIN_DIR}/helm" stamp="${BIN_DIR}/.helm.version"
	if [[ -n "${E2E_HELM:-}" ]]; then
		return 0
	fi
	if ! [[ -x "${helm}" && -f "${stamp}" && "$(cat "${stamp}")" == "${HELM_VERSION}" ]]; then
		log "installing helm ${HELM_VERSION} into bin/"
		mkdir -p "${BIN_DIR}"
		(cd "${BIN_DIR}" && GOBIN="${BIN_DIR}" go install "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}")
		echo "${HELM_VERSION}" >"${stamp}"
	fi
	export E2E_HELM="${helm}"
}

teardown() {
	local rc=$?
	if [[ "${E2E_KEEP_CLUSTER:-0}" == 1 ]]; then
		((started_cluster || started_minio)) && log "E2E_KEEP_CLUSTER=1: leaving the local cluster and its MinIO running"
	elif ((started_cluster)); then
		log "stopping the local cluster this run started"
		${SUDO} "${REPO_ROOT}/hack/cluster/down.sh" || rc=1
	elif ((started_minio)); then
		log "stopping the cluster MinIO this run started"
		${SUDO} "${REPO_ROOT}/hack/cluster/minio.sh" down || rc=1
	fi
	log "done in $(elapsed)s (exit ${rc})"
	exit "${rc}"
}
trap teardown EXIT

local_cluster=0
if [[ -z "${KUBECONFIG:-}" || "$(realpath -m "${KUBECONFIG}")" == "$(realpath -m "${KUBECONFIG_OUT}")" ]]; then
	local_cluster=1
fi

if ((local_cluster)); then
	if ! running kube-apiserver || ! running kubelet; then
		log "starting the local cluster (hack/cluster/up.sh)"
		started_cluster=1
		"${REPO_ROOT}/hack/cluster/up.sh" --build-only
		# One retry from scratch: bring-up races with a loaded machine (a
		# component slow to exec, a port still held) are not what this
		# suite tests; a second failure fails the run with both logs shown.
		if ! ${SUDO} "${REPO_ROOT}/hack/cluster/up.sh"; then
			log "cluster bring-up failed; tearing down and trying once more"
			${SUDO} "${REPO_ROOT}/hack/cluster/down.sh" || true
			${SUDO} "${REPO_ROOT}/hack/cluster/up.sh"
		fi
	else
		log "using the running local cluster"
	fi
	export KUBECONFIG="${KUBECONFIG_OUT}"

	log "building the images and importing them into the cluster"
	"${REPO_ROOT}/hack/images.sh" build
	${SUDO} "${REPO_ROOT}/hack/images.sh" import

	if ! running minio; then
		((started_cluster)) || started_minio=1
		"${REPO_ROOT}/hack/minio.sh" install >/dev/null
		${SUDO} "${REPO_ROOT}/hack/cluster/minio.sh" up >/dev/null
	fi
	export E2E_MINIO_ENDPOINT="${E2E_MINIO_ENDPOINT:-${NODE_IP}:${CLUSTER_MINIO_PORT}}"
	export E2E_MINIO_POD_ENDPOINT="${E2E_MINIO_POD_ENDPOINT:-http://minio.default.svc:9000}"
	export E2E_MINIO_ACCESS_KEY="${E2E_MINIO_ACCESS_KEY:-${CLUSTER_MINIO_USER}}"
	export E2E_MINIO_SECRET_KEY="${E2E_MINIO_SECRET_KEY:-${CLUSTER_MINIO_PASSWORD}}"
	export E2E_KUBECTL="${E2E_KUBECTL:-$(kubectl_bin)}"
else
	[[ -n "${E2E_MINIO_ENDPOINT:-}" ]] ||
		die "KUBECONFIG=${KUBECONFIG} is not the local cluster: set E2E_MINIO_ENDPOINT (and E2E_MINIO_POD_ENDPOINT, credentials; see e2e/doc.go)"
	log "using the cluster in KUBECONFIG=${KUBECONFIG} as it is (images must be on its nodes)"
fi
ensure_helm

color=()
[[ -t 1 ]] || color=(-ginkgo.no-color)
log "go test ./e2e/ (KUBECONFIG=${KUBECONFIG})"
go test -tags e2e ./e2e/ -count=1 -timeout "${E2E_TIMEOUT:-45m}" -v "${color[@]}" "$@"
