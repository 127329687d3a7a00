"""Running a cleaning recipe: row steps before training, column steps inside the model Pipeline.

Row steps (``DropDuplicates``, ``DropMissingTarget``, ``Outliers(action="drop")``) remove rows,
so they run on the training table only. Column steps compile into the transformers of
``core.prep.transformers``, which are fitted inside each training fold and shipped with the model,
so serving applies exactly what training learned.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import ValidationError
from sklearn.base import TransformerMixin
from sklearn.pipeline import Pipeline

from core.data.profile import has_target_value
from core.errors import BadInput
from core.prep import transformers as tf
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
    Step,
)

_PREVIEW_ROWS = 10
# Column steps that also make sense on the target (outside the Pipeline, which never sees y).
# Impute is left out on purpose: rows without a target are dropped, never given a made-up one.
_TARGET_STEPS = (FixType, NormalizeCategories, GroupRareCategories, Outliers)


@dataclass(frozen=True)
class StepReport:
    """What one step did to a table."""

    index: int
    kind: str
    reason: str
    rows_before: int
    rows_after: int
    cells_changed: int
    columns_added: tuple[str, ...]
    columns_removed: tuple[str, ...]


@dataclass(frozen=True)
class StepPreview:
    """A step's report with a small sample (at most 10 rows) of the affected rows and columns.

    For a row step ``before`` holds removed rows and ``after`` is empty (they are gone).
    """

    report: StepReport
    before: pd.DataFrame
    after: pd.DataFrame


def apply_row_steps(frame: pd.DataFrame, recipe: Recipe) -> tuple[pd.DataFrame, tuple[StepReport, ...]]:
    """Run the recipe's row steps, in order, on a copy of ``frame``.

    Args:
        frame: The table; it is not modified. Its index labels are kept on the surviving rows.
        recipe: The recipe; only its row steps run.

    Returns:
        The remaining rows and one report per row step.

    Raises:
        BadInput: A step names a target missing from the table, or outliers of a non-numeric column.
    """
    reports = []
    for index, step in enumerate(recipe.steps):
        if step.is_row_step:
            before = frame
            frame = frame.loc[_keep_mask(frame, step)]
            reports.append(_report(index, step, before, frame))
    return frame.copy(), tuple(reports)


def build_cleaning_pipeline(recipe: Recipe, *, target: str | None = None) -> Pipeline:
    """Compile the recipe's column steps, in order, into an unfitted scikit-learn Pipeline.

    Args:
        recipe: The recipe; row steps are ignored.
        target: The target column, removed from every step (the Pipeline never sees it);
            steps that only touch the target are left out.

    Returns:
        A Pipeline named ``"<index>_<kind>"`` per step, or a single ``"passthrough"`` step
        for a recipe without column steps. It takes and returns DataFrames.
    """
    steps = [
        (f"{index}_{step.kind}", transformer)
        for index, step in enumerate(recipe.steps)
        if (transformer := _transformer(step, exclude=target)) is not None
    ]
    return Pipeline(steps or [("passthrough", tf.Passthrough())])


def prepare_training_table(
    frame: pd.DataFrame, recipe: Recipe, *, target: str
) -> tuple[pd.DataFrame, pd.Series]:
    """Turn a raw table into the ``X, y`` a training job fits the model Pipeline on.

    Row steps run first; then column steps naming the target (type fixes, category
    normalisation, rare grouping, outlier clipping) are applied to the target, since the
    Pipeline never sees ``y``; then rows without a target are dropped (an infinite number counts
    as none: no model can learn it or be scored against it).

    Args:
        frame: The raw table; it is not modified.
        recipe: The cleaning recipe.
        target: The column to predict.

    Returns:
        ``X`` (every other column, still raw: the Pipeline cleans it) and ``y``.

    Raises:
        BadInput: The target is missing, dropped by the recipe, or no row has a target.
    """
    if target not in frame.columns:
        raise BadInput(f"Target column {target!r} is not in the table.")
    rows, _ = apply_row_steps(frame, recipe)
    y = _clean_target(rows[target], recipe, target)
    has_target = has_target_value(y)
    if not has_target.any():
        raise BadInput(f"No rows left with a value in target column {target!r}.")
    return rows.loc[has_target].drop(columns=[target]), y[has_target]


def apply_recipe(frame: pd.DataFrame, recipe: Recipe, *, target: str | None = None) -> pd.DataFrame:
    """Run the whole recipe on one table: row steps, then the cleaning Pipeline fitted on it.

    Args:
        frame: The table; it is not modified.
        recipe: The cleaning recipe.
        target: When given, the target column is cleaned as in ``prepare_training_table``
            (but rows without a target are kept unless the recipe drops them).

    Returns:
        The cleaned table, target column included.
    """
    rows, _ = apply_row_steps(frame, recipe)
    if target is None or target not in rows.columns:
        return build_cleaning_pipeline(recipe).fit_transform(rows)
    cleaned = build_cleaning_pipeline(recipe, target=target).fit_transform(rows.drop(columns=[target]))
    return _with_target(cleaned, _clean_target(rows[target], recipe, target), rows)


def preview_recipe(
    frame: pd.DataFrame, recipe: Recipe, *, target: str | None = None
) -> tuple[StepPreview, ...]:
    """One before/after preview per step, in recipe order.

    Steps are computed in the order training runs them (row steps, then column steps), each
    on the output of the previous one, so a preview shows what training will really see.

    Args:
        frame: The table; it is not modified.
        recipe: The cleaning recipe.
        target: The target column, treated as in ``apply_recipe``.

    Returns:
        A ``StepPreview`` per step; ``previews[i].report.index == i``.
    """
    previews = {}
    for index, step, before, after in _run_steps(frame, recipe, target):
        report = _report(index, step, before, after)
        previews[index] = StepPreview(report, *_sample(step, before, after))
    return tuple(previews[i] for i in sorted(previews))


def recipe_to_json(recipe: Recipe) -> str:
    """Serialise a recipe to indented JSON."""
    return recipe.model_dump_json(indent=2)


def recipe_from_json(text: str) -> Recipe:
    """Read a recipe from JSON.

    Raises:
        BadInput: Invalid JSON, an unknown step kind or a bad field, in one line.
    """
    try:
        return Recipe.model_validate_json(text)
    except ValidationError as error:
        problems = [
            f"{'.'.join(map(str, e['loc'])) or 'recipe'}: {e['msg']}"
            for e in error.errors(include_input=False)
        ]
        message = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
        raise BadInput(f"Invalid recipe: {message[:400]}") from None


def recipe_to_python(recipe: Recipe, *, target: str | None) -> str:
    """A readable Python script that rebuilds the recipe's cleaning Pipeline.

    User strings (column names, reasons, labels) reach the code only through ``repr()``, and
    reasons in comments are flattened to one printable line, so no user string can inject code.

    Args:
        recipe: The cleaning recipe.
        target: The target column (left out of the Pipeline), or None.

    Returns:
        Python source defining ``build_pipeline()`` and ``pipeline``.
    """
    lines: list[str] = []
    entries: list[str] = []
    used: set[str] = set()
    for index, step in enumerate(recipe.steps):
        note = f"# Step {index + 1} ({step.kind}): {_comment(step.reason) or 'no reason given'}"
        if step.is_row_step:
            lines.append(f"{note} -- removes rows, so it runs before training, not in the Pipeline.")
            continue
        transformer = _transformer(step, exclude=target)
        if transformer is None:
            lines.append(f"{note} -- applies to the target only, so it is not in the Pipeline.")
            continue
        name = type(transformer).__name__
        used.add(name)
        args = ", ".join(f"{key}={_literal(value)}" for key, value in transformer.get_params().items())
        entries += [f"        {note}", f"        ({_literal(f'{index}_{step.kind}')}, {name}({args})),"]
    if not entries:
        used.add("Passthrough")
        entries = ["        ('passthrough', Passthrough()),"]
    header = [
        '"""Cleaning Pipeline generated by ShipML from a cleaning recipe.',
        "",
        "It takes a pandas DataFrame (without the target column) and returns the cleaned DataFrame.",
        '"""',
        "import sys",
        "",
        "import pandas as pd",
        "from sklearn.pipeline import Pipeline",
        "",
        f"from core.prep.transformers import {', '.join(sorted(used))}",
        "",
        f"TARGET = {_literal(target)}",
        "",
        *lines,
        "",
        "",
        "def build_pipeline() -> Pipeline:",
        '    """The cleaning steps, in order, as an unfitted Pipeline."""',
        "    return Pipeline([",
        *entries,
        "    ])",
        "",
        "",
        "pipeline = build_pipeline()",
        "",
        'if __name__ == "__main__":',
        "    # Usage: python this_script.py table.csv  -> prints the first cleaned rows.",
        "    frame = pd.read_csv(sys.argv[1])",
        "    features = frame.drop(columns=[TARGET]) if TARGET in frame.columns else frame",
        "    print(pipeline.fit_transform(features).head())",
        "",
    ]
    return "\n".join(header)


