# Host setup, component configuration and start-up for `up`. Sourced.
# shellcheck shell=bash

# Sysctls that the lab (or the kubelet, which sets its kernel tunables) may
# change; `host_setup` records their values first and `down` restores them.
LAB_SYSCTLS="net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes"
HOST_STATE="$LAB_DIR/host-state"

sysctl_path() { echo "/proc/sys/$(echo "$1" | tr . /)"; }

host_setup() {
  mkdir -p "$LAB_DIR" "$LAB_RUN" "$LAB_LOGS"
  if [ ! -f "$HOST_STATE" ]; then
    {
      local s
      for s in $LAB_SYSCTLS; do
        [ -f "$(sysctl_path "$s")" ] && echo "sysctl $s $(cat "$(sysctl_path "$s")")"
      done
      echo "propagation / $(findmnt -no PROPAGATION /)"
      [ -d /var/lib/cni ] && echo "existed /var/lib/cni"
      [ -d /run/containerd ] && echo "existed /run/containerd"
      true
    } > "$HOST_STATE.tmp"
    mv "$HOST_STATE.tmp" "$HOST_STATE"
  fi
  echo 1 > /proc/sys/net/ipv4/ip_forward
  [ -f /proc/sys/net/bridge/bridge-nf-call-iptables ] && echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables
  # Mount propagation as kind sets it, for the kubelet's volume mounts.
  mount --make-rshared /
  # The node IP lives on loopback: reachable from this host and from pods
  # (through the CNI bridge's gateway), and from nowhere else.
  ip addr show dev lo | has " $LAB_NODE_IP/32" || ip addr add "$LAB_NODE_IP/32" dev lo
  egress_guard
  local port
  for port in $LAB_API_PORT $LAB_REGISTRY_PORT 2379 2380 10250 10257 10259; do
    if ss -ltnH "sport = :$port" | has .; then
      # Only an error if none of the lab's processes holds it.
      local holder; holder=$(ss -ltnpH "sport = :$port" | grep -o 'pid=[0-9]*' | sed -n 1p | cut -d= -f2 || true)
      local ours=0 c
      for c in $LAB_COMPONENTS; do [ "$(pid_of "$c")" = "$holder" ] && ours=1; done
      [ "$ours" = 1 ] || die "port $port is in use by another process (pid $holder); the lab needs it"
    fi
  done
}

