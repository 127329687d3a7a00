"""Evaluation figures build for every task, with the expected traces and escaped user text."""
from __future__ import annotations

import html
import dataclasses

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.linear_model import LogisticRegression

from core.config import SAMPLES_DIR
from core.data.profile import Task
from core.errors import BadInput
from core.modeling import plots
from core.modeling.evaluation import EvaluationReport, evaluate, per_class_table, permutation_importance_table
from core.modeling.specs import learn_log_target
from core.modeling.splits import choose_scheme, holdout_split
from core.prep.pipeline import build_pipeline
from core.prep.plan import FeaturePlan
from core.prep.recipe import prepare_training_table
from core.prep.steps import FixType, Recipe

# Class names that would render as markup if they reached plotly unescaped.
_MARKUP = {"Adelie": "<b>Adelie</b>", "Gentoo": "Gentoo <i>", "Chinstrap": "Chinstrap"}


def _report(name: str, target: str, task: Task, estimator, metric: str, rename=None):
    frame = pd.read_csv(SAMPLES_DIR / name)
    if rename:
        frame[target] = frame[target].map(rename)
    X, y = prepare_training_table(frame, Recipe(), target=target)
    make = lambda: build_pipeline(Recipe(), FeaturePlan(), target=target, estimator=estimator())  # noqa: E731
    scheme, _ = choose_scheme(X, task=task, y=y, n_folds=3)
    report = evaluate(make, X, y, task=task, scheme=scheme, metric=metric, seed=0)
    return report, make().fit(X, y), X, y


@pytest.fixture(scope="module")
def binary():
    estimator = lambda: LGBMClassifier(n_estimators=40, num_leaves=15, n_jobs=1, verbose=-1, random_state=0)  # noqa: E731
    return _report("mlc_churn.csv", "churn", Task.BINARY, estimator, "roc_auc")


@pytest.fixture(scope="module")
def multiclass():
    return _report("penguins.csv", "species", Task.MULTICLASS, lambda: LogisticRegression(max_iter=2_000),
                   "balanced_accuracy", rename=_MARKUP)


@pytest.fixture(scope="module")
def regression():
    estimator = lambda: LGBMRegressor(n_estimators=60, num_leaves=15, n_jobs=1, verbose=-1, random_state=0)  # noqa: E731
    return _report("concrete.csv", "compressive_strength", Task.REGRESSION, estimator, "r2")


def _types(figure: go.Figure) -> set[str]:
    return {trace.type for trace in figure.data}


def _is_message(figure: go.Figure) -> bool:
    return not figure.data and len(figure.layout.annotations) == 1


_CLASSIFICATION_CHARTS = (plots.roc_chart, plots.pr_chart, plots.calibration_chart, plots.lift_chart)
_REGRESSION_CHARTS = (plots.residuals_chart, plots.predicted_vs_actual_chart)


@pytest.mark.parametrize("fixture", ["binary", "multiclass"])
def test_classification_charts(fixture: str, request: pytest.FixtureRequest) -> None:
    report: EvaluationReport = request.getfixturevalue(fixture)[0]
    for chart in _CLASSIFICATION_CHARTS:
        figure = chart(report)
        assert _types(figure) == {"scatter"}, chart.__name__
        curves = [t for t in figure.data if t.line.dash != "dash"]
        assert len(curves) == (1 if fixture == "binary" else 3), chart.__name__
        for trace in curves:
            assert len(trace.x) <= 400 or chart is plots.calibration_chart
    confusion = plots.confusion_chart(report, report.threshold or 0.5)
    assert _types(confusion) == {"heatmap"}
    counts = np.asarray(confusion.data[0].customdata)
    assert counts.shape == ((2, 2) if fixture == "binary" else (3, 3)) and counts.sum() == report.cv.oof_mask.sum()
    shares = np.asarray(confusion.data[0].z)  # the colour: each cell's share of its actual class
    assert shares == pytest.approx(counts / counts.sum(axis=1, keepdims=True))
    assert confusion.data[0].text[-1][-1] == f"{counts[-1, -1]:,}<br>{shares[-1, -1]:.1%}"
    for chart in _REGRESSION_CHARTS:
        assert _is_message(chart(report))


