"""/predict, /schema, /version and /openapi.json against real exported models, in-process."""
from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pandas as pd
import pytest

from core.registry import load_exported
from core.serving_io import Labelling, labelling_of, predict_frame
from tests.serving.conftest import BINARY_THRESHOLD, records, serve


def _expected(model_dir, rows: pd.DataFrame) -> pd.DataFrame:
    pipeline, info = load_exported(model_dir)
    return predict_frame(pipeline, rows, threshold=info["metrics"].get("decision_threshold"),
                         positive=info["metrics"].get("positive_class"))


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_predictions_equal_offline_predict_frame(models, tmp_path, kind) -> None:
    served = models[kind]
    rows = served.rows.sample(200, random_state=1) if len(served.rows) > 200 else served.rows
    expected = _expected(served.dir, rows)
    with serve(served.dir, tmp_path) as client:
        for batch in (rows.head(1), rows.head(5), rows):  # inline fast path, and worker threads
            r = client.post("/predict", json={"rows": records(batch)})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["model"] == {"name": served.name, "version": 1}
            assert r.headers["x-request-id"] == body["request_id"] and r.headers["x-model-version"] == "1"
            got = [p["prediction"] for p in body["predictions"]]
            want = expected.head(len(batch))
            if kind == "regression":
                assert np.allclose(got, want["prediction"], rtol=1e-9, atol=1e-9)
                assert all("probabilities" not in p for p in body["predictions"])
            else:
                assert got == want["prediction"].tolist()
                for p, (_, row) in zip(body["predictions"], want.iterrows()):
                    for cls, value in p["probabilities"].items():
                        assert value == pytest.approx(row[f"proba_{cls}"], abs=1e-9)


def test_binary_threshold_is_applied(models, tmp_path) -> None:
    served = models["binary"]
    rows = served.rows.head(400)
    with serve(served.dir, tmp_path) as client:
        body = client.post("/predict", json={"rows": records(rows)}).json()
    proba_yes = np.array([p["probabilities"]["yes"] for p in body["predictions"]])
    labels = [p["prediction"] for p in body["predictions"]]
    assert labels == np.where(proba_yes >= BINARY_THRESHOLD, "yes", "no").tolist()
    # the threshold matters here: the default 0.5 would label some rows differently
    assert ((proba_yes >= BINARY_THRESHOLD) != (proba_yes >= 0.5)).any()


def test_one_reading_of_the_labelling_a_version_records() -> None:
    # The service, `core predict`, scoring and monitoring all read a version's metrics this way.
    assert labelling_of({"decision_threshold": 0.3, "positive_class": 1}) == Labelling(0.3, "1")
    assert labelling_of({"decision_threshold": 1, "positive_class": "yes"}) == Labelling(1.0, "yes")
    assert labelling_of({"decision_threshold": True}) == Labelling()  # JSON's true is not a threshold
    assert labelling_of({"decision_threshold": "0.3"}) == Labelling()
    assert labelling_of(None) == labelling_of(["decision_threshold"]) == labelling_of({}) == Labelling()


def test_the_threshold_cuts_the_positive_class_probability(models, tmp_path) -> None:
    # The same model with 'no' as its positive class: the threshold now cuts P(no).
    served = models["binary"]
    model_dir = tmp_path / "model"
    shutil.copytree(served.dir, model_dir)
    info = json.loads((model_dir / "model.json").read_text())
    info["metrics"] = {"decision_threshold": 0.9, "positive_class": "no"}
    (model_dir / "model.json").write_text(json.dumps(info))
    rows = served.rows.head(400)
    with serve(model_dir, tmp_path) as client:
        body = client.post("/predict", json={"rows": records(rows)}).json()
        version = client.get("/version").json()
    assert (version["decision_threshold"], version["positive_class"]) == (0.9, "no")  # clients can see the rule
    proba_no = np.array([p["probabilities"]["no"] for p in body["predictions"]])
    labels = [p["prediction"] for p in body["predictions"]]
    assert labels == np.where(proba_no >= 0.9, "no", "yes").tolist()
    assert labels == _expected(model_dir, rows)["prediction"].tolist()  # as `core predict` labels them
    assert ((proba_no >= 0.9) != (1 - proba_no < 0.9)).any()  # read as P(yes), 0.9 would label otherwise


