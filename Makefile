# Two commands for a newcomer: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
PORT ?= 8501

.PHONY: run test bench clean-workspace migration

# Reinstall only when requirements.txt changes, so a second `make run` starts at once.
$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m streamlit run app.py --server.port $(PORT)

test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadgroup

# Peers with dependencies that clash with the app's pins get a virtualenv of their own.
# ydata-profiling for bench.profile, FLAML (with its LightGBM/XGBoost extras) for bench.automl,
# MLflow (the `mlflow models serve` scoring server) for bench.serving; 3.17.2, since the
# index holds no mlflow-skinny 3.18.0 (the dependency of mlflow 3.18.0).
BENCH_VENV := .venv-bench
BENCH_PEERS := ydata-profiling==4.18.4 pandas==2.3.3 'flaml[automl]==2.7.0' mlflow==3.17.2
$(BENCH_VENV)/.installed: Makefile
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(BENCH_PEERS)
	touch $@

# bench.automl: ~5 datasets x (60 s ShipML + 60 s FLAML + LightGBM) = about 12 minutes.
# bench.serving: 3 servers x 3 concurrencies x 20 s plus batches and logging = about 6 minutes.
bench: $(STAMP) $(BENCH_VENV)/.installed
	$(PY) -m bench.profile
	$(PY) -m bench.automl --peer-python $(BENCH_VENV)/bin/python
	$(PY) -m bench.serving --peer-python $(BENCH_VENV)/bin/python
	$(PY) -m bench.drift

clean-workspace:
	rm -rf data/workspace

# A new migration of the store from what core/store/models.py adds to the last one (README:
# "Schema migrations"): a scratch database is brought to the last migration and compared.
migration: $(STAMP)
	test -n "$(m)" || { echo 'usage: make migration m="what changed"'; exit 2; }
	db=$$(mktemp -u /tmp/shipml-migration-XXXXXX.db) && alembic="$(VENV)/bin/alembic -c core/store/alembic.ini -x url=sqlite:///$$db" \
	  && number=$$(printf '%04d' $$(( $$(ls core/store/migrations/versions/*.py | wc -l) + 1 ))) \
	  && $$alembic upgrade head && $$alembic revision --autogenerate --rev-id "$$number" -m "$(m)"; \
	  status=$$?; rm -f "$$db"; exit $$status
