"""Performance from feedback: labels joined to logged predictions, scored per window, by hand."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from core.errors import BadInput
from core.monitoring import performance as perf
from core.serving.predlog import LoggedRequest, PredictionLog, make_log_engine

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
BINARY = perf.ModelInfo(name="churn", version=3, task="binary", primary_metric="roc_auc",
                        training={"accuracy": 0.9, "roc_auc": 0.95})


def _request(request_id: str, at: datetime, predictions: list, p_yes: list[float] | None, *,
             key: str | None = None, keys: list[str] | None = None) -> LoggedRequest:
    proba = None if p_yes is None else np.column_stack([1 - np.array(p_yes), np.array(p_yes)])
    return LoggedRequest(request_id=request_id, created_at=at, latency_ms=2.0, key=key, keys=keys,
                         inputs={"x": list(range(len(predictions)))}, predictions=predictions, proba=proba,
                         classes=("no", "yes") if p_yes is not None else None)


@pytest.fixture
def binary_log(tmp_path):
    url = f"sqlite:///{tmp_path / 'log.db'}"
    log = PredictionLog(url, model_name="churn", model_version=3)
    log.submit(_request("r1", T0, ["yes", "no", "yes", "no"], [0.9, 0.2, 0.6, 0.1], keys=["k1", "k2", "k3", "k4"]))
    log.submit(_request("r2", T0 + timedelta(days=1), ["no", "no"], [0.3, 0.45], key="cust-7"))
    log.submit(_request("r3", T0 + timedelta(days=1, hours=2), ["yes"], [0.8], key="cust-7"))
    log.flush()
    # Labels as /feedback stores them (the service calls exactly this), by request id + row or key.
    log.add_feedback([
        {"request_id": "r1", "row_index": 0, "label": "yes"},
        {"request_id": "r1", "row_index": 1, "label": "yes"},  # corrected by the upload below
        {"key": "k3", "label": "no"},
        {"key": "k4", "label": "no"},
        {"key": "cust-7", "label": "yes"},  # no row: the key's latest prediction, r3 row 0
        {"key": "cust-7", "row_index": 1, "label": "yes"},  # the latest prediction with that key and row: r2 row 1
    ])
    other = PredictionLog(url, model_name="churn", model_version=2)  # another version: never mixed in
    other.submit(_request("old", T0, ["yes"], [0.99]))
    other.add_feedback([{"request_id": "old", "row_index": 0, "label": "no"}])
    other.close()
    log.close()
    return make_log_engine(url)


def test_performance_from_feedback_and_an_upload_matches_a_hand_computation(binary_log) -> None:
    upload = perf.labels_from_frame(pd.DataFrame({
        "request_id": ["r2", "r1", "nope"], "row": [0, 1, 0], "label": ["yes", "no", "yes"]}))
    report = perf.performance(binary_log, BINARY, freq="1D", labels=upload)
    assert report.labelled_rows == 7 and report.unmatched_labels == 1
    day1, day2 = report.windows.to_dict("records")

    # Day 1, request r1: truth [yes, no, no, no] (row 1 corrected by the upload), predicted [yes, no, yes, no].
    assert day1["window_start"] == pd.Timestamp("2026-03-02", tz="UTC") and day1["labelled_rows"] == 4
    assert day1["accuracy"] == pytest.approx(3 / 4)
    assert day1["precision"] == pytest.approx(1 / 2)  # of 2 predicted "yes", 1 is right
    assert day1["recall"] == pytest.approx(1.0)  # the one true "yes" is found
    assert day1["balanced_accuracy"] == pytest.approx((1 + 2 / 3) / 2)
    assert day1["roc_auc"] == pytest.approx(1.0)  # P(yes)=0.9 for the positive beats 0.2, 0.6, 0.1
    expected_loss = -(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(0.9)) / 4
    assert day1["log_loss"] == pytest.approx(expected_loss)

    # Day 2: r2 row 0 (upload), r2 row 1 (key + row), r3 row 0 (key's latest): all truly "yes".
    assert day2["labelled_rows"] == 3
    assert day2["accuracy"] == pytest.approx(1 / 3) and day2["recall"] == pytest.approx(1 / 3)
    assert day2["precision"] == pytest.approx(1.0)
    assert math.isnan(day2["roc_auc"])  # one class only: undefined, not a fake number

    table = report.comparison().set_index("metric")
    assert table.loc["accuracy", "training_cv"] == 0.9
    assert table.loc["accuracy", "latest"] == pytest.approx(1 / 3)
    assert table.loc["accuracy", "change"] == pytest.approx(1 / 3 - 0.9)
    assert report.latest["window_start"] == pd.Timestamp("2026-03-03", tz="UTC")


def test_live_precision_and_recall_describe_the_versions_positive_class(binary_log) -> None:
    upload = perf.labels_from_frame(pd.DataFrame({"request_id": ["r1"], "row": [1], "label": ["no"]}))
    info = perf.model_info_from_metadata({"name": "churn", "version": 3, "task": "binary",
                                          "metrics": {"decision_threshold": 0.5, "positive_class": "no"}})
    assert info.positive_class == "no"
    day1 = perf.performance(binary_log, info, freq="1D", labels=upload).windows.iloc[0]
    # Day 1 as above, 'no' positive: truth [yes, no, no, no], predicted [yes, no, yes, no].
    assert day1["precision"] == pytest.approx(1.0)  # both 'no' predictions are right
    assert day1["recall"] == pytest.approx(2 / 3)  # of three true 'no' rows, row 2 was called 'yes'
    assert day1["roc_auc"] == pytest.approx(1.0) and day1["accuracy"] == pytest.approx(3 / 4)  # as before
    expected_loss = -(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(0.9)) / 4
    assert day1["log_loss"] == pytest.approx(expected_loss)


def test_feedback_only_and_the_time_range(binary_log) -> None:
    report = perf.performance(binary_log, BINARY, freq="1D")
    day1 = report.windows.iloc[0]
    assert day1["labelled_rows"] == 4 and day1["accuracy"] == pytest.approx(2 / 4)  # r1 row 1 still "yes"
    ranged = perf.performance(binary_log, BINARY, since=T0 + timedelta(hours=12), freq="1D")
    assert len(ranged.windows) == 1 and ranged.labelled_rows == 2  # r2 row 1 and r3 (r2 row 0 unlabelled)
    assert ranged.unmatched_labels == 4  # r1's labels name predictions outside the range
    none = perf.performance(binary_log, BINARY, since=T0 + timedelta(days=5))
    assert none.windows.empty and none.latest is None


def test_regression_metrics_by_hand(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    log = PredictionLog(url, model_name="price", model_version=1)
    log.submit(_request("a", T0, [1.0, 2.0, 4.0], None))
    log.submit(_request("b", T0 + timedelta(hours=1), [10.0], None))
    log.close()
    model = perf.ModelInfo(name="price", version=1, task="regression", primary_metric="r2", training={"mae": 0.5})
    labels = perf.labels_from_frame(pd.DataFrame({"request_id": ["a", "a", "a", "b"], "row_index": [0, 1, 2, 0],
                                                  "label": [1.0, 3.0, 1.0, 12.0]}))
    report = perf.performance(make_log_engine(url), model, freq="1h", labels=labels)
    first, second = report.windows.to_dict("records")
    assert first["mae"] == pytest.approx((0 + 1 + 3) / 3)
    assert first["rmse"] == pytest.approx(math.sqrt((0 + 1 + 9) / 3))
    assert first["mape"] == pytest.approx((0 + 1 / 3 + 3) / 3)
    assert second["mae"] == pytest.approx(2.0) and report.metrics == ("rmse", "mae", "r2", "mape")


def test_labels_file_checks() -> None:
    with pytest.raises(BadInput, match="'label'"):
        perf.labels_from_frame(pd.DataFrame({"request_id": ["a"]}))
    with pytest.raises(BadInput, match="request_id"):
        perf.labels_from_frame(pd.DataFrame({"label": [1]}))
    with pytest.raises(BadInput, match="neither"):
        perf.labels_from_frame(pd.DataFrame({"request_id": ["a", None], "key": [None, None], "label": [1, 2]}))
    with pytest.raises(BadInput, match="whole numbers"):
        perf.labels_from_frame(pd.DataFrame({"request_id": ["a"], "row": [-1], "label": [1]}))
    with pytest.raises(BadInput, match="2 label row"):
        perf.labels_from_frame(pd.DataFrame({"key": ["a", "b", "c"], "label": [1.0, float("inf"), None]}))
    ok = perf.labels_from_frame(pd.DataFrame({"Key": ["k"], "Label": ["x"]}))  # header case does not matter
    assert ok.loc[0, "key"] == "k" and ok.loc[0, "label"] == "x" and pd.isna(ok.loc[0, "row_index"])


def test_model_info_from_metadata_takes_the_tuned_metric_and_cv_means() -> None:
    info = perf.model_info_from_metadata({
        "name": "m", "version": 2, "task": "multiclass",
        "metrics": {"accuracy": {"mean": 0.8, "std": 0.1, "baseline": 0.3}, "holdout": {"accuracy": 0.7}},
        "cv": {"tuning": {"metric": "f1"}}})
    assert info.primary_metric == "f1" and info.training == {"accuracy": 0.8}
    assert perf.model_info_from_metadata({"name": "m", "version": 1, "task": "regression"}).primary_metric == "r2"