# Internals.


def _transformer(step: Step, *, exclude: str | None = None) -> TransformerMixin | None:
    """The transformer for a column step without column ``exclude``; None if nothing is left."""
    if step.is_row_step:
        return None
    if isinstance(step, FixType):
        if step.column == exclude:
            return None
        return tf.FixTypeTransformer(
            column=step.column, to=step.to, date_format=step.date_format, dayfirst=step.dayfirst
        )
    columns = tuple(c for c in step.columns if c != exclude)
    if not columns:
        return None
    if isinstance(step, DropColumns):
        return tf.DropColumnsTransformer(columns=columns)
    if isinstance(step, NormalizeCategories):
        return tf.NormalizeCategoriesTransformer(columns=columns)
    if isinstance(step, Impute):
        return tf.ImputeTransformer(
            columns=columns,
            strategy=step.strategy,
            fill_value=step.fill_value,
            add_indicator=step.add_indicator,
        )
    if isinstance(step, Outliers):
        return tf.OutlierClipper(columns=columns, method=step.method, threshold=step.threshold)
    if isinstance(step, GroupRareCategories):
        return tf.RareCategoryGrouper(columns=columns, min_share=step.min_share, label=step.label)
    raise BadInput(f"Unknown cleaning step {step.kind!r}.")


