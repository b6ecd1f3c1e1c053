# Everything a fresh machine needs: `make demo` runs the demo job, `make test` the tests.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JARS_STAMP := $(VENV)/.jars

.PHONY: setup demo test bench bench-tiny bench-diagnose clean

setup: $(STAMP) $(JARS_STAMP)

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "need $(PY) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,demo,bench]'
	touch $(STAMP)

# Resolves the Delta jars from Maven Central through Spark's Ivy and caches them
# (~/.ivy2.5.2), so later sessions start offline; a failed try is retried after 2, 4, 8 s.
$(JARS_STAMP): $(STAMP)
	$(BIN)/python -m hippo.session --fetch-jars
	touch $(JARS_STAMP)

demo: setup
	$(BIN)/python jobs/flights_demo.py

# Two test processes, a file each at a time: Spark leaves a core idle while its driver
# plans, logs and commits (1,022 s instead of 1,163 s for the suite on 2 cores).
test: setup
	$(BIN)/python -m pytest tests -n 2 --dist loadfile

# Figures appended to bench/RESULTS.md; e.g. `make bench SF=1 STORAGE_SF=0.1 PAIRS=5 PICKS=20`,
# `make bench FIGURES=storage`, `make bench BENCH_ARGS="--latency-workloads q1,q3"`.
bench: setup
	$(BIN)/python -m bench.run $(if $(SF),--sf $(SF)) $(if $(STORAGE_SF),--storage-sf $(STORAGE_SF)) \
		$(if $(PAIRS),--pairs $(PAIRS)) $(if $(PICKS),--picks $(PICKS)) \
		$(if $(FIGURES),--figures $(FIGURES)) $(if $(WORKLOADS),--workloads $(WORKLOADS)) $(BENCH_ARGS)

bench-diagnose: setup
	$(BIN)/python -m bench.diagnose $(if $(ROWS),--rows $(ROWS)) $(if $(PAIRS),--pairs $(PAIRS)) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
