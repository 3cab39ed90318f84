# Every target does its own set-up on a fresh clone: a .venv made with pip, the package and its extras.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# The offline Hub mirror beside the checkout (read-only); the real Hub is used when it is absent.
ifneq ($(wildcard ../shared/mirror),)
export OE_TEXT_MIRROR ?= $(abspath ../shared/mirror)
endif
export TOKENIZERS_PARALLELISM ?= false
# Idle OpenMP threads sleep instead of spinning: on a shared or small CPU spinning costs 3-5x in speed.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: install test lint demo bench clean

$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[all,dev]"
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check oe_text recipes tests benchmarks examples notebooks
	$(VENV)/bin/ruff format --check oe_text recipes tests benchmarks examples notebooks

demo: install
	$(VENV)/bin/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no --num_cpu_threads_per_process 2 --cpu recipes/sst2_oe.py

# The CPU-feasible quick subset of the benchmark (GRU cost + memory scale); see benchmarks/README.md.
bench: install
	$(PY) benchmarks/run_all.py --quick

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
