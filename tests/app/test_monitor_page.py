"""The Monitor page against a real local deployment with real traffic and feedback."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import httpx
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score

from core import deploy, registry
from core.config import SAMPLES_DIR
from core.data.ingest import read_bytes
from core.datasets import import_table
from core.deploy import abtest, local
from core.monitoring import alerts, retrain, triggers
from core.monitoring.export import to_safe_csv
from core.serving.predlog import LoggedRequest, PredictionLog
from tests.deploy.conftest import MODEL_NAME, register_trained, registered, trained  # noqa: F401 - fixtures

pytestmark = pytest.mark.xdist_group("deploy-local")
PAGE = "pages/monitor.py"
CLASSES = ("Adelie", "Chinstrap", "Gentoo")


@pytest.fixture(autouse=True)
def _stop_everything(engine):
    yield
    for row in deploy.list_deployments(engine):
        local.stop(row.pid, row.port, grace_s=2)


def _table(at, column: str) -> pd.DataFrame:
    """The first table on the page with this column (AppTest does not expose dataframe keys)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _no_exceptions(at) -> None:
    assert [e.value for e in at.exception] == []


def test_without_deployments(app) -> None:
    at = app(PAGE)
    _no_exceptions(at)
    assert any("No deployment yet" in i.value for i in at.info)
    assert not at.sidebar.warning  # no alert fires without rules


