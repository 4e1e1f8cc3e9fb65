# Set-up and checks. `make demo` and `make test` work on a fresh clone: they create .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo train-demo test generated lint typecheck bench reproduce clean cuda-check-prepare

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU build of torch (an open range would download a multi-GB CUDA build).
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m unfoldgen.demo

# Train specs/lista_small.yaml, evaluate it, write docs/training/ (about a minute on 2 cores).
train-demo: install
	$(PY) -m unfoldgen.training.demo

# Lint (the package, the tests, the scripts and every generated file), type-check, then the test
# suite on two processes (pytest-xdist): the tests are independent, and most of their time is
# single-threaded compilation (SymPy, Numba).
test: lint typecheck
	$(PY) -m pytest -q -n 2

# Rebuild the committed output of every bundled spec.
generated: install
	for spec in specs/*.yaml; do $(VENV)/bin/unfoldgen build $$spec -o generated || exit 1; done

lint: install
	$(VENV)/bin/ruff check unfoldgen tests generated scripts

typecheck: install
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache

# On a machine with a GPU: do the generated modules run on CUDA and agree with the CPU?
# Prepare here (`make cuda-check-prepare`), then run `python scripts/cuda_check.py run build/cuda_check`
# there (it needs only torch and numpy).
cuda-check-prepare: install
	$(PY) scripts/cuda_check.py prepare build/cuda_check

# Benchmark every bundled spec (LISTA at 1 and 2 threads; about 30 minutes on 2 cores); writes
# docs/performance/*.json and docs/performance.md (`--only NAME,...` remeasures some).
bench: install
	$(PY) -m unfoldgen.benchmark.report

# Reproduce the literature's results: docs/results/*.json, the plots and docs/results.md (about
# an hour and a half on 2 cores; finished training runs under runs/reproduce are reused).
reproduce: install
	$(PY) -m unfoldgen.reproduce all
