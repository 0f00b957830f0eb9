# slem — every target runs inside .venv, which `make setup` creates from the lock file.
PY      := .venv/bin/python
UV      := .venv/bin/uv
STAMP   := .venv/.installed
DATA    ?=
OUT     ?= out
CONTRACTS ?= slem_ml/data/contracts.yaml

.PHONY: setup run test lint bench clean

setup: $(STAMP)

# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set (as on these machines) Python would otherwise
# compile every imported module from source on every start, 3-4 s for slem's dependencies.
$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	test -x $(UV) || $(PY) -m pip install --quiet --disable-pip-version-check uv
	$(UV) pip sync --quiet --compile-bytecode --python $(PY) requirements.lock
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	$(PY) -m compileall -q slem_ml  # PYTHONDONTWRITEBYTECODE may be set: compile once, start fast
	touch $(STAMP)

# Score DATA (default: freshly generated sample readings) with the sample contracts; results in $(OUT)/.
run: setup
	@if [ -z "$(DATA)" ]; then \
	  $(PY) -m slem_ml generate --out sample_data/readings.parquet --days 28 --zones 40 --seed 7 \
	    --labels sample_data/labels.csv && \
	  $(PY) -m slem_ml score sample_data/readings.parquet --contracts $(CONTRACTS) --out $(OUT); \
	else \
	  $(PY) -m slem_ml score "$(DATA)" --contracts $(CONTRACTS) --out $(OUT); \
	fi

test: setup
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check slem_ml tests benchmarks
	$(PY) -m ruff format --check slem_ml tests benchmarks
	$(PY) -m mypy

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf .venv out sample_data .pytest_cache .mypy_cache .ruff_cache
