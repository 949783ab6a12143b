#!/usr/bin/env bash
# Starts a single-node Kubernetes cluster on this machine (root; Debian 12): etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet, kube-proxy (iptables), CoreDNS and Debian's containerd with
# the CNI bridge plugin. Binaries come from scripts/k8s/build.sh (built once, cached). Every process started here
# is recorded by PID in $K8S_STATE/pids and stopped by scripts/k8s/down.sh.
# Network: one bridge (vispod0, 172.28.0.1/16) for the pods, the node and the API server; services in
# 172.29.0.0/16 (kube-proxy's rules cover only these ranges); the machine's DNS resolver, its routes and the
# 10.0.0.0/8 range are never touched. Pods resolve only cluster names (CoreDNS has no upstream).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=env.sh
. "$HERE/env.sh"

log() { echo "k8s-up: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }
for tool in containerd runc ctr openssl iptables ip; do
  command -v "$tool" >/dev/null || { log "missing $tool: apt-get install containerd runc containernetworking-plugins iptables openssl"; exit 1; }
done
[ -x /usr/lib/cni/bridge ] || { log "missing CNI plugins: apt-get install containernetworking-plugins"; exit 1; }
bash "$HERE/build.sh"
command -v kubectl >/dev/null || bash "$HERE/../install-tools.sh"

PKI="$K8S_STATE/pki" LOGS="$K8S_STATE/log" PIDS="$K8S_STATE/pids" CONF="$K8S_STATE/conf"
mkdir -p "$PKI" "$LOGS" "$PIDS" "$CONF" "$K8S_RUN" "$K8S_STATE/cni/net.d"
if ls "$PIDS"/*.pid >/dev/null 2>&1; then
  for f in "$PIDS"/*.pid; do
    if kill -0 "$(cat "$f")" 2>/dev/null; then log "already running ($(basename "$f" .pid)); make k8s-down first"; exit 1; fi
  done
fi
started=$SECONDS

# --- certificates: one CA; the admin identity (system:masters) also serves the control-plane components ----
cert() {  # name subject [SAN list]
  local name=$1 subj=$2 san=${3:-}
  [ -f "$PKI/$name.crt" ] && return
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  local ext="$PKI/$name.ext"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' >"$ext"
  [ -n "$san" ] && echo "subjectAltName=$san" >>"$ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -days 30 \
    -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
}
if [ ! -f "$PKI/ca.crt" ]; then
  openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -subj "/CN=vispod-local-ca" -days 30 \
    -out "$PKI/ca.crt" 2>/dev/null
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
fi
cert apiserver "/CN=kube-apiserver" \
  "IP:$K8S_NODE_IP,IP:${K8S_SERVICE_CIDR%.0/16}.1,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert admin "/O=system:masters/CN=vispod-admin"
cert kubelet "/O=system:nodes/CN=system:node:$K8S_NODE_NAME" "IP:$K8S_NODE_IP,DNS:$K8S_NODE_NAME"
kubeconfig() {  # file cert
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: vispod, cluster: {server: "https://$K8S_NODE_IP:$K8S_API_PORT", certificate-authority: "$PKI/ca.crt"}}]
users: [{name: u, user: {client-certificate: "$PKI/$2.crt", client-key: "$PKI/$2.key"}}]
contexts: [{name: vispod, context: {cluster: vispod, user: u}}]
current-context: vispod
EOF
}
kubeconfig "$PKI/admin.kubeconfig" admin
kubeconfig "$PKI/kubelet.kubeconfig" kubelet

# --- host network: our bridge, forwarding and bridged traffic through iptables (previous values restored) --
if [ ! -f "$K8S_STATE/sysctl.saved" ]; then
  printf 'net.ipv4.ip_forward=%s\nnet.bridge.bridge-nf-call-iptables=%s\n' \
    "$(cat /proc/sys/net/ipv4/ip_forward)" "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 0)" \
    >"$K8S_STATE/sysctl.saved"
fi
modprobe br_netfilter 2>/dev/null || true
echo 1 >/proc/sys/net/ipv4/ip_forward
echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
if ! ip link show "$K8S_BRIDGE" >/dev/null 2>&1; then
  ip link add "$K8S_BRIDGE" type bridge
  ip addr add "$K8S_NODE_IP/${K8S_POD_CIDR#*/}" dev "$K8S_BRIDGE"
fi
ip link set "$K8S_BRIDGE" up

start() {  # name command... : detached, own session, logged, PID recorded
  local name=$1; shift
  setsid "$@" >"$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! >"$PIDS/$name.pid"
}
wait_for() {  # what seconds command...
  local what=$1 deadline=$((SECONDS + $2)); shift 2
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { log "$what not ready after $((SECONDS - started)) s; logs in $LOGS"; exit 1; }
    sleep 1
  done
  log "$what ready at $((SECONDS - started)) s"
}

# --- containerd (Debian's), with its own config, root, state and socket ---------------------------------
# Pods get a route to the service range only (no default route): nothing in a pod can reach past this node.
cat >"$K8S_STATE/cni/net.d/10-vispod.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "vispod", "plugins": [
  {"type": "bridge", "bridge": "$K8S_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$K8S_STATE/cni/ipam",
            "ranges": [[{"subnet": "$K8S_POD_CIDR", "gateway": "$K8S_NODE_IP", "rangeStart": "${K8S_POD_CIDR%.0.0/16}.1.1"}]],
            "routes": [{"dst": "$K8S_SERVICE_CIDR"}]}}]}
