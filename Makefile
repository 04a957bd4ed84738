# Two commands on a fresh machine (Python 3.11, a C/C++ compiler, make, PostgreSQL 15 server
# binaries; the pgvector extension is built and installed for them when missing, which needs
# root for apt-get and make install: scripts/install-pgvector.sh):
#   make demo   streamed generation, embedding check, a 3-step story on the bundled models
#   make test   ruff, mypy (memora, memora.agents, memora.tui), the whole pytest suite
# Both create or update .venv first. llama-cpp-python builds from source once (about 7 minutes
# on 2 cores) into a wheel kept under ~/.cache/memora/wheels, so later venvs install it in seconds.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.memora-installed
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

# llama.cpp CPU build: portable AVX2 kernels. `-march=native` also compiles ggml's AMX kernels,
# which crash (SIGSEGV in ggml_backend_amx_mul_mat) on machines whose CPU reports AMX but whose
# kernel or sandbox does not grant the AMX tile state. The wheel directory is keyed by these
# flags, so a change of flags builds a new wheel instead of reusing a stale one.
# The pin is the release CI builds and tests. memora drives llama.cpp only through the C API of
# llama.h (memora/llm/llamacpp/native.py), so it is not tied to one release's internals: the
# whole suite also passed with 0.3.30 (290 passed, 2026-11-29). The pin stays because wheels are
# built from source here and cached by this version; to move, change this line and the
# llama-cpp-python pins in pyproject.toml together, then run `make test`.
LLAMA_VERSION := 0.3.36
LLAMA_FLAVOR := cpu-avx2
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF
WHEELS := $(HOME)/.cache/memora/wheels/llama-cpp-python-$(LLAMA_VERSION)-$(LLAMA_FLAVOR)

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv demo test lint typecheck pytest bench clean pgvector

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first: 2.13.0 is the CPU wheel on this machine's disk; letting sentence-transformers pick
# torch would pull a multi-GB CUDA build.
$(WHEELS)/.built: | $(BIN)/python
	mkdir -p $(WHEELS)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) $(BIN)/pip wheel \
		--disable-pip-version-check --no-deps --no-cache-dir --no-binary llama-cpp-python \
		-w $(WHEELS) "llama-cpp-python==$(LLAMA_VERSION)"
	touch $@

$(STAMP): pyproject.toml $(WHEELS)/.built | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check "torch==2.13.0"
	$(BIN)/pip install --disable-pip-version-check $(WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	$(BIN)/pip install --disable-pip-version-check -e ".[all,dev]"
	touch $@

demo: $(STAMP)
	$(BIN)/python examples/quickstart.py
	$(BIN)/python examples/story_demo.py --steps 3

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# memora.agents and memora.tui live in agents/ and tui/ (setuptools package-dir), which mypy
# cannot map; it checks a tree of links that puts them where they are imported from.
MYPY_TREE := .mypy-tree

typecheck: $(STAMP)
	rm -rf $(MYPY_TREE) && mkdir -p $(MYPY_TREE)/memora
	for f in memora/*; do ln -s "$(CURDIR)/$$f" $(MYPY_TREE)/memora/; done
	ln -s "$(CURDIR)/agents" $(MYPY_TREE)/memora/agents
	ln -s "$(CURDIR)/tui" $(MYPY_TREE)/memora/tui
	cd $(MYPY_TREE) && $(abspath $(BIN))/mypy --config-file $(CURDIR)/pyproject.toml \
		--cache-dir $(CURDIR)/.mypy_cache -p memora

# The Postgres tests start their own server (initdb + pg_ctl on a Unix socket); its pgvector
# extension comes from here.
pgvector:
	scripts/install-pgvector.sh

pytest: $(STAMP) pgvector
	$(BIN)/python -m pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python bench/llm_overhead.py

clean:
	rm -rf $(VENV) .mypy_cache .mypy-tree .pytest_cache .ruff_cache
