#!/usr/bin/env bash
# hack/kind/e2e.sh: the end-to-end suite (e2e/) on a throwaway kind cluster
# (make e2e-kind). Needs Docker (or anything kind and `docker build` accept)
# and Go; installs kind into bin/ when it is not on PATH.
#
#   hack/kind/e2e.sh [GO_TEST_ARGS...]
#
#  1. creates the kind cluster KIND_CLUSTER_NAME (default flinkjob-e2e) with
#     NodePort 30900 mapped to 127.0.0.1:KIND_MINIO_PORT (default 19400);
#  2. builds the images with the Dockerfile (docker build --target manager,
#     --target worker) as flinkjob-{manager,worker}:IMAGE_TAG (default e2e)
#     and loads them into the nodes (kind load docker-image);
#  3. runs MinIO in the cluster (hack/kind/minio.yaml): the server pinned by
#     hack/minio.sh, built static from source into a distroless image (or
#     KIND_MINIO_IMAGE, e.g. a quay.io/minio/minio release), Service
#     minio.default.svc:9000 for the pods, the NodePort for the suite;
#  4. runs the suite through hack/e2e.sh with KUBECONFIG and E2E_* set;
#  5. deletes the cluster (KIND_KEEP=1 keeps it; a cluster that already
#     existed is used only with KIND_REUSE=1 and then never deleted).
#
# Environment (all optional): KIND (binary), KIND_VERSION, KIND_NODE_IMAGE
# (kindest/node:vX.Y.Z; default: kind's own), KIND_CLUSTER_NAME,
# KIND_MINIO_PORT, KIND_MINIO_IMAGE, KIND_KEEP, KIND_REUSE, IMAGE_TAG,
# DOCKER (default docker), KUBECTL (default kubectl, else bin/k8s/*/kubectl).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN_DIR="${REPO_ROOT}/bin"
KIND_VERSION="${KIND_VERSION:-v0.33.0}"
CLUSTER="${KIND_CLUSTER_NAME:-flinkjob-e2e}"
MINIO_PORT="${KIND_MINIO_PORT:-19400}"
IMAGE_TAG="${IMAGE_TAG:-e2e}"
DOCKER="${DOCKER:-docker}"
MANAGER_IMAGE="flinkjob-manager:${IMAGE_TAG}"
WORKER_IMAGE="flinkjob-worker:${IMAGE_TAG}"
MINIO_USER="${E2E_MINIO_ACCESS_KEY:-flinkjob}"
MINIO_PASSWORD="${E2E_MINIO_SECRET_KEY:-flinkjob-secret}"
# The MinIO server hack/minio.sh pins (MinIO has no semver tags).
# shellcheck disable=SC2016 # the pattern matches a literal ${MINIO_VERSION:-...}
MINIO_VERSION="$(sed -n 's/^MINIO_VERSION="\${MINIO_VERSION:-\(.*\)}"$/\1/p' "${REPO_ROOT}/hack/minio.sh")"

_t0=${SECONDS}
log() { printf 'kind/e2e.sh: [%4ss] %s\n' "$((SECONDS - _t0))" "$*" >&2; }
die() {
	echo "kind/e2e.sh: error: $*" >&2
	exit 1
}

work="$(mktemp -d)"
created=0
cleanup() {
	local rc=$?
	if ((created)) && [[ "${KIND_KEEP:-0}" != 1 ]]; then
		log "deleting kind cluster ${CLUSTER}"
		"${KIND}" delete cluster --name "${CLUSTER}" || rc=1
	elif ((created)); then
		log "KIND_KEEP=1: cluster ${CLUSTER} kept; KUBECONFIG=${REPO_ROOT}/bin/kind/${CLUSTER}.kubeconfig"
	fi
	rm -rf "${work}"
	log "done (exit ${rc})"
	exit "${rc}"
}
trap cleanup EXIT

# --- tools ------------------------------------------------------------------
command -v "${DOCKER}" >/dev/null || die "${DOCKER} not found: kind needs Docker (or set DOCKER); without it use make e2e"
"${DOCKER}" info >/dev/null 2>&1 || die "${DOCKER} cannot reach its daemon"
command -v go >/dev/null || die "the suite needs Go"
[[ -n "${MINIO_VERSION}" ]] || die "cannot read MINIO_VERSION from hack/minio.sh"

if [[ -z "${KIND:-}" ]]; then
	if command -v kind >/dev/null; then
		KIND="$(command -v kind)"
	else
		KIND="${BIN_DIR}/kind"
		if ! [[ -x "${KIND}" && "$(cat "${BIN_DIR}/.kind.version" 2>/dev/null)" == "${KIND_VERSION}" ]]; then
			log "installing kind ${KIND_VERSION} into bin/"
			mkdir -p "${BIN_DIR}"
			(cd / && GOBIN="${BIN_DIR}" go install "sigs.k8s.io/kind@${KIND_VERSION}")
			echo "${KIND_VERSION}" >"${BIN_DIR}/.kind.version"
		fi
	fi