def _names_target(step: Step, target: str) -> bool:
    if isinstance(step, FixType):
        return step.column == target
    return target in getattr(step, "columns", ())


def _clean_target(y: pd.Series, recipe: Recipe, target: str) -> pd.Series:
    """Apply the column steps that name the target to it, in order."""
    for step in recipe.column_steps:
        y = _clean_target_step(y, step, target)
    return y


def _clean_target_step(y: pd.Series, step: Step, target: str) -> pd.Series:
    if not _names_target(step, target):
        return y
    if isinstance(step, DropColumns):
        raise BadInput(
            f"The recipe drops the target column {target!r}; remove that step or pick another target."
        )
    if not isinstance(step, _TARGET_STEPS):
        return y
    if isinstance(step, FixType):
        only_target = step
    else:
        only_target = step.model_copy(update={"columns": [target]})
    return _transformer(only_target).fit_transform(y.to_frame())[target]


def _with_target(cleaned: pd.DataFrame, y: pd.Series, original: pd.DataFrame) -> pd.DataFrame:
    """Put the target column back after the columns that preceded it (added columns follow it)."""
    columns = list(original.columns)
    preceding = set(columns[: columns.index(y.name)])
    position = max((i + 1 for i, c in enumerate(cleaned.columns) if c in preceding), default=0)
    out = cleaned.copy()
    out.insert(position, y.name, y.to_numpy())
    return out


def _keep_mask(frame: pd.DataFrame, step: Step) -> np.ndarray:
    """Which rows a row step keeps, by position."""
    if isinstance(step, DropDuplicates):
        return ~frame.duplicated().to_numpy()
    if isinstance(step, DropMissingTarget):
        if step.target not in frame.columns:
            raise BadInput(f"Target column {step.target!r} is not in the table.")
        return has_target_value(frame[step.target])
    if isinstance(step, Outliers):
        keep = np.ones(len(frame), dtype=bool)
        for column in (c for c in step.columns if c in frame.columns):
            values = frame[column].infer_objects()
            low, high = tf.outlier_bounds(values, method=step.method, threshold=step.threshold, name=column)
            # Missing values are not outliers: imputation, if any, deals with them.
            inside = values.isna() | values.between(low, high) | np.isnan(low)
            keep &= inside.to_numpy()
        return keep
    raise BadInput(f"{step.kind!r} is not a row step.")


