#!/usr/bin/env bash
# hack/cluster/smoke.sh: prove the local cluster runs flinkjob workloads.
# Needs a running cluster (up.sh) with the images imported (hack/images.sh
# import); starts the cluster's MinIO (minio.sh up) if it is not running.
#
#  0. the manager image starts /manager as its non-root user;
#  1. a pod of the worker image runs `/flinkjob run -f` on a manifest
#     mounted from a ConfigMap (the in-process engine);
#  2. a two-stage STREAMING job as the operator would run it: two worker
#     pods (stage 0 and stage 1) behind a headless Service, the first
#     sending its records to the second through the gRPC exchange at
#     s1-0.smoke-workers.<ns>.svc (pod-to-pod DNS), the second writing
#     its output to MinIO (minio.default.svc:9000) with credentials from
#     the Secret minio-secret.sh creates, then a finalize pod;
#  3. the output objects are read back from MinIO on the host.
#
# Everything lives in namespace SMOKE_NAMESPACE (default flinkjob-smoke),
# deleted first and (unless KEEP=1) at the end.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap 'echo "smoke.sh: failed at line ${LINENO}" >&2' ERR

NS="${SMOKE_NAMESPACE:-flinkjob-smoke}"
IMAGE="${WORKER_IMAGE:-flinkjob-worker:v0.1.0}"
MANAGER_IMAGE="${MANAGER_IMAGE:-flinkjob-manager:v0.1.0}"
RUN_ID="$(date +%s)"
PREFIX="smoke/${RUN_ID}"
BUCKET=flinkjob

running kube-apiserver || die "the cluster is not up; run hack/cluster/up.sh"
grep -qE "(^|/)${IMAGE}\$" <<<"$(ctr_k8s images ls -q)" || die "image ${IMAGE} not in the cluster; run hack/images.sh import"
running minio || "${REPO_ROOT}/hack/cluster/minio.sh" up >/dev/null

# securityContext like the operator's worker pods (restricted Pod Security).
pod_security='
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    seccompProfile: {type: RuntimeDefault}'
ctr_security='
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {drop: [ALL]}'

kc delete namespace "${NS}" --ignore-not-found --wait=true >/dev/null
"${REPO_ROOT}/hack/cluster/minio-secret.sh" "${NS}"

# wait_pod NAME: until the pod Succeeded (or fail with its logs).
wait_pod() {
	local phase i
	for i in $(seq 1 300); do
		phase="$(kc -n "${NS}" get pod "$1" -o jsonpath='{.status.phase}' 2>/dev/null || true)"
		case "${phase}" in
		Succeeded) return 0 ;;
		Failed)
			kc -n "${NS}" logs "$1" >&2 || true
			die "pod $1 failed"
			;;
		esac
		sleep 0.5
	done
	kc -n "${NS}" describe pod "$1" >&2 || true
	kc -n "${NS}" logs "$1" >&2 || true
	die "pod $1 did not finish in 150s (phase ${phase})"
}

# --- 0. the manager image starts as its non-root user ----------------------
# No runAsUser: the kubelet checks that the image's USER is non-root.
kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: manager-help, namespace: ${NS}}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: manager
    image: ${MANAGER_IMAGE}
    imagePullPolicy: IfNotPresent
    args: [--help]${ctr_security}
EOF
wait_pod manager-help
grep -q -- "-worker-image" <<<"$(kc -n "${NS}" logs manager-help)" || die "0. /manager --help printed no usage"
log "0. ok: ${MANAGER_IMAGE} runs /manager as a non-root user"

# --- 1. /flinkjob run in a pod ---------------------------------------------
kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: cli-job, namespace: ${NS}}
data:
  job.yaml: |
    apiVersion: flinkjob.io/v1alpha1
    kind: FlinkJob
    metadata: {name: smoke-cli}
    spec:
      runtimeMode: BATCH
      parallelism: 2
      steps:
        - name: gen
          source:
            datagen: {value: "{'k': seq % 3, 'n': 1}", count: 300}
        - name: sums
          keyBy: record.k
          reduce: "{'k': acc.k, 'n': acc.n + record.n}"
        - name: out
          sink:
            print: {prefix: "count: "}
---
apiVersion: v1
kind: Pod
metadata: {name: cli, namespace: ${NS}}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false${pod_security}
  containers:
  - name: flinkjob
    image: ${IMAGE}
    imagePullPolicy: IfNotPresent
    command: [/flinkjob, run, -f, /etc/flinkjob/job.yaml]${ctr_security}
    volumeMounts: [{name: job, mountPath: /etc/flinkjob}, {name: tmp, mountPath: /tmp}]
  volumes:
  - {name: job, configMap: {name: cli-job}}
  - {name: tmp, emptyDir: {}}
EOF
wait_pod cli
out="$(kc -n "${NS}" logs cli)"
for k in 0 1 2; do
	grep -qE "count: .*\"k\": ?${k}[,}].*\"n\": ?100[,}]" <<<"${out}" ||
		{ echo "${out}" >&2; die "1. /flinkjob run: no count 100 for key ${k}"; }
