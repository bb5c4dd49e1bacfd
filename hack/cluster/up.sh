#!/usr/bin/env bash
# hack/cluster/up.sh: a local single-node Kubernetes cluster without Docker:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and
# kube-proxy (built from the module proxy by hack/envtest.sh into bin/k8s/),
# containerd + runc + CNI bridge from Debian's apt, CoreDNS (go install into
# bin/). State, config, PKI, logs and PID files live under .cluster/; the
# host's /etc and /var/lib are not touched (see hack/cluster/README.md).
#
#   sudo hack/cluster/up.sh            start (or complete) the cluster
#   hack/cluster/up.sh --build-only    only build what it needs into bin/ (no root)
#   export KUBECONFIG=$PWD/.cluster/kubeconfig
#
# Idempotent: on a running cluster it checks every part and starts only what
# is missing. Needs root (containerd, kubelet, iptables). Stop with down.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ "$(uname -s)" == Linux ]] || die "Linux only (kind is the way on other systems)"
build_only=0
case "${1:-}" in
--build-only) build_only=1 ;;
"") ;;
*) die "usage: $0 [--build-only]" ;;
esac
[[ ${EUID} -eq 0 || ${build_only} -eq 1 ]] || die "needs root (containerd, kubelet, kube-proxy and iptables); '$0 --build-only' builds the binaries without"

