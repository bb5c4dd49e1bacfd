#!/usr/bin/env bash
# hack/chart-check.sh: install the pinned helm into bin/ (from the Go module
# proxy) and check the chart: helm lint, helm template with default values
# and with cert-manager and no webhook, the chart's CRDs equal config/crd, and
# its RBAC rules equal controller-gen's role.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
HELM="${REPO_ROOT}/bin/helm"
CHART="${REPO_ROOT}/charts/flinkjob-operator"

# A go-installed helm reports only its minor version, so a stamp file
# records which exact version bin/helm is.
STAMP="${REPO_ROOT}/bin/.helm.version"
if ! [[ -x "${HELM}" && -f "${STAMP}" && "$(cat "${STAMP}")" == "${HELM_VERSION}" ]]; then
	echo "chart-check.sh: installing helm ${HELM_VERSION} into bin/" >&2
	mkdir -p "${REPO_ROOT}/bin"
	(cd "${REPO_ROOT}/bin" && GOBIN="${REPO_ROOT}/bin" go install "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}")
	echo "${HELM_VERSION}" > "${STAMP}"
fi

fail() { echo "chart-check.sh: $*" >&2; exit 1; }

"${HELM}" lint --strict "${CHART}"
out="$(mktemp -d)"
trap 'rm -rf "${out}"' EXIT
"${HELM}" template test "${CHART}" --namespace flinkjob-system --include-crds > "${out}/default.yaml"
"${HELM}" template test "${CHART}" --namespace flinkjob-system --set webhook.certManager.enabled=true \
	--set-json 'webhook.certManager.issuerRef={"name":"selfsigned","kind":"Issuer"}' > "${out}/certmanager.yaml"
"${HELM}" template test "${CHART}" --set webhook.enabled=false --set metrics.enabled=false > "${out}/minimal.yaml"
grep -q "kind: ValidatingWebhookConfiguration" "${out}/default.yaml" || fail "default render has no webhook configuration"
grep -q "cert-manager.io/inject-ca-from" "${out}/certmanager.yaml" || fail "cert-manager render has no CA injection"
! grep -q "kind: ValidatingWebhookConfiguration" "${out}/minimal.yaml" || fail "webhook.enabled=false still renders a webhook"
grep -A3 "issuerRef:" "${out}/certmanager.yaml" | grep -q "name: selfsigned" || fail "cert-manager render has no issuerRef.name"
# cert-manager refuses a Certificate without issuerRef.name: the chart must
# refuse to render one, naming the value to set.
if msg="$("${HELM}" template test "${CHART}" --set webhook.certManager.enabled=true 2>&1)"; then
	fail "webhook.certManager.enabled without issuerRef.name rendered a Certificate cert-manager refuses"
fi
grep -q "webhook.certManager.issuerRef.name is required" <<<"${msg}" || fail "certManager without issuerRef.name: unclear error: ${msg}"
if "${HELM}" template test "${CHART}" --set replicaCount=0 >/dev/null 2>&1; then
	fail "values.schema.json accepted replicaCount=0"
fi

for f in "${REPO_ROOT}"/config/crd/bases/*.yaml; do
	cmp -s "$f" "${CHART}/crds/$(basename "$f")" || fail "chart CRD $(basename "$f") differs from config/crd/bases (run make manifests)"
done
[[ "$(ls "${CHART}/crds" | wc -l)" == "$(ls "${REPO_ROOT}"/config/crd/bases/*.yaml | wc -l)" ]] || fail "chart has CRDs that config/crd/bases does not"
cmp -s "${REPO_ROOT}/config/rbac/role.yaml" "${CHART}/rbac/role.yaml" || fail "chart RBAC differs from config/rbac/role.yaml (run make manifests)"
kubectl kustomize "${REPO_ROOT}/config/default" > "${out}/kustomize.yaml" || fail "config/default does not build with kustomize"
echo "chart-check.sh: OK"
