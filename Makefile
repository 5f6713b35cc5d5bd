# Two commands on a fresh machine with Python 3.11 and make:
#   make tour   -- set up .venv if missing and run the main job on the bundled digits
#   make test   -- same set-up, then the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pyrogen-installed

.PHONY: tour test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU wheel of this torch pin installs from local disk in seconds; install it first so
	# that the project's looser "torch>=" requirement is already satisfied.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

tour: $(STAMP)
	$(VENV)/bin/pyrogen tour $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -n 2 -q $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build *.egg-info

# The NumPyro venv of benchmarks/discrete.py (a benchmark-only environment, gitignored).
.PHONY: bench-venv-numpyro
bench-venv-numpyro:
	@test -x .venv-numpyro/bin/python || $(PYTHON) -m venv .venv-numpyro
	.venv-numpyro/bin/python -m pip install --quiet --upgrade pip
	.venv-numpyro/bin/python -m pip install --quiet -r benchmarks/requirements-numpyro.txt
