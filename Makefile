# trtaoti developer entry points. `make test` is the one CI runs (.ci/run).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON      ?= python3
CACHE       ?= $(HOME)/.cache/trtaoti
VENV        ?= $(CACHE)/venv
PY          := $(VENV)/bin/python
SERVER_DIR  := images/server
SERVER_BIN  := $(SERVER_DIR)/build/trtaoti-server
PYTEST_ARGS ?=

export PATH := $(VENV)/bin:$(PATH)

.PHONY: help
help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

.PHONY: venv
# The venv lives outside the tree and is shared by every checkout on the machine, so the
# stamp is keyed by the dependency list's content (not its mtime), and the editable
# install is re-pointed whenever the venv last served another checkout.
VENV_STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)
venv: $(VENV_STAMP) ## Python environment (torch, kopf, test and lint tools) in $(VENV)
	@grep -qxF '$(CURDIR)/operator' $(VENV)/lib/python3*/site-packages/__editable__.trtaoti-*.pth 2>/dev/null \
		|| $(PY) -m pip install -q --no-deps -e .
$(VENV_STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[compile,test,bench,lint]'
	$(PY) -m pip install -q --no-deps $$($(PY) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["tool"]["trtaoti"]["install-without-dependencies"])')
	@rm -f $(VENV)/.installed*
	@touch $@

.PHONY: system-deps
system-deps: ## Debian packages the server build needs (apt-get)
	hack/install-system-deps.sh

.PHONY: bins
bins: ## build the control plane, KWOK, Helm and MinIO from Go modules (cached)
	hack/build-binaries.sh
	@# The Flux health-check evaluator (tests/unit/test_gitops_health.py) is built by the
	@# test from the module cache; tests never download, so fetch its modules here.
	cd hack/flux-healthcheck && go mod download

.PHONY: refs
refs: venv ## unpack the pinned torch-tensorrt's Python source (the TensorRT mapping tests read its signatures)
	TRTAOTI_PYTHON=$(PY) hack/fetch-reference-sources.sh

.PHONY: images
images: venv ## build the operator, compiler and server images (CPU variant) with buildah; cached by content
	TRTAOTI_PYTHON=$(PY) hack/build-images.sh

.PHONY: server
server: venv ## build images/server/build/trtaoti-server against the torch wheel's libtorch
	$(SERVER_DIR)/build.sh $(PY)

.PHONY: demo
demo: system-deps venv server ## compile the CPU MLP example, serve it with trtaoti-server, send one inference, exit
	$(PY) -m trtaoti.cli run examples/mlp/trtaotimodel.yaml --once

.PHONY: crds
crds: venv ## regenerate crds/, the chart's CRD template, docs/reference.md and docs/install.md's values table
	$(PY) -m trtaoti.cli crds -o crds/trtaotimodels.yaml
	$(PY) charts/trtaoti-operator/hack/generate-crd-template.py
	$(PY) -m trtaoti.api.reference -o docs/reference.md
	$(PY) charts/trtaoti-operator/hack/generate-values-doc.py

.PHONY: dev-cluster
# REAL_NODE=1 adds a real kubelet node running our images (root; builds them first).
dev-cluster: venv bins $(if $(REAL_NODE),images) ## start etcd, apiserver, controllers, scheduler, KWOK GPU nodes and MinIO; writes .dev/
	TRTAOTI_PYTHON=$(PY) hack/dev-cluster.sh up $(if $(REAL_NODE),--real-node)

.PHONY: dev-cluster-down
dev-cluster-down: ## stop everything dev-cluster started
	TRTAOTI_PYTHON=$(PY) hack/dev-cluster.sh down

.PHONY: test
test: system-deps venv bins server refs images ## the whole suite: unit, cluster, node, e2e (gpu tests skip without a GPU)
	$(PY) -m pytest tests $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: venv ## fast tests only
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# What the linters read: everything git tracks, so a new file is checked without a list
# to update. Shell scripts are the *.sh files and any file with a sh/bash shebang.
CXX_SOURCES   = $(shell git ls-files '$(SERVER_DIR)/src/*.cc' '$(SERVER_DIR)/src/*.h' '$(SERVER_DIR)/test/*.cc' '$(SERVER_DIR)/test/*.h')
SHELL_SCRIPTS = $(shell { git ls-files '*.sh'; git ls-files -z | xargs -0 awk 'FNR == 1 && /^\#!.*(bash|\/sh)/ { print FILENAME } { nextfile }'; } | sort -u)

.PHONY: lint lint-ruff lint-python-format lint-types lint-cxx lint-cuda lint-shell
lint: venv ## ruff (lint, format check), mypy, clang-format check, the CUDA source compiled for syntax, shellcheck; reports every failing tool
	@$(MAKE) --no-print-directory -k lint-ruff lint-python-format lint-types lint-cxx lint-cuda lint-shell

lint-ruff:
	ruff check --no-fix .

lint-python-format:
	ruff format --check --output-format concise . || { echo "run make format"; exit 1; }

lint-types:
	mypy

lint-cxx:
	clang-format --dry-run --Werror $(CXX_SOURCES)

# cuda_device.cc is built only where a CUDA toolkit is (the GPU machine); this compiles it
# for syntax against the pip CUDA headers, so a mistake shows here first.
lint-cuda:
	$(SERVER_DIR)/check-cuda.sh $(PY)

lint-shell:
	shellcheck --external-sources --source-path=SCRIPTDIR $(SHELL_SCRIPTS)

.PHONY: format
format: venv ## rewrite Python (imports, ruff format) and the server's C++ (clang-format) in place
	ruff check --select I --fix-only --quiet .
	ruff format .
	clang-format -i $(CXX_SOURCES)
