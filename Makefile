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
FEED    ?= yes
BROKER  ?= 127.0.0.1:1883

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

# Score DATA (default: freshly generated sample readings) with the sample contracts; results in $(OUT)/
# (the sample's March 2025 report too, in $(OUT)/reports/ and the app's Reports tab).
# With no champion model yet (MLflow store or $(MODELS)/), train one on the same data first; data too
# short to train on (< 21 days) is scored without models, and the run says so. Then the app serves the
# scored data on http://$(HOST):$(PORT) until Ctrl-C (SERVE=no stops after scoring), with a demo feed
# beside it (FEED=no: none): `slem ingest` stores what `slem simulate` publishes on the MQTT broker at
# $(BROKER) — today's readings of the sample's building, the hours already past at 240 times real time,
# then live — so the Live tab moves and alerts arrive. Their logs: $(OUT)/ingest.log, $(OUT)/simulate.log;
# they stop with the app. With no broker answering, one line says so and the app is served alone.
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
	if [ -z "$(DATA)" ]; then \
	  $(PY) -m slem_ml report --period 2025-03 --contracts $(CONTRACTS) --out $(OUT)/reports \
	    --models-dir $(MODELS) || echo "make run: no report made (see above)"; \
	fi; \
	[ "$(SERVE)" = "no" ] && exit 0; \
	pids=""; \
	trap 'kill $$pids 2>/dev/null; wait $$pids 2>/dev/null' EXIT; \
	trap 'exit 130' INT; \
	trap 'exit 143' TERM; \
	if [ "$(FEED)" = "no" ]; then :; \
	elif ! $(PY) -c 'import socket, sys; h, _, p = sys.argv[1].rpartition(":"); socket.create_connection((h, int(p)), 3)' \
	    "$(BROKER)" 2>/dev/null; then \
	  echo "make run: no MQTT broker answers at $(BROKER): serving without the demo feed (BROKER=HOST:PORT)"; \
	else \
	  $(PY) -m slem_ml ingest --mqtt mqtt://$(BROKER) --contracts $(CONTRACTS) --models-dir $(MODELS) \
	    > $(OUT)/ingest.log 2>&1 & pids="$$!"; \
	  for i in $$(seq 120); do \
	    grep -q "connected to" $(OUT)/ingest.log && break; kill -0 $$pids 2>/dev/null || break; sleep 0.25; \
	  done; \
	  if kill -0 $$pids 2>/dev/null; then \
	    $(PY) -m slem_ml simulate --mqtt mqtt://$(BROKER) --contracts $(CONTRACTS) --zones 40 --seed 7 \
	      --speed 240 > $(OUT)/simulate.log 2>&1 & pids="$$pids $$!"; \
	    echo "make run: demo feed: slem simulate -> mqtt://$(BROKER) -> slem ingest ($(OUT)/simulate.log, $(OUT)/ingest.log)"; \
	  else \
	    echo "make run: slem ingest stopped (see $(OUT)/ingest.log): no demo feed"; \
	  fi; \
	fi; \
	$(PY) -m slem_ml serve --readings "$$data" --contracts $(CONTRACTS) \
	  --models-dir $(MODELS) --host $(HOST) --port $(PORT) & pids="$$pids $$!"; \
	wait $$!

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