# put FILE: write stdin to FILE only if it differs (kube-proxy, for one,
# exits when its config file changes under it).
put() {
  local tmp; tmp="$1.new.$$"
  cat > "$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}

# egress_guard: nothing from the lab leaves this machine. Pod traffic may
# only go to the lab bridge or to this host; host traffic to a service IP
# that kube-proxy did not translate is refused instead of routed away.
egress_guard() {
  local c
  for c in CAIRN-LAB-FORWARD CAIRN-LAB-OUTPUT; do
    iptables -N "$c" 2>/dev/null || true
    iptables -F "$c"
  done
  iptables -A CAIRN-LAB-FORWARD -s "$LAB_POD_CIDR" ! -o "$LAB_BRIDGE" -m comment --comment "cairn lab: pods stay on the node" -j REJECT
  iptables -A CAIRN-LAB-OUTPUT -d "$LAB_SERVICE_CIDR" -m comment --comment "cairn lab: untranslated service IPs" -j REJECT
  iptables -C FORWARD -j CAIRN-LAB-FORWARD 2>/dev/null || iptables -I FORWARD 1 -j CAIRN-LAB-FORWARD
  iptables -C OUTPUT -j CAIRN-LAB-OUTPUT 2>/dev/null || iptables -I OUTPUT 1 -j CAIRN-LAB-OUTPUT
}

write_configs() {
  mkdir -p "$LAB_DIR"/{containerd,cni/net.d,cni/networks,kubelet,local-path,manifests,etcd}
  chmod 700 "$LAB_DIR/etcd"
  put "$LAB_DIR/containerd/config.toml" <<TOML
# containerd for the cairn lab: its own root, state, socket.
version = 2
root = "$LAB_DIR/containerd/root"
state = "$LAB_RUN/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "$LAB_CONTAINERD_SOCK"

[ttrpc]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$LAB_DIR/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10.1"
  netns_mounts_under_state_dir = true
  # This machine's root lacks CAP_SYS_RESOURCE, so no process may lower its
  # oom_score_adj (the kubelet asks -998 for every pod sandbox): clamp to ours.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$LAB_RUN/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$LAB_DIR/cni/net.d"
  # Registry hosts: certs.d/HOST/hosts.toml sends every pull of HOST's images
  # to the lab's loopback registry (see write_registry_config).
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$LAB_DIR/containerd/certs.d"
TOML
  write_registry_config
  # CNI: bridge + host-local IPAM + portmap (containerd adds loopback itself,
  # from the same bin_dir). No ipMasq: pod traffic is never NATed off the node.
  put "$LAB_DIR/cni/net.d/10-cairn-lab.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "cairn-lab",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$LAB_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$LAB_DIR/cni/networks",
        "ranges": [[{ "subnet": "$LAB_NODE_POD_CIDR" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
JSON
  put "$LAB_DIR/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $LAB_NODE_IP
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $LAB_PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $LAB_PKI/kubelet-serving.crt
tlsPrivateKeyFile: $LAB_PKI/kubelet-serving.key
containerRuntimeEndpoint: unix://$LAB_CONTAINERD_SOCK
cgroupDriver: cgroupfs
# This host is cgroup v1 (hybrid); its v1 memory hierarchy is in use by the
# machine's own init, so the lab cannot switch it to v2. See README.md.
failCgroupV1: false
failSwapOn: false
clusterDNS: [$LAB_DNS_SVC_IP]
clusterDomain: $LAB_CLUSTER_DOMAIN
podCIDR: $LAB_NODE_POD_CIDR
resolvConf: /etc/resolv.conf
healthzBindAddress: 127.0.0.1
healthzPort: 10248
readOnlyPort: 0
# Images built here exist nowhere else (the lab registry only mirrors what was
# imported): never garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "2%"
  nodefs.inodesFree: "2%"
  imagefs.available: "2%"
serializeImagePulls: false
registerNode: true
YAML
  put "$LAB_DIR/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $LAB_DIR/kubeconfig/kube-proxy.kubeconfig
mode: iptables
hostnameOverride: $LAB_NODE_NAME
clusterCIDR: $LAB_POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$LAB_NODE_IP/32"]
iptables:
  localhostNodePorts: false
# Leave the host's conntrack sysctls alone.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
YAML
}

# write_registry_config: the lab registry's config, and containerd's hosts.toml
# for each host it stands in for. `server` is the registry itself, not a
# mirror in front of the real host, so containerd has no upstream to fall
# back to: a pull of an image the lab does not have fails, and no request
# leaves the machine.
write_registry_config() {
  mkdir -p "$LAB_REGISTRY_DIR/storage"
  put "$LAB_REGISTRY_DIR/config.yml" <<YAML
# distribution registry for the cairn lab: loopback only, storage in the lab dir.
version: 0.1
log:
  level: warn
  accesslog: {disabled: true}
storage:
  filesystem: {rootdirectory: $LAB_REGISTRY_DIR/storage}
  delete: {enabled: true}
  maintenance:
    uploadpurging: {enabled: false}
http:
  addr: $LAB_REGISTRY
  # One instance, loopback only: the upload-state secret needs no secrecy.
  secret: cairn-lab-registry
  headers:
    X-Content-Type-Options: [nosniff]
YAML
  local h
  for h in $LAB_REGISTRY_HOSTS; do
    mkdir -p "$LAB_DIR/containerd/certs.d/$h"
    put "$LAB_DIR/containerd/certs.d/$h/hosts.toml" <<TOML
# cairn lab: images of $h come from the lab's loopback registry only.
server = "http://$LAB_REGISTRY"

# containerd 1.6 rejects a hosts.toml without a host table (and then falls
# back to the real host): name the registry here too.
[host."http://$LAB_REGISTRY"]
  capabilities = ["pull", "resolve"]
TOML
  done
}

# start_registry: the lab registry (storage under the lab dir). Waiting for it
# is wait_registry, so that containerd can start meanwhile.
start_registry() {
  # No tracing exporter: distribution would otherwise send spans to an OTLP
  # collector on localhost:4318 and log every failure.
  OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none \
    start registry "$REGISTRY_BIN/registry" serve "$LAB_REGISTRY_DIR/config.yml"
}
wait_registry() { wait_component 60 registry "the registry at $LAB_REGISTRY" registry_up; }

# wait_component SECONDS NAME WHAT COMMAND...: like wait_for, but fails fast
# (with the component's log) when the component dies.
wait_component() {
  local timeout="$1" name="$2" what="$3"; shift 3
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    alive "$name" || fail_with "$name" "$name exited while waiting for $what"
    [ "$(date +%s)" -lt "$deadline" ] || fail_with "$name" "timed out after ${timeout}s waiting for $what"
    sleep 1
  done
}

start_control_plane() {
  start etcd "$K8S_BIN/etcd" --name "$LAB_NODE_NAME" --data-dir "$LAB_DIR/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster "$LAB_NODE_NAME=http://127.0.0.1:2380" --listen-metrics-urls http://127.0.0.1:2381 \
    --unsafe-no-fsync --snapshot-count 10000 --log-level warn
  wait_component 60 etcd "etcd health" "$K8S_BIN/etcdctl" --endpoints http://127.0.0.1:2379 endpoint health

  start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --advertise-address "$LAB_NODE_IP" --bind-address 0.0.0.0 --secure-port "$LAB_API_PORT" \
    --etcd-servers http://127.0.0.1:2379 \
    --service-cluster-ip-range "$LAB_SERVICE_CIDR" --service-node-port-range 30000-32767 \
    --client-ca-file "$LAB_PKI/ca.crt" \
    --tls-cert-file "$LAB_PKI/apiserver.crt" --tls-private-key-file "$LAB_PKI/apiserver.key" \
    --kubelet-client-certificate "$LAB_PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$LAB_PKI/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-issuer "https://kubernetes.default.svc.$LAB_CLUSTER_DOMAIN" \
    --service-account-key-file "$LAB_PKI/sa.pub" --service-account-signing-key-file "$LAB_PKI/sa.key" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --allow-privileged=true \
    --requestheader-client-ca-file "$LAB_PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --requestheader-group-headers X-Remote-Group --requestheader-username-headers X-Remote-User \
    --proxy-client-cert-file "$LAB_PKI/front-proxy-client.crt" --proxy-client-key-file "$LAB_PKI/front-proxy-client.key" \
    --profiling=false
  wait_component 120 kube-apiserver "apiserver /readyz" lab_kubectl get --raw /readyz

  local kc="$LAB_DIR/kubeconfig"
  start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$kc/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$kc/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$kc/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false \
    --client-ca-file "$LAB_PKI/ca.crt" --requestheader-client-ca-file "$LAB_PKI/front-proxy-ca.crt" \
    --cluster-signing-cert-file "$LAB_PKI/ca.crt" --cluster-signing-key-file "$LAB_PKI/ca.key" \
    --root-ca-file "$LAB_PKI/ca.crt" --service-account-private-key-file "$LAB_PKI/sa.key" \
    --use-service-account-credentials=true --controllers '*,bootstrapsigner,tokencleaner' \
    --cluster-cidr "$LAB_POD_CIDR" --service-cluster-ip-range "$LAB_SERVICE_CIDR" \
    --allocate-node-cidrs=false --profiling=false
  start kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig "$kc/scheduler.kubeconfig" \
    --authentication-kubeconfig "$kc/scheduler.kubeconfig" \
    --authorization-kubeconfig "$kc/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --profiling=false
  wait_component 60 kube-controller-manager "controller-manager healthz" \
    curl -skf https://127.0.0.1:10257/healthz
  wait_component 60 kube-scheduler "scheduler healthz" curl -skf https://127.0.0.1:10259/healthz
}

node_ready() {
  [ "$(lab_kubectl get node "$LAB_NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

start_node() {
  start kubelet "$K8S_BIN/kubelet" --config "$LAB_DIR/kubelet/config.yaml" \
    --kubeconfig "$LAB_DIR/kubeconfig/kubelet.kubeconfig" \
    --root-dir "$LAB_DIR/kubelet" --node-ip "$LAB_NODE_IP" --hostname-override "$LAB_NODE_NAME"
  start kube-proxy "$K8S_BIN/kube-proxy" --config "$LAB_DIR/kube-proxy.yaml"
  wait_component 120 kubelet "node $LAB_NODE_NAME Ready" node_ready
  alive kube-proxy || fail_with kube-proxy "kube-proxy exited"
}

dns_answers() {
  busybox nslookup "kubernetes.default.svc.$LAB_CLUSTER_DOMAIN" "$LAB_DNS_SVC_IP" 2>/dev/null \
    | has "$LAB_KUBERNETES_SVC_IP"
}

start_addons() {
  sed -e "s|@COREDNS_IMAGE@|registry.k8s.io/coredns/coredns:$COREDNS_VERSION|g" \
      -e "s|@DNS_IP@|$LAB_DNS_SVC_IP|g" -e "s|@DOMAIN@|$LAB_CLUSTER_DOMAIN|g" \
      "$LAB_SRC/manifests/coredns.yaml" > "$LAB_DIR/manifests/coredns.yaml"
  sed -e "s|@LPP_IMAGE@|docker.io/rancher/local-path-provisioner:$LOCAL_PATH_PROVISIONER_VERSION|g" \
      -e "s|@LOCAL_PATH_DIR@|$LAB_DIR/local-path|g" \
      "$LAB_SRC/manifests/local-path-provisioner.yaml" > "$LAB_DIR/manifests/local-path-provisioner.yaml"
  lab_kubectl apply --server-side --force-conflicts -f "$LAB_DIR/manifests/coredns.yaml" \
    -f "$LAB_DIR/manifests/local-path-provisioner.yaml" >/dev/null
  lab_kubectl -n kube-system rollout status deployment/coredns --timeout=120s >/dev/null \
    || { lab_kubectl -n kube-system describe pods -l k8s-app=kube-dns | tail -20 >&2; fail_with kubelet "CoreDNS did not become available"; }
  wait_for 60 "CoreDNS answering at $LAB_DNS_SVC_IP" dns_answers \
    || fail_with kube-proxy "CoreDNS does not answer at $LAB_DNS_SVC_IP"
  lab_kubectl -n local-path-storage rollout status deployment/local-path-provisioner --timeout=120s >/dev/null \
    || { lab_kubectl -n local-path-storage describe pods | tail -20 >&2; fail_with kubelet "local-path-provisioner did not become available"; }
  lab_kubectl get storageclass standard >/dev/null || die "StorageClass standard is missing"
}