def test_single_object_and_csv_give_the_same_answers(models, tmp_path) -> None:
    served = models["multiclass"]
    rows = served.rows.head(6)
    with serve(served.dir, tmp_path) as client:
        batch = client.post("/predict", json={"rows": records(rows)}).json()["predictions"]
        single = client.post("/predict", json=records(rows.head(1))[0]).json()["predictions"]
        csv = client.post("/predict", content=rows.to_csv(index=False), headers={"Content-Type": "text/csv"})
    assert csv.status_code == 200, csv.text
    assert single[0]["prediction"] == batch[0]["prediction"]
    assert single[0]["probabilities"] == pytest.approx(batch[0]["probabilities"], abs=1e-12)
    for a, b in zip(csv.json()["predictions"], batch):
        assert a["prediction"] == b["prediction"]
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-12)


def test_schema_and_openapi_come_from_the_training_schema(models, tmp_path) -> None:
    served = models["binary"]
    with serve(served.dir, tmp_path) as client:
        schema = client.get("/schema").json()
        doc = client.get("/openapi.json").json()
        version = client.get("/version").json()
    columns = {c["name"]: c for c in schema["columns"]}
    assert list(columns) == list(served.rows.columns)
    assert columns["account_length"]["type"] == "integer"
    assert columns["total_day_minutes"]["type"] == "number"
    assert columns["international_plan"]["categories"] == ["no", "yes"]
    assert schema["extra_columns"] == "reject" and schema["unseen_categories"] == "reject"
    assert schema["classes"] == ["no", "yes"]
    row = doc["components"]["schemas"]["Row"]
    assert row["properties"]["international_plan"]["enum"] == ["no", "yes", None]
    assert row["properties"]["account_length"]["type"] == ["integer", "null"]
    assert row["additionalProperties"] is False and set(row["required"]) == set(columns)
    assert set(doc["paths"]["/predict"]["post"]["requestBody"]["content"]) == {"application/json", "text/csv"}
    assert version["name"] == "churn" and version["version"] == 1 and len(version["sha256"]) == 64


def _errors(r) -> dict[str, dict]:
    assert r.status_code == 422, r.text
    return {e["column"]: e for e in r.json()["errors"]}


def test_missing_wrong_type_and_extra_columns_give_field_level_422(models, tmp_path) -> None:
    served = models["binary"]
    row = records(served.rows.head(1))[0]
    secret = "s3cr3t-value-never-echoed"
    bad = {**row, "account_length": secret, "total_day_minutes": True, "surprise": 1}
    del bad["state"]
    with serve(served.dir, tmp_path) as client:
        r = client.post("/predict", json={"rows": [bad]})
        errors = _errors(r)
        assert errors["state"] == {"column": "state", "expected": "string", "got": "missing"}
        assert errors["account_length"]["expected"] == "integer" and errors["account_length"]["got"] == "string"
        assert errors["total_day_minutes"]["got"] == "boolean"
        assert errors["surprise"]["expected"] == "no such column"
        assert secret not in r.text and "Traceback" not in r.text
        # a fractional number in an integer column, an unseen category
        r = client.post("/predict", json={"rows": [row, {**row, "account_length": 1.5, "international_plan": secret}]})
        errors = _errors(r)
        assert errors["account_length"]["got"] == "number" and errors["account_length"]["rows"] == [1]
        assert errors["international_plan"]["got"] == "unknown category" and secret not in r.text
        # CSV: a text value in a numeric column, a missing column
        frame = served.rows.head(3).astype(object)
        frame.loc[1, "total_day_calls"] = secret
        r = client.post("/predict", content=frame.drop(columns=["state"]).to_csv(index=False),
                        headers={"Content-Type": "text/csv"})
        errors = _errors(r)
        assert errors["state"]["got"] == "missing" and errors["total_day_calls"]["got"] == "string"
        assert secret not in r.text
        # not JSON, not an object, no rows, an unknown content type
        assert client.post("/predict", content=b"{nope", headers={"Content-Type": "application/json"}).status_code == 400
        assert client.post("/predict", json=[1, 2]).status_code == 422
        assert client.post("/predict", json={"rows": []}).status_code == 422
        assert client.post("/predict", content=b"x", headers={"Content-Type": "image/png"}).status_code == 415


