"""Running a cleaning recipe: row steps, the cleaning Pipeline, previews, JSON and Python export."""
from __future__ import annotations

import ast
import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from core.errors import BadInput
from core.prep.recipe import (
    StepPreview,
    StepReport,
    apply_recipe,
    apply_row_steps,
    build_cleaning_pipeline,
    prepare_training_table,
    preview_recipe,
    recipe_from_json,
    recipe_to_json,
    recipe_to_python,
)
from core.prep.steps import (
    DropColumns,
    DropDuplicates,
    DropMissingTarget,
    FixType,
    GroupRareCategories,
    Impute,
    NormalizeCategories,
    Outliers,
    Recipe,
)


def messy() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 2, 3, 4, 5, 6, 7],
            "price": ["1,000", "$20", "$20", "30", None, "45%", "(5)", "50"],
            "size": [1.0, 2.0, 2.0, np.nan, 3.0, 500.0, 2.0, 4.0],
            "color": ["Red", "red ", "red ", "RED", "blue", "Blue", "green", None],
            "churn": ["Yes", "no", "no", "yes ", None, "No", "YES", "no"],
        }
    )


RECIPE = Recipe(
    steps=(
        DropDuplicates(reason="exact copies"),
        DropColumns(columns=["id"], reason="an identifier"),
        FixType(column="price", to="number", reason="money as text"),
        NormalizeCategories(columns=["color", "churn"], reason="case and spaces"),
        Impute(columns=["size", "price"], strategy="median", add_indicator=True, reason="gaps"),
        Outliers(columns=["size"], method="iqr", threshold=1.5, action="clip", reason="sensor glitch"),
        GroupRareCategories(columns=["color"], min_share=0.2, reason="long tail"),
        FixType(column="churn", to="boolean", reason="yes/no target"),
    )
)


def dataset(name: str) -> Path:
    local = Path("/work/main/data/samples") / name
    return local if local.exists() else Path("/work/shared/datasets") / name


# --- row steps ---


def test_apply_row_steps_reports_and_never_mutates():
    frame = messy()
    copy = frame.copy()
    recipe = Recipe(
        steps=(
            DropDuplicates(reason="dups"),
            Impute(columns=["size"]),  # a column step: ignored here
            DropMissingTarget(target="churn"),
            Outliers(columns=["size", "absent"], threshold=1.5, action="drop"),
        )
    )
    rows, reports = apply_row_steps(frame, recipe)
    pd.testing.assert_frame_equal(frame, copy)
    assert [r.index for r in reports] == [0, 2, 3]
    assert reports[0] == StepReport(0, "drop_duplicates", "dups", 8, 7, 0, (), ())
    assert (reports[1].rows_before, reports[1].rows_after) == (7, 6)
    assert (reports[2].rows_before, reports[2].rows_after) == (6, 5)  # 500.0 dropped, NaN kept
    assert list(rows.index) == [0, 1, 3, 6, 7]  # original labels kept


def test_row_step_errors():
    with pytest.raises(BadInput, match="nope"):
        apply_row_steps(messy(), Recipe(steps=(DropMissingTarget(target="nope"),)))
    with pytest.raises(BadInput, match="numeric"):
        apply_row_steps(messy(), Recipe(steps=(Outliers(columns=["color"], action="drop"),)))


# --- the cleaning Pipeline ---


def test_pipeline_has_column_steps_in_order_without_target_only_steps():
    pipe = build_cleaning_pipeline(RECIPE, target="churn")
    assert [name for name, _ in pipe.steps] == [
        "1_drop_columns",
        "2_fix_type",
        "3_normalize_categories",
        "4_impute",
        "5_outliers",
        "6_group_rare",
    ]
    assert pipe.named_steps["3_normalize_categories"].columns == ("color",)
    full = build_cleaning_pipeline(RECIPE)
    assert full.steps[-1][0] == "7_fix_type"


def test_empty_recipe_gives_passthrough_dataframe_pipeline():
    pipe = build_cleaning_pipeline(Recipe())
    assert [name for name, _ in pipe.steps] == ["passthrough"]
    frame = messy()
    pd.testing.assert_frame_equal(pipe.fit_transform(frame), frame)
    only_rows = build_cleaning_pipeline(Recipe(steps=(DropDuplicates(),)))
    assert isinstance(only_rows.fit_transform(frame), pd.DataFrame)