def _run_steps(
    frame: pd.DataFrame, recipe: Recipe, target: str | None
) -> Iterator[tuple[int, Step, pd.DataFrame, pd.DataFrame]]:
    """Yield (index, step, table before, table after) in execution order."""
    for index, step in enumerate(recipe.steps):
        if step.is_row_step:
            after = frame.loc[_keep_mask(frame, step)]
            yield index, step, frame, after
            frame = after
    for index, step in enumerate(recipe.steps):
        if not step.is_row_step:
            after = _apply_column_step(frame, step, target)
            yield index, step, frame, after
            frame = after


def _apply_column_step(frame: pd.DataFrame, step: Step, target: str | None) -> pd.DataFrame:
    """One column step fitted and applied on a table, treating the target as training does."""
    has_target = target is not None and target in frame.columns
    features = frame.drop(columns=[target]) if has_target else frame
    transformer = _transformer(step, exclude=target)
    out = transformer.fit_transform(features) if transformer is not None else features.copy()
    if has_target:
        out = _with_target(out, _clean_target_step(frame[target], step, target), frame)
    return out


def _report(index: int, step: Step, before: pd.DataFrame, after: pd.DataFrame) -> StepReport:
    return StepReport(
        index=index,
        kind=step.kind,
        reason=step.reason,
        rows_before=len(before),
        rows_after=len(after),
        cells_changed=0 if step.is_row_step else int(_changed(before, after).to_numpy().sum()),
        columns_added=tuple(str(c) for c in after.columns if c not in before.columns),
        columns_removed=tuple(str(c) for c in before.columns if c not in after.columns),
    )


def _changed(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Per cell of the columns in both tables (same rows): did the value change? NaN == NaN."""
    common = [c for c in before.columns if c in after.columns]
    result = {}
    for column in common:
        old = before[column].to_numpy(dtype=object)
        new = after[column].to_numpy(dtype=object)
        old_na, new_na = pd.isna(old), pd.isna(new)
        # Missing values become None first: comparing pd.NA raises, and NaN != NaN.
        same = (np.where(old_na, None, old) == np.where(new_na, None, new)) | (old_na & new_na)
        result[column] = ~same.astype(bool)
    return pd.DataFrame(result, index=after.index, columns=common)


def _sample(step: Step, before: pd.DataFrame, after: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """At most 10 affected rows, and the affected columns, before and after a step."""
    if step.is_row_step:
        removed = ~_keep_mask(before, step)
        sample = before.loc[removed].head(_PREVIEW_ROWS)
        return sample.copy(), sample.iloc[0:0].copy()
    changed = _changed(before, after)
    columns = [c for c in changed.columns if changed[c].any()]
    added = [c for c in after.columns if c not in before.columns]
    removed = [c for c in before.columns if c not in after.columns]
    if not (columns or added or removed):
        # Nothing changed: show the step's own columns so the user sees why.
        named = {step.column} if isinstance(step, FixType) else set(getattr(step, "columns", ()))
        columns = [c for c in changed.columns if c in named]
    rows = np.flatnonzero(changed.any(axis=1).to_numpy())
    if not len(rows):
        rows = np.arange(len(after))  # e.g. only columns added or removed
    rows = rows[:_PREVIEW_ROWS]
    return (
        before.iloc[rows][[c for c in before.columns if c in columns or c in removed]].copy(),
        after.iloc[rows][[c for c in after.columns if c in columns or c in added]].copy(),
    )


def _comment(text: str) -> str:
    """Text safe inside a one-line comment: no line breaks or other control characters."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def _literal(value: object) -> str:
    """Python source for a parameter value; non-finite floats have no literal form."""
    if isinstance(value, float) and not np.isfinite(value):
        return f"float({str(value)!r})"
    if isinstance(value, (tuple, list)):
        items = ", ".join(_literal(v) for v in value)
        return f"[{items}]" if isinstance(value, list) else f"({items}{',' if len(value) == 1 else ''})"
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    raise BadInput(f"Cannot write a {type(value).__name__} into a script.")

