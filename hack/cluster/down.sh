#!/usr/bin/env bash
# hack/cluster/down.sh: stop the local cluster started by up.sh and delete
# its state (.cluster/). Processes are stopped by their PID files only;
# cached binaries and images in bin/ stay. Safe to run on a stopped or
# half-started cluster, and twice.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ ${EUID} -eq 0 ]] || die "needs root (it stops root processes and removes mounts)"
if [[ ! -d "${CLUSTER_DIR}" ]]; then
	log "no cluster state in ${CLUSTER_DIR}; nothing to do"
	exit 0
fi

"${REPO_ROOT}/hack/cluster/minio.sh" down

# The node and the controllers first, so nothing restarts pods while they go.
stop kube-proxy kube-scheduler kube-controller-manager kubelet

# Pods: stop and remove every sandbox through the CRI, so CNI releases the
# addresses and iptables rules and the shims exit.
if running containerd && [[ -x "${BIN_DIR}/cri-rmp" ]]; then
	"${BIN_DIR}/cri-rmp" "unix://${CONTAINERD_SOCK}" >/dev/null || log "warning: cri-rmp failed; cleaning up with runc"
fi
# Safety net (containerd died, or cri-rmp failed): containers left in our
# runc root are killed and deleted, then the shims of our containerd.
runc_root="${CLUSTER_DIR}/containerd/runc/k8s.io"
if [[ -d "${runc_root}" ]] && command -v runc >/dev/null && running node-ns; then
	for id in $($(node_exec) runc --root "${runc_root}" list -q 2>/dev/null); do
		$(node_exec) runc --root "${runc_root}" delete --force "${id}" >/dev/null 2>&1 || true
	done
fi
for p in /proc/[0-9]*; do
	cmd="$(tr '\0' ' ' <"${p}/cmdline" 2>/dev/null)" || continue
	if [[ "${cmd}" == *containerd-shim*"-address ${CONTAINERD_SOCK} "* ]]; then
		kill -9 "${p#/proc/}" 2>/dev/null && log "killed leftover shim ${p#/proc/}"
	fi
done

# containerd, then the node's mount namespace (its mounts go with it), then
# the API server and etcd. The API server's graceful shutdown waits up to a
# minute for connections of pods that are gone; its state is about to be
# deleted, so it gets 2 s.
stop containerd
stop node-ns
STOP_GRACE=2 stop kube-apiserver
stop etcd

# kube-proxy's iptables rules; the kubelet's own chains if the first up
# found none (so another cluster's are left alone); the pod bridge (the
# pods' veths went with their network namespaces).
[[ -x "${K8S_BIN}/kube-proxy" ]] && "${K8S_BIN}/kube-proxy" --cleanup >/dev/null 2>&1
created="$(cat "${RUN}/host-created" 2>/dev/null)"
if [[ "${created}" == *kubelet-iptables* ]]; then
	for ipt in iptables ip6tables; do
		command -v "${ipt}" >/dev/null || continue
		for c in INPUT OUTPUT; do
			while "${ipt}" -w -t filter -D "${c}" -j KUBE-FIREWALL 2>/dev/null; do :; done
		done
		for tc in filter:KUBE-FIREWALL filter:KUBE-KUBELET-CANARY mangle:KUBE-IPTABLES-HINT \
			mangle:KUBE-KUBELET-CANARY nat:KUBE-KUBELET-CANARY; do
			"${ipt}" -w -t "${tc%%:*}" -F "${tc#*:}" 2>/dev/null && "${ipt}" -w -t "${tc%%:*}" -X "${tc#*:}" 2>/dev/null
		done
	done
fi
ip link del "${BRIDGE}" 2>/dev/null && log "deleted bridge ${BRIDGE}"

# Host mounts under CLUSTER_DIR, should any be left, deepest first.
awk '{print $5}' /proc/self/mountinfo | grep -F "${CLUSTER_DIR}/" | sort -r | while read -r m; do
	umount "${m}" 2>/dev/null || umount -l "${m}" 2>/dev/null || log "warning: could not unmount ${m}"
done

# Kernel settings back to what they were before the first up.
if [[ -f "${RUN}/sysctl.orig" ]]; then
	while IFS='=' read -r k v; do
		[[ -n "${k}" ]] && sysctl -qw "${k}=${v}" 2>/dev/null
	done <"${RUN}/sysctl.orig"
	log "restored $(wc -l <"${RUN}/sysctl.orig") kernel settings"
fi

# The pods' cgroups (the kubelet makes them outside any namespace), if the
# first up created them.
if [[ "${created}" == *kubepods-cgroups* ]]; then
	for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		[[ -d "${d}" ]] && find "${d}" -depth -type d -exec rmdir {} + 2>/dev/null
	done
fi

# containerd 1.6 puts shim sockets in /run/containerd/s whatever its state dir.
[[ "${created}" == */run/containerd* ]] && rmdir /run/containerd/s /run/containerd 2>/dev/null

rm -rf "${CLUSTER_DIR}" || die "could not remove ${CLUSTER_DIR}"
log "cluster down; state removed"
