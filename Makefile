# memjax: `make demo` runs the headline experiment, `make test` the tests.
# Both create a virtual environment in .venv (unless one is active) with Python >= 3.11; where the
# machine has only an older python3 (e.g. 3.10), uv (installed from PyPI) fetches Python 3.12.
# `python -P` (3.11+) keeps the checkout off sys.path, so demo and bench run the installed memjax.

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
	@if [ -n "$(PYTHON)" ]; then \
	  $(PYTHON) -m venv $(VENV); \
	elif command -v python3 >/dev/null 2>&1; then \
	  echo "memjax needs Python >= 3.11 (jax and flax 0.12 do); fetching Python 3.12 with uv"; \
	  python3 -m venv .venv-uv && .venv-uv/bin/pip install --quiet uv \
	    && .venv-uv/bin/uv venv --seed --python 3.12 $(VENV); \
	else \
	  echo "memjax needs Python >= 3.11: install one, or set PYTHON=/path/to/python3.11+"; exit 1; \
	fi
	$(VENV)/bin/python -m pip install --upgrade --quiet pip

demo: $(if $(VIRTUAL_ENV),,$(VENV)/bin/python)
	$(PY) -m pip install --quiet .
	$(PY) -P -m memjax.experiments.headline --workdir=runs/demo

# -n 3 on 2 cores: a third worker fills the time another waits on a subprocess, a file or a lock.
test: $(if $(VIRTUAL_ENV),,$(VENV)/bin/python)
	$(PY) -m pip install --quiet -e '.[test,parity,tpu]'
	$(PY) -m pytest -n 3 --dist loadgroup

bench: $(if $(VIRTUAL_ENV),,$(VENV)/bin/python)
	$(PY) -m pip install --quiet .
	$(PY) -P -m memjax.bench train --config=configs/clm.py:bench
	$(PY) -P -m memjax.bench train --config=configs/clm.py:bench --config.model.family=mixer

clean:
	rm -rf $(VENV) .venv-uv runs build *.egg-info
