#!/usr/bin/env bash
# The Debian programs `make demo` and `make test` need, installed as root with apt-get (as CI does), or, without
# root, a stop at once with the exact command to run. Quick when everything is present.
#   usage: install-system-packages.sh demo|test
#   demo: java + maven (the Kafka broker), cmake + g++ (llama.cpp), espeak-ng + opus-tools (the podcast's audio)
#   test: the same, plus chromium (the report is checked in a real browser) and prometheus (promtool)
set -euo pipefail
need=()
want() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
want java openjdk-17-jre-headless
want mvn maven
want cmake cmake
want g++ g++
want espeak-ng espeak-ng
want opusenc opus-tools
if [ "${1:-demo}" = test ]; then
  want chromium chromium
  want promtool prometheus
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing system packages: ${need[*]}" >&2
  echo "run:  sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