def test_binary_threshold_moves_the_confusion_matrix(binary) -> None:
    report = binary[0]
    low = np.asarray(plots.confusion_chart(report, 0.05).data[0].customdata)
    high = np.asarray(plots.confusion_chart(report, 0.95).data[0].customdata)
    assert low[:, 1].sum() > high[:, 1].sum()  # a lower threshold predicts "yes" more often
    assert plots.roc_chart(report).data[0].name.startswith("yes (AUC 0.9")


@pytest.mark.parametrize("fixture", ["binary", "multiclass"])
def test_per_class_table_agrees_with_the_confusion_matrix_and_scikit_learn(fixture, request) -> None:
    from sklearn.metrics import precision_recall_fscore_support

    report: EvaluationReport = request.getfixturevalue(fixture)[0]
    threshold = report.threshold or 0.5
    table = per_class_table(report, threshold).set_index("class")
    matrix = plots.confusion_chart(report, threshold).data[0]
    counts = np.asarray(matrix.customdata)
    # Each label's row and column hold that class's rows (the matrix's labels are escaped for HTML).
    assert list(matrix.y) == [html.escape(str(c)) for c in report.cv.classes]  # in the classes' order
    names = [str(c) for c in report.cv.classes]
    assert table.loc[names, "rows"].tolist() == counts.sum(axis=1).tolist()  # actual rows per class
    assert table.loc[names, "predicted"].tolist() == counts.sum(axis=0).tolist()
    assert table["rows"].is_monotonic_decreasing  # the table: the most frequent class first
    assert table["share"].sum() == pytest.approx(1.0)
    cv = report.cv
    actual = cv.y_true[cv.oof_mask]
    predicted = (np.where(cv.oof_proba[cv.oof_mask][:, 1] >= threshold, cv.classes[1], cv.classes[0])
                 if fixture == "binary" else np.asarray(cv.classes, dtype=object)[cv.oof_proba[cv.oof_mask].argmax(axis=1)])
    expected = precision_recall_fscore_support(actual, predicted, labels=list(cv.classes), zero_division=np.nan)
    for i, cls in enumerate(cv.classes):
        assert table.loc[str(cls), ["precision", "recall", "F1"]].tolist() == pytest.approx(
            [expected[0][i], expected[1][i], expected[2][i]])
    if fixture == "binary":  # the threshold moves the positive class's recall
        assert per_class_table(report, 0.05).set_index("class").loc["yes", "recall"] > table.loc["yes", "recall"]


def test_per_class_table_is_for_classification(regression) -> None:
    with pytest.raises(BadInput, match="classification"):
        per_class_table(regression[0])


def test_class_names_are_escaped(multiclass) -> None:
    report, model, X, _ = multiclass
    figures = [chart(report) for chart in _CLASSIFICATION_CHARTS]
    figures += [plots.confusion_chart(report), plots.partial_dependence_chart(model, X, "island", task=Task.MULTICLASS)]
    for figure in figures:
        text = figure.to_json()
        assert "<b>" not in text and "<i>" not in text
    assert any("&lt;b&gt;Adelie&lt;/b&gt;" in (t.name or "") for t in figures[0].data)


def test_calibration_axes_end_above_the_largest_bin(binary) -> None:
    """taxi's tips: 8 % are 'no' (renamed so that it is the positive class). No bin predicts much
    more than 0.1, so the unit square would leave the curve in one corner."""
    rare = _report("taxi.csv", "tip", Task.BINARY, lambda: LogisticRegression(max_iter=1000), "roc_auc",
                   rename={"yes": "yes", "no": "zno"})[0]
    figure = plots.calibration_chart(rare)
    curve, diagonal = figure.data
    top = figure.layout.xaxis.range[1]
    assert figure.layout.yaxis.range[1] == top < 0.5 and max(diagonal.x) == top
    assert max(*curve.x, *curve.y) <= top
    assert f"axes up to {top:.2f}" in figure.layout.title.text
    churn = plots.calibration_chart(binary[0])  # churners' bins reach high probabilities
    assert tuple(churn.layout.xaxis.range) == (0, 1) and "axes up to" not in churn.layout.title.text


