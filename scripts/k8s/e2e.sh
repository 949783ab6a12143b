#!/usr/bin/env bash
# make k8s-e2e: cluster up (binaries built once, cached), images imported, the chart's story run, cluster down.
# PY: the project's venv python (make passes it). KEEP_CLUSTER=1 leaves the cluster running afterwards.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# KUBECONFIG and the PATH to kubectl, helm and the cluster's binaries, for e2e.py too (it failed at its first
# kubectl call without them: up.sh sets them only for itself).
# shellcheck source=env.sh
. "$HERE/env.sh"
PY="${PY:-python3}"
started=$SECONDS
stop() { [ "${KEEP_CLUSTER:-0}" = 1 ] || bash "$HERE/down.sh"; }
trap stop EXIT
bash "$HERE/up.sh" || exit 1
echo "k8s-e2e: cluster up after $((SECONDS - started)) s" >&2
"$PY" "$HERE/images.py" || exit 1
echo "k8s-e2e: images imported after $((SECONDS - started)) s" >&2
out="$(mktemp)"
"$PY" "$HERE/e2e.py" "$@" | tee "$out"
status=${PIPESTATUS[0]}
trap - EXIT
stop
echo "k8s-e2e: wall time $((SECONDS - started)) s (build, images, run and down)" >&2
# The story's summary is the last line (down.sh's own lines came after it).
grep '^k8s e2e: ' "$out" | tail -1
rm -f "$out"
exit $status
