# Shared settings of the local single-node cluster (sourced by up.sh, down.sh, images.sh, e2e.sh).
# Address plan: everything lives on a bridge this cluster creates (vispod0) and on 127.0.0.1; the ranges are
# chosen away from 10.0.0.0/8 (the machine's resolver lives there: never route, filter or NAT it).
K8S_HOME="${VISPOD_K8S_HOME:-$HOME/.cache/vispod/k8s}"
K8S_BIN="$K8S_HOME/bin"
K8S_STATE="${VISPOD_K8S_STATE:-/var/lib/vispod-k8s}"   # etcd, containerd, kubelet, certificates, logs, PIDs
K8S_RUN="${VISPOD_K8S_RUN:-/run/vispod-k8s}"           # sockets
K8S_BRIDGE="${VISPOD_K8S_BRIDGE:-vispod0}"
K8S_POD_CIDR="${VISPOD_K8S_POD_CIDR:-172.28.0.0/16}"
K8S_NODE_IP="${VISPOD_K8S_NODE_IP:-172.28.0.1}"        # the bridge's address: API server, kubelet, DNS
K8S_SERVICE_CIDR="${VISPOD_K8S_SERVICE_CIDR:-172.29.0.0/16}"
K8S_NODE_NAME="${VISPOD_K8S_NODE_NAME:-vispod-node}"
K8S_API_PORT="${VISPOD_K8S_API_PORT:-6443}"
K8S_ETCD_PORT="${VISPOD_K8S_ETCD_PORT:-12379}"
K8S_CONTAINERD_SOCK="$K8S_RUN/containerd.sock"
K8S_PAUSE_IMAGE="registry.k8s.io/pause:3.10"  # the name kubelet asks for; our own build, imported, never pulled
K8S_TOOLS_BIN="${VISPOD_TOOLS_DIR:-$HOME/.cache/vispod/tools}/bin"
export KUBECONFIG="$K8S_STATE/pki/admin.kubeconfig"
export PATH="$K8S_BIN:$K8S_TOOLS_BIN:$PATH"
CTR=(ctr --address "$K8S_CONTAINERD_SOCK" -n k8s.io)
