# Set-up and stages. Every target creates .venv and installs the project into it on first
# use (torch and torchvision pinned by constraints.txt), and again when setup.cfg,
# pyproject.toml or constraints.txt change.
#
#   make demo                                   the embedded digits demo (examples/demo.toml)
#   make test                                   the whole test suite
#   make run CONFIG=examples/my.toml            every stale stage: extract -> fit -> report
#   make extract|fit|report CONFIG=...          one stage (and the stale stages before it)
#   make status CONFIG=...                      each stage: up to date, stale (why) or missing
#   make clean CONFIG=... [ARGS="fit --cache"]  remove a stage's outputs (all stages by default)
#   make predict CONFIG=... IMAGES="new/ x.jpg" classify new images with the run's best model
#   make bench                                  extraction speed, reading, fit times -> benchmarks/RESULTS.md
#   ARGS="--dry-run" / "--force" / "--set features.weights=random" / "--quiet"  pass options

PYTHON ?= python3
VENV ?= .venv
CONFIG ?= examples/demo.toml
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: help test demo bench run extract fit report status clean predict clean-venv

help:
	@sed -n '1,14p' Makefile

$(INSTALLED): setup.cfg pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed; run make PYTHON=python3.11 ...")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c constraints.txt -e '.[dev,cluster,timm]'
	touch $@

test: $(INSTALLED)
	$(PY) -m pytest -q

demo: $(INSTALLED)
	$(PY) -m pipeline run -c examples/demo.toml $(ARGS)

run extract fit report status clean: $(INSTALLED)
	$(PY) -m pipeline $@ -c $(CONFIG) $(ARGS)

bench: $(INSTALLED)
	$(PY) benchmarks/extraction.py --out benchmarks/RESULTS.md $(ARGS)

predict: $(INSTALLED)
	$(PY) -m pipeline predict -c $(CONFIG) $(IMAGES) $(ARGS)

clean-venv:
	rm -rf $(VENV)