def test_regression_charts(regression) -> None:
    report = regression[0]
    for chart in _REGRESSION_CHARTS:
        figure = chart(report)
        assert "scatter" in _types(figure)
        assert len(figure.data[0].x) == report.cv.oof_mask.sum() == 1030
    for chart in (*_CLASSIFICATION_CHARTS, plots.confusion_chart):
        assert _is_message(chart(report))
    assert plots.predicted_vs_actual_chart(report).layout.xaxis.type is None  # strengths are not long-tailed


def test_a_long_tailed_target_is_drawn_on_log_scales() -> None:
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=300)})
    y = pd.Series(np.exp(5 + 1.5 * X["x"]), name="amount")  # skewness about 6: most rows near the bottom
    make = lambda: build_pipeline(Recipe(), FeaturePlan(), target="amount",  # noqa: E731
                                  estimator=learn_log_target(Ridge()))
    scheme, _ = choose_scheme(X, task=Task.REGRESSION, y=y, n_folds=3)
    report = evaluate(make, X, y, task=Task.REGRESSION, scheme=scheme, metric="r2", seed=0)
    versus = plots.predicted_vs_actual_chart(report)
    assert (versus.layout.xaxis.type, versus.layout.yaxis.type) == ("log", "log")
    assert versus.layout.title.text.endswith(", log scales)")
    residuals = plots.residuals_chart(report)
    assert residuals.layout.xaxis.type == "log" and residuals.layout.yaxis.type is None  # residuals go below 0
    # An amount of 0 and a prediction below 0 have no place on a log axis: left out and counted.
    actual, predicted = report.cv.y_true.copy(), report.cv.oof_pred.copy()
    actual[0], predicted[1] = 0, -2
    odd = dataclasses.replace(report, cv=dataclasses.replace(report.cv, y_true=actual, oof_pred=predicted))
    assert plots.predicted_vs_actual_chart(odd).layout.title.text.endswith(
        ", log scales; 2 points at or below 0 not drawn)")
    shifted = dataclasses.replace(report, cv=dataclasses.replace(report.cv, y_true=report.cv.y_true - 30))
    assert plots.predicted_vs_actual_chart(shifted).layout.xaxis.type is None  # a value below 0: not skewed for a log
    zeros = report.cv.y_true.copy()
    zeros[np.argsort(zeros)[:30]] = 0  # an amount of 0 in a tenth of the rows: too many points to leave out
    assert plots.predicted_vs_actual_chart(dataclasses.replace(report, cv=dataclasses.replace(
        report.cv, y_true=zeros))).layout.xaxis.type is None


def test_over_time_follows_a_time_series_split() -> None:
    from sklearn.linear_model import Ridge

    frame = pd.read_csv(SAMPLES_DIR / "chicago.csv")  # one row a day, the dates as ISO text
    X, y = prepare_training_table(frame, Recipe(), target="ridership")
    make = lambda: build_pipeline(Recipe(), FeaturePlan(), target="ridership", estimator=Ridge())  # noqa: E731
    scheme, _ = choose_scheme(X, task=Task.REGRESSION, time_column="date", n_folds=3)
    X_train, X_hold, y_train, y_hold = holdout_split(X, y, task=Task.REGRESSION, scheme=scheme, share=0.2)
    report = evaluate(make, X_train, y_train, task=Task.REGRESSION, scheme=scheme, metric="r2", seed=0,
                      X_holdout=X_hold, y_holdout=y_hold)
    figure = plots.over_time_chart(report, "ridership")
    assert figure.layout.yaxis.title.text == "mean ridership"
    actual, predicted = figure.data
    scored, held = int(report.cv.oof_mask.sum()), len(X_hold)
    assert sum(actual.customdata) == scored + held and len(actual.x) <= 400  # more days than points: stretches
    assert list(actual.x) == sorted(actual.x) and pd.Timestamp(actual.x[0]) > pd.Timestamp(frame["date"].min())
    order = np.argsort(report.times[report.cv.oof_mask], kind="stable")
    first = order[: actual.customdata[0]]  # the earliest scored days, the first fold's
    assert actual.y[0] == pytest.approx(report.cv.y_true[report.cv.oof_mask][first].mean())
    assert predicted.y[0] == pytest.approx(report.cv.oof_pred[report.cv.oof_mask][first].mean())
    # Then the holdout, the latest days, in a shaded band, as the model fit on the training rows scored them.
    (band,) = figure.layout.shapes
    assert (pd.Timestamp(band.x0), pd.Timestamp(band.x1)) == (pd.Timestamp(X_hold["date"].min()),
                                                              pd.Timestamp(X_hold["date"].max()))
    last = actual.customdata[-1]
    latest = X_hold.assign(y=y_hold.to_numpy()).sort_values("date").tail(last)
    assert actual.y[-1] == pytest.approx(latest["y"].mean())
    served = make().fit(X_train, y_train).predict(latest.drop(columns="y"))
    assert predicted.y[-1] == pytest.approx(served.mean())


