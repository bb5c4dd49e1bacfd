#!/usr/bin/env bash
# hack/images.sh: the flinkjob images without a Docker daemon.
#
#   hack/images.sh [build]   build bin/images/flinkjob-manager.tar and
#                            bin/images/flinkjob-worker.tar (docker-save tarballs)
#   hack/images.sh import    build if needed, then load them into the local
#                            cluster's containerd (hack/cluster/up.sh)
#
# The images are the ones the Dockerfile builds (docker build --target
# manager|worker): static Go binaries built with the same flags, entrypoint
# /manager or /worker (the worker image also has /flinkjob), user
# 65532:65532, working dir /home/nonroot, and a base layer shaped like
# distroless/static:nonroot (passwd/group with nonroot, /tmp, CA certs).
# hack/tools/imgtool (go-containerregistry) writes them; `docker load -i`,
# `ctr images import` and `kind load image-archive` all read the tarballs.
#
# Environment (all optional):
#   IMAGE_TAG       tag (default: the Helm chart's appVersion, v0.1.0)
#   IMAGE_REGISTRY  prefix such as ghcr.io/flinkjob/ (default none: flinkjob-manager:TAG)
#   PLATFORM        os/arch (default linux/amd64)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "${REPO_ROOT}/hack/cluster/lib.sh"

chart_version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "${REPO_ROOT}/charts/flinkjob-operator/Chart.yaml" 2>/dev/null)"
IMAGE_TAG="${IMAGE_TAG:-${chart_version:-v0.1.0}}"
IMAGE_REGISTRY="${IMAGE_REGISTRY:-}"
PLATFORM="${PLATFORM:-linux/amd64}"
GOOS_="${PLATFORM%/*}"
GOARCH_="${PLATFORM#*/}"
STAGE="${IMAGES_DIR}/${GOOS_}_${GOARCH_}"

MANAGER_IMAGE="${IMAGE_REGISTRY}flinkjob-manager:${IMAGE_TAG}"
WORKER_IMAGE="${IMAGE_REGISTRY}flinkjob-worker:${IMAGE_TAG}"

cmd_build() {
	build_tools
	mkdir -p "${STAGE}"
	log "go build ./cmd/manager ./cmd/worker ./cmd/flinkjob (${PLATFORM})"
	# Same flags as the Dockerfile's build stage.
	(cd "${REPO_ROOT}" && CGO_ENABLED=0 GOOS="${GOOS_}" GOARCH="${GOARCH_}" \
		go build -trimpath -ldflags "-s -w" -o "${STAGE}/" ./cmd/manager ./cmd/worker ./cmd/flinkjob)
	local common=(-platform "${PLATFORM}" -user 65532:65532 -workdir /home/nonroot -nonroot-base
		-env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
		-label "org.opencontainers.image.source=https://github.com/flinkjob/flinkjob"
		-label "org.opencontainers.image.version=${IMAGE_TAG}")
	"${BIN_DIR}/imgtool" -o "${IMAGES_DIR}/flinkjob-manager.tar" -t "${MANAGER_IMAGE}" -entrypoint /manager \
		"${common[@]}" "${STAGE}/manager:/manager"
	"${BIN_DIR}/imgtool" -o "${IMAGES_DIR}/flinkjob-worker.tar" -t "${WORKER_IMAGE}" -entrypoint /worker \
		"${common[@]}" "${STAGE}/worker:/worker" "${STAGE}/flinkjob:/flinkjob"
	log "images: ${MANAGER_IMAGE} ${WORKER_IMAGE} in ${IMAGES_DIR}/"
}

cmd_import() {
	[[ -S "${CONTAINERD_SOCK}" ]] || die "the local cluster is not up (no ${CONTAINERD_SOCK}); run hack/cluster/up.sh"
	[[ -f "${IMAGES_DIR}/flinkjob-manager.tar" && -f "${IMAGES_DIR}/flinkjob-worker.tar" ]] || cmd_build
	local t
	for t in "${IMAGES_DIR}/flinkjob-manager.tar" "${IMAGES_DIR}/flinkjob-worker.tar"; do
		ctr_k8s images import --platform "${PLATFORM}" "${t}" >/dev/null
	done
	ctr_k8s images ls -q | grep -E '/flinkjob-(manager|worker):' >&2
	log "imported into the cluster's containerd (use imagePullPolicy IfNotPresent or Never)"
}

case "${1:-build}" in
build) cmd_build ;;
import) cmd_import ;;
*)
	echo "usage: $0 [build|import]" >&2
	exit 2
	;;
esac
