# Everything a fresh machine needs: `make demo` runs the demo job, `make test` the tests.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JARS_STAMP := $(VENV)/.jars

.PHONY: setup demo test bench bench-tiny clean

setup: $(STAMP) $(JARS_STAMP)

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "need $(PY) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,demo,bench]'
	touch $(STAMP)

# Resolves the Delta jars from Maven Central through Spark's Ivy and caches them
# (~/.ivy2.5.2), so later sessions start offline.
$(JARS_STAMP): $(STAMP)
	$(BIN)/python -m hippo.session --fetch-jars
	touch $(JARS_STAMP)

demo: setup
	$(BIN)/python jobs/flights_demo.py

test: setup
	$(BIN)/python -m pytest tests

bench: setup
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) build *.egg-info
