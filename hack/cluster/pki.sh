#!/usr/bin/env bash
# hack/cluster/pki.sh: the local cluster's certificates (openssl, EC P-256)
# and kubeconfigs under CLUSTER_DIR/pki. Run by up.sh; does nothing when the
# PKI already exists (down.sh deletes it with the rest of the state).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ -f "${PKI}/.complete" ]] && exit 0
command -v openssl >/dev/null || die "openssl missing"
rm -rf "${PKI}"
mkdir -p "${PKI}"
chmod 700 "${PKI}"
cd "${PKI}"

key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null; }

# cert NAME SUBJECT EXTENSIONS: a leaf certificate signed by the cluster CA.
cert() {
	key "$1"
	openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
	printf '%s\n' "$3" >"$1.ext"
	openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
		-out "$1.crt" -extfile "$1.ext" 2>/dev/null
	rm -f "$1.csr" "$1.ext"
}

# kubeconfig NAME: NAME.kubeconfig authenticating with NAME.crt/NAME.key.
kubeconfig() {
	cat >"$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: flinkjob-local
  cluster:
    server: https://${NODE_IP}:${API_PORT}
    certificate-authority-data: $(base64 -w0 ca.crt)
users:
- name: flinkjob-local-$1
  user:
    client-certificate-data: $(base64 -w0 "$1.crt")
    client-key-data: $(base64 -w0 "$1.key")
contexts:
- name: flinkjob-local
  context: {cluster: flinkjob-local, user: flinkjob-local-$1}
current-context: flinkjob-local
EOF
	chmod 600 "$1.kubeconfig"
}

key ca
openssl req -x509 -new -key ca.key -subj "/CN=flinkjob-local-ca" -days 3650 -out ca.crt \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null

server=$'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth'
client=$'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth'

cert apiserver "/CN=kube-apiserver" "${server}
subjectAltName=DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:${NODE_NAME},IP:127.0.0.1,IP:${API_SERVICE_IP},IP:${NODE_IP}"
cert kubelet-serving "/CN=${NODE_NAME}" "${server}
subjectAltName=DNS:${NODE_NAME},DNS:localhost,IP:127.0.0.1,IP:${NODE_IP}"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "${client}"
cert admin "/O=system:masters/CN=flinkjob-local-admin" "${client}"
cert controller-manager "/CN=system:kube-controller-manager" "${client}"
cert scheduler "/CN=system:kube-scheduler" "${client}"
cert kubelet "/O=system:nodes/CN=system:node:${NODE_NAME}" "${client}"
cert kube-proxy "/CN=system:kube-proxy" "${client}"
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
chmod 600 ./*.key

for u in admin controller-manager scheduler kubelet kube-proxy; do
	kubeconfig "${u}"
done
touch .complete
log "PKI generated in ${PKI} (node ${NODE_NAME}, ${NODE_IP})"