def test_over_time_of_a_binary_target_is_its_share_and_predicted_probability() -> None:
    frame = pd.read_csv(SAMPLES_DIR / "default.csv").assign(week=lambda f: np.arange(len(f)) // 50)  # a number
    X, y = prepare_training_table(frame, Recipe(), target="default")
    make = lambda: build_pipeline(Recipe(), FeaturePlan(), target="default",  # noqa: E731
                                  estimator=LogisticRegression(max_iter=1_000))
    scheme, _ = choose_scheme(X, task=Task.BINARY, y=y, time_column="week", n_folds=3)
    X_train, X_hold, y_train, y_hold = holdout_split(X, y, task=Task.BINARY, scheme=scheme, share=0.2)
    report = evaluate(make, X_train, y_train, task=Task.BINARY, scheme=scheme, metric="roc_auc", seed=0,
                      X_holdout=X_hold, y_holdout=y_hold)
    actual, predicted = plots.over_time_chart(report).data
    cv, mask = report.cv, report.cv.oof_mask
    weeks = pd.DataFrame({"week": report.times[mask], "yes": cv.y_true[mask] == "Yes", "p": cv.oof_proba[mask, 1]})
    p_held = make().fit(X_train, y_train).predict_proba(X_hold)[:, 1]  # 'No', 'Yes': the positive class last
    weeks = pd.concat([weeks, pd.DataFrame({"week": X_hold["week"], "yes": y_hold == "Yes", "p": p_held})])
    per_week = weeks.groupby("week").mean()  # few enough weeks for one point each, the holdout's last
    assert list(actual.x) == per_week.index.tolist() and per_week.index[-1] == X_hold["week"].max()
    assert np.allclose(actual.y, per_week["yes"]) and np.allclose(predicted.y, per_week["p"])
    assert "Share of 'Yes'" in plots.over_time_chart(report).layout.title.text


def test_over_time_of_many_classes_is_the_accuracy(multiclass) -> None:
    report = multiclass[0]
    cv = report.cv
    by_time = dataclasses.replace(report, times=np.arange(len(cv.y_true))[::-1])  # the last row first
    (accuracy,) = plots.over_time_chart(by_time).data
    assert accuracy.name == "accuracy"
    correct = (cv.y_true == cv.oof_pred)[cv.oof_mask][::-1]
    assert np.array_equal(accuracy.y, correct.astype(float))


def test_over_time_says_when_it_does_not_apply(binary, multiclass) -> None:
    assert _is_message(plots.over_time_chart(binary[0]))  # shuffled folds
    saved_before = dataclasses.replace(binary[0])
    del saved_before.__dict__["times"]  # as a report pickled before the field existed
    assert saved_before.times is None and _is_message(plots.over_time_chart(saved_before))


def test_importance_chart(regression) -> None:
    _, model, X, y = regression
    table = permutation_importance_table(model, X, y, task=Task.REGRESSION, metric="r2", seed=0, repeats=2)
    figure = plots.importance_chart(table)
    assert _types(figure) == {"bar"} and len(figure.data[0].y) == len(X.columns)
    assert figure.data[0].y[0] in {"age", "cement"}  # concrete strength is mostly age and cement
    assert _is_message(plots.importance_chart(table.iloc[:0]))


@pytest.mark.parametrize("fixture, column, kind, lines", [
    ("binary", "total_day_minutes", "scatter", 1),
    ("binary", "international_plan", "bar", 1),
    ("multiclass", "bill_length_mm", "scatter", 3),
    ("multiclass", "island", "bar", 3),
    ("regression", "age", "scatter", 1),
])
def test_partial_dependence(fixture: str, column: str, kind: str, lines: int, request: pytest.FixtureRequest) -> None:
    report, model, X, _ = request.getfixturevalue(fixture)
    figure = plots.partial_dependence_chart(model, X, column, task=Task(report.task), classes=report.cv.classes)
    assert _types(figure) == {kind} and len(figure.data) == lines
    assert 2 <= len(figure.data[0].x) <= 20
    assert figure.layout.title.text.startswith(f"{column}<br>")  # the column first, on a line of its own
    if report.task != "regression":
        assert all(0 <= v <= 1 for trace in figure.data for v in trace.y)
    with pytest.raises(BadInput):
        plots.partial_dependence_chart(model, X, "nope", task=Task(report.task))


def test_binary_partial_dependence_is_of_the_positive_class(binary) -> None:
    _, model, X, _ = binary
    of_yes = plots.partial_dependence_chart(model, X, "total_day_minutes", task=Task.BINARY, classes=("no", "yes"))
    of_no = plots.partial_dependence_chart(model, X, "total_day_minutes", task=Task.BINARY, classes=("yes", "no"))
    assert of_yes.layout.yaxis.title.text == "mean P(yes)" and of_no.layout.yaxis.title.text == "mean P(no)"
    assert np.allclose(np.asarray(of_no.data[0].y), 1 - np.asarray(of_yes.data[0].y))


def test_partial_dependence_is_monotone_in_age(regression) -> None:
    _, model, X, _ = regression
    y = np.asarray(plots.partial_dependence_chart(model, X, "age", task=Task.REGRESSION).data[0].y)
    assert y[-1] > y[0]  # concrete keeps hardening


def test_partial_dependence_grid_leaves_out_infinite_values(regression) -> None:
    _, model, X, _ = regression
    X = X.assign(age=X["age"].astype(float))
    X.loc[X.index[: len(X) // 5], "age"] = np.inf  # a fifth: the top quantiles would be infinite
    grid = plots.partial_dependence_chart(model, X, "age", task=Task.REGRESSION).data[0].x
    assert len(grid) > 2 and np.isfinite(np.asarray(grid, dtype=float)).all()


def test_partial_dependence_reads_text_as_the_recipe_does() -> None:
    # Dates and numbers stored as text, converted by the recipe inside the Pipeline: read as text,
    # each day of a daily table was a category, and the chart showed its first ten days as bars.
    frame = pd.read_csv(SAMPLES_DIR / "chicago.csv", usecols=["date", "Clark_Lake", "temp", "ridership"]).iloc[:1500]
    frame["temp"] = [f"{v:.1f}" if i % 7 else "n/a" for i, v in enumerate(frame["temp"])]
    recipe = Recipe(steps=[FixType(column="date", to="datetime"), FixType(column="temp", to="number")])
    X, y = prepare_training_table(frame, Recipe(), target="ridership")
    estimator = LGBMRegressor(n_estimators=40, num_leaves=7, n_jobs=1, verbose=-1, random_state=0)
    model = build_pipeline(recipe, FeaturePlan(), target="ridership", estimator=estimator).fit(X, y)

    dates = plots.partial_dependence_chart(model, X, "date", task=Task.REGRESSION)
    assert _types(dates) == {"scatter"} and len(dates.data[0].x) == 20
    grid = pd.to_datetime(pd.Series(dates.data[0].x))
    days = pd.to_datetime(X["date"])
    assert grid.is_monotonic_increasing and grid.iloc[0] < days.quantile(0.1) and grid.iloc[-1] > days.quantile(0.9)
    # All on one weekday: on mixed ones the line zigzagged between weekdays and weekends.
    assert grid.dt.dayofweek.nunique() == 1 and "each date a Monday" in dates.layout.title.text
    temps = plots.partial_dependence_chart(model, X, "temp", task=Task.REGRESSION)
    assert _types(temps) == {"scatter"} and pd.Series(temps.data[0].x, dtype=float).is_monotonic_increasing
    text = plots.partial_dependence_chart(build_pipeline(Recipe(), FeaturePlan(), target="ridership",
                                                         estimator=estimator).fit(X, y), X, "temp", task=Task.REGRESSION)
    assert _types(text) == {"bar"}  # without the recipe the model reads categories, and the chart says so


def test_leaderboard_chart() -> None:
    trials = pd.DataFrame({
        "number": [0, 1, 2, 3, 4, 5],
        "model": ["lightgbm", "<b>rf</b>", "lightgbm", "<b>rf</b>", "knn", "mlp"],
        "score": [0.80, 0.85, 0.70, 0.90, 0.60, np.nan],
        "state": ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE", "COMPLETE", "FAIL"],
    })
    figure = plots.leaderboard_chart(trials, score_label="ROC <AUC>")
    assert _types(figure) == {"scatter"}
    names = [t.name for t in figure.data]
    # Families by their titles; a name that is no family's as it is, escaped.
    assert names == ["&lt;b&gt;rf&lt;/b&gt;", "k-nearest neighbours", "LightGBM", "stopped early",
                     "best so far"]  # in alphabetical order, whatever the case
    assert figure.layout.yaxis.title.text == "ROC &lt;AUC&gt;"
    # A family keeps its colour as others join: live, LightGBM was purple until k-NN's first trial
    # moved it along the colours.
    colours = {t.name: t.marker.color for t in figure.data[:3]}
    alone = plots.leaderboard_chart(trials[trials["model"] == "lightgbm"]).data[0]
    assert alone.marker.color == colours["LightGBM"] != colours["k-nearest neighbours"]
    assert len(set(colours.values())) == 3
    assert list(plots.leaderboard_chart(trials, greater_is_better=False).data[-1].y) == [0.80, 0.80, 0.80, 0.60]
    assert figure.layout.xaxis.dtick == 1  # a few trials: whole trial numbers only
    many = pd.DataFrame({"number": range(40), "model": "knn", "score": 0.5, "state": "COMPLETE"})
    assert plots.leaderboard_chart(many).layout.xaxis.dtick is None  # plotly's own spacing
    assert _is_message(plots.leaderboard_chart(trials.iloc[5:]))
    with pytest.raises(BadInput):
        plots.leaderboard_chart(trials.drop(columns="state"))


def test_leaderboard_chart_keeps_far_worse_trials_from_flattening_the_rest() -> None:
    # A weak configuration at 0.38 and a weak family at 0.87 next to trials at 0.93-0.95.
    trials = pd.DataFrame({
        "number": range(7),
        "model": ["lightgbm", "lr", "lr", "knn", "lr", "lightgbm", "lr"],
        "score": [0.93, 0.949, 0.38, 0.867, 0.9493, 0.62, 0.90],
        "state": ["COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE"],
    })
    figure = plots.leaderboard_chart(trials)
    low, high = figure.layout.yaxis.range
    assert 0.62 < low < 0.867 and high > 0.9493  # every family's best is on the chart
    lr = figure.data[[t.name for t in figure.data].index("lr")]  # not a family's name: shown as it is
    assert lr.y[1] == figure.data[[t.name for t in figure.data].index("LightGBM")].y[1]  # both on the edge
    assert low < lr.y[1] < 0.867 and list(lr.marker.symbol) == ["circle", "triangle-down", "circle", "circle"]
    assert list(lr.customdata) == [0.949, 0.38, 0.9493, 0.90]  # the true scores, for the hover text
    assert "2 trials scoring below" in figure.layout.title.text
    # Lower is better (RMSE): the far-worse trials are the high ones, pinned at the top.
    errors = trials.assign(score=10 * (1 - trials["score"]))
    flipped = plots.leaderboard_chart(errors, greater_is_better=False)
    low, high = flipped.layout.yaxis.range
    assert 1.33 < high < 3.8 and low < 0.507
    pinned = flipped.data[[t.name for t in flipped.data].index("lr")]
    assert 1.33 < pinned.y[1] < high and pinned.marker.symbol[1] == "triangle-up"
    assert "2 trials scoring above" in flipped.layout.title.text
    # Nothing far off: plotly's own axis and the plain title.
    close = plots.leaderboard_chart(trials[trials["score"] > 0.85])
    assert close.layout.yaxis.range is None and close.layout.title.text == "Trials"
    # One family, its second trial a little worse: its best is the whole spread, yet nothing is far.
    two = pd.DataFrame({"number": [0, 1], "model": "lr", "score": [0.8243, 0.8231], "state": "COMPLETE"})
    assert plots.leaderboard_chart(two).layout.yaxis.range is None


def test_leaderboard_chart_keeps_stopped_trials_off_the_score_axis() -> None:
    # A time-series split: the first folds of stopped trials score above every complete trial.
    trials = pd.DataFrame({
        "number": range(6),
        "model": ["lasso", "lasso", "lightgbm", "lasso", "lightgbm", "lasso"],
        "score": [0.76, 0.80, 0.75, 0.81, 0.20, 0.77],
        "state": ["COMPLETE", "PRUNED", "COMPLETE", "PRUNED", "PRUNED", "COMPLETE"],
    })
    figure = plots.leaderboard_chart(trials)
    stopped = figure.data[[t.name for t in figure.data].index("stopped early")]
    assert stopped.yaxis == "y2" and figure.layout.yaxis2.range == (0, 1) and not figure.layout.yaxis2.visible
    assert list(stopped.x) == [1, 3, 4] and len(set(stopped.y)) == 1 and stopped.y[0] < 0.1  # along the bottom
    assert list(stopped.customdata) == [0.80, 0.81, 0.20] and "folds it ran" in stopped.hovertemplate
    best = figure.data[-1]
    assert list(best.y) == [0.76, 0.76, 0.77]  # complete trials only
    # The 0.20 of a stopped trial neither stretches the axis nor counts as a far-worse trial.
    assert figure.layout.yaxis.range is None and figure.layout.title.text == "Trials"
    only_stopped = plots.leaderboard_chart(trials[trials["state"] == "PRUNED"])
    assert [t.name for t in only_stopped.data] == ["stopped early"]


def test_compare_runs_table(binary, regression) -> None:
    a = binary[0]
    table = plots.compare_runs_table(a, a)
    assert len(table) == len(a.metrics) and (table["better"] == "no clear difference").all()
    assert (table["B - A"] == 0).all() and table["metric"].iloc[0] == "ROC AUC"
    worse = [dataclasses.replace(m, mean=m.baseline_mean, std=m.baseline_std) for m in a.metrics]
    b = dataclasses.replace(a, metrics=tuple(worse), holdout={"roc_auc": 0.5})
    table = plots.compare_runs_table(a, b).set_index("metric")
    assert table.loc["ROC AUC", "better"] == "A" and table.loc["Log loss", "better"] == "A"
    assert "A holdout" not in table.columns  # a has no holdout
    with pytest.raises(BadInput):
        plots.compare_runs_table(a, regression[0])
    # Another positive class: precision, recall, F1 and PR AUC would describe another class.
    flipped = dataclasses.replace(a, cv=dataclasses.replace(a.cv, classes=a.cv.classes[::-1]))
    shown = set(plots.compare_runs_table(a, flipped)["metric"])
    assert {"ROC AUC", "Accuracy", "Balanced accuracy", "Log loss"} <= shown
    assert not shown & {"Precision", "Recall", "F1", "PR AUC (average precision)"}


def test_compare_folds_chart(binary, regression) -> None:
    report = regression[0]
    other = dataclasses.replace(report, cv=dataclasses.replace(
        report.cv, fold_scores={**report.cv.fold_scores, "r2": (0.5, 0.6, 0.7)}))
    a, b = plots.compare_folds_chart(report, other).data
    assert list(a.y) == list(report.cv.fold_scores["r2"]) and list(b.y) == [0.5, 0.6, 0.7]
    assert list(a.x) == [1, 2, 3] and b.name == "B (mean 0.6)"
    # A's metric, judged per fold, must mean the same in B: not across tasks or positive classes.
    assert _is_message(plots.compare_folds_chart(report, binary[0]))
    f1_run = dataclasses.replace(binary[0], primary_metric="f1")
    flipped = dataclasses.replace(f1_run, cv=dataclasses.replace(f1_run.cv, classes=f1_run.cv.classes[::-1]))
    assert _is_message(plots.compare_folds_chart(f1_run, flipped))
    assert not _is_message(plots.compare_folds_chart(f1_run, f1_run))


def test_compare_versions_table_keeps_positive_class_metrics_only_for_the_same_class() -> None:
    summary = {"mean": 0.5, "std": 0.01, "baseline": 0.1}
    a = {"f1": summary, "roc_auc": summary, "positive_class": "bad"}
    rows = lambda b: plots.compare_versions_table("binary", a, "binary", b)["metric"].tolist()  # noqa: E731
    assert rows({**a}) == ["F1", "ROC AUC"]
    assert rows({**a, "positive_class": "good"}) == ["ROC AUC"]
    assert rows({"f1": summary, "roc_auc": summary}) == ["ROC AUC"]  # none recorded: the second class, maybe not 'bad'
    assert plots.compare_versions_table("binary", {"f1": summary}, "binary", {"f1": summary})["metric"].tolist() == ["F1"]


def test_compare_versions_table_reads_recorded_metrics() -> None:
    a = {"rmse": {"mean": 2.0, "std": 0.1, "baseline": 5.0}, "r2": {"mean": 0.80, "std": 0.01, "baseline": 0.0},
         "holdout": {"rmse": 2.1, "r2": 0.79}, "decision_threshold": 0.4}
    b = {"rmse": {"mean": 1.5, "std": 0.1, "baseline": 5.0}, "r2": {"mean": 0.805, "std": 0.01, "baseline": 0.0},
         "holdout": {"rmse": 1.6, "r2": 0.81}}
    table = plots.compare_versions_table("regression", a, "regression", b).set_index("metric")
    assert list(table.index) == ["RMSE", "R²"]  # metrics only, in display order: no threshold or holdout row
    assert plots.compare_versions_table("regression", a, "regression", b, first="r2")["metric"].tolist() == ["R²", "RMSE"]
    assert table.loc["RMSE", "B - A"] == pytest.approx(-0.5) and table.loc["RMSE", "better"] == "B"  # lower wins
    assert table.loc["R²", "better"] == "no clear difference"  # 0.005 apart, within a fold std
    assert table.loc["RMSE", "B holdout"] == 1.6
    assert "A holdout" not in plots.compare_versions_table("regression", a, "regression", {**b, "holdout": {}}).columns
    with pytest.raises(BadInput, match="Cannot compare a binary version with a regression version"):
        plots.compare_versions_table("binary", a, "regression", b)


def test_importance_preview_chart_escapes_names_and_names_its_colours() -> None:
    from core.prep.selection import FeatureImportance, ImportancePreview

    rows = (FeatureImportance("<b>hour</b>", 0.5, 1.1, 0.01, True), FeatureImportance("distance", 0.1, 0.36, 0.01, True),
            FeatureImportance("item_24", 0.004, 0.003, 0.001, False))
    preview = ImportancePreview(rows=rows, folds=3, task="regression", score=0.91, baseline_score=-0.0,
                                has_signal=True)
    figure = plots.importance_preview_chart(preview)
    assert [t.name for t in figure.data] == ["signal", "no signal beyond chance"]
    assert list(figure.layout.yaxis.categoryarray) == ["&lt;b&gt;hour&lt;/b&gt;", "distance", "item_24"]
    assert figure.layout.xaxis.title.text == "drop in held-out R² when the column is shuffled"
    empty = dataclasses.replace(preview, rows=())
    assert plots.importance_preview_chart(empty).layout.annotations[0].text == "No column to score"


def test_partial_dependence_dates_keep_one_weekday_and_hour_when_there_are_enough() -> None:
    hourly = pd.Series(pd.date_range("2024-01-01", periods=24 * 7 * 30, freq="h"))  # 30 of each weekday and hour
    kept, words = plots._one_weekday_and_hour(hourly)
    assert len(kept) == 30 and kept.dt.dayofweek.nunique() == 1 and kept.dt.hour.nunique() == 1
    assert words == ", each date a Monday at 00:00"
    few = hourly.iloc[: 24 * 7 * 2]  # two of each: too few for a 20-point grid, so all are kept
    kept, words = plots._one_weekday_and_hour(few)
    assert kept.equals(few) and words == ""
    weekly = pd.Series(pd.date_range("2024-01-05", periods=60, freq="7D"))  # all Fridays already
    assert plots._one_weekday_and_hour(weekly)[1] == ""
