# shellcheck shell=bash disable=SC2034
# hack/cluster/lib.sh: settings and helpers shared by the local-cluster
# scripts (sourced, not run). Everything the cluster writes lives under
# CLUSTER_DIR; binaries and images are cached under bin/.
#
# Environment (all optional):
#   CLUSTER_DIR        state, config, PKI, logs, PID files (default <repo>/.cluster)
#   CLUSTER_NODE_NAME  the node's name (default: hostname, lower case)
#   KUBECTL            kubectl to use (default bin/k8s/<version>/kubectl if built, else the one on PATH)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER_DIR="${CLUSTER_DIR:-${REPO_ROOT}/.cluster}"
BIN_DIR="${REPO_ROOT}/bin"
K8S_BIN="$("${REPO_ROOT}/hack/envtest.sh" path)"
K8S_VERSION="$(basename "${K8S_BIN}")"
IMAGES_DIR="${BIN_DIR}/images"
CLUSTER_IMAGES_DIR="${IMAGES_DIR}/cluster"

PKI="${CLUSTER_DIR}/pki"
CFG="${CLUSTER_DIR}/cfg"
RUN="${CLUSTER_DIR}/run"
LOGS="${CLUSTER_DIR}/logs"
CONTAINERD_SOCK="${RUN}/containerd.sock"
KUBECONFIG_OUT="${CLUSTER_DIR}/kubeconfig"

# CoreDNS is built from the module proxy (go install), pinned here.
COREDNS_VERSION="v1.15.0"
COREDNS_IMAGE="flinkjob.local/coredns:${COREDNS_VERSION}"
PAUSE_IMAGE="flinkjob.local/pause:3.10"

# Networks. The node's IP is the gateway of the pod bridge: the API server,
# the kubelet and the cluster's MinIO listen there (and on loopback), so
# pods reach them and nothing listens on the host's public interfaces.
BRIDGE="flinkjob0"
POD_CIDR="10.244.0.0/24"
CLUSTER_CIDR="10.244.0.0/16"
NODE_IP="10.244.0.1"
SERVICE_CIDR="10.96.0.0/16"
API_SERVICE_IP="10.96.0.1"
DNS_SERVICE_IP="10.96.0.10"
API_PORT=6443
ETCD_PORT="${CLUSTER_ETCD_PORT:-2379}" # and ETCD_PORT+1 for peers, on loopback
NODE_NAME="${CLUSTER_NODE_NAME:-$(hostname | tr '[:upper:]' '[:lower:]')}"

# The cluster's MinIO (hack/cluster/minio.sh).
CLUSTER_MINIO_PORT="${CLUSTER_MINIO_PORT:-19400}"
CLUSTER_MINIO_USER="${CLUSTER_MINIO_USER:-flinkjob}"
CLUSTER_MINIO_PASSWORD="${CLUSTER_MINIO_PASSWORD:-flinkjob-secret}"

# Debian packages the node needs (installed only when missing).
APT_PACKAGES=(containerd runc containernetworking-plugins iptables conntrack openssl curl)
# Debian puts the CNI plugins in /usr/lib/cni; other distributions in /opt/cni/bin.
CNI_BIN_DIR="/usr/lib/cni"
[[ -x "${CNI_BIN_DIR}/bridge" || ! -x /opt/cni/bin/bridge ]] || CNI_BIN_DIR=/opt/cni/bin

_t0="${EPOCHREALTIME/./}"
# elapsed prints the seconds since the script started (one decimal).
elapsed() {
	local d=$(((${EPOCHREALTIME/./} - _t0) / 100000))
	echo "$((d / 10)).$((d % 10))"
}
log() { printf '%s: [%6ss] %s\n' "$(basename "$0")" "$(elapsed)" "$*" >&2; }
die() { echo "$(basename "$0"): error: $*" >&2; exit 1; }

kubectl_bin() {
	if [[ -n "${KUBECTL:-}" ]]; then
		echo "${KUBECTL}"
	elif [[ -x "${K8S_BIN}/kubectl" ]]; then
		echo "${K8S_BIN}/kubectl"
	else
		command -v kubectl || die "no kubectl: install one (any version within a few minors of ${K8S_VERSION}) or set KUBECTL"
	fi
}

# kc runs kubectl as the cluster admin.
kc() { "$(kubectl_bin)" --kubeconfig "${PKI}/admin.kubeconfig" "$@"; }

