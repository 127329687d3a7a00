"""A deployment's drift window against a real local service: a binary model labelled at its threshold."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import httpx
import pandas as pd
import pytest

from core import deploy, registry
from core.config import SAMPLES_DIR
from core.monitoring import health
from core.monitoring.window import drift_over_time, window_drift
from core.registry import VersionMeta
from core.serving.predlog import LoggedRequest, PredictionLog
from core.store.models import Deployment
from tests.deploy.conftest import MODEL_NAME, run_cli, trained  # noqa: F401 - fixture

pytestmark = pytest.mark.xdist_group("deploy-local")


def test_a_binary_model_unchanged_traffic_shows_no_prediction_drift(engine, settings, tmp_path) -> None:
    # A churn classifier whose decision threshold is far from 0.5: the service labels rows at it.
    out = tmp_path / "churn"
    done = run_cli("train", "--data", str(SAMPLES_DIR / "mlc_churn.csv"), "--target", "churn",
                   "--models", "logistic_regression", "--trials", "2", "--budget", "10", "--folds", "3",
                   "--out", str(out), workspace=tmp_path / "cli")
    assert done.returncode == 0, done.stderr[-2000:]
    pipeline, info = registry.load_exported(out)
    assert abs(info["metrics"]["decision_threshold"] - 0.5) > 0.1  # otherwise 0.5 would label alike
    meta = VersionMeta(dataset_hash=info["dataset_hash"], target=info["target"], task=info["task"],
                       recipe_json=json.dumps(info["recipe"]), plan_json=json.dumps(info["plan"]),
                       model_family=info["model_family"], params=info["params"], metrics=info["metrics"],
                       cv=info["cv"], training_seconds=info["training_seconds"])
    reference = pd.read_parquet(out / "reference.parquet")
    registry.register_version(engine, name="churn", pipeline=pipeline, meta=meta, reference=reference,
                              settings=settings)
    row = deploy.deploy(engine, model="churn@1", target="local", settings=settings)
    try:
        # The training rows themselves: nothing has moved, inputs or predictions.
        rows = json.loads(reference.head(600).to_json(orient="records"))
        with httpx.Client(base_url=row.endpoint, timeout=30) as client:
            for start in range(0, len(rows), 100):
                assert client.post("/predict", json={"rows": rows[start:start + 100]}).status_code == 200
        log_engine = health.log_engine_for(settings)
        deadline = time.monotonic() + 10
        while len(health.logged_predictions(log_engine, model_name="churn")) < len(rows) and time.monotonic() < deadline:
            time.sleep(0.2)  # the log writes in batches
        window = window_drift(engine, row, settings, log_engine)
        log_engine.dispose()
    finally:
        deploy.stop_deployment(engine, row.id, settings=settings)
    # Labelled at 0.5, the reference's predictions were nearly all the majority class: "drifted".
    assert window.prediction is not None and not window.prediction.drifted, window.prediction
    # The reliance on each column needs no labels: some columns move the probabilities, as shares of one.
    table = window.table()
    assert window.weighted and table["importance"].sum() == pytest.approx(1.0)
    assert table["importance"].max() > 0.1


def test_drift_over_time_shows_the_hour_the_inputs_moved(engine, settings, trained) -> None:  # noqa: F811
    # Shuffled: the sample's rows come species by species, and 80 Adelie penguins are a drift of their own.
    reference = (pd.read_parquet(trained / "reference.parquet").drop(columns=["species"], errors="ignore")
                 .sample(frac=1, random_state=0).reset_index(drop=True))
    shifted = reference.assign(bill_length_mm=reference["bill_length_mm"] * 1.6,
                               flipper_length_mm=reference["flipper_length_mm"] * 1.6)
    start = datetime(2026, 11, 2, 8, tzinfo=timezone.utc)
    hours = [(reference.iloc[:80], 0), (reference.iloc[80:160], 1), (shifted.iloc[:80], 2), (shifted.iloc[80:85], 3)]
    log = PredictionLog(settings.serve_log_db_url, model_name=MODEL_NAME, model_version=1)
    for rows, hour in hours:  # one request per hour, its rows logged as the service logs them
        inputs = {c: rows[c].where(rows[c].notna(), None).tolist() for c in rows.columns}
        log.submit(LoggedRequest(request_id=f"r{hour}", created_at=start + timedelta(hours=hour, minutes=5),
                                 latency_ms=1.0, key=None, keys=None, inputs=inputs,
                                 predictions=["Adelie"] * len(rows), proba=None, classes=None,
                                 model_name=MODEL_NAME, model_version=1, variant=None))
    log.close()
    row = Deployment(model_name=MODEL_NAME, version=1, target="local", model_dir=str(trained))
    log_engine = health.log_engine_for(settings)
    try:
        over_time = drift_over_time(engine, row, settings, log_engine, freq="1h")
    finally:
        log_engine.dispose()
    # Hours 8 and 9 are training rows, hour 10 moved two columns; hour 11's five rows are too few to judge.
    assert [t.hour for t in over_time["time"]] == [8, 9, 10]
    assert over_time["rows"].tolist() == [80, 80, 80]
    assert over_time["share_drifted"].iloc[:2].tolist() == [0.0, 0.0]
    assert set(over_time["drifted"].iloc[2].split(", ")) == {"bill_length_mm", "flipper_length_mm"}
    assert over_time["share_drifted"].iloc[2] == pytest.approx(2 / len(reference.columns))