def test_pipeline_uses_train_statistics_on_test():
    recipe = Recipe(steps=(Impute(columns=["x"], strategy="median"), Outliers(columns=["x"], threshold=0.5)))
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, np.nan]})
    test = pd.DataFrame({"x": [np.nan, np.nan, 100.0, 101.0, 102.0]})
    pipe = build_cleaning_pipeline(recipe).fit(train)
    out = pipe.transform(test)["x"]
    # Train median 2 (not the test median 101). Bounds from the imputed train [1, 2, 3, 2]:
    # q1 1.75, q3 2.25, so the upper bound is 2.25 + 0.5 * 0.5 = 2.5 (not learned from the test).
    assert out.iloc[0] == 2.0
    assert out.iloc[2:].tolist() == [2.5, 2.5, 2.5]


def test_pipeline_pickles_and_checks_columns_at_serving():
    X, y = prepare_training_table(messy(), RECIPE, target="churn")
    pipe = build_cleaning_pipeline(RECIPE, target="churn").fit(X, y)
    restored = pickle.loads(pickle.dumps(pipe))
    pd.testing.assert_frame_equal(restored.transform(X), pipe.transform(X))
    # The id column is dropped by the recipe, so a request may leave it out; not so the others.
    restored.transform(X.drop(columns=["id"]))
    with pytest.raises(BadInput, match="size"):
        restored.transform(X.drop(columns=["size"]))


# --- training table and whole-table apply ---


def test_prepare_training_table_cleans_target_and_drops_missing_targets():
    frame = messy()
    X, y = prepare_training_table(frame, RECIPE, target="churn")
    assert "churn" not in X.columns
    assert y.tolist() == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]  # "yes " normalised, None dropped
    assert list(X.index) == list(y.index) == [0, 1, 3, 5, 6, 7]
    assert X["price"].tolist()[0] == "1,000"  # X stays raw: the Pipeline cleans it


def test_an_infinite_target_counts_as_none():
    frame = pd.DataFrame({"x": [1, 2, 3, 4], "y": [1.5, np.inf, -np.inf, np.nan]})
    X, y = prepare_training_table(frame, Recipe(), target="y")
    assert y.tolist() == [1.5] and X["x"].tolist() == [1]
    rows, _ = apply_row_steps(frame, Recipe(steps=(DropMissingTarget(target="y"),)))
    assert rows["x"].tolist() == [1]


def test_prepare_training_table_errors():
    frame = messy()
    with pytest.raises(BadInput, match="not in the table"):
        prepare_training_table(frame, Recipe(), target="nope")
    with pytest.raises(BadInput, match="drops the target"):
        prepare_training_table(frame, Recipe(steps=(DropColumns(columns=["churn"]),)), target="churn")
    with pytest.raises(BadInput, match="No rows left"):
        prepare_training_table(frame, Recipe(steps=(FixType(column="color", to="number"),)), target="color")


def test_prepare_training_table_does_not_impute_target():
    recipe = Recipe(steps=(Impute(columns=["size"], strategy="median"),))
    X, y = prepare_training_table(messy(), recipe, target="size")
    assert y.notna().all() and len(y) == 7


def test_apply_recipe_keeps_target_in_place():
    out = apply_recipe(messy(), RECIPE, target="churn")
    assert list(out.columns) == ["price", "size", "color", "churn", "size__missing", "price__missing"]
    assert list(out.index) == [0, 1, 3, 4, 5, 6, 7]  # duplicates dropped; the recipe keeps row 4
    expected = {
        # None imputed with the median of [1000, 20, 30, 45, -5, 50].
        "price": [1000.0, 20.0, 30.0, 37.5, 45.0, -5.0, 50.0],
        # NaN -> median 2.5, then 500 clipped to q3 + 1.5 iqr = 3.5 + 2.25.
        "size": [1.0, 2.0, 2.5, 3.0, 5.75, 2.0, 4.0],
        # Red/red/RED tie 1-1-1: alphabetical first wins; green is 1/6 < 0.2 of the values.
        "color": ["RED", "RED", "RED", "Blue", "Blue", "Other", None],
        "churn": [1.0, 0.0, 1.0, np.nan, 0.0, 1.0, 0.0],
    }
    for column, values in expected.items():
        want = pd.Series(values, index=out.index, name=column)
        pd.testing.assert_series_equal(out[column], want, check_dtype=False)
    plain = apply_recipe(messy(), RECIPE)
    pd.testing.assert_frame_equal(plain, out)


