"""Find data problems an analyst should know about, each with a one-click fix.

Every issue explains itself in plain language with numbers, and carries a cleaning step from
:mod:`core.prep.steps` (or ``None`` when the fix belongs to training, like class weights).
Detectors are vectorised and look at samples where a sample gives the same answer, so a
million-row table is checked in a few seconds.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from core.data.kinds import ColumnKind
from core.data.profile import ColumnProfile, TableProfile, Task, has_target_value, infer_task
from core.errors import BadInput
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
from core.wording import plural

__all__ = ["Issue", "Severity", "detect_issues", "text_type_issues", "unfixed_type_issues"]


class Severity(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


_RANK = {Severity.HIGH: 0, Severity.MEDIUM: 1, Severity.LOW: 2}


@dataclass(frozen=True)
class Issue:
    """One problem in the data.

    Attributes:
        code: Stable machine name, e.g. ``"missing_values"`` or ``"target_leakage"``.
        severity: How much it can hurt a model.
        columns: The columns concerned (empty for whole-table issues like duplicates).
        title: One short line.
        explanation: What was found, with numbers, and why it matters.
        fix: The cleaning step that fixes it, its ``reason`` saying why; ``None`` when the
            data cannot be fixed by a step.
    """

    code: str
    severity: Severity
    columns: tuple[str, ...]
    title: str
    explanation: str
    fix: Step | None


# --- thresholds (each one a judgement; the reasons are next to them) ---------------------------

_INDICATOR_SHARE = 0.05  # above this, *that* a value was missing may itself be a signal
_MOSTLY_MISSING_SHARE = 0.8  # imputing 80% of a column invents most of it: drop it instead
_NEAR_CONSTANT_SHARE = 0.99  # one value in 99% of rows leaves too few rows to learn from
_HIGH_CARDINALITY = 50  # one-hot encoding more categories than this bloats every model
_RARE_SHARE = 0.01  # a category in fewer than 1% of rows is rare
_KEEP_CATEGORIES = 30  # when no category reaches 1%, group all but about this many
_SNIFF_ROWS = 10_000  # row sample for telling numbers or dates stored as text
_PARSE_SHARE = 0.9  # values that must parse; the rest ("n/a", "?") become missing
_OUTLIER_IQR = 3.0  # Tukey's "far out" fences: a normal column has ~2 such values per million
_OUTLIER_MAX_SHARE = 0.02  # more than this beyond the fences is a long tail, not odd values
_SMALL_COUNT_VALUES = 30  # whole-number columns with fewer values may be counts (see below)
# When chance alone would give this share of the duplicate rows, they may be real repeats, not
# copies (the chance is worked out for unrelated columns; related ones match more often still).
_CHANCE_SHARE = 0.25
_IMBALANCE_SHARE = 0.10  # a minority class below 10% is easy for a model to ignore
_MAX_CLASSES = 50  # more text classes than this: an ID or free text picked as target?
_LEAK_SAMPLE = 5_000  # rows: enough to see a near-perfect predictor, fast on 20 columns
_LEAK_MIN_ROWS = 30  # fewer rows and a perfect score can be luck
_LEAK_FOLDS = 3
_LEAK_SCORE = 0.98
_LEAK_TREE_DEPTH = 6  # 64 leaves: fine enough for R² 0.98 on a copy of a numeric target

_CURRENCY = "$€£¥"
_NUMBER = re.compile(rf"[-+]?[{_CURRENCY}]?\s*[-+]?(?:\d{{1,3}}(?:,\d{{3}})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?\s*%?")
_DATE = re.compile(r"(\d{1,4})([-/.])(\d{1,2})\2(\d{4}|\d{2})(?:[ T]\d{1,2}:\d{2}.*)?")
_TIME_FORMATS = ("", " %H:%M", " %H:%M:%S", "T%H:%M", "T%H:%M:%S")


def detect_issues(
    frame: pd.DataFrame, profile: TableProfile, *, target: str | None, seed: int = 42
) -> tuple[Issue, ...]:
    """Detect data problems, most severe first.

    Args:
        frame: The table that ``profile`` describes. It is not modified.
        profile: Its profile from :func:`core.data.profile.profile_table`.
        target: The target column, or ``None`` before one is chosen (target checks are then
            skipped).
        seed: Seed for the samples and the cross-validation of the leakage check.

    Returns:
        The issues, ordered high, medium, low; within a severity, table problems first, then
        column by column in table order.

    Raises:
        BadInput: ``target`` is not a column of ``frame``, or cannot be a target.
    """
    if target is not None and target not in frame.columns:
        raise BadInput(f"there is no column named '{target}'")
    issues: list[Issue] = []
    if target is not None:
        task = profile.task if profile.target == target and profile.task else infer_task(frame[target])
        issues += _target_issues(frame, profile.column(target), task)
    issues += _duplicate_issues(profile)
    for column in profile.column_profiles:
        if column.name != target:
            issues += _column_issues(frame[column.name], column, profile.rows, seed)
    if target is not None:
        issues += _leakage_issues(frame, profile, target, task, seed)
    return tuple(sorted(issues, key=lambda issue: _RANK[issue.severity]))


# Type issues whose fix changes what a model can learn: a date kept as text is left out as an
# identifier (or split into unrelated categories), and numbers kept as text become categories.
_MODEL_TYPE_CODES = ("number_as_text", "date_as_text")


def text_type_issues(frame: pd.DataFrame, *, target: str | None, seed: int = 42) -> tuple[Issue, ...]:
    """The numbers and dates stored as text among ``frame``'s feature columns, found as
    :func:`detect_issues` finds them but without profiling the whole table (``core train``)."""
    return tuple(
        issue
        for name in frame.columns
        if name != target and _is_textual(frame[name])
        and (issue := _text_type_issue(frame[name], str(name), seed)) is not None
        and frame[name].nunique() > 1  # last: counting a million values costs more than the sniff
    )


def unfixed_type_issues(issues: Sequence[Issue], recipe: Recipe) -> tuple[Issue, ...]:
    """Of ``issues``, the numbers and dates stored as text that ``recipe`` neither converts nor
    drops: until it does, a model leaves such a date out and reads such numbers as categories."""
    handled = {c for step in recipe.steps if isinstance(step, DropColumns) for c in step.columns}
    handled |= {step.column for step in recipe.steps if isinstance(step, FixType)}
    return tuple(i for i in issues if i.code in _MODEL_TYPE_CODES and i.columns[0] not in handled)


# --- whole table ------------------------------------------------------------------------------


def _duplicate_issues(profile: TableProfile) -> list[Issue]:
    count = profile.duplicate_rows
    if not count:
        return []
    share = count / profile.rows
    chance = profile.chance_duplicate_rows
    if chance >= _CHANCE_SHARE * count:
        # Columns of few values (a trip of distance 0 at 5 pm on a Friday) match by chance: on the
        # taxi sample about 126 of its 211 copies would occur in unrelated rows. Dropping those
        # would throw away real records, so this says so instead of calling them copies.
        explanation = (
            f"{_n(count)} rows ({_pct(share)}) equal another row, but this table's columns repeat their values so "
            f"often that unrelated records would give about {_n(round(chance))} such matches by chance alone. They "
            "may be separate records that look alike; drop them only if the same record was stored twice."
        )
        severity = Severity.LOW
    else:
        explanation = (
            f"{_n(count)} rows ({_pct(share)}) are exact copies of another row. Copies can land on "
            "both sides of a train/test split, which makes the model look better than it is, and "
            "they weigh those rows more than the rest."
        )
        severity = Severity.MEDIUM if share >= 0.01 else Severity.LOW
    return [
        Issue(
            code="duplicate_rows",
            severity=severity,
            columns=(),
            title=f"{_n(count)} duplicate rows",
            explanation=explanation,
            fix=DropDuplicates(reason=f"{_n(count)} exact duplicate rows ({_pct(share)})"),
        )
    ]


# --- target -----------------------------------------------------------------------------------


def _target_issues(frame: pd.DataFrame, column: ColumnProfile, task: Task) -> list[Issue]:
    name = column.name
    issues = []
    if without := int((~has_target_value(frame[name])).sum()):
        infinite = without - column.missing
        explained = [f"empty in {_n(column.missing)}"] if column.missing else []
        if infinite:
            explained.append(f"an infinite number (a division by zero where the table was made) in {_n(infinite)}")
        issues.append(
            Issue(
                code="missing_target",
                severity=Severity.HIGH,
                columns=(name,),
                title=f"{_n(without)} rows have no target",
                explanation=(
                    f"The target '{name}' is {' and '.join(explained)} rows ({_pct(without / len(frame))}). "
                    "A model cannot learn from rows without an answer; they have to be left out of training."
                ),
                fix=DropMissingTarget(target=name, reason=f"{_n(without)} rows have no value for the target"),
            )
        )
    if column.unique == 1:
        value = column.top_values[0][0]
        issues.append(
            Issue(
                code="single_class_target",
                severity=Severity.HIGH,
                columns=(name,),
                title=f"The target '{name}' has only one value",
                explanation=(
                    f"Every row has '{value}' as the target, so there is nothing to predict. Check the "
                    "column, or add rows with other outcomes."
                ),
                fix=None,
            )
        )
        return issues
    if task is Task.REGRESSION:
        return issues
    counts = frame[name].value_counts()
    if task is Task.MULTICLASS and not ptypes.is_numeric_dtype(frame[name]) and len(counts) > _MAX_CLASSES:
        issues.append(
            Issue(
                code="too_many_classes",
                severity=Severity.MEDIUM,
                columns=(name,),
                title=f"The target '{name}' has {_n(len(counts))} classes",
                explanation=(
                    f"'{name}' has {_n(len(counts))} different values; the rarest appear in only "
                    f"{_n(int(counts.iloc[-1]))} rows. A classifier needs many examples of every class. If "
                    "this is an identifier or free text, pick another target; otherwise consider grouping classes."
                ),
                fix=None,
            )
        )
    shares = counts / counts.sum()
    minority, smallest = shares.index[-1], shares.iloc[-1]
    # With many classes each is naturally small: compare with an even split as well.
    if smallest < min(_IMBALANCE_SHARE, 0.5 / len(counts)):
        issues.append(
            Issue(
                code="class_imbalance",
                severity=Severity.MEDIUM,
                columns=(name,),
                title=f"Imbalanced target: '{minority}' is {_pct(smallest)} of rows",
                explanation=(
                    f"The rarest class of '{name}', '{minority}', has {_n(int(counts.iloc[-1]))} rows "
                    f"({_pct(smallest)}) against {_n(int(counts.iloc[0]))} for '{counts.index[0]}'. A model can "
                    "score high accuracy by ignoring it. Nothing needs removing from the data: tick 'Balance "
                    "class weights' on the Train page to weigh the classes evenly, and judge models by balanced "
                    "accuracy, ROC AUC or PR AUC rather than accuracy."
                ),
                fix=None,
            )
        )
    return issues


# --- one column -------------------------------------------------------------------------------


def _column_issues(series: pd.Series, column: ColumnProfile, rows: int, seed: int) -> list[Issue]:
    """The issues of one feature column; a column that should go is not also asked to be fixed."""
    name = column.name
    if column.unique <= 1:
        return [_constant_issue(column)]
    if _is_textual(series):
        fix_type = _text_type_issue(series, name, seed)
        if fix_type is not None:
            target_kind = ColumnKind.NUMERIC if fix_type.fix.to == "number" else column.kind
            return [fix_type, *_missing_issues(column, rows, target_kind)]
    if column.kind is ColumnKind.IDENTIFIER:
        return [_identifier_issue(column, rows)]
    issues = _missing_issues(column, rows, column.kind)
    if issues and issues[0].code == "mostly_missing":
        return issues
    present = rows - column.missing
    top_share = column.top_values[0][1] / present
    if top_share >= _NEAR_CONSTANT_SHARE:
        issues.append(_near_constant_issue(column, top_share, present))
        return issues
    if _is_textual(series) and column.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
        counts = series.value_counts()
        counts = counts[counts > 0]  # a category dtype also lists its unused categories
        spelling = _spelling_issue(name, counts)
        if spelling is not None:
            issues.append(spelling)
        elif column.kind is ColumnKind.BOOLEAN:
            issues.append(_boolean_issue(column))
        if column.kind is ColumnKind.CATEGORICAL:
            issues += _cardinality_issues(name, counts)
    if column.kind is ColumnKind.NUMERIC:
        issues += _infinite_issues(series, column)
        issues += _outlier_issues(series, column)
    return issues


def _constant_issue(column: ColumnProfile) -> Issue:
    name = column.name
    if column.unique == 0:
        what, title = "is empty in every row", f"'{name}' is empty"
    else:
        value = column.top_values[0][0]
        what, title = f"holds the same value, '{value}', in every row", f"'{name}' never changes"
        if column.missing:
            what += f" that is not empty ({_n(column.missing)} are empty)"
    return Issue(
        code="constant_column",
        severity=Severity.LOW,
        columns=(name,),
        title=title,
        explanation=f"'{name}' {what}. A column that never changes cannot help any prediction.",
        fix=DropColumns(columns=[name], reason=f"'{name}' has no variation"),
    )


def _near_constant_issue(column: ColumnProfile, share: float, present: int) -> Issue:
    name, (value, count) = column.name, column.top_values[0]
    others = column.unique - 1
    return Issue(
        code="near_constant_column",
        severity=Severity.LOW,
        columns=(name,),
        title=f"'{name}' is almost always '{value}'",
        explanation=(
            f"'{name}' is '{value}' in {_pct(share)} of the rows that have a value; the other "
            f"{plural(others, 'value')} cover only {plural(present - count, 'row')}. So few exceptions are "
            "hard to learn from and easy to overfit; drop the column unless those rare rows are exactly what "
            "matters."
        ),
        fix=DropColumns(columns=[name], reason=f"'{name}' is '{value}' in {_pct(share)} of rows"),
    )


def _identifier_issue(column: ColumnProfile, rows: int) -> Issue:
    name = column.name
    return Issue(
        code="identifier_column",
        severity=Severity.MEDIUM,
        columns=(name,),
        title=f"'{name}' looks like an identifier",
        explanation=(
            f"'{name}' has {_n(column.unique)} different values in {_n(rows - column.missing)} filled rows: "
            "(almost) one per row, like an ID or a row number. A model can memorise it but it says nothing "
            "about new rows; keep it out of the features."
        ),
        fix=DropColumns(columns=[name], reason=f"'{name}' is an identifier ({_n(column.unique)} distinct values)"),
    )


def _missing_issues(column: ColumnProfile, rows: int, kind: ColumnKind) -> list[Issue]:
    name, missing, share = column.name, column.missing, column.missing_share
    if not missing:
        return []
    counted = f"{_n(missing)} of {_n(rows)} rows ({_pct(share)})"
    if share >= _MOSTLY_MISSING_SHARE:
        return [
            Issue(
                code="mostly_missing",
                severity=Severity.MEDIUM,
                columns=(name,),
                title=f"'{name}' is mostly empty",
                explanation=(
                    f"'{name}' is empty in {counted}. Filling in that many values would invent most of the "
                    "column; dropping it is safer."
                ),
                fix=DropColumns(columns=[name], reason=f"'{name}' is empty in {_pct(share)} of rows"),
            )
        ]
    if kind is ColumnKind.NUMERIC:
        strategy, how = "median", "the column's median"
    elif kind is ColumnKind.TEXT:
        strategy, how = "constant", "empty text"
    else:
        strategy, how = "most_frequent", "the most frequent value"
    indicator = share > _INDICATOR_SHARE
    also = (
        " Because so many are missing, a yes/no column recording which rows were filled in is added too: "
        "that a value is missing often says something."
        if indicator
        else ""
    )
    return [
        Issue(
            code="missing_values",
            severity=Severity.MEDIUM if indicator else Severity.LOW,
            columns=(name,),
            title=f"'{name}' is missing in {_pct(share)} of rows",
            explanation=(
                f"'{name}' is empty in {counted}. Most models cannot use empty values; they will be filled "
                f"with {how}, learnt from the training rows only.{also}"
            ),
            fix=Impute(
                columns=[name],
                strategy=strategy,
                fill_value="" if strategy == "constant" else None,
                add_indicator=indicator,
                reason=f"'{name}' is missing in {_pct(share)} of rows",
            ),
        )
    ]


def _infinite_issues(series: pd.Series, column: ColumnProfile) -> list[Issue]:
    if not ptypes.is_float_dtype(series.dtype):
        return []
    count = int(np.isinf(series.to_numpy(dtype=float, na_value=np.nan)).sum())
    if not count:
        return []
    name = column.name
    return [
        Issue(
            code="infinite_values",
            severity=Severity.LOW,
            columns=(name,),
            title=f"{plural(count, 'infinite value')} in '{name}'",
            explanation=(
                f"{plural(count, 'row')} of '{name}' ({_pct(count / len(series))}) hold an infinite number, usually a "
                "division by zero where the table was made. A model reads them as missing values (filled as "
                "the column's other gaps are), in training and when scoring; the column's statistics leave them "
                "out. If they mean something (no limit, say), a column that marks them keeps that."
            ),
            fix=None,
        )
    ]


def _outlier_issues(series: pd.Series, column: ColumnProfile) -> list[Issue]:
    stats = column.stats
    if not stats:
        return []
    iqr = stats["p75"] - stats["p25"]
    if iqr <= 0:  # most rows share one value: every other value would count as an outlier
        return []
    if _is_small_count(series, column):
        return []
    low, high = stats["p25"] - _OUTLIER_IQR * iqr, stats["p75"] + _OUTLIER_IQR * iqr
    values = series.to_numpy(dtype=float, na_value=np.nan)
    values = values[np.isfinite(values)]  # infinite values have their own issue
    count = int(np.count_nonzero((values < low) | (values > high)))
    present = len(values)
    if not count or count > _OUTLIER_MAX_SHARE * present:
        return []
    name = column.name
    return [
        Issue(
            code="outliers",
            severity=Severity.LOW,
            columns=(name,),
            title=f"{plural(count, 'extreme value')} in '{name}'",
            explanation=(
                f"{plural(count, 'value')} of '{name}' ({_pct(count / present)}) lie far outside the usual range: "
                f"half of the values are between {_num(stats['p25'])} and {_num(stats['p75'])}, but these are "
                f"below {_num(low)} or above {_num(high)} (min {_num(stats['min'])}, max {_num(stats['max'])}). "
                "They may be typos or unit mix-ups, and they pull linear models around. Clipping moves them to "
                "the edge of the usual range; check a few first if they could be real."
            ),
            fix=Outliers(
                columns=[name],
                method="iqr",
                threshold=_OUTLIER_IQR,
                action="clip",
                reason=f"{plural(count, 'value')} of '{name}' lie more than {_OUTLIER_IQR:g} IQRs beyond the quartiles",
            ),
        )
    ]


def _is_small_count(series: pd.Series, column: ColumnProfile) -> bool:
    """Whole numbers densely covering a short range, like 0-9 service calls.

    Their tail is real (9 calls is rare, not wrong), so Tukey's fences would flag it on every
    table. A sparse set such as ratings 1-5 plus a 99 placeholder is still checked.
    """
    if column.unique > _SMALL_COUNT_VALUES:
        return False
    values = series.dropna().to_numpy(dtype=float)
    if not np.all(np.mod(values, 1) == 0):
        return False
    return column.stats["max"] - column.stats["min"] + 1 <= 2 * column.unique


# --- text columns -----------------------------------------------------------------------------


def _is_textual(series: pd.Series) -> bool:
    return not (
        ptypes.is_numeric_dtype(series) or ptypes.is_bool_dtype(series) or ptypes.is_datetime64_any_dtype(series)
    )


def _text_type_issue(series: pd.Series, name: str, seed: int) -> Issue | None:
    """Numbers ("1,234", "$5", "12%") or dates ("31/01/2024") stored as text, judged on a sample."""
    if len(series) > _SNIFF_ROWS:
        rows = np.random.default_rng(seed).choice(len(series), size=_SNIFF_ROWS, replace=False)
        series = series.iloc[np.sort(rows)]
    values = series.dropna().astype(str).str.strip()
    values = values[values != ""]
    if values.empty:
        return None
    return _number_issue(values, name) or _date_issue(values, name)


def _number_issue(values: pd.Series, name: str) -> Issue | None:
    numeric = values.str.fullmatch(_NUMBER) & values.str.contains(r"\d", regex=True)
    share = float(numeric.mean())
    if share < _PARSE_SHARE:
        return None
    # "00123" is a code (ZIP, account), not a quantity: converting would lose the zeros.
    if values[numeric].str.match(r"[-+]?0\d").mean() > 0.5:
        return None
    examples = _examples(values[numeric])
    misfits = _examples(values[~numeric])
    rest = f" The other values ({misfits}) will become empty." if misfits else ""
    return Issue(
        code="number_as_text",
        severity=Severity.MEDIUM,
        columns=(name,),
        title=f"'{name}' holds numbers stored as text",
        explanation=(
            f"{_pct(share)} of the values in '{name}' are numbers written with symbols or separators "
            f"(e.g. {examples}), so the column is read as text and would be treated as categories. "
            f"Converting it keeps the order and size of the numbers.{rest}"
        ),
        fix=FixType(column=name, to="number", reason=f"'{name}' holds numbers written as text, e.g. {examples}"),
    )


def _date_issue(values: pd.Series, name: str) -> Issue | None:
    parts = values.str.extract(f"^{_DATE.pattern}$")
    matched = parts[0].notna()
    if matched.mean() < _PARSE_SHARE:
        return None
    parts = parts[matched]
    sep = parts[1].mode().iloc[0]
    ambiguous = False
    if (parts[0].str.len() == 4).mean() > 0.5:  # year first: ISO 8601 or 2024/01/31
        dates, dayfirst = [f"%Y{sep}%m{sep}%d"], False
    else:
        first, second = parts[0].astype(int), parts[2].astype(int)
        dayfirst, monthfirst = bool((first > 12).any()), bool((second > 12).any())
        if dayfirst and monthfirst:
            return None  # 31/01 and 01/31 in one column: not one date format
        ambiguous = not (dayfirst or monthfirst)
        year = "%Y" if (parts[3].str.len() == 4).mean() > 0.5 else "%y"
        dates = [f"%d{sep}%m{sep}{year}" if dayfirst else f"%m{sep}%d{sep}{year}"]
    best_format, best_share = None, 0.0
    candidates = [d + t for d in dates for t in _TIME_FORMATS]
    if sep == "-" and dates[0].startswith("%Y"):
        candidates.insert(0, "ISO8601")
    for fmt in candidates:
        share = float(pd.to_datetime(values, format=fmt, errors="coerce").notna().mean())
        if share > best_share:
            best_format, best_share = fmt, share
    if best_share < _PARSE_SHARE:
        return None
    examples = _examples(values[matched])
    order = "day first" if dayfirst else "month first"
    note = (
        f" Every value would read the same either way round, so they are taken {order}; "
        "change the step if the days come first."
        if ambiguous
        else ""
    )
    return Issue(
        code="date_as_text",
        severity=Severity.MEDIUM,
        columns=(name,),
        title=f"'{name}' holds dates stored as text",
        explanation=(
            f"{_pct(best_share)} of the values in '{name}' are dates (e.g. {examples}), but the column is read "
            f"as text, so every date would be its own category. As dates, the model can use the year, month "
            f"and weekday.{note}"
        ),
        fix=FixType(
            column=name,
            to="datetime",
            date_format=None if best_format == "ISO8601" else best_format,
            dayfirst=dayfirst,
            reason=f"'{name}' holds dates written as text, e.g. {examples}",
        ),
    )


def _boolean_issue(column: ColumnProfile) -> Issue:
    name = column.name
    words = " and ".join(f"'{value}'" for value, _ in column.top_values)
    return Issue(
        code="boolean_as_text",
        severity=Severity.LOW,
        columns=(name,),
        title=f"'{name}' is a yes/no column stored as text",
        explanation=(
            f"'{name}' only holds {words}. As a true/false column it becomes a single 0/1 feature and reads "
            "clearly in charts and explanations."
        ),
        fix=FixType(column=name, to="boolean", reason=f"'{name}' only holds {words}"),
    )


def _spelling_issue(name: str, counts: pd.Series) -> Issue | None:
    """Values that differ only in case or spaces: 'Yes', 'yes ', 'YES'."""
    raw = pd.Series(counts.index.astype(str))
    keys = raw.str.strip().str.replace(r"\s+", " ", regex=True).str.casefold()
    clash = keys.duplicated(keep=False).to_numpy()
    if not clash.any():
        return None
    groups = raw[clash].groupby(keys[clash].to_numpy(), sort=False).agg(list)
    by_value = dict(zip(raw, counts.to_numpy()))
    shown = "; ".join(
        ", ".join(f"'{v}' ({_n(int(by_value[v]))})" for v in spellings[:4]) for spellings in groups.iloc[:3]
    )
    merged = int(groups.map(len).sum() - len(groups))
    return Issue(
        code="inconsistent_categories",
        severity=Severity.MEDIUM,
        columns=(name,),
        title=f"'{name}' spells the same value in different ways",
        explanation=(
            f"Some values of '{name}' differ only in capital letters or spaces, e.g. {shown}. A model treats "
            f"each spelling as a different category; merging them removes {_n(merged)} "
            f"spurious categor{'ies' if merged > 1 else 'y'}."
        ),
        fix=NormalizeCategories(columns=[name], reason=f"'{name}' has values that differ only in case or spaces"),
    )


def _cardinality_issues(name: str, counts: pd.Series) -> list[Issue]:
    unique = len(counts)
    if unique <= _HIGH_CARDINALITY:
        return []
    shares = counts.to_numpy() / counts.sum()
    min_share = _RARE_SHARE
    if np.count_nonzero(shares >= min_share) < _KEEP_CATEGORIES // 2:
        # No value is common: keep about the most frequent few dozen rather than none.
        min_share = float(shares[min(_KEEP_CATEGORIES, unique) - 1])
    rare = int(np.count_nonzero(shares < min_share))
    if rare < 2:
        return []  # grouping would merge nothing: the categories are just many, not rare
    rows = int(counts.to_numpy()[shares < min_share].sum())
    limit = f"{min_share * 100:.2g}%"
    return [
        Issue(
            code="high_cardinality",
            severity=Severity.MEDIUM,
            columns=(name,),
            title=f"'{name}' has {_n(unique)} categories",
            explanation=(
                f"'{name}' has {_n(unique)} different values and {_n(rare)} of them are each in fewer than "
                f"{limit} of the rows ({_n(rows)} rows together). One-hot encoding would add a column "
                f"per value, most learnt from a handful of rows. Grouping the rare values as 'Other' keeps the "
                f"{_n(unique - rare)} common ones."
            ),
            fix=GroupRareCategories(
                columns=[name],
                min_share=min_share,
                reason=f"'{name}' has {_n(unique)} categories, {_n(rare)} of them rarer than {limit}",
            ),
        )
    ]


# --- leakage ----------------------------------------------------------------------------------


def _leakage_issues(frame: pd.DataFrame, profile: TableProfile, target: str, task: Task, seed: int) -> list[Issue]:
    """Columns that on their own predict the target almost perfectly (cross-validated).

    Numbers and dates go through a shallow decision tree; other columns through a per-value
    lookup (a tree with one leaf per category), learnt on the training folds only, so an
    identifier does not score by memorising rows.
    """
    rows = np.flatnonzero(has_target_value(frame[target]))
    if len(rows) < _LEAK_MIN_ROWS:
        return []
    rng = np.random.default_rng(seed)
    if len(rows) > _LEAK_SAMPLE:
        rows = np.sort(rng.choice(rows, size=_LEAK_SAMPLE, replace=False))
    sample = frame.iloc[rows]
    if task is Task.REGRESSION:
        y = sample[target].to_numpy(dtype=float)
        folds = list(KFold(_LEAK_FOLDS, shuffle=True, random_state=seed).split(y))
    else:
        y, classes = pd.factorize(sample[target])
        if len(classes) < 2 or np.bincount(y).min() < _LEAK_FOLDS:
            return []
        folds = list(StratifiedKFold(_LEAK_FOLDS, shuffle=True, random_state=seed).split(y, y))
    majority = float(np.bincount(y).max() / len(y)) if task is not Task.REGRESSION else 0.0
    issues = []
    for column in profile.column_profiles:
        if column.name == target or column.unique <= 1:
            continue
        predicted = _out_of_fold(sample[column.name], y, task, folds, seed)
        if task is Task.BINARY:
            score, metric = roc_auc_score(y, predicted), "ROC AUC"
            leaks = score >= _LEAK_SCORE
        elif task is Task.MULTICLASS:
            score, metric = accuracy_score(y, predicted), "accuracy"
            # Also far better than always guessing the majority class: a quarter of its errors.
            leaks = score >= _LEAK_SCORE and 1 - score <= 0.25 * (1 - majority)
        else:
            score, metric = r2_score(y, predicted), "R²"
            leaks = score >= _LEAK_SCORE
        if leaks:
            issues.append(_leakage_issue(column.name, target, metric, float(score), len(rows)))
    return issues


def _out_of_fold(x: pd.Series, y: np.ndarray, task: Task, folds: list, seed: int) -> np.ndarray:
    """Predictions for every row from a one-column model trained on the other folds."""
    predicted = np.zeros(len(y), dtype=float)
    if ptypes.is_datetime64_any_dtype(x):
        x = (x - pd.Timestamp(0, tz=getattr(x.dt, "tz", None))).dt.total_seconds()
    if ptypes.is_numeric_dtype(x) or ptypes.is_bool_dtype(x):
        features = x.to_numpy(dtype=float, na_value=np.nan).reshape(-1, 1)
        model = DecisionTreeRegressor if task is Task.REGRESSION else DecisionTreeClassifier
        for train, test in folds:
            tree = model(max_depth=_LEAK_TREE_DEPTH, min_samples_leaf=5, random_state=seed)
            tree.fit(features[train], y[train])
            if task is Task.BINARY:
                predicted[test] = tree.predict_proba(features[test])[:, 1]
            else:
                predicted[test] = tree.predict(features[test])
        return predicted
    codes = pd.factorize(x.astype(str).where(x.notna(), None))[0] + 1  # 0: missing, a value of its own
    size = int(codes.max()) + 1
    for train, test in folds:
        seen = np.bincount(codes[train], minlength=size)
        if task is Task.MULTICLASS:
            table = np.zeros((size, int(y.max()) + 1))
            np.add.at(table, (codes[train], y[train]), 1)
            lookup = np.where(seen > 0, table.argmax(axis=1), np.bincount(y[train]).argmax())
        else:  # the share of the positive class, or the mean of a number
            sums = np.bincount(codes[train], weights=y[train].astype(float), minlength=size)
            lookup = np.where(seen > 0, sums / np.maximum(seen, 1), y[train].mean())
        predicted[test] = lookup[codes[test]]
    return predicted


def _leakage_issue(name: str, target: str, metric: str, score: float, rows: int) -> Issue:
    return Issue(
        code="target_leakage",
        severity=Severity.HIGH,
        columns=(name,),
        title=f"'{name}' gives away the target",
        explanation=(
            f"On its own, '{name}' predicts '{target}' with {metric} {score:.3f} (3-fold cross-validation on "
            f"{_n(rows)} rows). One column that good usually holds the answer in another form, or something "
            "recorded after the outcome, which will not be known when the model is used: it would look "
            "excellent in testing and fail in production. Drop it unless you are sure it is known at "
            "prediction time."
        ),
        fix=DropColumns(
            columns=[name], reason=f"'{name}' alone predicts '{target}' ({metric} {score:.3f}): likely leakage"
        ),
    )


# --- formatting -------------------------------------------------------------------------------


def _n(count: int) -> str:
    return f"{count:,}"


def _pct(share: float) -> str:
    if 0 < share < 0.001:
        return "<0.1%"
    if share >= 0.1:
        return f"{share:.0%}" if share < 0.995 or share == 1 else ">99%"
    return f"{share:.1%}"


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _examples(values: pd.Series, limit: int = 3) -> str:
    shown = pd.unique(values)[:limit]
    return ", ".join(f"'{v[:40]}'" for v in shown)
