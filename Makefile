# Two commands do everything on a fresh machine:
#   make demo   - create .venv, install, generate sample scans, subsample, reconstruct, score
#   make test   - create .venv, install, run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast test-readme bench-eval bench-cs bench-train clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh

test: $(STAMP)
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

test-readme: $(STAMP)
	$(BIN)/pytest -q tests/test_readme.py

bench-eval: $(STAMP)
	$(BIN)/python scripts/bench_eval.py

bench-cs: $(STAMP)
	$(BIN)/python scripts/bench_cs.py

bench-train: $(STAMP)
	$(BIN)/python scripts/bench_train.py

clean:
	rm -rf $(VENV) demo .bench