# --- previews ---


def test_preview_counts_and_samples():
    frame = messy()
    previews = preview_recipe(frame, RECIPE, target="churn")
    assert len(previews) == len(RECIPE.steps)
    assert all(isinstance(p, StepPreview) for p in previews)
    assert [p.report.index for p in previews] == list(range(len(RECIPE.steps)))
    by_kind = {p.report.index: p for p in previews}
    dedupe = by_kind[0]
    assert (dedupe.report.rows_before, dedupe.report.rows_after) == (8, 7)
    assert len(dedupe.before) == 1 and dedupe.after.empty
    drop = by_kind[1].report
    assert drop.columns_removed == ("id",) and drop.cells_changed == 0
    fix = by_kind[2]
    # 7 rows; None stays missing (NaN == NaN is unchanged), "30" -> 30.0 counts as changed.
    assert fix.report.cells_changed == 6
    assert list(fix.before.columns) == ["price"] and len(fix.before) == 6
    norm = by_kind[3].report
    # color: Red, "red " -> RED and blue -> Blue; churn: Yes, "yes " -> YES and No -> no.
    assert norm.cells_changed == 6
    impute = by_kind[4].report
    assert impute.columns_added == ("size__missing", "price__missing")
    assert impute.cells_changed == 2  # one size, one price
    target_fix = by_kind[7].report
    assert target_fix.cells_changed == 6  # every non-missing churn value becomes a float
    for p in previews:
        assert len(p.before) <= 10 and len(p.after) <= 10
    pd.testing.assert_frame_equal(frame, messy())


def test_preview_sample_is_capped_at_ten_rows():
    frame = pd.DataFrame({"x": [np.nan] * 30 + [1.0]})
    (preview,) = preview_recipe(frame, Recipe(steps=(Impute(columns=["x"]),)))
    assert preview.report.cells_changed == 30
    assert len(preview.before) == len(preview.after) == 10
    assert preview.after["x"].eq(1.0).all()


# --- JSON ---


def test_json_round_trip():
    assert recipe_from_json(recipe_to_json(RECIPE)) == RECIPE


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("{not json", "Invalid recipe"),
        ('{"steps": [{"kind": "explode"}]}', "steps.0"),
        ('{"steps": [{"kind": "impute", "columns": ["a"], "strategy": "magic"}]}', "strategy"),
        ('{"steps": [{"kind": "group_rare", "columns": ["a"], "min_share": 2}]}', "min_share"),
        ('{"steps": [], "surprise": 1}', "surprise"),
    ],
)
def test_bad_json_gives_one_line_bad_input(text, fragment):
    with pytest.raises(BadInput) as info:
        recipe_from_json(text)
    message = str(info.value)
    assert fragment in message and "\n" not in message


# --- Python export ---


def run_script(source: str) -> dict:
    namespace: dict = {"__name__": "generated_recipe"}
    exec(compile(source, "<recipe>", "exec"), namespace)
    return namespace


def test_python_export_rebuilds_the_same_pipeline():
    source = recipe_to_python(RECIPE, target="churn")
    pipe = run_script(source)["pipeline"]
    assert isinstance(pipe, Pipeline)
    X, y = prepare_training_table(messy(), RECIPE, target="churn")
    expected = build_cleaning_pipeline(RECIPE, target="churn").fit_transform(X)
    pd.testing.assert_frame_equal(pipe.fit_transform(X), expected)
    for step in RECIPE.steps:
        assert step.reason in source


def test_python_export_of_empty_recipe_and_odd_values():
    pipe = run_script(recipe_to_python(Recipe(), target=None))["pipeline"]
    assert [name for name, _ in pipe.steps] == ["passthrough"]
    odd = Recipe(
        steps=(
            Outliers(columns=["x"], threshold=float("inf")),
            Impute(columns=["x"], strategy="constant", fill_value=-1.5),
        )
    )
    pipe = run_script(recipe_to_python(odd, target=None))["pipeline"]
    assert pipe.steps[0][1].threshold == float("inf")


