# The make targets are the project's interface: demo, test, lint, protos, docs, bench.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PROTOS := $(wildcard protos/article6/v1/*.proto)
GENERATED := article6/v1/.generated
TYPED := article6/v1/.typed

.PHONY: all install install-dev protos lint test demo docs bench campaign multihub fuzz clean portal-screenshots

all: test

# Running needs the runtime packages plus the proto compiler (build extra); linters, type
# checkers and test tools come only with `make test` (dev extra), so `make demo` stays small.
$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[build]'
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[build,dev]'
	touch $@

install: $(VENV)/.installed $(GENERATED)

install-dev: install $(VENV)/.installed-dev $(TYPED)

# Python messages and gRPC stubs for protos/, written beside article6/v1/__init__.py; their
# typed stubs too where mypy-protobuf is installed (the dev extra), else by $(TYPED) later.
STUBS = --plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy --mypy_out=. \
	--plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc --mypy_grpc_out=.
$(GENERATED): $(VENV)/.installed $(PROTOS) protos/buf.yaml
	rm -f article6/v1/*_pb2*.py article6/v1/*_pb2*.pyi $(TYPED)
	$(PY) -m grpc_tools.protoc -I protos --python_out=. --grpc_python_out=. \
		$(if $(wildcard $(BIN)/protoc-gen-mypy),$(STUBS)) $(PROTOS)
	$(if $(wildcard $(BIN)/protoc-gen-mypy),touch $(TYPED))
	touch $@

$(TYPED): $(VENV)/.installed-dev $(GENERATED)
	$(PY) -m grpc_tools.protoc -I protos $(STUBS) $(PROTOS)
	touch $@

protos: $(GENERATED) $(if $(wildcard $(VENV)/.installed-dev),$(TYPED))

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd protos && ../$(BIN)/buf lint
	cd protos && ../$(BIN)/buf build -o /dev/null

test: lint
	$(BIN)/pytest

# Rewrite the generated sections of docs/PROTOCOL.md (response codes, test vectors).
docs: install
	$(PY) -m article6.docs --write

# KEEP=1 leaves the network serving once the scenario is done (Ctrl-C stops it).
demo: install
	$(PY) -m demo $(if $(KEEP),--keep-running)

# Screenshots of the portal for docs/PORTAL.md, taken by its browser test (needs chromium).
portal-screenshots: install-dev
	A6_SCREENSHOTS=docs/portal $(BIN)/pytest -q tests/e2e/test_portal_browser.py

# Benchmarks print a table and write bench/RESULTS.md (machine, command, figures).
bench: install
	$(PY) -m bench $(if $(BEFORE),--before $(BEFORE))

# The long crash campaign (a short one runs in the tests). SEED=n replays a run.
CAMPAIGN_TRANSFERS ?= 100000
CAMPAIGN_KILLS ?= 1000
campaign: install
	$(PY) -m campaign --transfers $(CAMPAIGN_TRANSFERS) --kills $(CAMPAIGN_KILLS) \
		$(if $(SEED),--seed $(SEED)) --json campaign-result.json

# Two hubs on one PostgreSQL database (needs the server at 127.0.0.1:5432).
MULTIHUB_ATTEMPTS ?= 10000
multihub: install
	$(PY) -m campaign.multihub --attempts $(MULTIHUB_ATTEMPTS)

# The hub's Hub service under a million seeded hostile inputs (a short run is in the tests).
FUZZ_INPUTS ?= 1000000
fuzz: install
	$(PY) -m fuzz --inputs $(FUZZ_INPUTS) $(if $(SEED),--seed $(SEED))

clean:
	rm -rf $(VENV) article6/v1/*_pb2*.py article6/v1/*_pb2*.pyi $(GENERATED) $(TYPED) run
