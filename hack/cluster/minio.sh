#!/usr/bin/env bash
# hack/cluster/minio.sh: MinIO for the local cluster's pods.
#
#   hack/cluster/minio.sh up     start bin/minio (hack/minio.sh builds it) on the
#                                node IP (the pod bridge's gateway) and publish it in
#                                the cluster as Service minio.default.svc:9000
#   hack/cluster/minio.sh down   stop it and delete its data
#   hack/cluster/minio.sh env    print MINIO_ENDPOINT / MINIO_ACCESS_KEY / MINIO_SECRET_KEY
#                                (for tools on the host)
#
# It listens on ${NODE_IP}:${CLUSTER_MINIO_PORT} (default 10.244.0.1:19400),
# an address of the host that only the host and the pods reach: nothing
# listens on the host's public interfaces. The console is off. Buckets in
# CLUSTER_MINIO_BUCKETS (default "flinkjob") are created. Credentials:
# CLUSTER_MINIO_USER / CLUSTER_MINIO_PASSWORD (default flinkjob /
# flinkjob-secret); hack/cluster/minio-secret.sh NAMESPACE puts them in a
# Secret. Idempotent; down.sh runs `minio.sh down`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MINIO_DIR="${CLUSTER_DIR}/minio"
ENDPOINT="${NODE_IP}:${CLUSTER_MINIO_PORT}"
BUCKETS="${CLUSTER_MINIO_BUCKETS:-flinkjob}"

live() { curl -fs -o /dev/null --max-time 2 "http://${ENDPOINT}/minio/health/live"; }

cmd_env() {
	echo "export MINIO_ENDPOINT=${ENDPOINT}"
	echo "export MINIO_ACCESS_KEY=${CLUSTER_MINIO_USER}"
	echo "export MINIO_SECRET_KEY=${CLUSTER_MINIO_PASSWORD}"
}

cmd_up() {
	[[ "$(ip -4 addr show dev "${BRIDGE}" 2>/dev/null)" == *" ${NODE_IP}/"* ]] ||
		die "the cluster is not up (no ${NODE_IP} on ${BRIDGE}); run hack/cluster/up.sh first"
	"${REPO_ROOT}/hack/minio.sh" install >/dev/null
	if ! running minio; then
		live && die "${ENDPOINT} already serves a MinIO not started by this script; set CLUSTER_MINIO_PORT"
		mkdir -p "${MINIO_DIR}/data"
		MINIO_ROOT_USER="${CLUSTER_MINIO_USER}" MINIO_ROOT_PASSWORD="${CLUSTER_MINIO_PASSWORD}" \
			MINIO_BROWSER=off MINIO_UPDATE=off \
			start minio "${BIN_DIR}/minio" server --quiet --address "${ENDPOINT}" \
			--console-address "127.0.0.1:$((CLUSTER_MINIO_PORT + 1))" "${MINIO_DIR}/data"
	fi
	wait_for minio 30 live
	local b code
	for b in ${BUCKETS}; do
		code="$(curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" \
			--user "${CLUSTER_MINIO_USER}:${CLUSTER_MINIO_PASSWORD}" -X PUT "http://${ENDPOINT}/${b}")"
		[[ "${code}" == 200 || "${code}" == 409 ]] || die "creating bucket ${b}: HTTP ${code}"
	done
	# A selector-less Service so pods can say minio.default.svc:9000.
	kc apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata: {name: minio, namespace: default, labels: {app.kubernetes.io/name: minio}}
spec:
  ports: [{name: s3, port: 9000, targetPort: ${CLUSTER_MINIO_PORT}, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: minio-host
  namespace: default
  labels: {kubernetes.io/service-name: minio, endpointslice.kubernetes.io/managed-by: flinkjob-local-cluster}
addressType: IPv4
endpoints: [{addresses: ["${NODE_IP}"], conditions: {ready: true}}]
ports: [{name: s3, port: ${CLUSTER_MINIO_PORT}, protocol: TCP}]
YAML
	log "MinIO on http://${ENDPOINT} (in the cluster: minio.default.svc:9000), buckets: ${BUCKETS}"
	cmd_env
}

cmd_down() {
	stop minio
	rm -rf "${MINIO_DIR}"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
env) cmd_env ;;
*)
	echo "usage: $0 up|down|env" >&2
	exit 2
	;;
esac
