"""The feature step of the model Pipeline: a FeaturePlan compiled into fitted transformers.

``FeatureBuilder`` receives the cleaned table (a DataFrame), decides each selected column's kind at
fit time and fits small sub-pipelines (one per group of identically treated columns) inside a
ColumnTransformer. Everything (medians, categories, bins, target encodings, vocabularies) is
learned in ``fit``, so inside a cross-validation fold it only ever sees that fold's training rows.

Output choice: ``transform`` returns a dense DataFrame with readable feature names and the input's
index, as long as there are at most ``max_dense_features`` output features. Above that (wide tf-idf
or one-hot outputs) it returns a scipy CSR matrix, which every model we ship accepts and which keeps
memory proportional to the non-zeros; ``transformed_frame`` always gives a DataFrame for display.

Feature names are ``<column>`` or ``<column>_<level/part/term>``, with the characters LightGBM
refuses in feature names (``" , : [ ] { }``) replaced by look-alikes, so the frame can go straight
into any model.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from scipy import sparse
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    KBinsDiscretizer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    PowerTransformer,
    RobustScaler,
    StandardScaler,
    TargetEncoder,
)
from sklearn.utils.validation import check_is_fitted

from core.data.kinds import ColumnKind, infer_kind
from core.errors import BadInput
from core.prep.plan import ColumnTransform, FeaturePlan, Interaction

MISSING_LABEL = "(missing)"
# One-hot: at most this many columns per categorical; rarer levels share one "infrequent" column.
MAX_CATEGORIES = 50
# One-hot: a level seen in fewer than this share of training rows counts as infrequent.
MIN_CATEGORY_SHARE = 0.005
AUTO_ORDINAL_MIN_LEVELS = 10  # "auto" categoricals with more levels get ordinal codes in tree models
DEFAULT_MAX_DENSE_FEATURES = 2_000
_TOKEN = re.compile(r"c\d+")  # positional column names inside the ColumnTransformer
# LightGBM rejects feature names with JSON syntax characters; one-hot names carry user values.
_NAME_SAFE = str.maketrans({'"': "'", ",": ";", ":": "=", "[": "(", "]": ")", "{": "(", "}": ")"})

_SCALERS = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}


# --- small transformers (module level so fitted pipelines pickle) -------------------------------


def _as_text(X: pd.DataFrame) -> pd.DataFrame:
    """Categories as strings with missing values as their own level (mixed types break encoders)."""
    X = pd.DataFrame(X).astype(object)
    return X.where(X.notna(), MISSING_LABEL).astype(str)


def _as_float(X: pd.DataFrame) -> np.ndarray:
    """Booleans (bool, nullable boolean or 0/1) as floats with NaN for missing."""
    return pd.DataFrame(X).astype("float64").to_numpy()


class Log1pShift(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """``log1p(x + shift)`` where the shift, learned at fit, makes the training minimum zero.

    Values below the training minimum at predict time are clipped to it, so the log stays defined.
    """

    def fit(self, X, y=None):
        values = np.asarray(X, dtype=float)
        self.n_features_in_ = values.shape[1]
        minimum = np.nanmin(values, axis=0) if len(values) else np.zeros(values.shape[1])
        self.shift_ = np.where(np.isfinite(minimum) & (minimum < 0), -minimum, 0.0)
        return self

    def transform(self, X):
        check_is_fitted(self, "shift_")
        values = np.asarray(X, dtype=float) + self.shift_
        return np.log1p(np.clip(values, 0.0, None))


class DateParts(TransformerMixin, BaseEstimator):
    """Numeric date parts (year, month, day, dayofweek, hour, weekend) of datetime columns."""

    def __init__(self, parts: tuple[str, ...] = ("year", "month", "dayofweek")):
        self.parts = parts

    def fit(self, X, y=None):
        self.feature_names_in_ = np.asarray(pd.DataFrame(X).columns, dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def transform(self, X):
        check_is_fitted(self, "feature_names_in_")
        out = []
        for _, column in pd.DataFrame(X).items():
            when = pd.to_datetime(column, errors="coerce")
            for part in self.parts:
                if part == "weekend":
                    values = (when.dt.dayofweek >= 5).astype(float).where(when.notna())
                else:
                    values = getattr(when.dt, part).astype(float)
                out.append(values.to_numpy(dtype=float, na_value=np.nan))
        return np.column_stack(out) if out else np.empty((len(X), 0))

    def get_feature_names_out(self, input_features=None):
        columns = self.feature_names_in_ if input_features is None else input_features
        return np.asarray([f"{c}_{p}" for c in columns for p in self.parts], dtype=object)


class TextTfidf(TransformerMixin, BaseEstimator):
    """Tf-idf of one free-text column; missing text counts as empty."""

    def __init__(self, max_features: int = 200):
        self.max_features = max_features

    def fit(self, X, y=None):
        frame = pd.DataFrame(X)
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = 1
        self.vectorizer_ = TfidfVectorizer(max_features=self.max_features, dtype=np.float64)
        self.vectorizer_.fit(self._text(frame))
        return self

    def transform(self, X):
        check_is_fitted(self, "vectorizer_")
        return self.vectorizer_.transform(self._text(pd.DataFrame(X)))

    def get_feature_names_out(self, input_features=None):
        column = self.feature_names_in_[0]
        return np.asarray([f"{column}_{t}" for t in self.vectorizer_.get_feature_names_out()], dtype=object)

    @staticmethod
    def _text(frame: pd.DataFrame) -> pd.Series:
        column = frame.iloc[:, 0]
        return column.astype(object).where(column.notna(), "").astype(str)


# --- the builder -------------------------------------------------------------------------------


class FeatureBuilder(TransformerMixin, BaseEstimator):
    """Compile a FeaturePlan into fitted transformers over the cleaned table.

    Columns that get the same treatment share one transformer (one imputer for all default
    numeric columns, say), which keeps wide tables fast; outputs still come in column order.

    Args:
        plan: Which columns to use and how to transform each; ``None`` means the default plan.
        max_dense_features: Above this many output features ``transform`` returns CSR, not a frame.
        random_state: Seed for the target encoder's internal cross-fitting folds.
        trees: The model is a tree ensemble: categorical columns planned ``auto`` with more
            than ``AUTO_ORDINAL_MIN_LEVELS`` levels get ordinal codes, not one-hot columns. A
            tree splits codes into groups of levels as well, and one column per level of a
            many-level category dilutes its splits and its column sampling, while a few levels
            are split best one by one: LightGBM cross-validated higher with ordinal codes on
            ``mlc_churn`` (51 states) and with one-hot columns on ``deliveries`` (7 days), in
            nearly every configuration and split tried (bench/RESULTS.md). A binned numeric
            column planned ``auto`` is judged by its distinct values too, not its bins, so in a
            tree model its bins are nearly always ordinal (they keep their order).

    Attributes (after fit):
        kinds_: Kind of each used column, in input order, then interactions (NUMERIC).
        dropped_: Selected columns left out, with the reason.
        descriptions_: One line per used column saying how it is transformed.
        feature_names_: Output feature names, in output order.
        feature_owners_: For each output feature, the used column (or interaction) it comes from.
        feature_sources_: For each output feature, the input columns it is computed from.
    """

    def __init__(
        self,
        plan: FeaturePlan | None = None,
        *,
        max_dense_features: int = DEFAULT_MAX_DENSE_FEATURES,
        random_state: int = 42,
        trees: bool = False,
    ):
        self.plan = plan
        self.max_dense_features = max_dense_features
        self.random_state = random_state
        self.trees = trees

    def fit(self, X, y=None):
        """Decide column kinds and fit the transformers on ``X`` (and ``y`` for target encoding).

        Raises:
            BadInput: A planned column is missing, no usable column is left, or target
                encoding is asked for without ``y``.
        """
        self._fit(X, y, transform=False)
        return self

    def fit_transform(self, X, y=None, **fit_params):
        """Fit and transform in one pass.

        Needed for correctness, not only speed: the target encoder's ``fit_transform`` cross-fits
        (each row encoded by a model that did not see it), while ``fit().transform()`` would not.
        """
        return self._fit(X, y, transform=True)

    def transform(self, X):
        """Features for ``X``: a DataFrame (same index), or CSR when wider than the dense cap.

        Raises:
            BadInput: A column used at fit time is missing from ``X``.
        """
        check_is_fitted(self, "column_transformer_")
        frame = self._prepare(X)
        return self._wrap(self.column_transformer_.transform(frame), frame.index)

    def transformed_frame(self, X) -> pd.DataFrame:
        """Features for ``X`` always as a dense DataFrame, for display (use on a few rows)."""
        out = self.transform(X)
        if sparse.issparse(out):
            return pd.DataFrame(out.toarray(), columns=list(self.feature_names_), index=_as_frame(X).index)
        return out

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """The output feature names, in output order."""
        check_is_fitted(self, "feature_names_")
        return np.asarray(self.feature_names_, dtype=object)

    # internals -------------------------------------------------------------------------------

    def _fit(self, X, y, *, transform: bool):
        plan = self.plan or FeaturePlan()
        frame = _as_frame(X)
        _check_planned_columns(plan, frame)
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        self.kinds_, self.dropped_ = _decide_kinds(plan, frame)
        self.interactions_ = tuple(plan.interactions)
        for interaction in self.interactions_:
            self.kinds_[interaction.name] = ColumnKind.NUMERIC
        if not self.kinds_:
            raise BadInput("No feature columns are left: include at least one usable column.")
        sources = [c for c in self.kinds_ if c in frame.columns]
        sources += [c for i in self.interactions_ for c in (i.left, i.right)]
        self.input_columns_ = tuple(dict.fromkeys(sources))
        self.tokens_ = {column: f"c{i}" for i, column in enumerate(self.kinds_)}
        frame = self._prepare(frame)

        groups: dict[tuple, tuple[object, list[str]]] = {}
        self.descriptions_ = {}
        for column, kind in self.kinds_.items():
            token = self.tokens_[column]
            key, transformer, description = self._column_pipeline(
                kind, plan.transform_for(column), frame[token], token, has_y=y is not None
            )
            groups.setdefault(key, (transformer, []))[1].append(token)
            self.descriptions_[column] = description
        for i in self.interactions_:
            what = "ratio" if i.op == "ratio" else "product"
            self.descriptions_[i.name] = f"{what} of {i.left} and {i.right}; {self.descriptions_[i.name]}"

        # sparse_threshold=1: keep sparse parts sparse; _wrap decides dense or CSR by width.
        self.column_transformer_ = ColumnTransformer(
            [(f"g{n}", t, tokens) for n, (t, tokens) in enumerate(groups.values())],
            sparse_threshold=1.0,
            verbose_feature_names_out=False,
        )
        y_values = None if y is None else np.asarray(y)
        if transform:
            out = self.column_transformer_.fit_transform(frame, y_values)
        else:
            self.column_transformer_.fit(frame, y_values)
        self._record_names()
        return self._wrap(out, frame.index) if transform else None

    def _prepare(self, X) -> pd.DataFrame:
        """The used columns plus interactions, renamed to ``c0, c1, ...`` for the ColumnTransformer.

        Positional names make every output name parse back to its column without ambiguity
        (real names can contain anything, including another column's name as a prefix).
        """
        frame = _as_frame(X)
        missing = [c for c in self.input_columns_ if c not in frame.columns]
        if missing:
            raise BadInput(f"Columns missing from the input: {', '.join(map(str, missing[:10]))}")
        interactions = {i.name: i for i in self.interactions_}
        plain = [c for c in self.kinds_ if c not in interactions]
        out = frame[plain].set_axis([self.tokens_[c] for c in plain], axis=1)
        for column in plain:
            # An infinite number (a ratio divided by zero upstream, say) is missing, as in interactions:
            # imputed like a gap rather than failing the imputer, in training and in serving alike.
            token = self.tokens_[column]
            if self.kinds_[column] == ColumnKind.NUMERIC and ptypes.is_float_dtype(out[token].dtype):
                values = out[token].to_numpy(dtype=float, na_value=np.nan)
                if np.isinf(values).any():
                    out[token] = np.where(np.isinf(values), np.nan, values)
        for name, interaction in interactions.items():
            out[self.tokens_[name]] = _interaction_values(frame, interaction)
        return out

    def _column_pipeline(self, kind: ColumnKind, spec: ColumnTransform, series: pd.Series, token: str, *, has_y: bool):
        """(group key, transformer, description) for one column.

        Columns with equal keys share the transformer: every transformer used here works column
        by column, so sharing changes nothing but speed.
        """
        if spec.encoding == "auto":
            ordinal = self.trees and series.nunique() > AUTO_ORDINAL_MIN_LEVELS  # counted for trees only
            spec = spec.model_copy(update={"encoding": "ordinal" if ordinal else "onehot"})
        if kind == ColumnKind.DATETIME:
            parts = Pipeline([
                ("parts", DateParts(tuple(spec.date_parts))),
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ])
            return ("datetime", spec.date_parts), parts, "date parts: " + ", ".join(spec.date_parts)
        if kind == ColumnKind.TEXT:
            description = f"tf-idf, up to {spec.tfidf_max_features} terms"
            return ("text", token), TextTfidf(max_features=spec.tfidf_max_features), description
        if _is_categorical(kind, series):
            if spec.encoding == "target" and not has_y:
                raise BadInput("Target encoding needs the target column: fit the features with y.")
            encode = Pipeline([
                ("text", FunctionTransformer(_as_text, feature_names_out="one-to-one")),
                ("encode", self._encoder(spec, n_rows=len(series))),
            ])
            return ("categorical", spec.encoding), encode, _ENCODING_TEXT[spec.encoding]
        if kind == ColumnKind.BOOLEAN:
            flag = Pipeline([
                ("float", FunctionTransformer(_as_float, feature_names_out="one-to-one")),
                ("impute", SimpleImputer(strategy="most_frequent", keep_empty_features=True)),
            ])
            return ("boolean",), flag, "0/1, missing -> most frequent"
        description = _describe_numeric(spec)
        return ("numeric", description), _numeric_pipeline(spec), description

    def _encoder(self, spec: ColumnTransform, *, n_rows: int):
        if spec.encoding == "ordinal":
            return OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
        if spec.encoding == "target":
            # An explicit shuffled splitter: reproducible, and it works for any target type.
            folds = KFold(n_splits=5, shuffle=True, random_state=self.random_state)
            return TargetEncoder(cv=folds)
        return OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            min_frequency=max(1, int(MIN_CATEGORY_SHARE * n_rows)),
            max_categories=MAX_CATEGORIES,
            sparse_output=True,
        )

    def _record_names(self) -> None:
        """Readable output names and owners, and the order that puts outputs in column order."""
        columns = {token: column for column, token in self.tokens_.items()}
        names: list[str] = []
        owners: list[str] = []
        for name, fitted, _ in self.column_transformer_.transformers_:
            if name == "remainder" or isinstance(fitted, str):
                continue
            for out in fitted.get_feature_names_out():
                token = _TOKEN.match(str(out)).group(0)
                names.append(f"{columns[token]}{str(out)[len(token):]}".translate(_NAME_SAFE))
                owners.append(columns[token])
        position = {column: i for i, column in enumerate(self.kinds_)}
        self.order_ = np.argsort([position[o] for o in owners], kind="stable")
        interactions = {i.name: (i.left, i.right) for i in self.interactions_}
        self.feature_names_ = _unique([names[i] for i in self.order_])
        self.feature_owners_ = tuple(owners[i] for i in self.order_)
        self.feature_sources_ = tuple(interactions.get(o, (o,)) for o in self.feature_owners_)

    def _wrap(self, out, index: pd.Index):
        out = out[:, self.order_]
        if out.shape[1] > self.max_dense_features:
            return sparse.csr_matrix(out)
        dense = out.toarray() if sparse.issparse(out) else np.asarray(out, dtype=float)
        return pd.DataFrame(dense, columns=list(self.feature_names_), index=index)


def _numeric_pipeline(spec: ColumnTransform) -> Pipeline:
    # Cleaning usually imputes already; this median keeps models that reject NaN working.
    steps: list[tuple[str, object]] = [("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
    if spec.power == "log":
        steps.append(("power", Log1pShift()))
    elif spec.power == "yeo_johnson":
        # Scaling (if any) comes next, so the transformer itself does not standardise.
        steps.append(("power", PowerTransformer(method="yeo-johnson", standardize=False)))
    if spec.bins is not None:
        # The column's encoding field picks the bin encoding: ordinal -> one column, else one-hot.
        encode = "ordinal" if spec.encoding == "ordinal" else "onehot"
        bins = KBinsDiscretizer(
            n_bins=spec.bins, encode=encode, strategy="quantile", quantile_method="averaged_inverted_cdf"
        )
        steps.append(("bins", bins))
    elif spec.scaling in _SCALERS:
        steps.append(("scale", _SCALERS[spec.scaling]()))
    return Pipeline(steps)


def _as_frame(X) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    frame = pd.DataFrame(X)
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _is_categorical(kind: ColumnKind, series: pd.Series) -> bool:
    """Categorical, or an identifier / boolean stored as text ("yes"/"no") -> encoded as levels."""
    if kind == ColumnKind.CATEGORICAL:
        return True
    if kind in (ColumnKind.IDENTIFIER, ColumnKind.BOOLEAN):
        return not (ptypes.is_bool_dtype(series) or ptypes.is_numeric_dtype(series))
    return False


def _check_planned_columns(plan: FeaturePlan, frame: pd.DataFrame) -> None:
    """Columns the plan needs (included, or used by an interaction) must be in the table.

    Excluded columns and per-column transforms need nothing, so a column dropped by cleaning may
    still be listed there.
    """
    needed = list(plan.include) + [c for i in plan.interactions for c in (i.left, i.right)]
    missing = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    if missing:
        raise BadInput(f"The feature plan uses columns not in the table: {', '.join(missing[:10])}")
    for interaction in plan.interactions:
        for column in (interaction.left, interaction.right):
            if not ptypes.is_numeric_dtype(frame[column]) or ptypes.is_bool_dtype(frame[column]):
                raise BadInput(f"Interaction {interaction.name} needs numeric columns; {column} is not.")
        if interaction.name in frame.columns:
            raise BadInput(f"Interaction {interaction.name} has the name of an existing column.")


def _decide_kinds(plan: FeaturePlan, frame: pd.DataFrame) -> tuple[dict[str, ColumnKind], dict[str, str]]:
    explicit = set(plan.include)
    selected = list(plan.include) if plan.include else list(frame.columns)
    kinds: dict[str, ColumnKind] = {}
    dropped: dict[str, str] = {}
    for column in selected:
        if column in plan.exclude:
            continue
        series = frame[column]
        if series.isna().all():
            if column not in explicit:
                dropped[column] = "all values missing"
                continue
            kind = ColumnKind.NUMERIC if ptypes.is_numeric_dtype(series) else ColumnKind.CATEGORICAL
        elif ptypes.is_datetime64_any_dtype(series):
            kind = ColumnKind.DATETIME
        else:
            kind = infer_kind(series)
        if kind == ColumnKind.IDENTIFIER and column not in explicit:
            # A key predicts nothing for new rows; it only lets the model memorise.
            dropped[column] = "identifier (a different value in almost every row)"
            continue
        kinds[column] = kind
    return kinds, dropped


def _interaction_values(frame: pd.DataFrame, interaction: Interaction) -> np.ndarray:
    left = pd.to_numeric(frame[interaction.left], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    right = pd.to_numeric(frame[interaction.right], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        values = left / right if interaction.op == "ratio" else left * right
    # x/0 and 0/0 become missing (then imputed) rather than +-inf, which breaks most models.
    values[~np.isfinite(values)] = np.nan
    return values


def _unique(names: list[str]) -> tuple[str, ...]:
    """Make names unique by suffixing repeats (two columns can yield the same readable name)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        out.append(name if count == 0 else f"{name}_{count + 1}")
    return tuple(out)


# --- summary -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureInfo:
    """How one source column (or interaction) became model features."""

    column: str
    kind: str
    transform: str
    n_features: int


def feature_summary(builder: FeatureBuilder) -> tuple[FeatureInfo, ...]:
    """Describe a fitted FeatureBuilder: one row per used, interaction or dropped column.

    Args:
        builder: A fitted FeatureBuilder.

    Returns:
        Used columns in input order, then interactions, then dropped columns (with 0 features).
    """
    check_is_fitted(builder, "feature_names_")
    counts: dict[str, int] = {}
    for owner in builder.feature_owners_:
        counts[owner] = counts.get(owner, 0) + 1
    rows = [
        FeatureInfo(column=c, kind=str(k), transform=builder.descriptions_[c], n_features=counts.get(c, 0))
        for c, k in builder.kinds_.items()
    ]
    rows += [
        FeatureInfo(column=c, kind="dropped", transform=f"dropped: {why}", n_features=0)
        for c, why in builder.dropped_.items()
    ]
    return tuple(rows)


def _describe_numeric(spec: ColumnTransform) -> str:
    parts = ["median imputation"]
    if spec.power != "none":
        parts.append({"log": "log(1 + x)", "yeo_johnson": "Yeo-Johnson"}[spec.power])
    if spec.bins is not None:
        parts.append(f"{spec.bins} quantile bins ({'ordinal' if spec.encoding == 'ordinal' else 'one-hot'})")
    elif spec.scaling != "none":
        parts.append(f"{spec.scaling} scaling")
    return ", ".join(parts)


_ENCODING_TEXT = {
    "onehot": f"one-hot (rare levels grouped, at most {MAX_CATEGORIES} columns)",
    "ordinal": "ordinal codes (unseen -> -1)",
    "target": "target encoding (cross-fitted)",
}
