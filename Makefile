# Set-up and stages. `make test` and `make demo` create .venv and install the project
# into it on first use (torch and torchvision pinned by constraints.txt).
#
#   make demo                              the embedded digits demo
#   make test                              the whole test suite
#   make run CONFIG=examples/my.toml       extract -> fit -> report for any config
#   make extract|fit|report CONFIG=...     one stage

PYTHON ?= python3
VENV ?= .venv
CONFIG ?= examples/demo.toml
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: help test demo run extract fit report clean-venv

help:
	@sed -n '1,9p' Makefile

$(INSTALLED): setup.cfg pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed; run make PYTHON=python3.11 ...")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c constraints.txt -e '.[dev]'
	touch $@

test: $(INSTALLED)
	$(PY) -m pytest -q

demo: $(INSTALLED)
	$(PY) -m pipeline run -c examples/demo.toml

run extract fit report: $(INSTALLED)
	$(PY) -m pipeline $@ -c $(CONFIG) $(ARGS)

clean-venv:
	rm -rf $(VENV)
