# Common settings for the lab scripts. Sourced, never run.
# shellcheck shell=bash
shopt -s inherit_errexit
LAB_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
. "$LAB_SRC/versions.env"

# Where the lab keeps its state and logs (one directory) and its build cache.
LAB_DIR="${CAIRN_LAB_DIR:-/var/lib/cairn-lab}"
LAB_CACHE="${CAIRN_LAB_CACHE:-$HOME/.cache/cairn-lab}"
LAB_LOGS="$LAB_DIR/logs"
LAB_RUN="$LAB_DIR/run"            # pid files, sockets
LAB_PKI="$LAB_DIR/pki"
LAB_KUBECONFIG="$LAB_DIR/kubeconfig/admin.kubeconfig"

# Binaries in the cache, one directory per component and version.
K8S_BIN="$LAB_CACHE/bin/kubernetes-$K8S_VERSION-etcd-$ETCD_VERSION"
HELM_BIN="$LAB_CACHE/bin/helm-$HELM_VERSION"
KUSTOMIZE_BIN="$LAB_CACHE/bin/kustomize-$KUSTOMIZE_VERSION"
COREDNS_BIN="$LAB_CACHE/bin/coredns-$COREDNS_VERSION"
LPP_BIN="$LAB_CACHE/bin/local-path-provisioner-$LOCAL_PATH_PROVISIONER_VERSION"
REGISTRY_BIN="$LAB_CACHE/bin/registry-$REGISTRY_VERSION"
# SeaweedFS `weed` (the S3 server of integration-tests/s3, built by `build seaweedfs`).
SEAWEEDFS_BIN="$LAB_CACHE/bin/seaweedfs-$SEAWEEDFS_VERSION"
# nats-server (the NATS JetStream bus of the tests, built by `build nats-server`).
NATS_SERVER_BIN="$LAB_CACHE/bin/nats-server-$NATS_SERVER_VERSION"
# Dex (the OpenID provider of the SSO tests, built by `build dex`).
DEX_BIN="$LAB_CACHE/bin/dex-$DEX_VERSION"
LAB_IMAGE_CACHE="$LAB_CACHE/images"

# Node networking: the node IP is a /32 on loopback (this kernel has no dummy
# interfaces), reachable from this host and its pods only.
LAB_NODE_IP=172.31.250.1
LAB_NODE_NAME=cairn-lab
LAB_BRIDGE=cairnbr0
LAB_API_PORT=6443
LAB_CONTAINERD_SOCK="$LAB_RUN/containerd/containerd.sock"

# The lab's image registry (distribution's cmd/registry), on loopback only.
# containerd pulls every image of the hosts in LAB_REGISTRY_HOSTS from it (and
# from nowhere else), so `imagePullPolicy: Always` pulls work with no network.
LAB_REGISTRY_PORT=5001
LAB_REGISTRY="127.0.0.1:$LAB_REGISTRY_PORT"
LAB_REGISTRY_DIR="$LAB_DIR/registry"
LAB_REGISTRY_HOSTS="docker.io quay.io registry.k8s.io ghcr.io"

# Build settings: 2 cores, shared with other builds.
export GOTOOLCHAIN=local
export GOFLAGS="${GOFLAGS:-} -mod=mod"
export GOMAXPROCS="${GOMAXPROCS:-2}"
export CGO_ENABLED=0
GO_BUILD_P="${CAIRN_LAB_BUILD_P:-2}"

# has ARGS...: grep ARGS >/dev/null. Unlike `grep -q`, it reads all its input,
# so the writer of a pipeline never dies of SIGPIPE (which pipefail reports).
has() { grep "$@" >/dev/null; }

log() { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# phase NAME: start timing a phase; phase_end prints its duration.
_phase_name=""; _phase_start=0
phase() { _phase_name="$1"; _phase_start=$(date +%s.%N); log "== $1"; }
phase_end() {
  local now; now=$(date +%s.%N)
  printf '[lab %s] == %s: %ss\n' "$(date +%H:%M:%S)" "$_phase_name" "$(awk -v a="$_phase_start" -v b="$now" 'BEGIN{printf "%.1f", b-a}')" >&2
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND until it succeeds.
wait_for() {
  local timeout="$1" what="$2"; shift 2
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep 1
  done
}

ensure_debian_packages() {
  local missing=() p
  for p in $DEBIAN_PACKAGES; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

lab_kubectl() { "$K8S_BIN/kubectl" --kubeconfig "$LAB_KUBECONFIG" "$@"; }

# ------------------------------------------------------------ process control
# Components, in start order. Each runs as its own session (setsid) with its
# pid in $LAB_RUN/NAME.pid and its output in $LAB_LOGS/NAME.log.
LAB_COMPONENTS="containerd registry etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy"

pid_of() { cat "$LAB_RUN/$1.pid" 2>/dev/null || true; }

# alive NAME: the pid file names a live process running that component's binary.
alive() {
  local pid exe
  pid=$(pid_of "$1"); [ -n "$pid" ] || return 1
  [ -d "/proc/$pid" ] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  [ "$(basename "${exe% (deleted)}")" = "$1" ]
}

# start NAME BINARY ARGS...: start a component in the background unless alive.
start() {
  local name="$1"; shift
  alive "$name" && return 0
  mkdir -p "$LAB_RUN" "$LAB_LOGS"
  echo "=== $(date -u +%FT%TZ) starting: $*" >> "$LAB_LOGS/$name.log"
  setsid "$@" >> "$LAB_LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$LAB_RUN/$name.pid"
  disown 2>/dev/null || true
}

# stop NAME: TERM, then KILL after a bounded wait.
stop() {
  local name="$1" pid i
  if alive "$name"; then
    pid=$(pid_of "$name")
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 40); do [ -d "/proc/$pid" ] || break; sleep 0.25; done
    if [ -d "/proc/$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; fi
  fi
  rm -f "$LAB_RUN/$name.pid"
}

# fail_with NAME MESSAGE: print the tail of NAME's log and exit non-zero.
fail_with() {
  log "FAILED: $2"
  if [ -f "$LAB_LOGS/$1.log" ]; then
    echo "----- last 40 lines of $LAB_LOGS/$1.log -----" >&2
    tail -n 40 "$LAB_LOGS/$1.log" >&2
    echo "-----" >&2
  fi
  exit 1
}

# ------------------------------------------------------------------ registry
registry_up() { curl -sf --max-time 2 "http://$LAB_REGISTRY/v2/" >/dev/null; }

# registry_ref NAME: where the lab's registry holds image NAME (a fully qualified
# HOST/PATH:TAG): $LAB_REGISTRY/PATH:TAG, what containerd asks it for when
# pulling NAME. Prints nothing (and fails) when HOST is not one it stands in for.
registry_ref() {
  local host="${1%%/*}" rest="${1#*/}" h
  [ "$host" != "$1" ] || return 1
  for h in $LAB_REGISTRY_HOSTS; do
    if [ "$h" = "$host" ]; then echo "$LAB_REGISTRY/$rest"; return 0; fi
  done
  return 1
}

# push_to_registry NAME: push image NAME from the lab's containerd to the lab's
# registry as registry_ref NAME (the same manifest, so the digest a pull
# resolves is the one containerd already has). Pushes an image once per lab
# run: a marker records the digest pushed. Images of other hosts are skipped.
push_to_registry() {
  local name="$1" ref digest marker ctr_=(ctr --address "$LAB_CONTAINERD_SOCK" -n k8s.io)
  ref=$(registry_ref "$name") || return 0
  digest=$("${ctr_[@]}" images ls "name==$name" | awk -v n="$name" '$1 == n {print $3}')
  [ -n "$digest" ] || die "image $name is not in the lab's containerd; cannot push it"
  marker="$LAB_REGISTRY_DIR/pushed/$(echo "${ref#*/}" | tr '/:' '__')"
  if [ -f "$marker" ]; then
    local was_name was_digest
    read -r was_name was_digest < "$marker"
    # One registry stands in for several hosts: the same PATH:TAG under two
    # of them would be one image here.
    [ "$was_name" = "$name" ] || die "$name and $was_name would both be $ref in the lab registry; rename one"
    [ "$was_digest" = "$digest" ] && return 0
  fi
  registry_up || die "the lab registry at $LAB_REGISTRY is not answering (log: $LAB_LOGS/registry.log)"
  mkdir -p "$LAB_REGISTRY_DIR/pushed"
  local out
  out=$(timeout 300 "${ctr_[@]}" images push --plain-http "$ref" "$name" 2>&1) \
    || { echo "$out" | tail -20 >&2; die "pushing $name to $ref failed"; }
  echo "$name $digest" > "$marker"
  log "pushed $name to $ref"
}

# tools_bin: a directory with only the pinned user tools (for `env`).
TOOLS_BIN="$LAB_CACHE/bin/tools-$K8S_VERSION-helm-$HELM_VERSION-kustomize-$KUSTOMIZE_VERSION"
