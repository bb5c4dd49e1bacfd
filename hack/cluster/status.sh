#!/usr/bin/env bash
# hack/cluster/status.sh: the local cluster's processes, node and pods.
# Exit code 0 when every component runs and the node is Ready.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ ! -d "${CLUSTER_DIR}" ]]; then
	echo "no cluster (${CLUSTER_DIR} absent)"
	exit 1
fi
ok=0
for c in containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy minio; do
	if pid="$(pid_of "${c}")"; then
		printf '%-24s running (pid %s)\n' "${c}" "${pid}"
	elif [[ "${c}" != minio ]]; then
		printf '%-24s stopped\n' "${c}"
		ok=1
	fi
done
if running kube-apiserver; then
	echo
	kc get nodes -o wide 2>&1 || ok=1
	kc wait --for=condition=Ready "node/${NODE_NAME}" --timeout=1s >/dev/null 2>&1 || ok=1
	echo
	kc get pods -A -o wide 2>&1
fi
echo
echo "export KUBECONFIG=${KUBECONFIG_OUT}"
exit "${ok}"
