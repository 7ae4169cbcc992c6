# The README's two commands: `make demo` and `make test`. Both create .venv when it is
# missing and install into it once; a second run reinstalls only when pyproject.toml or
# constraints.txt changed. Every install goes through constraints.txt (the versions tested together).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TORCH  := torch==2.13.0
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: install services browser test lint demo clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# torch first and pinned: a CPU wheel serves it; an unpinned torch would pull a CUDA build.
	$(PIP) "$(TORCH)"
	@# dev pulls the service, the exporter and the client extras: the demo and every test need them.
	$(PIP) -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

services:
	@.ci/ensure-services

browser:
	@.ci/ensure-browser

lint: install
	$(VENV)/bin/ruff check .

# Parallel workers, one per core up to four, each running whole modules (their fixtures start
# one worker or server per module), slowest modules first (tests/conftest.py). PYTEST_ARGS=-n0 runs serially.
PYTEST_ARGS ?= -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder

test: install services browser lint
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

demo: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m ppruning_client.demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) .ppruning .pytest_cache
