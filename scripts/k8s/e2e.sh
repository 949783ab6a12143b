#!/usr/bin/env bash
# make k8s-e2e: cluster up (binaries built once, cached), images imported, the chart's story run, cluster down.
# PY: the project's venv python (make passes it). KEEP_CLUSTER=1 leaves the cluster running afterwards.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="${PY:-python3}"
started=$SECONDS
stop() { [ "${KEEP_CLUSTER:-0}" = 1 ] || bash "$HERE/down.sh"; }
trap stop EXIT
bash "$HERE/up.sh" || exit 1
echo "k8s-e2e: cluster up after $((SECONDS - started)) s" >&2
"$PY" "$HERE/images.py" || exit 1
echo "k8s-e2e: images imported after $((SECONDS - started)) s" >&2
"$PY" "$HERE/e2e.py" "$@"
status=$?
echo "k8s-e2e: wall time $((SECONDS - started)) s (build, images and run)" >&2
exit $status
