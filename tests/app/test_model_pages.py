"""Train, Evaluate and Models pages, with a real background training job."""
from __future__ import annotations

import dataclasses
import json
import re
import time

import pytest

from core import jobs, registry
from core.config import get_settings
from core.data.profile import Task
from core.store.db import make_engine
from core.wording import STOP_REASONS

pytestmark = pytest.mark.xdist_group("jobs")


@pytest.fixture
def store(app):
    engine = make_engine(get_settings().db_url)
    yield engine
    engine.dispose()


def _no_exceptions(at) -> None:
    assert [e.value for e in at.exception] == []


def _wait_done(engine, job_id: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while jobs.get_job(engine, job_id).status in jobs.ACTIVE:
        assert time.monotonic() < deadline, "training job did not finish"
        time.sleep(0.5)


def test_train_evaluate_and_models(app, store) -> None:
    at = app()
    at.switch_page("pages/evaluate.py").run()
    _no_exceptions(at)
    assert any("No finished training job" in i.value for i in at.info)

    at.switch_page("pages/train.py").run()
    _no_exceptions(at)
    next(m for m in at.multiselect if m.label.startswith("Models")).set_value(["logistic_regression", "lightgbm"])
    next(s for s in at.select_slider if s.label == "Time budget").set_value(10)
    next(n for n in at.number_input if n.label.startswith("Max trials")).set_value(3)
    next(n for n in at.number_input if n.label.startswith("Seconds per model")).set_value(20)
    positive = next(s for s in at.selectbox if s.label == "Positive class")
    assert positive.options == ["no (86% of rows)", "yes (14% of rows)"] and positive.value == "yes"  # the rarer
    next(b for b in at.button if b.label == "Start training").click().run()
    _no_exceptions(at)
    (job,) = jobs.list_jobs(store)
    assert job.model_name == "mlc_churn"
    assert jobs.request_from_json(job.request_json).config.per_model_s == 20.0
    assert jobs.request_from_json(job.request_json).config.positive_class == "yes"
    _wait_done(store, job.id)
    assert jobs.get_job(store, job.id).status == "DONE", jobs.get_job(store, job.id).error
    at.run()
    _no_exceptions(at)
    finished = next(s.value for s in at.success if "Training finished" in s.value)
    assert f"({STOP_REASONS[jobs.get_job(store, job.id).stage]})" in finished  # why the search ended
    assert any(m.label == "Trials done" and int(m.value) >= 2 for m in at.metric)
    board = next(df.value for df in at.dataframe if "params" in df.value.columns).set_index("model")
    params = board.loc["Logistic regression", "params"]  # families by their titles
    assert board["trials"].sum() == len(jobs.job_trials(store, job.id)) and (board["seconds"] > 0).all()
    assert params.startswith("C=") and "{" not in params, params  # name=value pairs, not JSON
    header = next(m.value for m in at.markdown if "**Job 1" in m.value)
    assert header.endswith("· done") and header.count("done") == 1, header  # no stage after a job's end

    at.switch_page("pages/evaluate.py").run()
    _no_exceptions(at)
    metrics = next(df.value for df in at.dataframe if "vs baseline" in df.value.columns).set_index("metric")
    assert metrics.loc["ROC AUC (optimised)", "vs baseline"] == "better"  # the metric the search used
    every_trial = next(df.value for df in at.dataframe if "duration_s" in df.value.columns)
    assert set(every_trial["model"]) <= {"Logistic regression", "LightGBM"}, set(every_trial["model"])
    stopped = re.compile(r"stopped early \((median pruner|time limit|cancelled), \d+ folds?\)")
    assert all(s in {"complete", "failed"} or stopped.fullmatch(s) for s in every_trial["state"]), set(every_trial["state"])
    assert "stop" not in every_trial.columns and "folds" not in every_trial.columns  # said in the state
    assert not any("The search scored these trials with" in c.value for c in at.caption)  # 5 folds both times
    assert "Recall of 'yes'" in metrics.index  # the class precision, recall and F1 describe
    report = jobs.load_report(job.id, settings=get_settings())
    assert any(f"at the decision threshold {report.threshold:.3g}" in c.value for c in at.caption)
    slider = next(s for s in at.slider if s.label.startswith("Decision threshold"))
    assert slider.label == "Decision threshold on the probability of 'yes'"
    assert slider.value == pytest.approx(report.threshold)
    charts = at.get("plotly_chart")
    assert len(charts) >= 5  # ROC, PR, confusion, calibration, lift
    worst = next(df.value for df in at.dataframe if "P(actual)" in df.value.columns)
    assert len(worst) == 20 and worst["P(actual)"].is_monotonic_increasing and "state" in worst.columns
    per_class = next(df.value for df in at.dataframe if "recall" in df.value.columns).set_index("class")
    assert per_class.index.tolist() == ["no", "yes"] and per_class["rows"].sum() == report.cv.oof_mask.sum()
    assert 0 < per_class.loc["yes", "recall"] <= 1
    assert per_class["share"].sum() == pytest.approx(100)  # in percent: shown with one decimal each
    slider.set_value(0.99).run()  # almost nothing is predicted 'yes' any more
    at_99 = next(df.value for df in at.dataframe if "recall" in df.value.columns).set_index("class")
    assert at_99.loc["yes", "predicted"] < per_class.loc["yes", "predicted"]
    next(b for b in at.button if b.label.startswith("Compute permutation importance")).click().run(timeout=180)
    _no_exceptions(at)
    assert len(at.get("plotly_chart")) >= len(charts) + 2  # importance + partial dependence
    assert any("holdout rows, with the model refit without them" in c.value for c in at.caption)
    assert not any(h.value == "Compare two runs" for h in at.subheader)  # one run only
    next(b for b in at.button if b.label == "Compute the learning curve").click().run(timeout=180)
    _no_exceptions(at)
    curve = next(spec for spec in (json.loads(c.proto.spec) for c in at.get("plotly_chart"))
                 if spec["layout"]["title"]["text"].startswith("Learning curve"))
    validation = next(t for t in curve["data"] if t["name"] == "validation")
    assert len(validation["x"]) == 5 and validation["x"] == sorted(validation["x"])
    assert any(c.value.startswith(("Still climbing: from", "Flat at the right: from")) for c in at.caption)

    first_request = jobs.request_from_json(job.request_json)
    f1 = dataclasses.replace(first_request, config=dataclasses.replace(first_request.config, metric="f1",
                                                                      positive_class="no", class_weight=True))
    second = jobs.submit_job(store, dataset_id=job.dataset_id, request=f1, settings=get_settings())
    _wait_done(store, second)
    at.run()
    _no_exceptions(at)
    # A label metric: the search's trial scores are at 0.5, the report's at the threshold, and the page says so.
    assert any("The search scored F1 with labels at 0.5" in c.value for c in at.caption)
    metrics = next(df.value for df in at.dataframe if "vs baseline" in df.value.columns).set_index("metric")
    assert "F1 of 'no' (optimised)" in metrics.index and "Recall of 'no'" in metrics.index
    compared = next(df.value for df in at.dataframe if "B - A" in df.value.columns).set_index("metric")
    a, b, diff = (float(compared.loc["ROC AUC", c]) for c in ("A", "B", "B - A"))  # written as the card writes them
    assert diff == pytest.approx(b - a, abs=2e-4)
    # Run 2 describes 'no', run 1 'yes': their precision, recall and F1 are not compared, and the page says why.
    assert "Recall" not in compared.index and "F1" not in compared.index
    assert any("A's describe 'no', B's 'yes'" in c.value for c in at.caption)
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    # The per-fold chart draws A's F1, which in B describes the other class: it says so instead.
    assert any("A's and B's F1 describe different classes" in a.get("text", "")
               for spec in specs for a in spec["layout"].get("annotations", []))
    assert any(c.value.startswith("A: \\#2") and "B: \\#1" in c.value for c in at.caption)  # the newest first
    multiclass = dataclasses.replace(first_request, task=Task.MULTICLASS,
                                     config=dataclasses.replace(first_request.config, positive_class=None))
    _wait_done(store, jobs.submit_job(store, dataset_id=job.dataset_id, request=multiclass, settings=get_settings()))
    at.run()
    _no_exceptions(at)
    assert any("Cannot compare a multiclass run with a binary run" in e.value for e in at.error)
    metrics = next(df.value for df in at.dataframe if "vs baseline" in df.value.columns).set_index("metric")
    assert {"Recall, macro average", "ROC AUC, one-vs-rest macro average (optimised)"} <= set(metrics.index)  # the newest run

    at.switch_page("pages/models.py").run()
    _no_exceptions(at)
    assert registry.list_model_names(store) == ["mlc_churn"]
    versions = next(df.value for df in at.dataframe if "family" in df.value.columns)
    headline = versions.filter(like="metrics").iloc[0, 0]
    assert headline.startswith("ROC AUC 0."), headline  # the metric it was tuned for comes first
    # Versions 3 (multiclass, the newest: A) and 2 (binary) cannot be compared; 2 and 1 can.
    assert any("Cannot compare a multiclass version with a binary version" in e.value for e in at.error)
    next(s for s in at.selectbox if s.label == "A").set_value(2).run()
    next(s for s in at.selectbox if s.label == "B").set_value(1).run()
    _no_exceptions(at)
    facts = next(df.value for df in at.dataframe if "A: v2" in df.value.columns)
    assert facts.loc["optimised metric"].tolist() == ["F1", "ROC AUC"]
    recorded = json.loads(registry.get_version(store, name="mlc_churn", version=2).metrics_json)
    assert facts.loc["decision threshold", "A: v2"] == f"{recorded['decision_threshold']:.4g}"
    assert facts.loc["positive class"].tolist() == ["no", "yes"]
    assert facts.loc["class weights"].tolist() == ["balanced", "none"]  # what sets the runs apart, not only scores
    assert facts.loc["cleaning"].tolist() == ["none", "none"] and facts.loc["features"].tolist() == ["the default"] * 2
    assert facts.loc["validation", "A: v2"].startswith("5-fold stratified") and facts.loc["holdout share"].tolist() == [
        "20%", "20%"]
    assert facts.loc["tuned on"].tolist() == ["all training rows"] * 2  # 5,000 rows: no sample
    scores = next(df.value for df in at.dataframe if "B - A" in df.value.columns).set_index("metric")
    assert {"ROC AUC", "Log loss"} <= set(scores.index) and "A holdout" in scores.columns
    assert "F1" not in scores.index and any("A's describe 'no', B's 'yes'" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Point alias here").click().run()
    _no_exceptions(at)
    assert registry.aliases(store, name="mlc_churn") == {"champion": 3}  # the newest version, shown first
    assert any("mlc" in m.value and "churn" in m.value for m in at.markdown)

    # Score a file with version 2 (positive class 'no'): its rows, each followed by its prediction.
    import numpy as np
    import pandas as pd

    from core.config import SAMPLES_DIR

    rows = pd.read_csv(SAMPLES_DIR / "mlc_churn.csv").head(40)
    at.selectbox(key="score_version").set_value(2).run()
    at.file_uploader(key="score_file").upload("rows.csv", rows.to_csv(index=False).encode(), "text/csv").run()
    _no_exceptions(at)
    scored = next(df.value for df in at.dataframe if "proba_no" in df.value.columns)
    assert len(scored) == 40 and (scored["churn"] == rows["churn"]).all()  # the file's own columns are kept
    threshold = recorded["decision_threshold"]
    assert (scored["prediction"] == np.where(scored["proba_no"] >= threshold, "no", "yes")).all()
    assert any(b.label == "Download the predictions (CSV)" for b in at.get("download_button"))
    assert any("service would take every row" in c.value for c in at.caption) and not at.warning
    # The file holds the target: the version's scores on it, next to the cross-validated ones.
    assert any("Against the file's 'churn'" in m.value and "40 rows with a value" in m.value for m in at.markdown)
    against = next(df.value for df in at.dataframe if "this file" in df.value.columns).set_index("metric")
    assert against.loc["Accuracy", "this file"] == f"{(scored['prediction'] == rows['churn']).mean():.4f}"
    assert against.loc["ROC AUC", "cross-validated in training"] == f"{recorded['roc_auc']['mean']:.4f}"
    odd = rows.assign(state=["ZZ"] * 3 + list(rows["state"][3:]))  # a state the model never saw
    at.file_uploader(key="score_file").set_value(("odd.csv", odd.to_csv(index=False).encode(), "text/csv")).run()
    _no_exceptions(at)
    assert len(next(df.value for df in at.dataframe if "proba_no" in df.value.columns)) == 40  # scored all the same
    warning = next(w.value for w in at.warning if "would refuse" in w.value)
    assert "'state': expected one of the" in warning and "rows 1, 2, 3 of the file" in warning
    assert "SHIPML_SERVE_UNSEEN_CATEGORIES=accept" in warning
    few = rows[["state", "account_length"]].to_csv(index=False).encode()
    at.file_uploader(key="score_file").set_value(("few.csv", few, "text/csv")).run()  # replaces the file
    assert any("missing 17 column" in e.value and "the model needs" in e.value for e in at.error)

    # The model folder as a zip, packed on request; a model file changed on disk is refused, not handed out.
    assert not any(b.label.startswith("Download the model") for b in at.get("download_button"))
    next(b for b in at.button if b.label == "Prepare the model for download").click().run()
    _no_exceptions(at)
    assert any(b.label.startswith("Download the model (") and b.label.endswith(" MB zip)")
               for b in at.get("download_button"))
    artifact = get_settings().models_dir / registry.get_version(store, name="mlc_churn", version=2).artifact_file
    artifact.chmod(0o644)
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    next(s for s in at.selectbox if s.label == "Model card of version").set_value(2).run()
    next(b for b in at.button if b.label == "Prepare the model for download").click().run()
    assert any("refusing to load" in e.value for e in at.error)
    assert not any(b.label.startswith("Download the model") for b in at.get("download_button"))


def test_leakage_suspects_must_be_dropped_or_confirmed_before_training(app, store, tmp_path) -> None:
    import numpy as np
    import pandas as pd

    from core import datasets
    from core.data.ingest import read_bytes

    rng = np.random.default_rng(0)
    y = rng.choice(["yes", "no"], 400)
    frame = pd.DataFrame({"x": rng.normal(size=400), "refund_issued": np.where(y == "yes", 1, 0), "y": y})
    at = app()
    settings = get_settings()
    dataset, _ = datasets.import_table(store, read_bytes("leaky.csv", frame.to_csv(index=False).encode(), settings=settings),
                                       project="Demo", name="leaky.csv", settings=settings)
    datasets.save_preparation(store, dataset.id, target="y")
    from pages.common import WorkflowState

    at.session_state["workflow"] = WorkflowState(project="Demo", dataset_id=dataset.id)
    at.switch_page("pages/train.py").run()
    _no_exceptions(at)
    assert any("target leakage" in w.value for w in at.warning)
    assert not any(b.label == "Start training" for b in at.button)
    next(b for b in at.button if b.label == "Drop the column").click().run()
    _no_exceptions(at)
    recipe = datasets.get_preparation(store, dataset.id).recipe
    assert [s.kind for s in recipe.steps] == ["drop_columns"] and recipe.steps[0].columns == ["refund_issued"]
    assert any(b.label == "Start training" for b in at.button)


def test_choosing_a_task_changes_the_metrics_offered(app, store) -> None:
    from core.samples import SAMPLES, import_sample
    from pages.common import WorkflowState

    at = app("pages/train.py")
    _no_exceptions(at)
    optimise = next(s for s in at.selectbox if s.label == "Optimise")
    assert optimise.value == "roc_auc"  # churn is inferred binary
    next(s for s in at.selectbox if s.label == "Task").set_value("multiclass").run()
    _no_exceptions(at)
    optimise = next(s for s in at.selectbox if s.label == "Optimise")
    assert optimise.value == "balanced_accuracy"  # the multiclass default, offered at once

    taxi = import_sample(store, next(s for s in SAMPLES if s.file == "taxi.csv"), project="Demo", settings=get_settings())
    at.session_state["workflow"] = WorkflowState(project="Demo", dataset_id=taxi)
    at.run()
    _no_exceptions(at)
    assert next(s for s in at.selectbox if s.label == "Task").value == "auto"  # churn's choice stays churn's


def test_rows_ordered_by_a_date_get_a_time_series_split_by_default(app, store) -> None:
    from core.samples import SAMPLES, import_sample
    from pages.common import WorkflowState

    at = app()
    chicago = next(s for s in SAMPLES if s.file == "chicago.csv")  # its dates are ISO text
    dataset_id = import_sample(store, chicago, project="Demo", settings=get_settings())
    at.session_state["workflow"] = WorkflowState(project="Demo", dataset_id=dataset_id)
    at.switch_page("pages/train.py").run()
    _no_exceptions(at)
    time_column = next(s for s in at.selectbox if s.label == "Time column")
    assert time_column.value == "date" and "ordered by 'date'" in time_column.help
    assert "the latest rows" in next(s for s in at.slider if s.label.startswith("Holdout share")).help
    # Its dates are text, which a model would leave out: the page offers to convert them.
    assert any("1 column holds dates or numbers stored as text" in m.value for m in at.markdown)
    assert any("'date' holds dates stored as text" in m.value for m in at.markdown)
    next(b for b in at.button if b.label.startswith("Convert it")).click().run()
    _no_exceptions(at)
    from core import datasets
    (step,) = datasets.get_preparation(store, dataset_id).recipe.steps
    assert (step.kind, step.column, step.to) == ("fix_type", "date", "datetime")
    assert not any("stored as text" in m.value for m in at.markdown)
    assert next(s for s in at.selectbox if s.label == "Time column").value == "date"  # still split by time
    # Trained, its evaluation shows actual and predicted ridership along the dates.
    next(m for m in at.multiselect if m.label.startswith("Models")).set_value(["ridge"])
    next(n for n in at.number_input if n.label.startswith("Max trials")).set_value(2)
    next(b for b in at.button if b.label == "Start training").click().run()
    (job,) = jobs.list_jobs(store, dataset_id=dataset_id)
    _wait_done(store, job.id)
    at.switch_page("pages/evaluate.py").run()
    _no_exceptions(at)
    assert [t.label for t in at.tabs] == ["Residuals", "Predicted vs actual", "Over time"]
    over_time = json.loads(at.tabs[2].get("plotly_chart")[0].proto.spec)
    assert over_time["layout"]["title"]["text"].startswith("Actual and predicted over time")


def test_a_binary_target_split_by_time_is_drawn_over_time(app, store, tmp_path) -> None:
    import numpy as np
    import pandas as pd

    from core.config import SAMPLES_DIR
    from core.data.ingest import read_path
    from core.datasets import import_table, save_preparation
    from core.modeling.tuning import TuningConfig
    from core.training import TrainRequest
    from pages.common import WorkflowState

    at = app()
    path = tmp_path / "default-by-day.csv"
    pd.read_csv(SAMPLES_DIR / "default.csv").assign(day=lambda f: np.arange(len(f)) // 20).to_csv(path, index=False)
    dataset, _ = import_table(store, read_path(path, settings=get_settings()), project="Demo", name=path.name,
                              settings=get_settings())
    save_preparation(store, dataset.id, target="default")
    request = TrainRequest(model_name="by-day", target="default", time_column="day",
                           config=TuningConfig(models=("logistic_regression",), max_trials=2, class_weight=True))
    job_id = jobs.submit_job(store, dataset_id=dataset.id, request=request, settings=get_settings())
    _wait_done(store, job_id)
    assert jobs.get_job(store, job_id).status == "DONE", jobs.get_job(store, job_id).error
    at.session_state["workflow"] = WorkflowState(project="Demo", dataset_id=dataset.id)
    at.switch_page("pages/evaluate.py").run()
    _no_exceptions(at)
    assert [t.label for t in at.tabs][-1] == "Over time"
    spec = json.loads(at.tabs[-1].get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["title"]["text"].startswith("Share of 'Yes' and its predicted probability over time")
    assert any("chosen on the earlier folds" in c.value for c in at.caption)  # the threshold note's rule
    # 3 % defaults: a cut-off for balanced accuracy costs accuracy against "always No", and the page says why.
    metrics = next(df.value for df in at.dataframe if "vs baseline" in df.value.columns).set_index("metric")
    assert metrics.loc["Accuracy", "vs baseline"] == "⚠ no better than baseline"
    assert any(c.value.startswith("Accuracy trails the baseline's (0.9") and "balanced accuracy" in c.value
               for c in at.caption)
    # Trained with balanced class weights: the probabilities of 'Yes' run high, and the page says so.
    assert metrics.loc["Log loss", "vs baseline"] == "⚠ no better than baseline"
    assert any(c.value.startswith("Log loss trails the baseline's") and "balanced class weights" in c.value
               for c in at.caption)


def test_a_long_tailed_regression_target_is_offered_to_be_learnt_as_its_log(app, store, tmp_path) -> None:
    import numpy as np
    import pandas as pd

    from core.data.ingest import read_path
    from core.datasets import import_table, save_preparation
    from pages.common import WorkflowState

    rng = np.random.default_rng(0)
    path = tmp_path / "amounts.csv"
    x = rng.normal(size=300)
    pd.DataFrame({"x": x, "amount": (1000 * np.exp(3 + 1.5 * x)).round(2)}).to_csv(path, index=False)
    dataset, _ = import_table(store, read_path(path, settings=get_settings()), project="Demo", name=path.name,
                              settings=get_settings())
    save_preparation(store, dataset.id, target="amount")
    at = app()
    at.session_state["workflow"] = WorkflowState(project="Demo", dataset_id=dataset.id)
    at.switch_page("pages/train.py").run()
    _no_exceptions(at)
    assert not any(c.label == "Balance class weights" for c in at.checkbox)  # a regression has no classes
    assert any(c.value.startswith("'amount' has a long tail of large values (skewness ") for c in at.caption)
    next(c for c in at.checkbox if c.label == "Learn the log of the target").check()
    next(m for m in at.multiselect if m.label.startswith("Models")).set_value(["ridge"])
    next(n for n in at.number_input if n.label.startswith("Max trials")).set_value(1)
    next(b for b in at.button if b.label == "Start training").click().run()
    _no_exceptions(at)
    (job,) = jobs.list_jobs(store, dataset_id=dataset.id)
    _wait_done(store, job.id)
    assert jobs.get_job(store, job.id).status == "DONE", jobs.get_job(store, job.id).error
    (version,) = [v for v in registry.list_versions(store) if v.id == jobs.get_job(store, job.id).version_id]
    assert json.loads(version.cv_json)["tuning"]["log_target"] is True
    at.switch_page("pages/evaluate.py").run()
    _no_exceptions(at)
    assert any(c.value.endswith("· learnt the log of the target") for c in at.caption)
    # 240 rows after the holdout: tuned with 10 folds, reported with 5, and the leaderboard says why its scores differ.
    assert any(c.value.startswith("The search scored these trials with 10 folds") and "again with the 5 asked for"
               in c.value for c in at.caption)
    # Errors in thousands are written to a tenth at most, thousands separated; R² keeps its decimals.
    metrics = next(df.value for df in at.dataframe if "vs baseline" in df.value.columns).set_index("metric")
    assert re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d)? ± [\d,]+(\.\d)?", metrics.loc["RMSE", "cross-validated"]), metrics
    assert re.fullmatch(r"0\.\d{4} ± 0\.\d{4}", metrics.loc["R² (optimised)", "cross-validated"]), metrics
    at.switch_page("pages/models.py").run()
    _no_exceptions(at)
    assert any("learnt as log(1 + target)" in m.value for m in at.markdown)  # the model card says so


def test_the_train_page_says_a_large_table_is_tuned_on_a_sample(app, monkeypatch) -> None:
    at = app("pages/train.py")
    assert not any("run on a sample" in c.value for c in at.caption)  # 4,000 training rows: all of them
    monkeypatch.setenv("SHIPML_TUNING_MAX_ROWS", "1000")
    get_settings.cache_clear()
    at.run()
    _no_exceptions(at)
    assert any(c.value.startswith("About 4,000 training rows: the search and its cross-validation run on a sample "
                                  "of 1,000 of them") for c in at.caption)


def test_a_recipe_that_drops_the_target_leaves_the_train_page_standing(app, store) -> None:
    from core import datasets
    from core.prep.steps import DropColumns, Recipe
    from core.samples import SAMPLES, import_sample
    from pages.common import WorkflowState

    at = app()
    dataset_id = import_sample(store, SAMPLES[1], project="Demo", settings=get_settings())  # penguins
    datasets.save_preparation(store, dataset_id, recipe=Recipe().with_step(DropColumns(columns=["species"])))
    at.session_state["workflow"] = WorkflowState(project="Demo", dataset_id=dataset_id)
    at.switch_page("pages/train.py").run()
    _no_exceptions(at)  # the job, if started, fails with the recipe's error in words
    assert any(b.label == "Start training" for b in at.button)


def test_the_models_page_opens_on_a_model_of_the_dataset_in_use(app, store) -> None:
    import pandas as pd
    from sklearn.dummy import DummyClassifier

    from core import datasets
    from core.prep.pipeline import build_pipeline
    from core.prep.plan import FeaturePlan
    from core.prep.steps import Recipe
    from core.samples import SAMPLES, import_sample
    from pages.common import WorkflowState

    at = app()
    dataset_id = import_sample(store, SAMPLES[1], project="Demo", settings=get_settings())  # penguins
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": ["a", "b", "a", "b"]})
    in_use = datasets.get_dataset(store, dataset_id).content_hash
    for name, data in (("alpha", "0" * 64), ("zeta", in_use)):  # names sort alpha first
        pipeline = build_pipeline(Recipe(), FeaturePlan(), target="y", estimator=DummyClassifier()).fit(frame[["x"]], frame["y"])
        meta = registry.VersionMeta(dataset_hash=data, target="y", task="binary", recipe_json=Recipe().model_dump_json(),
                                    plan_json=FeaturePlan().model_dump_json(), model_family="dummy", params={},
                                    metrics={}, cv={}, training_seconds=0.1)
        registry.register_version(store, name=name, pipeline=pipeline, meta=meta, reference=frame[["x"]],
                                  settings=get_settings())
    at.session_state["workflow"] = WorkflowState(project="Demo", dataset_id=dataset_id)
    at.switch_page("pages/models.py").run()
    _no_exceptions(at)
    assert next(s for s in at.selectbox if s.label == "Model").value == "zeta"
