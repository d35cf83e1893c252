# PKI and kubeconfigs for the lab, made with openssl. Sourced by `up`.
# shellcheck shell=bash

# _cert NAME CN ORG SAN [CA]: an ECDSA key and a certificate signed by CA (default: ca).
_cert() {
  local name="$1" cn="$2" org="$3" san="$4" ca="${5:-ca}" subj ext
  [ -s "$LAB_PKI/$name.crt" ] && return 0
  subj="/CN=$cn"; [ -n "$org" ] && subj="/O=$org$subj"
  ext="$LAB_PKI/$name.ext"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$san" ]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"
    else echo "extendedKeyUsage=clientAuth"; fi
  } > "$ext"
  openssl ecparam -name prime256v1 -genkey -noout -out "$LAB_PKI/$name.key" 2>/dev/null
  openssl req -new -key "$LAB_PKI/$name.key" -subj "$subj" -out "$LAB_PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$LAB_PKI/$name.csr" -CA "$LAB_PKI/$ca.crt" -CAkey "$LAB_PKI/$ca.key" \
    -CAcreateserial -days 365 -sha256 -extfile "$ext" -out "$LAB_PKI/$name.crt" 2>/dev/null
  rm -f "$LAB_PKI/$name.csr" "$ext"
}

_ca() {
  local name="$1" cn="$2"
  [ -s "$LAB_PKI/$name.crt" ] && return 0
  openssl ecparam -name prime256v1 -genkey -noout -out "$LAB_PKI/$name.key" 2>/dev/null
  openssl req -x509 -new -key "$LAB_PKI/$name.key" -subj "/CN=$cn" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$LAB_PKI/$name.crt" 2>/dev/null
}

# _kubeconfig NAME CERT USER: a kubeconfig for the lab apiserver with client cert CERT.
_kubeconfig() {
  local name="$1" cert="$2" user="$3" server="${4:-https://127.0.0.1:$LAB_API_PORT}"
  local f="$LAB_DIR/kubeconfig/$name.kubeconfig"
  [ -s "$f" ] && return 0
  mkdir -p "$LAB_DIR/kubeconfig"
  cat > "$f" <<KC
apiVersion: v1
kind: Config
clusters:
- name: cairn-lab
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 "$LAB_PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$LAB_PKI/$cert.crt")
    client-key-data: $(base64 -w0 "$LAB_PKI/$cert.key")
contexts:
- name: $user@cairn-lab
  context:
    cluster: cairn-lab
    user: $user
current-context: $user@cairn-lab
KC
  chmod 600 "$f"
}

make_pki() {
  mkdir -p "$LAB_PKI"; chmod 700 "$LAB_PKI"
  _ca ca cairn-lab-ca
  _ca front-proxy-ca cairn-lab-front-proxy-ca
  _cert apiserver kube-apiserver "" \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$LAB_CLUSTER_DOMAIN,DNS:localhost,DNS:$LAB_NODE_NAME,IP:$LAB_KUBERNETES_SVC_IP,IP:127.0.0.1,IP:$LAB_NODE_IP"
  _cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters ""
  _cert front-proxy-client front-proxy-client "" "" front-proxy-ca
  _cert admin kubernetes-admin system:masters ""
  _cert controller-manager system:kube-controller-manager "" ""
  _cert scheduler system:kube-scheduler "" ""
  _cert kube-proxy system:kube-proxy "" ""
  _cert kubelet "system:node:$LAB_NODE_NAME" system:nodes ""
  _cert kubelet-serving "$LAB_NODE_NAME" "" "DNS:$LAB_NODE_NAME,DNS:localhost,IP:$LAB_NODE_IP,IP:127.0.0.1"
  if [ ! -s "$LAB_PKI/sa.key" ]; then
    openssl genrsa -out "$LAB_PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$LAB_PKI/sa.key" -pubout -out "$LAB_PKI/sa.pub" 2>/dev/null
  fi
  _kubeconfig admin admin kubernetes-admin
  _kubeconfig controller-manager controller-manager system:kube-controller-manager
  _kubeconfig scheduler scheduler system:kube-scheduler
  _kubeconfig kube-proxy kube-proxy system:kube-proxy
  _kubeconfig kubelet kubelet "system:node:$LAB_NODE_NAME"
}
