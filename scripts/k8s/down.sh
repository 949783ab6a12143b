#!/usr/bin/env bash
# Stops the cluster that up.sh started: every pod's containers (through containerd), then each recorded process by
# its PID, then removes what was set up on the host: mounts under the state folder, pod network namespaces,
# kube-proxy's iptables chains, the bridge, and the two sysctls (restored to their saved values).
# Imported images stay in containerd's store (re-importing the torch layer costs minutes); PURGE=1 removes all.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=env.sh
. "$HERE/env.sh"
log() { echo "k8s-down: $*" >&2; }
PIDS="$K8S_STATE/pids"

stop_pid() {  # name: SIGTERM, wait up to 20 s, then SIGKILL; only the recorded PID (and its own session)
  local f="$PIDS/$1.pid" pid
  [ -f "$f" ] || return 0
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && { log "$1 ($pid) did not stop: SIGKILL"; kill -KILL "$pid"; }
  fi
  rm -f "$f"
  log "stopped $1 ($pid)"
}

# kubelet first so that it does not restart what is being removed; then every container of every pod.
stop_pid kubelet
if [ -S "$K8S_CONTAINERD_SOCK" ]; then
  for c in $("${CTR[@]}" containers ls -q 2>/dev/null); do
    "${CTR[@]}" tasks kill -s SIGKILL "$c" >/dev/null 2>&1
  done
  sleep 1
  for c in $("${CTR[@]}" containers ls -q 2>/dev/null); do
    "${CTR[@]}" tasks delete -f "$c" >/dev/null 2>&1
    "${CTR[@]}" containers delete "$c" >/dev/null 2>&1
  done
fi
for name in kube-proxy coredns kube-scheduler kube-controller-manager kube-apiserver etcd containerd; do
  stop_pid "$name"
done
# containerd-shim processes whose containers are gone exit on their own; any left are ours (by socket path).
for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $K8S_CONTAINERD_SOCK" 2>/dev/null); do
  kill -TERM "$pid" 2>/dev/null && log "stopped shim $pid"
done

# Pod network namespaces that containerd created for our sandboxes (their veths go with them).
for ns in /var/run/netns/cni-*; do
  [ -e "$ns" ] || continue
  umount "$ns" 2>/dev/null; rm -f "$ns"
done
# Mounts under the state folder (kubelet volumes, overlay snapshots), deepest first.
awk -v root="$K8S_STATE" '$2 ~ "^"root {print $2}' /proc/mounts | sort -r | while read -r m; do
  umount "$m" 2>/dev/null || umount -l "$m"
done
awk -v root="$K8S_RUN" '$2 ~ "^"root {print $2}' /proc/mounts | sort -r | while read -r m; do
  umount "$m" 2>/dev/null || umount -l "$m"
done

# kube-proxy's and kubelet's chains (KUBE-*: no other Kubernetes runs here) and the rules that jump to them.
[ -x "$K8S_BIN/kube-proxy" ] && "$K8S_BIN/kube-proxy" --cleanup >/dev/null 2>&1
for ipt in iptables ip6tables; do
  command -v "$ipt" >/dev/null || continue
  for table in filter nat mangle; do
    "$ipt" -t "$table" -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j KUBE-' | grep -vE '^-A KUBE-' | while read -r rule; do
      eval "$ipt -t $table ${rule/-A /-D }"
    done
    for chain in $("$ipt" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}'); do
      "$ipt" -t "$table" -F "$chain"
    done
    for chain in $("$ipt" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}'); do
      "$ipt" -t "$table" -X "$chain"
    done
  done
done
ip link show "$K8S_BRIDGE" >/dev/null 2>&1 && ip link delete "$K8S_BRIDGE" && log "removed bridge $K8S_BRIDGE"
if [ -f "$K8S_STATE/sysctl.saved" ]; then
  while IFS='=' read -r key value; do
    echo "$value" >"/proc/sys/${key//.//}"
  done <"$K8S_STATE/sysctl.saved"
  rm -f "$K8S_STATE/sysctl.saved"
fi

# The cluster's state goes (a fresh etcd every time); containerd's image store stays unless PURGE=1.
if [ "${PURGE:-0}" = 1 ]; then
  rm -rf "$K8S_STATE" "$K8S_RUN"
else
  find "$K8S_STATE" -mindepth 1 -maxdepth 1 ! -name containerd -exec rm -rf {} +
  rm -rf "$K8S_STATE/containerd/io.containerd.grpc.v1.cri" "$K8S_RUN"
fi
log "cluster stopped"