EOF
cat >"$CONF/containerd.toml" <<EOF
version = 2
root = "$K8S_STATE/containerd"
state = "$K8S_RUN/containerd"
[grpc]
  address = "$K8S_CONTAINERD_SOCK"
[ttrpc]
  address = "$K8S_RUN/containerd.ttrpc.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$K8S_STATE/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$K8S_PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  # root lacks CAP_SYS_RESOURCE here: without this runc fails with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$K8S_STATE/cni/net.d"
EOF
start containerd containerd --config "$CONF/containerd.toml"
wait_for containerd 30 "${CTR[@]}" version
# The sandbox image: a static pause binary, imported under the name kubelet asks for (nothing is ever pulled).
if ! "${CTR[@]}" images ls -q | grep -qx "$K8S_PAUSE_IMAGE"; then
  python3 "$HERE/oci_image.py" --name "$K8S_PAUSE_IMAGE" --file "$K8S_BIN/pause:/pause" --entrypoint /pause \
    --user 65535:65535 --out "$K8S_STATE/pause.tar"
  "${CTR[@]}" images import "$K8S_STATE/pause.tar" >/dev/null
  rm -f "$K8S_STATE/pause.tar"
fi

# --- etcd + control plane -----------------------------------------------------------------------------
start etcd etcd --name vispod --data-dir "$K8S_STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$K8S_ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$K8S_ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$((K8S_ETCD_PORT + 1))" \
  --initial-advertise-peer-urls "http://127.0.0.1:$((K8S_ETCD_PORT + 1))" \
  --initial-cluster "vispod=http://127.0.0.1:$((K8S_ETCD_PORT + 1))" --quota-backend-bytes 2147483648
start kube-apiserver kube-apiserver --etcd-servers "http://127.0.0.1:$K8S_ETCD_PORT" \
  --bind-address "$K8S_NODE_IP" --advertise-address "$K8S_NODE_IP" --secure-port "$K8S_API_PORT" \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" --client-ca-file "$PKI/ca.crt" \
  --service-cluster-ip-range "$K8S_SERVICE_CIDR" --authorization-mode Node,RBAC \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --kubelet-client-certificate "$PKI/admin.crt" --kubelet-client-key "$PKI/admin.key" \
  --kubelet-preferred-address-types InternalIP \
  --enable-admission-plugins NodeRestriction --profiling=false
wait_for kube-apiserver 120 kubectl get --raw /readyz
start kube-controller-manager kube-controller-manager --kubeconfig "$PKI/admin.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials \
  --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
  --service-cluster-ip-range "$K8S_SERVICE_CIDR" --profiling=false
start kube-scheduler kube-scheduler --kubeconfig "$PKI/admin.kubeconfig" --bind-address 127.0.0.1 \
  --leader-elect=false --profiling=false

# --- CoreDNS on the bridge address: cluster names only -------------------------------------------------
cat >"$CONF/Corefile" <<EOF
.:53 {
  bind $K8S_NODE_IP
  errors
  kubernetes cluster.local in-addr.arpa {
    kubeconfig $PKI/admin.kubeconfig vispod
    pods insecure
  }
  cache 10
}
EOF
start coredns coredns -conf "$CONF/Corefile"

# --- kubelet + kube-proxy ------------------------------------------------------------------------------
echo "options ndots:5" >"$CONF/resolv.conf"  # pods' only resolver is CoreDNS: no upstream, no 10.x resolver
cat >"$CONF/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$K8S_CONTAINERD_SOCK
address: $K8S_NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: "$PKI/ca.crt"}}
authorization: {mode: Webhook}
clusterDNS: ["$K8S_NODE_IP"]
clusterDomain: cluster.local
resolvConf: "$CONF/resolv.conf"
failSwapOn: false
podLogsDir: "$K8S_STATE/pod-logs"
oomScoreAdj: 0
maxPods: 60
serializeImagePulls: false
imageGCHighThresholdPercent: 95
imageGCLowThresholdPercent: 90
evictionHard: {memory.available: "256Mi", nodefs.available: "3%", imagefs.available: "3%", nodefs.inodesFree: "2%"}
EOF
start kubelet kubelet --config "$CONF/kubelet.yaml" --kubeconfig "$PKI/kubelet.kubeconfig" \
  --root-dir "$K8S_STATE/kubelet" --cert-dir "$K8S_STATE/kubelet-pki" \
  --node-ip "$K8S_NODE_IP" --hostname-override "$K8S_NODE_NAME"
cat >"$CONF/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$PKI/admin.kubeconfig"}
mode: iptables
clusterCIDR: "$K8S_POD_CIDR"
hostnameOverride: "$K8S_NODE_NAME"
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$K8S_NODE_IP/32"]
conntrack: {maxPerCore: 0}
EOF
start kube-proxy kube-proxy --config "$CONF/kube-proxy.yaml"

node_ready() { kubectl get node "$K8S_NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True; }
wait_for "node $K8S_NODE_NAME" 120 node_ready
wait_for "service account" 60 kubectl -n default get serviceaccount default
log "cluster up in $((SECONDS - started)) s: export KUBECONFIG=$KUBECONFIG"