fi
if [[ -z "${KUBECTL:-}" ]]; then
	KUBECTL="$(command -v kubectl || true)"
	if [[ -z "${KUBECTL}" ]]; then
		for k in "${BIN_DIR}"/k8s/*/kubectl; do
			[[ -x "${k}" ]] && KUBECTL="${k}"
		done
	fi
	[[ -n "${KUBECTL}" ]] || die "no kubectl: install one or set KUBECTL"
fi

# --- 1. the cluster -----------------------------------------------------------
mkdir -p "${BIN_DIR}/kind"
export KUBECONFIG="${BIN_DIR}/kind/${CLUSTER}.kubeconfig"
kc() { "${KUBECTL}" --kubeconfig "${KUBECONFIG}" "$@"; }

if "${KIND}" get clusters 2>/dev/null | grep -qx "${CLUSTER}"; then
	[[ "${KIND_REUSE:-0}" == 1 ]] || die "kind cluster ${CLUSTER} already exists: delete it (${KIND} delete cluster --name ${CLUSTER}) or set KIND_REUSE=1 to use it as it is"
	log "reusing kind cluster ${CLUSTER} (KIND_REUSE=1; it is not deleted afterwards)"
	"${KIND}" export kubeconfig --name "${CLUSTER}" --kubeconfig "${KUBECONFIG}"
else
	cat >"${work}/kind.yaml" <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    extraPortMappings:
      # MinIO's NodePort, for the suite running on the host.
      - {containerPort: 30900, hostPort: ${MINIO_PORT}, listenAddress: "127.0.0.1", protocol: TCP}
EOF
	node_image=()
	[[ -z "${KIND_NODE_IMAGE:-}" ]] || node_image=(--image "${KIND_NODE_IMAGE}")
	log "creating kind cluster ${CLUSTER}"
	created=1
	"${KIND}" create cluster --name "${CLUSTER}" --config "${work}/kind.yaml" --kubeconfig "${KUBECONFIG}" \
		--wait 180s "${node_image[@]}"
fi

# --- 2. the images ----------------------------------------------------------------
log "docker build --target manager / worker"
"${DOCKER}" build --target manager -t "${MANAGER_IMAGE}" "${REPO_ROOT}"
"${DOCKER}" build --target worker -t "${WORKER_IMAGE}" "${REPO_ROOT}"

# --- 3. MinIO ---------------------------------------------------------------------
minio_image="${KIND_MINIO_IMAGE:-}"
if [[ -z "${minio_image}" ]]; then
	minio_image="flinkjob-e2e-minio:${MINIO_VERSION##*-}"
	ctx="${BIN_DIR}/kind/minio-image"
	if ! [[ -x "${ctx}/minio" && "$(cat "${ctx}/.version" 2>/dev/null)" == "${MINIO_VERSION}" ]]; then
		log "building a static MinIO ${MINIO_VERSION} (as hack/minio.sh pins it)"
		mkdir -p "${ctx}"
		(cd / && CGO_ENABLED=0 GOOS=linux GOBIN="${ctx}" GOFLAGS=-buildvcs=false \
			go install -trimpath -ldflags "-s -w" "github.com/minio/minio@${MINIO_VERSION}")
		echo "${MINIO_VERSION}" >"${ctx}/.version"
	fi
	cat >"${ctx}/Dockerfile" <<'EOF'
FROM gcr.io/distroless/static-debian12:nonroot
COPY minio /minio
USER 65532:65532
ENTRYPOINT ["/minio"]
EOF
	"${DOCKER}" build -t "${minio_image}" "${ctx}"
fi

log "kind load docker-image ${MANAGER_IMAGE} ${WORKER_IMAGE} ${minio_image}"
load=("${MANAGER_IMAGE}" "${WORKER_IMAGE}")
[[ -n "${KIND_MINIO_IMAGE:-}" ]] || load+=("${minio_image}")
"${KIND}" load docker-image --name "${CLUSTER}" "${load[@]}"

log "MinIO in the cluster (minio.default.svc:9000; 127.0.0.1:${MINIO_PORT} from here)"
sed -e "s|__MINIO_IMAGE__|${minio_image}|" -e "s|__MINIO_USER__|${MINIO_USER}|" \
	-e "s|__MINIO_PASSWORD__|${MINIO_PASSWORD}|" "${REPO_ROOT}/hack/kind/minio.yaml" | kc apply -f -
kc -n default rollout status deployment/minio --timeout=180s

# --- 4. the suite ---------------------------------------------------------------
# Kind's CoreDNS caches NXDOMAIN for 30 s: a STREAMING job may take that long
# to connect its workers; the suite's timeouts allow for it.
log "running the suite"
E2E_KUBECTL="${KUBECTL}" \
	E2E_MANAGER_IMAGE="${MANAGER_IMAGE}" E2E_WORKER_IMAGE="${WORKER_IMAGE}" \
	E2E_IMAGE_PULL_POLICY=IfNotPresent \
	E2E_MINIO_ENDPOINT="127.0.0.1:${MINIO_PORT}" \
	E2E_MINIO_POD_ENDPOINT="http://minio.default.svc:9000" \
	E2E_MINIO_ACCESS_KEY="${MINIO_USER}" E2E_MINIO_SECRET_KEY="${MINIO_PASSWORD}" \
	"${REPO_ROOT}/hack/e2e.sh" "$@"
