# memjax: `make demo` runs the headline experiment, `make test` the tests.
# Both create a virtual environment in .venv (unless one is active) with Python >= 3.11.

VENV ?= .venv
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
  command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  && { echo $$p; break; }; done)

ifdef VIRTUAL_ENV
  PY := python
else
  PY := $(VENV)/bin/python
endif

.PHONY: demo test bench clean

$(VENV)/bin/python:
	@test -n "$(PYTHON)" || { echo "memjax needs Python >= 3.11 (jax >= 0.7 and flax 0.12 require it);" \
	  "install one, e.g. 'uv python install 3.12', or set PYTHON=/path/to/python3.11+"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade --quiet pip

demo: $(if $(VIRTUAL_ENV),,$(VENV)/bin/python)
	$(PY) -m pip install --quiet .
	$(PY) -m memjax.experiments.headline --config=configs/headline.py:cpu --workdir=runs/headline

test: $(if $(VIRTUAL_ENV),,$(VENV)/bin/python)
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pytest -n 2

bench: $(if $(VIRTUAL_ENV),,$(VENV)/bin/python)
	$(PY) -m pip install --quiet .
	$(PY) -m memjax.bench train --config=configs/clm.py:bench
	$(PY) -m memjax.bench train --config=configs/clm.py:bench --config.model.family=mixer

clean:
	rm -rf $(VENV) runs build *.egg-info
