#!/usr/bin/env bash
# hack/cluster/minio-secret.sh NAMESPACE [NAME]: a Secret (default name
# minio-credentials) with the local cluster MinIO's credentials, in the keys
# a FlinkJob's spec.storage.s3.credentialsSecretRef reads by default
# (accessKey, secretKey), plus endpoint (minio.default.svc:9000, for
# spec.storage.s3.endpoint). Creates the namespace if missing; applying
# again updates the Secret.
#
#   hack/cluster/minio-secret.sh demo
#   # spec.storage.s3: {endpoint: minio.default.svc:9000, bucket: flinkjob,
#   #                   credentialsSecretRef: {name: minio-credentials}}
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ns="${1:?usage: $0 NAMESPACE [SECRET_NAME]}"
name="${2:-minio-credentials}"
kc create namespace "${ns}" --dry-run=client -o yaml | kc apply -f - >/dev/null
kc -n "${ns}" create secret generic "${name}" \
	--from-literal=accessKey="${CLUSTER_MINIO_USER}" \
	--from-literal=secretKey="${CLUSTER_MINIO_PASSWORD}" \
	--from-literal=endpoint="minio.default.svc:9000" \
	--dry-run=client -o yaml | kc apply -f - >/dev/null
log "secret ${ns}/${name}: accessKey, secretKey, endpoint"
