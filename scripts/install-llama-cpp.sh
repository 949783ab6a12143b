#!/usr/bin/env bash
# Installs llama-cpp-python (the embedded GGUF engine) into a venv: compiled from PyPI's sdist once per
# machine (minutes on 2 cores), the wheel cached in ~/.cache/vispod/wheels and reused after that.
# If the compile fails, says so plainly and exits 0: the transformers backend (backend=local) still works.
#   usage: install-llama-cpp.sh PYTHON CONSTRAINTS
set -uo pipefail
PY="$1"
CONSTRAINTS="$2"
VERSION="$(sed -n 's/^llama[-_]cpp[-_]python==//p' "$CONSTRAINTS")"
WHEELS="${VISPOD_WHEEL_CACHE:-$HOME/.cache/vispod/wheels}"
LLAMA_CMAKE_ARGS="-DLLAVA_BUILD=OFF"
if [ "$(uname -m)" = "x86_64" ]; then
  LLAMA_CMAKE_ARGS="$LLAMA_CMAKE_ARGS -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
fi
if [ -z "$VERSION" ]; then echo "install-llama-cpp: no llama-cpp-python pin in $CONSTRAINTS" >&2; exit 1; fi
if "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('llama-cpp-python') != '$VERSION')" 2>/dev/null; then
  exit 0
fi
mkdir -p "$WHEELS"
wheel="$(ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl 2>/dev/null | head -1)"
if [ -z "$wheel" ]; then
  echo "compiling llama.cpp (llama-cpp-python $VERSION) from source: about 4 minutes on 2 idle cores (longer on busy ones), once per machine …"
  log="$WHEELS/llama-cpp-python-$VERSION.build.log"
  # A portable x86-64 build (AVX2/FMA/F16C), not -march=native: native builds enable AMX/AVX-512 paths that
  # die with SIGILL in VMs that report those flags without enabling them. No llava/mtmd library (unused).
  if ! CMAKE_ARGS="${VISPOD_LLAMA_CMAKE_ARGS:-$LLAMA_CMAKE_ARGS}" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$PY" -m pip wheel -q --no-cache-dir --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$VERSION" -w "$WHEELS" >"$log" 2>&1; then
    echo "WARNING: llama.cpp could not be compiled on this machine (log: $log)."
    echo "WARNING: the embedded llamacpp backend is unavailable; set VISPOD_GENERATOR_BACKEND=local (transformers)."
    exit 0
  fi
  wheel="$(ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl | head -1)"
fi
"$PY" -m pip install -q -c "$CONSTRAINTS" "$wheel"
