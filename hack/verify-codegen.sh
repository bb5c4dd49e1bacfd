#!/usr/bin/env bash
# hack/verify-codegen.sh: regenerate deep copy code and CRDs and fail when the
# result differs from what is in the work tree. It compares against a snapshot
# taken before regenerating (not against git), so it works on untracked files
# too, and it puts the snapshot back afterwards: the tree is left as it was.
#
# Run through make: make -f Makefile.codegen.mk verify-codegen
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${REPO_ROOT}"
MAKE="${MAKE:-make}"
CODEGEN_MAKEFILE="${CODEGEN_MAKEFILE:-Makefile.codegen.mk}"

# The generated files: every zz_generated.deepcopy.go under the object paths
# every CRD under config/crd/bases, the RBAC role and the webhook manifest.
generated_files() {
	{
		find api engine/spec -name zz_generated.deepcopy.go -type f 2>/dev/null || true
		find config/crd/bases -name '*.yaml' -type f 2>/dev/null || true
		ls config/rbac/role.yaml config/webhook/manifests.yaml 2>/dev/null || true
		find charts/flinkjob-operator/crds charts/flinkjob-operator/rbac -name '*.yaml' -type f 2>/dev/null || true
	} | LC_ALL=C sort
}

tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
mkdir -p "${tmp}/before" "${tmp}/after"

snapshot() { # snapshot DIR
	local f
	while IFS= read -r f; do
		mkdir -p "$1/$(dirname "${f}")"
		cp -p "${f}" "$1/${f}"
	done < <(generated_files)
}

snapshot "${tmp}/before"
restore() {
	local f
	while IFS= read -r f; do rm -f "${f}"; done < <(generated_files)
	(cd "${tmp}/before" && find . -type f) | while IFS= read -r f; do
		mkdir -p "$(dirname "${f}")"
		cp -p "${tmp}/before/${f}" "${f}"
	done
}

if ! "${MAKE}" --no-print-directory -f "${CODEGEN_MAKEFILE}" generate manifests >"${tmp}/make.log" 2>&1; then
	cat "${tmp}/make.log" >&2
	restore
	echo "verify-codegen: code generation failed (see above)" >&2
	exit 1
fi
snapshot "${tmp}/after"
restore

if ! diff -ruN "${tmp}/before" "${tmp}/after" >"${tmp}/diff"; then
	echo "verify-codegen: generated files are out of date:" >&2
	diff -rqN "${tmp}/before" "${tmp}/after" | awk '{print "  " $2}' | sed "s#${tmp}/before/##" >&2 || true
	sed "s#${tmp}/before/##; s#${tmp}/after/##" "${tmp}/diff" | head -n 200 >&2
	echo >&2
	echo "verify-codegen: run 'make -f Makefile.codegen.mk generate manifests' (or 'make generate manifests') and commit the result." >&2
	exit 1
fi
echo "verify-codegen: generated files are up to date"