def test_extra_and_unseen_category_policies_are_settings(models, tmp_path) -> None:
    served = models["binary"]
    row = records(served.rows.head(1))[0]
    with serve(served.dir, tmp_path, serve_extra_columns="ignore", serve_unseen_categories="accept") as client:
        r = client.post("/predict", json={**row, "surprise": 1, "state": "ZZ"})
        assert r.status_code == 200, r.text
        schema = client.get("/schema").json()
        doc = client.get("/openapi.json").json()
    assert schema["extra_columns"] == "ignore" and schema["unseen_categories"] == "accept"
    assert "enum" not in doc["components"]["schemas"]["Row"]["properties"]["state"]


def test_body_and_row_limits_give_413(models, tmp_path) -> None:
    served = models["regression"]
    rows = records(served.rows.head(30))
    with serve(served.dir, tmp_path, serve_max_rows=20, serve_max_body_mb=0.01) as client:
        r = client.post("/predict", json={"rows": rows[:25]})
        assert r.status_code == 413 and r.json()["error"] == "too_large"
        csv = served.rows.head(25).to_csv(index=False)
        assert client.post("/predict", content=csv, headers={"Content-Type": "text/csv"}).status_code == 413
        big = {"rows": rows[:1] * 19 + [{**rows[0], "cement": 1.0}]}
        big["padding"] = "x" * 20_000
        r = client.post("/predict", json=big)
        assert r.status_code == 413, r.text
        assert client.post("/predict", json={"rows": rows[:20]}).status_code == 200


def test_timeout_gives_504_and_frees_the_slot_later(models, tmp_path) -> None:
    served = models["slow"]  # 1.5 s per call
    row = records(served.rows.head(1))[0]
    with serve(served.dir, tmp_path, serve_timeout_s=0.3, serve_max_concurrency=1) as client:
        service = client.app.state.service
        started = time.monotonic()
        r = client.post("/predict", json=row)
        assert r.status_code == 504 and r.json()["error"] == "timeout"
        assert time.monotonic() - started < 1.2
        assert service.active == 1  # the overrunning prediction still holds its slot ...
        assert client.post("/predict", json=row).status_code == 503
        deadline = time.monotonic() + 5
        while service.active and time.monotonic() < deadline:
            time.sleep(0.05)
        assert service.active == 0  # ... until it really ends


