# graphprune — two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: venv demo demo-prune test test-all bench clean

venv: $(STAMP)

# torch/torchvision are pinned to the releases that install from this machine's local copy
# (see README "Installation"); everything else comes from PyPI.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install -q -e ".[dev,spandrel,export]"
	touch $(STAMP)

# The demo recipe end to end on the embedded photos (~3-5 min on 2 cores): dense pretraining, ASSL,
# prune, fine-tune, evaluation, report. Re-running it continues or re-prints the finished run.
demo: $(STAMP)
	$(PY) tools/compress.py --recipe recipes/demo_x4_assl.yaml --out runs/demo_x4_assl --resume

# The engine alone: LEDSR F256R16 x4 pruned to 45 channels with no layer list (~5 s).
demo-prune: $(STAMP)
	$(PY) tools/demo_prune.py

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ""

bench: $(STAMP)
	$(PY) bench/analysis_speed.py

clean:
	rm -rf $(VENV) build *.egg-info
