#!/usr/bin/env bash
# hack/tools.sh: install pinned Go tools into <repo>/bin.
#
#   hack/tools.sh controller-gen   install bin/controller-gen at CONTROLLER_GEN_VERSION
#                                  (skipped when bin/controller-gen already reports it)
#   hack/tools.sh version NAME     print the pinned version of a tool
#
# TOOLS_BIN_DIR overrides the install directory (default <repo>/bin).
# Tools are built from source with `go install module@version` through the Go
# module proxy, so every machine (developer, CI) gets the same binary without
# downloading prebuilt releases. Bump a version deliberately, then run
# `make -f Makefile.codegen.mk generate manifests` and commit the result.
set -euo pipefail

# controller-gen v0.23.0 builds with Go 1.26 and is compiled against
# k8s.io/* v0.37.x, the Kubernetes version this module uses.
CONTROLLER_GEN_VERSION="${CONTROLLER_GEN_VERSION:-v0.23.0}"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="${TOOLS_BIN_DIR:-${REPO_ROOT}/bin}"

log() { echo "tools.sh: $*" >&2; }

install_controller_gen() {
	local bin="${BIN_DIR}/controller-gen"
	if [[ -x "${bin}" ]] && "${bin}" --version 2>/dev/null | grep -qx "Version: ${CONTROLLER_GEN_VERSION}"; then
		return 0
	fi
	log "installing controller-gen ${CONTROLLER_GEN_VERSION} into ${BIN_DIR}"
	mkdir -p "${BIN_DIR}"
	# Outside the repo's module so its go.mod is neither read nor changed.
	(cd "${BIN_DIR}" && GOBIN="${BIN_DIR}" \
		go install "sigs.k8s.io/controller-tools/cmd/controller-gen@${CONTROLLER_GEN_VERSION}")
	"${bin}" --version | grep -qx "Version: ${CONTROLLER_GEN_VERSION}" || {
		log "bin/controller-gen does not report ${CONTROLLER_GEN_VERSION}"
		exit 1
	}
}

case "${1:-}" in
controller-gen) install_controller_gen ;;
version)
	case "${2:-}" in
	controller-gen) echo "${CONTROLLER_GEN_VERSION}" ;;
	*) log "unknown tool: ${2:-}"; exit 2 ;;
	esac
	;;
*)
	sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
