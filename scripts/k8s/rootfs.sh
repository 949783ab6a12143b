#!/usr/bin/env bash
# The Debian 12 rootfs every local image starts from, made once with debootstrap (minbase) and cached:
#  - python3 (3.11, like the Dockerfile's python:3.11-slim), libgomp1 (torch, llama.cpp), espeak-ng and opus-tools
#    (voice), ca-certificates;
#  - openjdk-17-jre-headless for the in-cluster Kafka broker and S3 store.
# One rootfs for all images, not one per kind: one debootstrap on a fresh machine instead of two (~5 min each on
# busy cores), and one base layer that containerd stores and imports once for every image.
# Debian's packages come from the machine's apt mirror (deb.debian.org); nothing else is fetched.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=env.sh
. "$HERE/env.sh"
DEST="$K8S_HOME/rootfs/base"
SUITE="${VISPOD_K8S_DEBIAN_SUITE:-bookworm}"
MIRROR="${VISPOD_K8S_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES=python3,libgomp1,espeak-ng,opus-tools,ca-certificates,openjdk-17-jre-headless
log() { echo "k8s-rootfs: $*" >&2; }

if [ -f "$DEST/.vispod-rootfs" ] && [ "$(cat "$DEST/.vispod-rootfs")" = "$SUITE $PACKAGES" ]; then
  exit 0
fi
[ "$(id -u)" = 0 ] || { log "must run as root (debootstrap)"; exit 1; }
command -v debootstrap >/dev/null || { log "installing debootstrap"; apt-get install -y -q debootstrap >/dev/null; }
mkdir -p "$K8S_HOME/rootfs"
rm -rf "$DEST.part"
log "debootstrap $SUITE ($PACKAGES) into $DEST (a few minutes; log: $DEST.log)"
start=$SECONDS
nice -n 19 debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$DEST.part" "$MIRROR" >"$DEST.log" 2>&1 \
  || { log "debootstrap failed: see $DEST.log"; exit 1; }
echo "$SUITE $PACKAGES" >"$DEST.part/.vispod-rootfs"
rm -rf "$DEST" && mv "$DEST.part" "$DEST"
log "rootfs ready in $((SECONDS - start)) s"