def test_python_export_cannot_be_injected(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(os, "system", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    evil_column = "x'); import os; os.system('echo pwned') #"
    evil_reason = "ok\nimport os\nos.system('echo pwned')\r\n\u2028os.system('echo 2')\x00"
    recipe = Recipe(
        steps=(
            DropDuplicates(reason=evil_reason),
            Impute(
                columns=[evil_column],
                strategy="constant",
                fill_value="'); os.system('x') #",
                reason=evil_reason,
            ),
            GroupRareCategories(columns=['"""'], label="\\", reason="''' \"\"\""),
        )
    )
    source = recipe_to_python(recipe, target="y'); os.system('echo t')")
    namespace = run_script(source)
    assert calls == []
    tree = ast.parse(source)
    # Only the expected top-level statements, and no call to anything named system.
    kinds = {type(node).__name__ for node in tree.body}
    assert kinds <= {"Expr", "Import", "ImportFrom", "Assign", "FunctionDef", "If"}
    assert not any(isinstance(n, ast.Attribute) and n.attr == "system" for n in ast.walk(tree))
    pipe = namespace["pipeline"]
    assert pipe.steps[0][1].columns == (evil_column,)
    assert namespace["TARGET"] == "y'); os.system('echo t')"
    frame = pd.DataFrame({evil_column: [None, 1.0], '"""': ["a", "b"]})
    assert pipe.fit_transform(frame)[evil_column].tolist() == ["'); os.system('x') #", 1.0]


# --- a real data set ---


def test_real_churn_data_end_to_end():
    frame = pd.read_csv(dataset("mlc_churn.csv"))
    # Make it messy the way uploads are: duplicates, gaps, stray spelling.
    frame = pd.concat([frame, frame.head(20)], ignore_index=True)
    frame.loc[::37, "total_day_minutes"] = np.nan
    frame.loc[::53, "international_plan"] = " YES"
    frame.loc[::41, "churn"] = None
    recipe = Recipe(
        steps=(
            DropDuplicates(reason="copies"),
            DropMissingTarget(target="churn"),
            NormalizeCategories(columns=["international_plan", "churn"]),
            FixType(column="international_plan", to="boolean"),
            FixType(column="churn", to="boolean"),
            Impute(columns=["total_day_minutes"], strategy="median", add_indicator=True),
            Outliers(columns=["total_day_minutes", "number_customer_service_calls"], action="clip"),
            GroupRareCategories(columns=["state"], min_share=0.025),
            DropColumns(columns=["area_code"]),
        )
    )
    X, y = prepare_training_table(frame, recipe, target="churn")
    assert set(y.unique()) == {0.0, 1.0}
    assert not X.duplicated().any() or len(X) < len(frame)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    pipe = build_cleaning_pipeline(recipe, target="churn").fit(X_train, y_train)
    out = pipe.transform(X_test)
    assert len(out) == len(X_test)
    assert out["total_day_minutes"].notna().all()
    assert set(out["international_plan"].unique()) <= {0.0, 1.0}
    assert "area_code" not in out.columns
    median = X_train["total_day_minutes"].median()
    filled = out.loc[X_test["total_day_minutes"].isna(), "total_day_minutes"]
    assert (filled == median).all()
    assert "Other" in set(out["state"])
    previews = preview_recipe(frame, recipe, target="churn")
    dropped = previews[0].report.rows_before - previews[0].report.rows_after
    assert dropped == frame.duplicated().sum() >= 15
    script_pipe = run_script(recipe_to_python(recipe, target="churn"))["pipeline"]
    pd.testing.assert_frame_equal(script_pipe.fit(X_train).transform(X_test), out)


def test_real_penguins_data():
    frame = pd.read_csv(dataset("penguins.csv"))
    recipe = Recipe(
        steps=(
            Impute(columns=["bill_length_mm", "body_mass_g"], strategy="mean"),
            Impute(columns=["sex"], strategy="most_frequent"),
        )
    )
    out = apply_recipe(frame, recipe, target="species")
    assert out[["bill_length_mm", "body_mass_g", "sex"]].notna().all().all()
    assert list(out.columns) == list(frame.columns)