# node_exec prints the prefix that runs a command in the node's mount
# namespace (see up.sh): `start NAME $(node_exec) CMD...`; nsenter execs,
# so CMD keeps the PID.
node_exec() {
	local pid
	pid="$(pid_of node-ns)" || die "the node's mount namespace is not running"
	echo nsenter --target "${pid}" --mount --
}

ctr_k8s() { ctr --address "${CONTAINERD_SOCK}" -n k8s.io "$@"; }

# --- processes: started with nohup, tracked by PID files in RUN ---------

# pid_of NAME prints the PID recorded for NAME if that process is alive and
# still one of ours (its command line names CLUSTER_DIR), so a recycled PID
# is never signalled.
pid_of() {
	local f="${RUN}/$1.pid" pid
	[[ -f "${f}" ]] || return 1
	pid="$(cat "${f}")"
	[[ -n "${pid}" && -r "/proc/${pid}/cmdline" ]] || return 1
	[[ "$(tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null)" == *"${CLUSTER_DIR}/"* ]] || return 1
	echo "${pid}"
}

running() { pid_of "$1" >/dev/null; }

# start NAME CMD...: start CMD in the background unless NAME already runs.
start() {
	local name=$1
	shift
	if running "${name}"; then
		log "${name} already running (pid $(pid_of "${name}"))"
		return 0
	fi
	mkdir -p "${RUN}" "${LOGS}"
	nohup "$@" >>"${LOGS}/${name}.log" 2>&1 </dev/null &
	echo $! >"${RUN}/${name}.pid"
}

alive() { # PID: running and not a zombie waiting to be reaped
	local st
	st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
	[[ -n "${st}" && "${st}" != Z ]]
}

# stop NAME...: SIGTERM to all, wait up to STOP_GRACE seconds (default
# 10), then SIGKILL; removes the PID files.
stop() {
	local name pid i pids=() names=() grace="${STOP_GRACE:-10}"
	for name in "$@"; do
		if pid="$(pid_of "${name}")"; then
			kill "${pid}" 2>/dev/null || true
			pids+=("${pid}")
			names+=("${name}")
		fi
	done
	for i in "${!pids[@]}"; do
		for _ in $(seq 1 $((grace * 10))); do
			alive "${pids[i]}" || break
			sleep 0.1
		done
		if alive "${pids[i]}"; then
			kill -9 "${pids[i]}" 2>/dev/null || true
			log "${names[i]} (pid ${pids[i]}) killed after ${grace}s"
		else
			log "${names[i]} (pid ${pids[i]}) stopped"
		fi
	done
	for name in "$@"; do
		rm -f "${RUN}/${name}.pid"
	done
}

# wait_for NAME TIMEOUT_S CHECK...: poll CHECK until it succeeds; fail with
# the tail of NAME's log if NAME dies or the time runs out.
wait_for() {
	local name=$1 deadline=$((SECONDS + $2))
	shift 2
	while ((SECONDS < deadline)); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		# alive on the recorded PID, not running/pid_of: right after start
		# the child may not have exec'd its command yet, so its command
		# line is still this script's and pid_of would call it gone (CI
		# once failed on exactly that, "node-ns exited" with an empty log).
		if [[ -f "${RUN}/${name}.pid" ]] && ! alive "$(cat "${RUN}/${name}.pid")"; then
			tail -n 30 "${LOGS}/${name}.log" >&2 || true
			die "${name} exited; full log in ${LOGS}/${name}.log"
		fi
		sleep 0.2
	done
	tail -n 30 "${LOGS}/${name}.log" >&2 2>/dev/null || true
	die "timed out waiting for ${name}: $*"
}

# build_tools builds imgtool, pause and cri-rmp (module hack/tools/imgtool)
# into bin/ when missing or older than their sources.
build_tools() {
	local dir="${REPO_ROOT}/hack/tools/imgtool" b
	for b in imgtool pause cri-rmp; do
		if [[ ! -x "${BIN_DIR}/${b}" || -n "$(find "${dir}" -type f -newer "${BIN_DIR}/${b}" -print -quit)" ]]; then
			log "building imgtool, pause, cri-rmp (hack/tools/imgtool)"
			mkdir -p "${BIN_DIR}"
			(cd "${dir}" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${BIN_DIR}/" . ./cmd/pause ./cmd/cri-rmp)
			touch "${BIN_DIR}/imgtool" "${BIN_DIR}/pause" "${BIN_DIR}/cri-rmp"
			return 0
		fi
	done
}
