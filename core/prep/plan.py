"""The feature plan: which columns go into the model and how each is transformed.

Everything here compiles into transformers inside the model Pipeline (``core.prep.features``);
the plan itself is plain, typed and JSON-serialisable so it can be saved with its dataset.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Scaling = Literal["none", "standard", "minmax", "robust"]
PowerTransform = Literal["none", "log", "yeo_johnson"]
# "auto": one-hot, except ordinal codes for a many-level column in a tree ensemble (see FeatureBuilder).
Encoding = Literal["auto", "onehot", "ordinal", "target"]


class ColumnTransform(BaseModel):
    """How one column is turned into model features. Fields that do not apply to the
    column's kind are ignored (scaling on a categorical column, for example)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    scaling: Scaling = "standard"
    power: PowerTransform = "none"
    encoding: Encoding = "auto"
    bins: int | None = Field(default=None, ge=2, le=100)  # numeric: quantile bins instead of the value
    date_parts: tuple[Literal["year", "month", "day", "dayofweek", "hour", "weekend"], ...] = (
        "year",
        "month",
        "dayofweek",
    )
    tfidf_max_features: int = Field(default=200, ge=1, le=20000)  # text columns


class Interaction(BaseModel):
    """A new numeric feature from two numeric columns."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    left: str
    right: str
    op: Literal["ratio", "product"] = "ratio"

    @property
    def name(self) -> str:
        return f"{self.left}_{'over' if self.op == 'ratio' else 'times'}_{self.right}"


class FeaturePlan(BaseModel):
    """Selected columns (after cleaning), per-column transforms and interactions.

    ``include`` empty means every column but the target and ``exclude``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: Literal[1] = 1
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    transforms: dict[str, ColumnTransform] = Field(default_factory=dict)
    interactions: tuple[Interaction, ...] = ()

    def transform_for(self, column: str) -> ColumnTransform:
        """The transform for ``column``: its own, or the default."""
        return self.transforms.get(column, ColumnTransform())