done
log "1. ok: /flinkjob run in a pod (worker image, manifest from a ConfigMap)"

# --- 2. two worker pods, headless Service, exchange over DNS, sink to MinIO --
svc=smoke-workers
worker_pod() { # NAME ARGS_JSON [hostname]
	cat <<EOF
---
apiVersion: v1
kind: Pod
metadata:
  name: $1
  namespace: ${NS}
  labels: {app: smoke-worker}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  ${3:+hostname: $3}
  ${3:+subdomain: ${svc}}${pod_security}
  containers:
  - name: worker
    image: ${IMAGE}
    imagePullPolicy: IfNotPresent
    args: $2
    env:
    - {name: FLINKJOB_JOB_FILE, value: /etc/flinkjob/job.json}
    - {name: FLINKJOB_MODE, value: STREAMING}
    - {name: FLINKJOB_TERMINATION_LOG, value: /dev/termination-log}
    - {name: FLINKJOB_S3_ENDPOINT, value: minio.default.svc:9000}
    - {name: FLINKJOB_S3_ACCESS_KEY, valueFrom: {secretKeyRef: {name: minio-credentials, key: accessKey}}}
    - {name: FLINKJOB_S3_SECRET_KEY, valueFrom: {secretKeyRef: {name: minio-credentials, key: secretKey}}}
    ports: [{name: exchange, containerPort: 7000}, {name: http, containerPort: 8080}]${ctr_security}
    volumeMounts: [{name: job, mountPath: /etc/flinkjob, readOnly: true}, {name: tmp, mountPath: /tmp}]
  volumes:
  - {name: job, configMap: {name: stream-job}}
  - {name: tmp, emptyDir: {}}
EOF
}
common_args='"--attempt", "0", "--listen", ":7000", "--http", ":8080", "--peer-pattern", "s{stage}-{index}.'"${svc}.${NS}"'.svc:7000"'
{
	cat <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: stream-job, namespace: ${NS}}
data:
  job.json: |
    {"runtimeMode": "STREAMING", "parallelism": 1, "steps": [
      {"name": "gen", "source": {"datagen": {"value": "{'k': seq % 5, 'n': 1}", "count": 1000}}},
      {"name": "sums", "keyBy": "record.k", "reduce": "{'k': acc.k, 'n': acc.n + record.n}"},
      {"name": "out", "sink": {"files": {"path": "s3://${BUCKET}/${PREFIX}/", "format": "jsonl"}}}]}
---
apiVersion: v1
kind: Service
metadata: {name: ${svc}, namespace: ${NS}}
spec:
  clusterIP: None
  selector: {app: smoke-worker}
  publishNotReadyAddresses: true
  ports: [{name: exchange, port: 7000}]
EOF
	worker_pod smoke-s1-0 "[\"--stage\", \"1\", \"--index\", \"0\", ${common_args}]" s1-0
	worker_pod smoke-s0-0 "[\"--stage\", \"0\", \"--index\", \"0\", ${common_args}]" s0-0
} | kc apply -f - >/dev/null
wait_pod smoke-s0-0
wait_pod smoke-s1-0
worker_pod smoke-finalize '["--finalize", "--http", ""]' | kc apply -f - >/dev/null
wait_pod smoke-finalize
for p in smoke-s0-0 smoke-s1-0; do
	log "   ${p}: $(kc -n "${NS}" get pod "${p}" -o jsonpath='{.status.containerStatuses[0].state.terminated.message}')"
done
log "2. ok: two worker pods exchanged records via s1-0.${svc}.${NS}.svc and wrote to MinIO"

# --- 3. the output, read back from MinIO on the host ---------------------
s3() { curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user "${CLUSTER_MINIO_USER}:${CLUSTER_MINIO_PASSWORD}" "http://${NODE_IP}:${CLUSTER_MINIO_PORT}/$1"; }
# (curl's SigV4 signs the query as given: the prefix must be URL-encoded.)
keys="$(s3 "${BUCKET}?list-type=2&prefix=${PREFIX//\//%2F}%2F" | { grep -o '<Key>[^<]*</Key>' || true; } | sed 's/<[^>]*>//g')"
printf '    %s\n' "${keys//$'\n'/$'\n'    }" >&2
grep -q "_SUCCESS" <<<"${keys}" || die "3. no _SUCCESS under s3://${BUCKET}/${PREFIX}/"
final=""
for k in ${keys}; do
	[[ "${k}" == *_SUCCESS || "${k}" == */ ]] && continue
	final+="$(s3 "${BUCKET}/${k}")"$'\n'
done
# The rolling reduce's last update per key is the final count: 200 each.
for k in 0 1 2 3 4; do
	grep -qE "\"k\": ?${k}[,}].*\"n\": ?200[,}]" <<<"${final}" ||
		{ echo "${final}" | tail -20 >&2; die "3. no final count 200 for key ${k} in MinIO"; }
done
log "3. ok: s3://${BUCKET}/${PREFIX}/ holds the job's output (5 keys x 200) and _SUCCESS"

[[ "${KEEP:-0}" == 1 ]] || kc delete namespace "${NS}" --wait=false >/dev/null
log "smoke test passed"
