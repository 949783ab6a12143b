#!/usr/bin/env bash
# Builds the single-node cluster's binaries from the Go module proxy (no other source is reachable):
# kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy (Kubernetes
# v$K8S_VERSION, through a wrapper module: k8s.io/kubernetes cannot be `go install`ed because of its replace
# directives), etcd, CoreDNS, and the pause binary from pause.c. helm and kubectl come from scripts/install-tools.sh. Cached: a binary already built for this version is kept.
# Everything lands under $VISPOD_K8S_HOME (default ~/.cache/vispod/k8s); nothing here is ever committed.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-3.7.0}"
COREDNS_VERSION="${COREDNS_VERSION:-1.15.0}"
HOME_DIR="${VISPOD_K8S_HOME:-$HOME/.cache/vispod/k8s}"
BIN="$HOME_DIR/bin"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
export GOPATH="$HOME_DIR/gopath" GOCACHE="$HOME_DIR/gocache" GOMODCACHE="$HOME_DIR/gopath/pkg/mod"
export GOFLAGS="-trimpath" CGO_ENABLED=0 GOTOOLCHAIN=local
# 2 shared cores: compile at the lowest priority.
NICE=(nice -n 19)
mkdir -p "$BIN"
log() { echo "k8s-build: $*" >&2; }

# --- the wrapper module: k8s.io/kubernetes plus its staging modules at the matching v0.x tags ----------
K8S_MOD="$HOME_DIR/src/k8s-$K8S_VERSION"
if [ ! -f "$K8S_MOD/go.sum" ]; then
  mkdir -p "$K8S_MOD"
  log "resolving k8s.io/kubernetes v$K8S_VERSION"
  gomod="$(cd "$K8S_MOD" && "$GO" mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  staging_ver="v0.${K8S_VERSION#1.}"
  {
    echo "module vispod.local/k8sbuild"
    echo
    echo "go 1.24"
    echo
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    echo
    echo "replace ("
    # Kubernetes maps each staging module to ./staging/src/<module>; here each becomes its published tag.
    sed -n 's#^\s*\(k8s\.io/[a-z0-9.-]*\) => ./staging/src/.*#\t\1 => \1 '"$staging_ver"'#p' "$gomod"
    echo ")"
  } >"$K8S_MOD/go.mod"
  cat >"$K8S_MOD/tools.go" <<'GO'
//go:build tools

package k8sbuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
  (cd "$K8S_MOD" && "$GO" mod tidy)
fi

# Without these the binaries report v0.0.0 and the kubelet/API server version checks complain.
minor="${K8S_VERSION#1.}"; minor="${minor%%.*}"
LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDFLAGS+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

built_for() { [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.version" 2>/dev/null)" = "$2" ]; }

# Biggest first: the API server dominates a cold build.
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
  if built_for "$cmd" "$K8S_VERSION"; then continue; fi
  log "building $cmd v$K8S_VERSION"
  start=$SECONDS
  (cd "$K8S_MOD" && GOFLAGS="$GOFLAGS -mod=mod" "${NICE[@]}" "$GO" build -ldflags "$LDFLAGS" -o "$BIN/$cmd.part" "k8s.io/kubernetes/cmd/$cmd")
  mv "$BIN/$cmd.part" "$BIN/$cmd"; echo "$K8S_VERSION" >"$BIN/.$cmd.version"
  log "$cmd built in $((SECONDS - start)) s"
done

# --- etcd: its own wrapper module ------------------------------------------------------------------
if ! built_for etcd "$ETCD_VERSION"; then
  ETCD_MOD="$HOME_DIR/src/etcd-$ETCD_VERSION"
  mkdir -p "$ETCD_MOD"
  if [ ! -f "$ETCD_MOD/go.mod" ]; then
    printf 'module vispod.local/etcdbuild\n\ngo 1.24\n' >"$ETCD_MOD/go.mod"
    printf '//go:build tools\n\npackage etcdbuild\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$ETCD_MOD/tools.go"
    (cd "$ETCD_MOD" && "$GO" get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null)
  fi
  log "building etcd v$ETCD_VERSION"
  start=$SECONDS
  (cd "$ETCD_MOD" && GOFLAGS="$GOFLAGS -mod=mod" "${NICE[@]}" "$GO" build -ldflags "-s -w" -o "$BIN/etcd.part" go.etcd.io/etcd/server/v3)
  mv "$BIN/etcd.part" "$BIN/etcd"; echo "$ETCD_VERSION" >"$BIN/.etcd.version"
  log "etcd built in $((SECONDS - start)) s"
fi

# --- CoreDNS: the cluster's DNS (service names such as kafka:9092), run on the node's bridge address ----
# Only the plugins the Corefile uses (the stock build links every cloud SDK: many minutes more on 2 cores).
if ! built_for coredns "$COREDNS_VERSION"; then
  DNS_MOD="$HOME_DIR/src/coredns-$COREDNS_VERSION"
  mkdir -p "$DNS_MOD"
  if [ ! -f "$DNS_MOD/go.sum" ]; then
    printf 'module vispod.local/corednsbuild\n\ngo 1.24\n' >"$DNS_MOD/go.mod"
    cat >"$DNS_MOD/main.go" <<'GO'
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
)

// The order in which the plugins see a query (a subset of CoreDNS's plugin.cfg order).
func init() { dnsserver.Directives = []string{"bind", "errors", "cache", "kubernetes"} }

func main() { coremain.Run() }
GO
    (cd "$DNS_MOD" && "$GO" get "github.com/coredns/coredns@v$COREDNS_VERSION" >/dev/null && "$GO" mod tidy)
  fi
  log "building coredns v$COREDNS_VERSION"
  start=$SECONDS
  (cd "$DNS_MOD" && "${NICE[@]}" "$GO" build -ldflags "-s -w" -o "$BIN/coredns.part" .)
  mv "$BIN/coredns.part" "$BIN/coredns"; echo "$COREDNS_VERSION" >"$BIN/.coredns.version"
  log "coredns built in $((SECONDS - start)) s"
fi

# --- pause: the sandbox's init, static C from the kubernetes module ---------------------------------
if [ ! -x "$BIN/pause" ]; then
  src="$GOMODCACHE/k8s.io/kubernetes@v$K8S_VERSION/build/pause/linux/pause.c"
  [ -f "$src" ] || (cd "$K8S_MOD" && "$GO" mod download "k8s.io/kubernetes@v$K8S_VERSION")
  "${NICE[@]}" gcc -Os -static -DVERSION="v$K8S_VERSION" -o "$BIN/pause" "$src"
fi
log "binaries ready in $BIN"