# --- host packages --------------------------------------------------------
ensure_packages() {
	local missing=() p
	for p in containerd containerd-shim-runc-v2 ctr runc iptables conntrack openssl curl; do
		command -v "${p}" >/dev/null || missing+=("${p}")
	done
	for p in bridge host-local loopback portmap; do
		[[ -x "${CNI_BIN_DIR}/${p}" ]] || missing+=("cni/${p}")
	done
	((${#missing[@]} == 0)) && return 0
	command -v apt-get >/dev/null || die "missing ${missing[*]}; install containerd, runc, the CNI plugins, iptables and conntrack"
	log "installing ${APT_PACKAGES[*]} from apt (missing: ${missing[*]})"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
	CNI_BIN_DIR=/usr/lib/cni
}

# --- binaries (cached in bin/) ------------------------------------------
build_binaries() {
	# One build at a time per checkout (two up.sh, or up.sh and make envtest).
	mkdir -p "${BIN_DIR}"
	exec 9>"${BIN_DIR}/.cluster-build.lock"
	flock 9
	local b missing=() want=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
	# A kubectl matching the server, once the tools module pins it.
	grep -q 'k8s.io/kubernetes/cmd/kubectl"' "${REPO_ROOT}/hack/tools/k8s/tools.go" && want+=(kubectl)
	for b in etcd "${want[@]}"; do
		[[ -x "${K8S_BIN}/${b}" ]] || missing+=("${b}")
	done
	if ((${#missing[@]})) || [[ ! -x "${BIN_DIR}/coredns" ]]; then
		command -v go >/dev/null || die "needs the Go toolchain to build ${missing[*]} coredns (or run '$0 --build-only' as a user with Go first)"
	fi
	if ((${#missing[@]})); then
		log "building ${missing[*]} (${K8S_VERSION}; minutes the first time)"
		"${REPO_ROOT}/hack/envtest.sh" binaries "${want[@]}"
	fi
	if [[ ! -x "${BIN_DIR}/coredns" || "$(cat "${BIN_DIR}/.coredns.version" 2>/dev/null)" != "${COREDNS_VERSION}" ]]; then
		log "building CoreDNS ${COREDNS_VERSION} (go install; ~2 minutes the first time)"
		(cd / && GOBIN="${BIN_DIR}" CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
			go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@${COREDNS_VERSION}" 2>&1 |
			{ grep -v '^go: downloading' >&2 || true; }) || die "building CoreDNS failed"
		echo "${COREDNS_VERSION}" >"${BIN_DIR}/.coredns.version"
	fi
	build_tools
	# The cluster's own images: the sandbox (pause) and CoreDNS.
	mkdir -p "${CLUSTER_IMAGES_DIR}"
	if [[ ! -f "${CLUSTER_IMAGES_DIR}/pause.tar" || "${BIN_DIR}/pause" -nt "${CLUSTER_IMAGES_DIR}/pause.tar" ]]; then
		"${BIN_DIR}/imgtool" -o "${CLUSTER_IMAGES_DIR}/pause.tar" -t "${PAUSE_IMAGE}" -entrypoint /pause \
			-user 65535:65535 "${BIN_DIR}/pause:/pause"
	fi
	if [[ ! -f "${CLUSTER_IMAGES_DIR}/coredns.tar" || "${BIN_DIR}/coredns" -nt "${CLUSTER_IMAGES_DIR}/coredns.tar" ]]; then
		"${BIN_DIR}/imgtool" -o "${CLUSTER_IMAGES_DIR}/coredns.tar" -t "${COREDNS_IMAGE}" -entrypoint /coredns \
			"${BIN_DIR}/coredns:/coredns"
	fi
	flock -u 9
}

# --- configuration (rendered on every up; all paths under CLUSTER_DIR) ---
render_config() {
	mkdir -p "${CFG}" "${CLUSTER_DIR}/cni/net.d" "${CLUSTER_DIR}/cni/ipam" "${CLUSTER_DIR}/containerd" \
		"${CLUSTER_DIR}/kubelet" "${CLUSTER_DIR}/podlogs" "${RUN}" "${LOGS}"
	cat >"${CFG}/containerd.toml" <<EOF
# containerd for the local cluster (see hack/cluster/up.sh).
version = 2
root = "${CLUSTER_DIR}/containerd/root"
state = "${CLUSTER_DIR}/containerd/state"

[grpc]
  address = "${CONTAINERD_SOCK}"

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "${PAUSE_IMAGE}"
    # Some VMs drop CAP_SYS_RESOURCE: without this, sandboxes fail with
    # "can't get final child's PID from pipe: EOF".
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    stream_server_address = "127.0.0.1"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = "${CLUSTER_DIR}/containerd/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "${CNI_BIN_DIR}"
      conf_dir = "${CLUSTER_DIR}/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "${CLUSTER_DIR}/containerd/opt"
EOF
	cat >"${CLUSTER_DIR}/cni/net.d/10-flinkjob.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "flinkjob",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "${BRIDGE}",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "${POD_CIDR}", "gateway": "${NODE_IP}"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "${CLUSTER_DIR}/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
	printf 'nameserver %s\noptions ndots:5\n' "${DNS_SERVICE_IP}" >"${CFG}/resolv.conf"
	cat >"${CFG}/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${NODE_IP}
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${PKI}/ca.crt}
authorization: {mode: Webhook}
# cgroup v1 hosts: kubelet >= 1.35 refuses them unless told otherwise.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://${CONTAINERD_SOCK}
clusterDNS: [${DNS_SERVICE_IP}]
clusterDomain: cluster.local
resolvConf: ${CFG}/resolv.conf
tlsCertFile: ${PKI}/kubelet-serving.crt
tlsPrivateKeyFile: ${PKI}/kubelet-serving.key
podLogsDir: ${CLUSTER_DIR}/podlogs
podCIDR: ${POD_CIDR}
maxPods: 110
serializeImagePulls: false
evictionHard: {"memory.available": "100Mi", "nodefs.available": "2%", "imagefs.available": "2%"}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
EOF
	sed -e "s|__COREDNS_IMAGE__|${COREDNS_IMAGE}|" -e "s|__DNS_SERVICE_IP__|${DNS_SERVICE_IP}|" \
		"${REPO_ROOT}/hack/cluster/manifests/coredns.yaml" >"${CFG}/coredns.yaml"
}

# --- host network settings ---------------------------------------------
# Kernel settings the node changes (kubelet sets the vm./kernel. ones); the
# values before the first up are saved and down.sh puts them back.
SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables vm.overcommit_memory vm.panic_on_oom
	kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

setup_network() {
	if [[ ! -f "${RUN}/sysctl.orig" ]]; then
		local k
		for k in "${SYSCTLS[@]}"; do
			sysctl -n "${k}" >/dev/null 2>&1 && echo "${k}=$(sysctl -n "${k}")"
		done >"${RUN}/sysctl.orig"
		# Host paths the kubelet creates outside CLUSTER_DIR (not configurable):
		# noted when absent, so down.sh removes them only if we made them.
		: >"${RUN}/host-created"
		compgen -G "/sys/fs/cgroup/*/kubepods" >/dev/null || [[ -e /sys/fs/cgroup/kubepods ]] ||
			echo kubepods-cgroups >>"${RUN}/host-created"
		[[ "$(iptables-save 2>/dev/null)" == *KUBE-* ]] || echo kubelet-iptables >>"${RUN}/host-created"
		[[ -e /run/containerd ]] || echo /run/containerd >>"${RUN}/host-created"
	fi
	sysctl -qw net.ipv4.ip_forward=1
	sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null ||
		log "warning: net.bridge.bridge-nf-call-iptables unavailable (br_netfilter not loaded?); Service traffic between pods may fail"
	# The pod bridge exists before the first pod so the node IP (its
	# gateway address) is there for the API server and the kubelet; the CNI
	# bridge plugin adopts it.
	ip link show "${BRIDGE}" >/dev/null 2>&1 || ip link add "${BRIDGE}" type bridge
	[[ "$(ip -4 addr show dev "${BRIDGE}")" == *" ${NODE_IP}/"* ]] || ip addr add "${NODE_IP}/${POD_CIDR#*/}" dev "${BRIDGE}"
	ip link set "${BRIDGE}" up
}

# --- components ------------------------------------------------------------
# The node's mount namespace. containerd and the kubelet hard-code a few
# host paths (libcni's cache /var/lib/cni, the kubelet's
# /var/lib/kubelet/device-plugins and /var/log/containers), so they run in a
# mount namespace of their own where /var/lib and /var/log are bound to
# .cluster/node/. Everything they mount (rootfs overlays, volumes, netns)
# stays in it too, and vanishes when its last process exits. A pause
# process holds it; `$(node_exec) CMD` runs CMD inside.
node_ns_ready() { [[ "$(readlink "/proc/$(pid_of node-ns)/exe" 2>/dev/null)" == "$(readlink -f "${BIN_DIR}/pause")" ]]; }

start_node_namespace() {
	mkdir -p "${CLUSTER_DIR}/node/var-lib" "${CLUSTER_DIR}/node/var-log"
	# shellcheck disable=SC2016 # $0/$1 expand in the inner shell
	start node-ns unshare --mount --propagation slave -- sh -c \
		'mount --bind "$1/var-lib" /var/lib && mount --bind "$1/var-log" /var/log && exec "$0" "$1"' \
		"${BIN_DIR}/pause" "${CLUSTER_DIR}/node"
	wait_for node-ns 10 node_ns_ready
}

start_containerd() {
	# shellcheck disable=SC2046 # node_exec prints a command prefix
	start containerd $(node_exec) containerd --config "${CFG}/containerd.toml"
	wait_for containerd 30 ctr --address "${CONTAINERD_SOCK}" version
	local t
	for t in "${CLUSTER_IMAGES_DIR}"/*.tar "${IMAGES_DIR}"/*.tar; do
		[[ -f "${t}" ]] || continue
		ctr_k8s images import --platform linux/amd64 "${t}" >/dev/null
	done
}

start_etcd() {
	start etcd "${K8S_BIN}/etcd" --name "${NODE_NAME}" --data-dir "${CLUSTER_DIR}/etcd" \
		--listen-client-urls "http://127.0.0.1:${ETCD_PORT}" --advertise-client-urls "http://127.0.0.1:${ETCD_PORT}" \
		--listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
		--initial-cluster "${NODE_NAME}=http://127.0.0.1:$((ETCD_PORT + 1))" \
		--unsafe-no-fsync --log-level warn
	wait_for etcd 60 curl -sf "http://127.0.0.1:${ETCD_PORT}/health"
}

apiserver_ready() {
	[[ "$(curl -s --max-time 2 --cacert "${PKI}/ca.crt" --cert "${PKI}/admin.crt" --key "${PKI}/admin.key" \
		"https://${NODE_IP}:${API_PORT}/readyz")" == ok ]]
}

start_control_plane() {
	start kube-apiserver "${K8S_BIN}/kube-apiserver" \
		--etcd-servers="http://127.0.0.1:${ETCD_PORT}" \
		--advertise-address="${NODE_IP}" --bind-address="${NODE_IP}" --secure-port="${API_PORT}" \
		--tls-cert-file="${PKI}/apiserver.crt" --tls-private-key-file="${PKI}/apiserver.key" \
		--client-ca-file="${PKI}/ca.crt" \
		--kubelet-client-certificate="${PKI}/apiserver-kubelet-client.crt" --kubelet-client-key="${PKI}/apiserver-kubelet-client.key" \
		--kubelet-certificate-authority="${PKI}/ca.crt" \
		--kubelet-preferred-address-types=InternalIP,Hostname \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="${PKI}/sa.pub" --service-account-signing-key-file="${PKI}/sa.key" \
		--service-cluster-ip-range="${SERVICE_CIDR}" \
		--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
		--allow-privileged=true
	wait_for kube-apiserver 120 apiserver_ready
	start kube-controller-manager "${K8S_BIN}/kube-controller-manager" \
		--kubeconfig="${PKI}/controller-manager.kubeconfig" \
		--authentication-kubeconfig="${PKI}/controller-manager.kubeconfig" \
		--authorization-kubeconfig="${PKI}/controller-manager.kubeconfig" \
		--bind-address=127.0.0.1 \
		--service-account-private-key-file="${PKI}/sa.key" --root-ca-file="${PKI}/ca.crt" \
		--cluster-signing-cert-file="${PKI}/ca.crt" --cluster-signing-key-file="${PKI}/ca.key" \
		--use-service-account-credentials=true \
		--service-cluster-ip-range="${SERVICE_CIDR}" \
		--allocate-node-cidrs=true --cluster-cidr="${CLUSTER_CIDR}" --node-cidr-mask-size=24 \
		--leader-elect=false
	start kube-scheduler "${K8S_BIN}/kube-scheduler" \
		--kubeconfig="${PKI}/scheduler.kubeconfig" \
		--authentication-kubeconfig="${PKI}/scheduler.kubeconfig" \
		--authorization-kubeconfig="${PKI}/scheduler.kubeconfig" \
		--bind-address=127.0.0.1 --leader-elect=false
}

start_node() {
	# shellcheck disable=SC2046
	start kubelet $(node_exec) "${K8S_BIN}/kubelet" --config="${CFG}/kubelet.yaml" \
		--kubeconfig="${PKI}/kubelet.kubeconfig" --root-dir="${CLUSTER_DIR}/kubelet" \
		--cert-dir="${CLUSTER_DIR}/kubelet/pki" --hostname-override="${NODE_NAME}" --node-ip="${NODE_IP}" --v=1
	start kube-proxy "${K8S_BIN}/kube-proxy" --kubeconfig="${PKI}/kube-proxy.kubeconfig" \
		--cluster-cidr="${CLUSTER_CIDR}" --hostname-override="${NODE_NAME}" --proxy-mode=iptables \
		--metrics-bind-address=127.0.0.1:10249 --healthz-bind-address=127.0.0.1:10256 \
		--nodeport-addresses=primary
	wait_for kubelet 60 kc get node "${NODE_NAME}"
	wait_for kubelet 120 kc wait --for=condition=Ready "node/${NODE_NAME}" --timeout=2s
}

start_coredns() {
	wait_for kube-controller-manager 60 kc -n kube-system get serviceaccount default
	kc apply -f "${CFG}/coredns.yaml" >/dev/null
	wait_for kubelet 120 kc -n kube-system wait --for=condition=Available deployment/coredns --timeout=2s
}

if ((build_only)); then
	build_binaries
	log "binaries ok (${K8S_BIN}, bin/coredns, bin/images/cluster)"
	exit 0
fi
ensure_packages
kubectl_bin >/dev/null
log "host packages ok"
build_binaries
log "binaries ok (${K8S_BIN}, bin/coredns)"
"${REPO_ROOT}/hack/cluster/pki.sh"
render_config
setup_network
start_node_namespace
start_containerd
log "containerd up, images imported"
start_etcd
start_control_plane
log "control plane up (https://${NODE_IP}:${API_PORT})"
start_node
log "node ${NODE_NAME} Ready"
start_coredns
cp "${PKI}/admin.kubeconfig" "${KUBECONFIG_OUT}"
log "CoreDNS available; cluster ready"
echo "export KUBECONFIG=${KUBECONFIG_OUT}"
