"""Cleaning steps: typed, JSON-serialisable, each carrying the reason it is in the recipe.

Row steps (dropping rows) run on the training table before the Pipeline; column steps compile
into scikit-learn transformers inside the Pipeline (see ``core.prep.recipe``).
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field


class _Step(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    reason: str = ""

    @property
    def is_row_step(self) -> bool:
        """True when the step removes rows, so it runs before training only."""
        return False


class DropDuplicates(_Step):
    kind: Literal["drop_duplicates"] = "drop_duplicates"

    @property
    def is_row_step(self) -> bool:
        return True


class DropMissingTarget(_Step):
    kind: Literal["drop_missing_target"] = "drop_missing_target"
    target: str

    @property
    def is_row_step(self) -> bool:
        return True


class DropColumns(_Step):
    kind: Literal["drop_columns"] = "drop_columns"
    columns: list[str]


class FixType(_Step):
    """Parse text into numbers ("1,234", "$5", "12%"), dates ("31/01/2024") or booleans."""

    kind: Literal["fix_type"] = "fix_type"
    column: str
    to: Literal["number", "datetime", "boolean"]
    date_format: str | None = None  # strftime format; None lets the parser infer it
    dayfirst: bool = False


class NormalizeCategories(_Step):
    """Merge spellings that differ only in case and surrounding or repeated spaces."""

    kind: Literal["normalize_categories"] = "normalize_categories"
    columns: list[str]


class Impute(_Step):
    kind: Literal["impute"] = "impute"
    columns: list[str]
    strategy: Literal["mean", "median", "most_frequent", "constant"] = "median"
    fill_value: str | float | None = None  # for strategy="constant"
    add_indicator: bool = False


class Outliers(_Step):
    kind: Literal["outliers"] = "outliers"
    columns: list[str]
    method: Literal["iqr", "zscore"] = "iqr"
    threshold: float = 1.5  # IQR multiplier, or number of standard deviations for zscore
    action: Literal["clip", "drop"] = "clip"

    @property
    def is_row_step(self) -> bool:
        return self.action == "drop"


class GroupRareCategories(_Step):
    kind: Literal["group_rare"] = "group_rare"
    columns: list[str]
    min_share: float = Field(default=0.01, gt=0, lt=1)
    label: str = "Other"


Step = Annotated[
    Union[
        DropDuplicates,
        DropMissingTarget,
        DropColumns,
        FixType,
        NormalizeCategories,
        Impute,
        Outliers,
        GroupRareCategories,
    ],
    Field(discriminator="kind"),
]


STEP_TITLES: dict[str, str] = {
    "drop_duplicates": "Drop duplicate rows",
    "drop_missing_target": "Drop rows without a target",
    "drop_columns": "Drop columns",
    "fix_type": "Fix a column's type",
    "normalize_categories": "Normalise category spellings",
    "impute": "Fill missing values",
    "outliers": "Clip or drop outliers",
    "group_rare": "Group rare categories",
}


def step_summary(step: _Step) -> str:
    """One line for a person: the step's title and the columns it acts on, e.g.
    ``"Fix a column's type: date"`` (user text as it is; escape it where it is shown)."""
    columns = getattr(step, "columns", None) or [c for c in (getattr(step, "column", None),) if c]
    title = STEP_TITLES.get(step.kind, step.kind)
    return f"{title}: {', '.join(columns)}" if columns else title


class Recipe(BaseModel):
    """An ordered list of cleaning steps; the order is the order they run in."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: Literal[1] = 1
    steps: tuple[Step, ...] = ()

    @property
    def row_steps(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.is_row_step)

    @property
    def column_steps(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if not s.is_row_step)

    def with_step(self, step: Step) -> "Recipe":
        """Return a new recipe with ``step`` appended."""
        return Recipe(steps=(*self.steps, step))

    def without(self, index: int) -> "Recipe":
        """Return a new recipe without the step at ``index``."""
        return Recipe(steps=self.steps[:index] + self.steps[index + 1 :])

    def moved(self, index: int, offset: int) -> "Recipe":
        """Return a new recipe with the step at ``index`` moved by ``offset`` places."""
        steps = list(self.steps)
        target = max(0, min(len(steps) - 1, index + offset))
        steps.insert(target, steps.pop(index))
        return Recipe(steps=tuple(steps))
