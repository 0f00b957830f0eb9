# slem — every target runs inside .venv, which `make setup` creates from the lock file.
PY      := .venv/bin/python
UV      := .venv/bin/uv
STAMP   := .venv/.installed
DATA    ?=
OUT     ?= out
MODELS  ?= models
CONTRACTS ?= slem_ml/data/contracts.yaml
HOST    ?= 127.0.0.1
PORT    ?= 7860
SERVE   ?= yes

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
# With no champion model yet (MLflow store or $(MODELS)/), train one on the same data first; data too
# short to train on (< 21 days) is scored without models, and the run says so. Then the app serves the
# scored data on http://$(HOST):$(PORT) until Ctrl-C (SERVE=no stops after scoring).
run: setup
	@data="$(DATA)"; \
	if [ -z "$$data" ]; then \
	  data=sample_data/readings.parquet; \
	  $(PY) -m slem_ml generate --out $$data --days 63 --zones 40 --seed 7 --faults-after 0.6 \
	    --labels sample_data/labels.csv || exit 1; \
	fi; \
	$(PY) -m slem_ml train "$$data" --contracts $(CONTRACTS) --models-dir $(MODELS) --if-no-champion \
	  || echo "make run: no models trained (see above); scoring without them"; \
	$(PY) -m slem_ml score "$$data" --contracts $(CONTRACTS) --out $(OUT) --models-dir $(MODELS) || exit 1; \
	[ "$(SERVE)" = "no" ] || $(PY) -m slem_ml serve --readings "$$data" --contracts $(CONTRACTS) \
	  --models-dir $(MODELS) --host $(HOST) --port $(PORT)

test: setup
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check slem_ml tests benchmarks training gradio_app.py
	$(PY) -m ruff format --check slem_ml tests benchmarks training gradio_app.py
	$(PY) -m mypy
	.venv/bin/lint-imports --no-cache  # the rooms' layers and no cycles (.importlinter, docs/architecture.md)

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf .venv out sample_data .pytest_cache .mypy_cache .ruff_cache mlruns mlflow.db
	rm -f models/slem-models.joblib models/manifest.json