def test_bearer_token(models, tmp_path) -> None:
    served = models["regression"]
    row = records(served.rows.head(1))[0]
    token = "t0ken-" + "z" * 30
    with serve(served.dir, tmp_path, serve_token=token) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            r = client.post("/predict", json=row, headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert token not in r.text
        assert client.post("/feedback", json={"key": "k", "label": 1.0}).status_code == 401
        ok = client.post("/predict", json=row, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        for path in ("/health/live", "/health/ready", "/metrics", "/schema", "/version"):
            assert client.get(path).status_code == 200, path
        doc = client.get("/openapi.json").json()
        assert doc["paths"]["/predict"]["post"]["security"] == [{"bearer": []}]
    with serve(served.dir, tmp_path) as client:
        assert client.post("/predict", json=row).status_code == 200


def test_predicting_threads_use_one_openmp_and_blas_thread(models, tmp_path) -> None:
    from threadpoolctl import threadpool_info

    served = models["binary"]  # LightGBM: OpenMP
    with serve(served.dir, tmp_path, serve_fastpath_max_rows=0) as client:
        assert client.post("/predict", json={"rows": records(served.rows.head(20))}).status_code == 200
        service = client.app.state.service
        worker = service.executor.submit(threadpool_info).result()
        loop = client.portal.call(threadpool_info)  # the event loop thread (small requests)
    for pools in (worker, loop):
        assert any(p["user_api"] == "openmp" for p in pools)
        assert {p["num_threads"] for p in pools if p["user_api"] in ("openmp", "blas")} == {1}


def test_an_internal_error_reveals_nothing(models, tmp_path) -> None:
    served = models["broken"]
    row = records(served.rows.head(1))[0]
    with serve(served.dir, tmp_path) as client:
        for body in (row, {"rows": [row] * 20}):  # inline and on a worker thread
            r = client.post("/predict", json=body)
            assert r.status_code == 500
            assert r.json() == {"error": "internal", "detail": "internal error", "request_id": r.headers["x-request-id"]}
        assert client.get("/health/ready").status_code == 200  # and the service carries on


def test_a_10000_row_batch_equals_predict_frame_and_a_bad_row_is_named(models, tmp_path) -> None:
    served = models["binary"]
    rows = served.rows.sample(10_000, replace=True, random_state=3).reset_index(drop=True)
    expected = _expected(served.dir, rows)
    body = records(rows)
    with serve(served.dir, tmp_path) as client:
        # slices of 512 rows through the fast path must give one answer in row order
        assert client.app.state.service.model.fast is not None
        r = client.post("/predict", json={"rows": body})
        assert r.status_code == 200, r.text
        predictions = r.json()["predictions"]
        assert [p["prediction"] for p in predictions] == expected["prediction"].tolist()
        got = np.array([p["probabilities"]["yes"] for p in predictions])
        assert np.abs(got - expected["proba_yes"].to_numpy()).max() <= 1e-9
        # one bad value deep in the batch: a 422 naming the column and the row, not the value
        body[9000] = {**body[9000], "total_day_minutes": "many"}
        bad = client.post("/predict", json={"rows": body})
    assert bad.status_code == 422
    assert bad.json()["errors"] == [{"column": "total_day_minutes", "expected": "number", "got": "string",
                                     "rows": [9000]}]
    assert "many" not in bad.text


def test_a_batch_is_checked_against_the_schema_of_the_variant_that_serves_it(models) -> None:
    """Rows parsed with one model's types are never handed to a model with another schema."""
    from core.serving.app import ApiError, _Job
    from core.serving.model import load_model
    from core.serving.routing import Routing

    def load(kind, extra="reject"):
        return load_model(models[kind].dir, extra_columns=extra, unseen_categories="reject", fast_max_rows=512)

    def run(champion, challenger, rows):  # every request goes to the challenger
        body = pd.io.json.ujson_dumps({"rows": rows}).encode()
        return _Job(Routing(champion=champion, challenger=challenger, weight_b=1.0), body, "json", None, 10_000,
                    request_id="r").run()

    concrete, rows = load("regression"), models["regression"].rows.head(300)
    variant, model, _, _, _, result = run(load("binary"), concrete, records(rows))
    assert (variant, model) == ("challenger", concrete)
    assert np.allclose(result.values, _expected(models["regression"].dir, rows)["prediction"], rtol=1e-9)
    # The champion ignores extra columns, the challenger that serves the rows rejects them.
    with pytest.raises(ApiError) as info:
        run(load("regression", extra="ignore"), concrete, [{**r, "zzz": 1} for r in records(rows)])
    assert info.value.status == 422 and [e.column for e in info.value.errors] == ["zzz"]
    # One schema for both variants: rows parsed with the champion's types serve either.
    twin = load("regression")
    assert run(concrete, twin, records(rows))[1] is twin