def test_health_drift_performance_and_alerts(app, engine, settings, registered, trained) -> None:  # noqa: F811
    row = deploy.deploy(engine, model=f"{MODEL_NAME}@champion", target="local", settings=settings)
    rows = json.loads(pd.read_parquet(trained / "reference.parquet").head(12).to_json(orient="records"))
    with httpx.Client(base_url=row.endpoint, timeout=30) as client:
        answers = [client.post("/predict", json={"rows": rows[i:i + 4]}) for i in (0, 4, 8)]
        assert all(a.status_code == 200 for a in answers)
        predicted = [p["prediction"] for a in answers for p in a.json()["predictions"]]
        labels = list(predicted)
        labels[0] = next(c for c in CLASSES if c != predicted[0])  # 9 of 10 labels agree: accuracy 0.9
        items = [{"request_id": answers[i // 4].json()["request_id"], "row": i % 4, "label": labels[i]}
                 for i in range(10)]
        assert client.post("/feedback", json={"items": items}).status_code == 200
    time.sleep(0.6)  # the service's log writes every 0.25 s

    at = app(PAGE)
    _no_exceptions(at)
    assert at.selectbox(key="mon_deployment").value == row.id  # the newest RUNNING one
    # Health: a fresh scrape shows the three /predict requests and their latency.
    at.button(key="mon_collect").click().run()
    _no_exceptions(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Error rate"] == "0.00%" and metrics["p99"].endswith(" ms") and metrics["In flight"] in ("0", "1")  # the scrape itself may count
    assert any("3 requests" in c.value for c in at.caption)

    # Drift: one row per feature, with method and threshold, and a formula-safe CSV.
    at.button(key="mon_drift_go").click().run()
    _no_exceptions(at)
    table = _table(at, "threshold")
    assert list(table.columns[:5]) == ["column", "method", "score", "threshold", "drifted"]
    assert len(table) >= 4 and {"bill_length_mm", "island"} <= set(table["column"])
    # How much the model leans on each column, from its own predictions (the reference sample has no
    # labels): a share of the whole, and the penguins' bill length moves the predicted species.
    assert table["importance"].notna().all() and table["importance"].sum() == pytest.approx(1.0)
    assert table.set_index("column").loc["bill_length_mm", "importance"] > 0.05
    assert any(m.label == "Share drifted" for m in at.metric)
    assert any(m.label == "Prediction drift" for m in at.metric)

    # Performance from /feedback: the window's accuracy against the training CV score.
    perf = _table(at, "metric")
    accuracy = perf.set_index("metric").loc["accuracy"]
    assert accuracy["latest"] == "0.9000" and float(accuracy["training_cv"]) > 0.9  # written as Evaluate writes scores
    assert any("10 labelled rows" in c.value for c in at.caption)
    assert not any("positive class" in c.value for c in at.caption)  # a multiclass model has none

    # Alerts: a rule with a zero p99 threshold fires once evaluated, on the page and in the sidebar.
    at.selectbox(key="mon_rule_kind").set_value("p99_latency")
    at.number_input(key="mon_rule_threshold").set_value(0.0)
    at.number_input(key="mon_rule_window").set_value(30)
    next(b for b in at.button if b.label == "Add rule").click().run()
    _no_exceptions(at)
    [rule] = alerts.list_rules(engine, deployment_id=row.id)
    assert rule.kind == "p99_latency" and rule.state == "ok"
    with httpx.Client(base_url=row.endpoint, timeout=30) as client:  # traffic after the first snapshot
        assert client.post("/predict", json={"rows": rows[:2]}).status_code == 200
    at.button(key="mon_evaluate").click().run()  # collects a second snapshot, then evaluates
    _no_exceptions(at)
    assert alerts.list_rules(engine, deployment_id=row.id)[0].state == "firing"
    rules = _table(at, "rule")
    assert rules.loc[0, "state"] == "firing"
    assert _table(at, "message").loc[0, "state"] == "firing"
    # AppTest renders the sidebar on an app's first run only: a fresh session sees the firing rule.
    assert any("1 alert(s) firing" in w.value for w in app().sidebar.warning)

    # Disable, then delete.
    at.button(key=f"mon_toggle_{rule.id}").click().run()
    _no_exceptions(at)
    assert alerts.list_rules(engine, deployment_id=row.id)[0].enabled is False
    at.button(key=f"mon_delete_{rule.id}").click().run()
    _no_exceptions(at)
    assert alerts.list_rules(engine, deployment_id=row.id) == []


# --------------------------------------------------------------------------- charts, exports, labels file


def _charts(at) -> dict[str, dict]:
    """Every plotly chart on the page as its figure JSON, by title."""
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return {f["layout"].get("title", {}).get("text", ""): f for f in figures}


def _series(figure: dict) -> set[str]:
    return {t.get("name") for t in figure["data"]}


def _predict(endpoint: str, rows: list[dict], *, times: int = 1) -> list[dict]:
    with httpx.Client(base_url=endpoint, timeout=30) as client:
        answers = [client.post("/predict", json={"rows": rows}) for _ in range(times)]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    return [a.json() for a in answers]


def test_health_charts_of_a_service_nobody_called_say_so(app, engine, settings, registered) -> None:  # noqa: F811
    deploy.deploy(engine, model=f"{MODEL_NAME}@champion", target="local", settings=settings)
    at = app(PAGE)
    for _ in range(2):
        at.button(key="mon_collect").click().run()
    _no_exceptions(at)
    charts = _charts(at)
    for title in ("Latency (s)", "Error rate"):  # a rate of 0 requests is 0/0: no point to draw
        assert [a["text"] for a in charts[title]["layout"]["annotations"]] == ["no requests in this window"]
    assert not charts["Requests/s"]["layout"].get("annotations")  # 0 requests/s is a value, drawn
    assert any("no request came between two snapshots" in c.value for c in at.caption)


def test_charts_csv_report_and_a_labels_file(app, engine, settings, registered, trained) -> None:  # noqa: F811
    row = deploy.deploy(engine, model=f"{MODEL_NAME}@champion", target="local", settings=settings)
    rows = json.loads(pd.read_parquet(trained / "reference.parquet").head(8).to_json(orient="records"))
    first = _predict(row.endpoint, rows[:4], times=2)
    at = app(PAGE)
    _no_exceptions(at)
    assert any("No health history yet" in c.value for c in at.caption)
    at.button(key="mon_collect").click().run()  # snapshot 1
    _no_exceptions(at)
    second = _predict(row.endpoint, rows[4:], times=3)
    time.sleep(0.6)  # the service's log writes every 0.25 s
    at.button(key="mon_collect").click().run()  # snapshot 2: rates over the traffic in between
    _no_exceptions(at)
    assert {m.label: m.value for m in at.metric}["Error rate"] == "0.00%"
    assert {m.label: m.value for m in at.metric}["Refused"] == "0.00%"
    # "Now" covers at least 10 s: both snapshots are younger, so it counts all 5 requests since start.
    assert any("5 requests over the last" in c.value for c in at.caption)

    charts = _charts(at)
    assert {"Requests/s", "Latency (s)", "Error rate", "In flight", "Volume", "Predicted classes"} <= set(charts)
    assert _series(charts["Latency (s)"]) == {"p50", "p95", "p99"}
    assert len(charts["Requests/s"]["data"][0]["x"]) == 1  # two snapshots, one interval...
    low, high = (pd.Timestamp(t) for t in charts["Requests/s"]["layout"]["xaxis"]["range"])
    assert high - low == pd.Timedelta(minutes=2)  # ...drawn with a minute either side, not a millisecond
    rps = [y for t in charts["Requests/s"]["data"] for y in t["y"] if y is not None]
    assert rps and max(rps) > 0  # the three requests between the snapshots
    assert not any("lines break" in c.value for c in at.caption)
    at.button(key="mon_collect").click().run()  # snapshot 3, no request since the second
    _no_exceptions(at)
    latency = _charts(at)["Latency (s)"]
    assert [len(t["x"]) for t in latency["data"]] == [2, 2, 2] and latency["data"][0]["y"][-1] is None
    assert not latency["layout"].get("annotations")  # one interval had requests: no "no requests" note
    assert any("no request came between two snapshots" in c.value for c in at.caption)
    assert _series(charts["Volume"]) == {"requests", "rows"}
    volume = {t["name"]: sum(t["y"]) for t in charts["Volume"]["data"]}
    assert volume == {"requests": 5, "rows": 20}
    predicted = {p["prediction"] for a in first + second for p in a["predictions"]}
    assert _series(charts["Predicted classes"]) == predicted
    hour_ms = 3_600_000  # the default window, the last day, is bucketed by the hour
    assert {t["width"] for t in charts["Predicted classes"]["data"]} == {0.8 * hour_ms}
    # Stacked: each bucket's class shares add up to one bar of height 1, not bars drawn over each other.
    assert charts["Predicted classes"]["layout"]["barmode"] == "stack"
    assert all("offsetgroup" not in t for t in charts["Predicted classes"]["data"])
    assert sum(y for t in charts["Predicted classes"]["data"] for y in t["y"]) == pytest.approx(1.0)

    # Drift: the score-against-threshold chart and a CSV that no spreadsheet runs as a formula.
    assert not any(t == "Drift over time" for t in _charts(at))
    # Enough rows for the hour's bucket to be judged (30) on its own: drift over time draws it.
    _predict(row.endpoint, json.loads(pd.read_parquet(trained / "reference.parquet").head(40).to_json(orient="records")))
    time.sleep(0.6)
    at.button(key="mon_drift_go").click().run()
    _no_exceptions(at)
    over_time = _charts(at)["Drift over time"]
    rows_shown = sum(rows for rows, _ in over_time["data"][0]["customdata"])
    assert rows_shown in (60, 40)  # 40: the first 20 rows fell in the hour before, too few to judge alone
    assert all(0 <= y <= 1 for y in over_time["data"][0]["y"])
    table = _table(at, "threshold")
    drift = _charts(at)[next(t for t in _charts(at) if t.startswith("How far each column moved"))]
    [bars] = drift["data"]
    assert list(bars["x"]) == list(table["column"]) and list(bars["y"]) == pytest.approx(list(table["severity"]))
    # One scale for p-values and distances: above 1 exactly where the column drifted.
    drifted = table["drifted"].astype(bool)
    assert (table.loc[drifted, "severity"] >= 1).all() and (table.loc[~drifted, "severity"] <= 1).all()
    csv = next(d for d in at.get("download_button") if d.proto.label == "Drift table (CSV)")
    assert csv.proto.url  # served by the media file manager
    body = to_safe_csv(table).decode()
    assert body.splitlines()[0].startswith("column,method,score,threshold,drifted")
    # The Evidently report is built on request and offered as an HTML download.
    assert not any(d.proto.label == "Drift report (HTML)" for d in at.get("download_button"))
    at.button(key="mon_report_go").click().run()
    _no_exceptions(at)
    assert any(d.proto.label == "Drift report (HTML)" for d in at.get("download_button"))

    # A labels file (request ids and rows) gives the performance chart with the training CV line.
    assert any("No labelled predictions yet" in c.value for c in at.caption)
    answers = first + second
    labels = pd.DataFrame([{"request_id": a["request_id"], "row": i, "label": p["prediction"]}
                           for a in answers for i, p in enumerate(a["predictions"])])
    labels.loc[0, "label"] = next(c for c in CLASSES if c != labels.loc[0, "label"])  # 19 of 20 right
    at.file_uploader(key="mon_labels").upload("labels.csv", labels.to_csv(index=False).encode(), "text/csv")
    at.run()
    _no_exceptions(at)
    perf = _table(at, "metric").set_index("metric")
    assert perf.loc["accuracy", "latest"] == "0.9500"
    predictions = [p["prediction"] for a in answers for p in a["predictions"]]
    balanced = balanced_accuracy_score(labels["label"], predictions)  # the classifier's primary metric
    assert perf.loc["balanced_accuracy", "latest"] == f"{balanced:.4f}"
    change = float(perf.loc["balanced_accuracy", "latest"]) - float(perf.loc["balanced_accuracy", "training_cv"])
    assert float(perf.loc["balanced_accuracy", "change"]) == pytest.approx(change, abs=2e-4)
    if abs(change) > 2e-4:  # a change carries its sign
        assert perf.loc["balanced_accuracy", "change"].startswith("+" if change > 0 else "-")
    figure = _charts(at)["Balanced accuracy"]  # the metric's label, not its identifier
    [line] = figure["data"]
    assert line["y"][-1] == pytest.approx(balanced)
    if len(set(line["x"])) == 1:  # one window (the traffic did not straddle the hour): two buckets around it
        low, high = (pd.Timestamp(t) for t in figure["layout"]["xaxis"]["range"])
        assert high - low == pd.Timedelta(hours=2)  # not plotly's millisecond
    assert perf.loc["balanced_accuracy", "vs training"] in ("better", "worse", "same")
    cv_line = [s for s in figure["layout"]["shapes"] if s.get("type") == "line"]
    assert len(cv_line) == 1 and f'{cv_line[0]["y0"]:.4f}' == perf.loc["balanced_accuracy", "training_cv"]
    assert any("20 labelled rows" in c.value for c in at.caption)
    # A file without the needed columns says so, and the page keeps working.
    at.file_uploader(key="mon_labels").set_value(("bad.csv", b"a,b\n1,2\n", "text/csv"))
    at.run()
    _no_exceptions(at)
    assert any("label" in e.value for e in at.error)


# --------------------------------------------------------------------------- rollback, A/B, retraining


def _second_version(engine, settings, trained) -> int:  # noqa: F811
    """The same trained pipeline registered again: version 2, READY."""
    version = register_trained(engine, settings, trained)
    assert version.version == 2 and version.status == "READY"
    return version.version


def test_rollback_moves_the_champion(app, engine, settings, registered, trained) -> None:  # noqa: F811
    _second_version(engine, settings, trained)
    registry.set_alias(engine, name=MODEL_NAME, alias="champion", version=2)
    deploy.deploy(engine, model=f"{MODEL_NAME}@champion", target="local", settings=settings)
    at = app(PAGE)
    _no_exceptions(at)
    assert any("No retrain, promotion or rollback" in c.value for c in at.caption)
    assert at.selectbox(key="mon_rollback_to").options == ["version 1"]
    at.button(key="mon_rollback_go").click().run()
    _no_exceptions(at)
    assert registry.aliases(engine, name=MODEL_NAME)["champion"] == 1
    assert any(s.value for s in at.success)
    at.run()  # the history lists the rollback; nothing earlier than version 1 is left to roll back to
    _no_exceptions(at)
    runs = _table(at, "decision")
    assert (runs.loc[0, "kind"], runs.loc[0, "champion"], runs.loc[0, "challenger"]) == ("rollback", 2, 1)
    assert runs.loc[0, "message"].startswith("Rolled back to version 1")
    assert not any(s.key == "mon_rollback_to" for s in at.selectbox)


def _log_other_model(settings, *, requests: int) -> None:
    """Champion and challenger rows of another model, in the prediction log local deployments share."""
    log = PredictionLog(settings.serve_log_db_url, model_name="other", model_version=1)
    for i in range(requests):
        for variant, version in (("champion", 1), ("challenger", 2)):
            log.submit(LoggedRequest(request_id=f"other-{variant}-{i}", created_at=datetime.now(timezone.utc),
                                     latency_ms=1.0, key=f"other-{i}", keys=None, inputs={"x": [1]},
                                     predictions=["Adelie"], proba=None, classes=None, model_name="other",
                                     model_version=version, variant=variant))
    log.close()


def _start_button(at):
    return next((b for b in at.button if b.label == "Start the A/B test"), None)


def test_ab_section_traffic_verdict_and_promotion(app, engine, settings, registered, trained) -> None:  # noqa: F811
    _second_version(engine, settings, trained)
    row = deploy.deploy(engine, model=f"{MODEL_NAME}@1", target="local", settings=settings)
    at = app(PAGE)
    _no_exceptions(at)
    assert _start_button(at) is not None  # version 1 serves alone: the form offers version 2
    records = json.loads(pd.read_parquet(trained / "reference.parquet").head(1).to_json(orient="records"))
    # Rows that are not this test's: version 1 before the test, and another model in the shared log.
    _predict(row.endpoint, records, times=3)
    _log_other_model(settings, requests=5)
    time.sleep(0.6)
    assert at.selectbox(key="mon_ab_challenger").value == 2
    at.slider(key="mon_ab_weight").set_value(50)
    _start_button(at).click().run()  # started from the page
    _no_exceptions(at)
    state = abtest.ab_state(engine, row.id, settings=settings)
    assert (state.mode, state.challenger.version, state.weight_b) == ("split", 2, 0.5)
    seen = {}
    with httpx.Client(base_url=row.endpoint, timeout=30) as client:
        for i in range(16):
            answer = client.post("/predict", json={"rows": records, "key": f"user-{i}"})
            assert answer.status_code == 200
            seen[f"user-{i}"] = int(answer.headers["X-Model-Version"])
            items = [{"key": f"user-{i}", "label": answer.json()["predictions"][0]["prediction"]}]
            assert client.post("/feedback", json={"items": items}).status_code == 200
    assert set(seen.values()) == {1, 2}  # 16 keys at 50 %: both variants answered (odds of not: 2 in 65,536)
    time.sleep(0.6)
    at.run()
    _no_exceptions(at)
    assert any(s.value == "A/B test" for s in at.subheader)
    assert any("challenger version 2 (50% of keys)" in c.value for c in at.caption)
    traffic = _table(at, "variant").set_index("variant")
    expected = {"champion": sum(v == 1 for v in seen.values()), "challenger": sum(v == 2 for v in seen.values())}
    assert traffic["requests"].to_dict() == expected
    assert traffic["model_version"].to_dict() == {"champion": 1, "challenger": 2}
    assert all(shares.endswith("%") and "{" not in shares for shares in traffic["predictions"])  # words, not JSON
    performance = _table(at, "labelled predictions").set_index("variant")
    assert performance["labelled predictions"].to_dict() == expected
    assert performance["error rate"].tolist() == [0.0, 0.0]  # every label is the prediction it answers
    assert len(at.info) >= 1 and at.info[-1].value  # the verdict (too few labels yet: it says how many more)

    at.button(key="mon_ab_promote").click().run()
    _no_exceptions(at)
    assert registry.aliases(engine, name=MODEL_NAME)["champion"] == 2
    assert abtest.ab_state(engine, row.id, settings=settings).mode == "single"
    assert _start_button(at) is not None  # the test is over: version 1 could be tried again
    with httpx.Client(base_url=row.endpoint, timeout=30) as client:
        answer = client.post("/predict", json={"rows": records, "key": "user-0"})
    assert answer.headers["X-Model-Version"] == "2"  # every key on the promoted version
    assert _table(at, "decision").loc[0, "kind"] == "promote"


def test_retrain_from_the_page_is_recorded(app, engine, settings, registered) -> None:  # noqa: F811
    # The champion's training table in this workspace, as the CLI's training stored it.
    loaded = read_bytes("penguins.csv", (SAMPLES_DIR / "penguins.csv").read_bytes(), settings=settings)
    assert loaded.content_hash == registered.dataset_hash
    import_table(engine, loaded, project="penguins", name="penguins.csv", settings=settings)
    deploy.deploy(engine, model=f"{MODEL_NAME}@champion", target="local", settings=settings)
    at = app(PAGE)
    _no_exceptions(at)
    assert at.button(key="mon_retrain_go").disabled  # nothing uploaded yet
    new_rows = loaded.frame.sample(40, random_state=3).to_csv(index=False).encode()
    at.file_uploader(key="mon_retrain_file").upload("new.csv", new_rows, "text/csv")
    at.run()
    at.number_input(key="mon_retrain_margin").set_value(0.5)  # no retrain gains 0.5 accuracy: kept as challenger
    at.button(key="mon_retrain_go").click().run()
    _no_exceptions(at)
    assert any("Retraining started" in s.value for s in at.success)
    deadline = time.monotonic() + 60
    while not (runs := retrain.list_runs(engine, model_name=MODEL_NAME)) or runs[0].status == "RUNNING":
        assert time.monotonic() < deadline, "the retrain did not finish within 60 s"
        time.sleep(0.5)
    assert runs[0].status == "DONE" and runs[0].trigger == "button", runs[0].note
    assert runs[0].decision == "kept_as_challenger" and "short of the margin 0.5" in runs[0].message  # the page's policy was used
    at.run()
    _no_exceptions(at)
    history = _table(at, "decision")
    assert history.loc[0, "trigger"] == "button" and history.loc[0, "status"] == "DONE"
    assert history.loc[0, "challenger"] == 2 and history.loc[0, "message"] == runs[0].message  # why it was (not) promoted


def test_retrain_triggers_are_saved_and_a_skipped_run_says_why(app, engine, settings, registered, tmp_path) -> None:  # noqa: F811
    row = deploy.deploy(engine, model=f"{MODEL_NAME}@champion", target="local", settings=settings)
    at = app(PAGE)
    _no_exceptions(at)
    assert any("every automatic trigger is off" in c.value for c in at.caption)
    assert at.toggle(key=f"mon_trig_drift_{MODEL_NAME}").value is False

    def save(at):
        next(b for b in at.button if b.label == "Save triggers").click().run()
        _no_exceptions(at)

    # A relative watched folder is refused in core, shown escaped, and nothing is saved.
    at.toggle(key=f"mon_trig_drift_{MODEL_NAME}").set_value(True)
    at.toggle(key=f"mon_trig_watch_{MODEL_NAME}").set_value(True)
    at.text_input(key=f"mon_trig_folder_{MODEL_NAME}").set_value("drop")
    save(at)
    assert any("full path" in e.value for e in at.error)
    assert triggers.get_triggers(engine, model_name=MODEL_NAME) == []

    # A real folder: saved, confirmed, and still on after a reload (a new session).
    drop = tmp_path / "drop"
    drop.mkdir()
    at.text_input(key=f"mon_trig_folder_{MODEL_NAME}").set_value(str(drop))
    at.number_input(key=f"mon_trig_cooldown_{MODEL_NAME}").set_value(30.0)
    save(at)
    assert any("Triggers saved" in s.value for s in at.success)
    [policy] = triggers.get_triggers(engine, model_name=MODEL_NAME)
    assert (policy.on_drift_alert, policy.on_performance_alert, policy.on_new_data) == (True, False, False)
    assert policy.watch_folder == str(drop.resolve()) and policy.cooldown_s == 1800
    again = app(PAGE)
    _no_exceptions(again)
    assert again.toggle(key=f"mon_trig_drift_{MODEL_NAME}").value is True
    assert again.toggle(key=f"mon_trig_perf_{MODEL_NAME}").value is False
    assert again.text_input(key=f"mon_trig_folder_{MODEL_NAME}").value == str(drop.resolve())
    assert again.number_input(key=f"mon_trig_cooldown_{MODEL_NAME}").value == 30.0
    assert any("retrains on a firing drift alert" in c.value for c in again.caption)

    # The drift alert fires with no labelled predictions: the run is skipped, and the page says why.
    rule = alerts.create_rule(engine, deployment_id=row.id, kind="drift_share", threshold=0.3)
    event = alerts.Evaluation(rule.id, row.id, "drift_share", alerts.FIRING, 0.9, 0.3, True, "test firing")
    assert triggers.on_alert_fired(engine, event, settings, inline=True).action == triggers.SKIPPED
    again.run()
    _no_exceptions(again)
    history = _table(again, "decision")
    assert (history.loc[0, "trigger"], history.loc[0, "decision"]) == ("drift alert", "skipped")  # in words
    assert any("was skipped: not retrained: the alert's window has no labelled predictions" in c.value
               for c in again.caption)

    # Switching everything off clears the folder too.
    again.toggle(key=f"mon_trig_drift_{MODEL_NAME}").set_value(False)
    again.toggle(key=f"mon_trig_watch_{MODEL_NAME}").set_value(False)
    save(again)
    [policy] = triggers.get_triggers(engine, model_name=MODEL_NAME)
    assert not policy.on_drift_alert and policy.watch_folder is None
    assert any("every automatic trigger is off" in s.value for s in again.success)


def test_a_docker_deployment_is_read_from_its_own_log(app, engine, settings, registered, tmp_path) -> None:  # noqa: F811
    from core.monitoring import health
    from core.store.db import session_scope
    from core.store.models import Deployment

    row = Deployment(model_name=MODEL_NAME, version=1, target="docker", status=deploy.STOPPED,
                     manifest_dir=str(tmp_path / "manifests"))
    with session_scope(engine) as session:
        session.add(row)
        session.flush()
        session.refresh(row)
    own = health.log_url_for(settings, row)
    assert own != settings.serve_log_db_url
    log = PredictionLog(own, model_name=MODEL_NAME, model_version=1)
    for i in range(3):  # three requests in the container's log, none in the shared one
        log.submit(LoggedRequest(request_id=f"docker-{i}", created_at=datetime.now(timezone.utc), latency_ms=1.0,
                                 key=None, keys=None, inputs={"x": [1, 2]}, predictions=["Adelie", "Gentoo"],
                                 proba=None, classes=None))
    log.close()
    at = app(PAGE)
    _no_exceptions(at)
    volume = {t["name"]: sum(t["y"]) for t in _charts(at)["Volume"]["data"]}
    assert volume == {"requests": 3, "rows": 6}
