#!/usr/bin/env bash
# hack/envtest.sh: the kube-apiserver and etcd that envtest runs, built from
# the Go module proxy (hack/tools/k8s and hack/tools/etcd pin the versions)
# into bin/k8s/<version>/, so tests need no downloaded release.
#
#   hack/envtest.sh install   build what is missing (a few minutes cold, then cached)
#   hack/envtest.sh path      print the KUBEBUILDER_ASSETS directory
#   hack/envtest.sh binaries NAME...   also build other Kubernetes commands
#                             (kube-controller-manager, kube-scheduler, kubelet,
#                             kube-proxy) for the local cluster
#
# Where the internet is reachable, `setup-envtest use 1.37.x -p path` gives
# the same binaries prebuilt; point KUBEBUILDER_ASSETS at its output instead.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
K8S_VERSION="$(sed -n 's/^require k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "${REPO_ROOT}/hack/tools/k8s/go.mod")"
ETCD_VERSION="$(sed -n 's/^require go.etcd.io\/etcd\/server\/v3 \(v[0-9.]*\)$/\1/p' "${REPO_ROOT}/hack/tools/etcd/go.mod")"
OUT="${REPO_ROOT}/bin/k8s/${K8S_VERSION}"

log() { echo "envtest.sh: $*" >&2; }

build_k8s() {
	local name=$1
	[[ -x "${OUT}/${name}" ]] && return 0
	local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
	local ldf="-s -w -X k8s.io/component-base/version.gitVersion=${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor} -X k8s.io/component-base/version.gitTreeState=clean"
	log "building ${name} ${K8S_VERSION} (first time only; minutes)"
	mkdir -p "${OUT}"
	(cd "${REPO_ROOT}/hack/tools/k8s" && CGO_ENABLED=0 go build -trimpath -ldflags "${ldf}" -o "${OUT}/${name}.tmp" "k8s.io/kubernetes/cmd/${name}")
	mv "${OUT}/${name}.tmp" "${OUT}/${name}"
}

build_etcd() {
	[[ -x "${OUT}/etcd" && -f "${OUT}/.etcd-${ETCD_VERSION}" ]] && return 0
	log "building etcd ${ETCD_VERSION}"
	mkdir -p "${OUT}"
	(cd "${REPO_ROOT}/hack/tools/etcd" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${OUT}/etcd.tmp" .)
	mv "${OUT}/etcd.tmp" "${OUT}/etcd"
	touch "${OUT}/.etcd-${ETCD_VERSION}"
}

case "${1:-}" in
install)
	build_etcd
	build_k8s kube-apiserver
	;;
path) echo "${OUT}" ;;
binaries)
	shift
	build_etcd
	for b in "$@"; do build_k8s "$b"; done
	;;
*)
	echo "usage: $0 install|path|binaries NAME..." >&2
	exit 2
	;;
esac
