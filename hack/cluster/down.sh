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

# The node first, so nothing restarts pods while they go.
for c in kube-proxy kube-scheduler kube-controller-manager kubelet; do
	stop "${c}"
done

# Pods: stop and remove every sandbox through the CRI, so CNI releases the
# addresses and iptables rules and the shims exit.
if running containerd && [[ -x "${BIN_DIR}/cri-rmp" ]]; then
	"${BIN_DIR}/cri-rmp" "unix://${CONTAINERD_SOCK}" >/dev/null || log "warning: cri-rmp failed; cleaning up with runc"
fi
# Safety net (containerd died, or cri-rmp failed): containers left in our
# runc root are killed and deleted, then the shims of our containerd.
runc_root="${CLUSTER_DIR}/containerd/runc/k8s.io"
if [[ -d "${runc_root}" ]] && command -v runc >/dev/null; then
	for id in $(runc --root "${runc_root}" list -q 2>/dev/null); do
		runc --root "${runc_root}" delete --force "${id}" >/dev/null 2>&1 || true
	done
fi
for p in /proc/[0-9]*; do
	cmd="$(tr '\0' ' ' <"${p}/cmdline" 2>/dev/null)" || continue
	if [[ "${cmd}" == *containerd-shim*"-address ${CONTAINERD_SOCK} "* ]]; then
		kill -9 "${p#/proc/}" 2>/dev/null && log "killed leftover shim ${p#/proc/}"
	fi
done

stop containerd
stop kube-apiserver
stop etcd

# kube-proxy's iptables rules, then the pod bridge (the pods' veths went
# with their network namespaces).
[[ -x "${K8S_BIN}/kube-proxy" ]] && "${K8S_BIN}/kube-proxy" --cleanup >/dev/null 2>&1
ip link del "${BRIDGE}" 2>/dev/null && log "deleted bridge ${BRIDGE}"

# Mounts under CLUSTER_DIR (pod volumes, rootfs overlays, netns, shm), deepest first.
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

# The kubelet links container logs from /var/log/containers and makes the
# pod cgroups (neither configurable): remove our links, and the directories
# if the first up created them.
created="$(cat "${RUN}/host-created" 2>/dev/null)"
if [[ -d /var/log/containers ]]; then
	find /var/log/containers -maxdepth 1 -type l -lname "${CLUSTER_DIR}/*" -delete 2>/dev/null
	[[ "${created}" == *"/var/log/containers"* ]] && rmdir /var/log/containers 2>/dev/null
fi
if [[ "${created}" == *kubepods-cgroups* ]]; then
	for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		[[ -d "${d}" ]] && find "${d}" -depth -type d -exec rmdir {} + 2>/dev/null
	done
fi

rm -rf "${CLUSTER_DIR}" || die "could not remove ${CLUSTER_DIR}"
log "cluster down; state removed"
