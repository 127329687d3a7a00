"""Data drift: injected shifts are found, large samples do not flag everything, Evidently agrees."""
from __future__ import annotations

import html.parser
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from core.errors import BadInput
from core.monitoring.drift import (
    CHI_SQUARE,
    JENSEN_SHANNON,
    KS,
    WASSERSTEIN,
    Z_TEST,
    ColumnDrift,
    DriftConfig,
    DriftResult,
    _wasserstein_normed,
    column_kinds,
    detect_drift,
    prediction_drift,
    rank_by_drift_and_importance,
)
from core.monitoring.report import drift_report_html, evidently_drift


def features(rng: np.random.Generator, n: int, *, shift: float = 0.0, tiny_shift: float = 0.0) -> pd.DataFrame:
    """Ten features; ``shift`` moves only ``income`` (by that many standard deviations)."""
    return pd.DataFrame({
        "income": rng.normal(50 + 10 * shift, 10, n),
        "age": rng.normal(40 + 12 * tiny_shift, 12, n),
        "balance": np.where(rng.random(n) < 0.05, np.nan, rng.lognormal(3, 1, n)),
        "visits": rng.poisson(12, n),
        "children": rng.integers(0, 4, n),
        "score": rng.uniform(0, 1, n).astype(np.float32),
        "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.6, 0.3, 0.1]),
        "region": pd.Categorical(rng.choice(["north", "south", "east", "west"], n)),
        "churned_before": rng.random(n) < 0.2,
        "channel": pd.Series(rng.choice(["web", "app", None], n, p=[0.5, 0.4, 0.1]), dtype=object),
    })


def test_injected_shift_in_one_feature_is_found_and_no_other_on_100k_rows() -> None:
    rng = np.random.default_rng(7)
    reference = features(rng, 100_000)
    # income moves by 0.5 std; age by 0.03 std: detectable at this size, but not a drift worth a page
    current = features(rng, 100_000, shift=0.5, tiny_shift=0.03)
    result = detect_drift(reference, current)
    assert result.drifted_columns == ("income",)
    assert result.column("income").method == WASSERSTEIN and result.column("income").score > 0.4
    assert {c.method for c in result.columns if c.kind == "categorical"} == {JENSEN_SHANNON}
    assert result.share_drifted == pytest.approx(1 / 10) and not result.dataset_drifted
    # the sample-size point: a p-value test calls the tiny age move significant, the distance does not
    assert stats.ks_2samp(reference["age"], current["age"]).pvalue < 0.05
    assert result.column("age").score < 0.1 and not result.column("age").drifted


def test_no_shift_no_drift_and_missing_values_are_left_out() -> None:
    rng = np.random.default_rng(3)
    reference, current = features(rng, 20_000), features(rng, 30_000)
    result = detect_drift(reference, current)
    assert result.drifted_columns == ()
    balance = result.column("balance")
    assert balance.n_reference == reference["balance"].notna().sum() < 20_000
    assert result.column("channel").n_current == current["channel"].notna().sum()


# Evidently's verdicts on the same frames: small references (p-value tests) and large ones
# (distances), on both sides of the 1,000-row boundary, with and without a shift.
AGREEMENT_CASES = [
    (300, 500, 0.0), (300, 500, 0.5), (1000, 2000, 0.2), (1001, 800, 0.2), (5000, 5000, 0.15),
    (3000, 20000, 0.6),
]


@pytest.mark.parametrize("n_reference,n_current,shift", AGREEMENT_CASES)
def test_verdicts_agree_with_evidently(n_reference: int, n_current: int, shift: float) -> None:
    rng = np.random.default_rng(n_reference + n_current)
    reference = features(rng, n_reference)
    current = features(rng, n_current, shift=shift, tiny_shift=shift / 3)
    current["plan"] = rng.choice(["basic", "plus", "pro"], n_current, p=[0.6 - shift / 2, 0.3, 0.1 + shift / 2])
    current.loc[current.sample(frac=0.1, random_state=1).index, "visits"] = 99  # a new mode
    ours = detect_drift(reference, current)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = evidently_drift(reference, current)
    assert set(theirs.columns) == {c.column for c in ours.columns}
    for c in ours.columns:
        peer = theirs.columns[c.column]
        assert (c.column, c.method, c.drifted) == (c.column, peer.method, peer.drifted)
        assert c.threshold == peer.threshold
        assert c.score == pytest.approx(peer.score, rel=1e-6, abs=1e-9), c.column
    assert ours.share_drifted == pytest.approx(theirs.share_drifted)


def test_method_choice_follows_evidently_rules() -> None:
    rng = np.random.default_rng(0)

    def methods(n: int, frame=None) -> dict[str, str]:
        frame = frame if frame is not None else pd.DataFrame({
            "cont": rng.normal(size=n), "five": rng.integers(0, 5, n).astype(float),
            "two": rng.integers(0, 2, n).astype(float), "cat3": rng.choice(list("abc"), n),
            "bool": rng.random(n) < 0.5,
        })
        return {c.column: c.method for c in detect_drift(frame, frame).columns}

    assert methods(1000) == {"cont": KS, "five": CHI_SQUARE, "two": Z_TEST, "cat3": CHI_SQUARE, "bool": Z_TEST}
    assert methods(1001) == {"cont": WASSERSTEIN, "five": JENSEN_SHANNON, "two": JENSEN_SHANNON,
                             "cat3": JENSEN_SHANNON, "bool": JENSEN_SHANNON}
    # the boundary counts values, not rows: 1,010 rows with 20 missing are a small sample
    frame = pd.DataFrame({"x": np.r_[rng.normal(size=990), [np.nan] * 20], "y": 1.0})
    assert methods(0, frame)["x"] == KS


def test_kinds_and_skipped_columns() -> None:
    n = 2000
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({
        "few_ints": rng.integers(0, 10, n), "many_ints": rng.integers(0, 11, n),
        "when": pd.date_range("2024-01-01", periods=n, freq="h"), "note": [f"note {i}" for i in range(n)],
        "nothing": np.full(n, np.nan), "value": rng.normal(size=n),
        "day": pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),  # dates as a CSV holds them
    })
    kinds = column_kinds(frame)
    assert kinds["few_ints"] == "categorical" and kinds["many_ints"] == "numeric"  # Evidently: <= 10 values
    assert kinds["when"] == "datetime" and kinds["note"] == "text"
    assert kinds["day"] == "datetime"  # distinct in every row like free text, but dates, and said to be
    result = detect_drift(frame, frame)
    assert {s.column for s in result.skipped} == {"when", "note", "nothing", "day"}
    assert next(s.reason for s in result.skipped if s.column == "day").startswith("date/time column")
    assert {c.column for c in result.columns} == {"few_ints", "many_ints", "value"}


def test_dataset_drifts_when_half_the_columns_drift() -> None:
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({k: rng.normal(size=5000) for k in "abcd"})
    cur = pd.DataFrame({k: rng.normal(size=5000) for k in "abcd"})
    cur["a"] += 1
    assert not detect_drift(ref, cur).dataset_drifted
    cur["b"] += 1
    result = detect_drift(ref, cur)
    assert result.share_drifted == 0.5 and result.dataset_drifted
    assert not detect_drift(ref, cur, config=DriftConfig(drift_share=0.6)).dataset_drifted
    assert detect_drift(ref, cur, columns=["c", "d"]).drifted_columns == ()


@pytest.mark.parametrize("seed", range(4))
def test_wasserstein_is_exact(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = np.round(rng.normal(size=rng.integers(50, 3000)), seed)  # seed 0: heavy ties
    cur = np.round(rng.standard_t(3, size=rng.integers(50, 5000)), seed)
    expected = stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001)
    assert _wasserstein_normed(np.sort(ref), cur) == pytest.approx(expected, rel=1e-12)


def test_bad_input_is_refused_with_a_reason() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    with pytest.raises(BadInput, match="current data has no rows"):
        detect_drift(frame, frame.iloc[:0])
    with pytest.raises(BadInput, match="share no column"):
        detect_drift(frame, frame.rename(columns={"a": "c", "b": "d"}))
    with pytest.raises(BadInput, match="not in both tables"):
        detect_drift(frame, frame[["a"]], columns=["a", "b"])


def test_prediction_drift_for_values_and_labels() -> None:
    rng = np.random.default_rng(4)
    values = prediction_drift(rng.normal(100, 10, 5000), rng.normal(104, 10, 50_000))
    assert values.kind == "numeric" and values.method == WASSERSTEIN and values.drifted
    same = prediction_drift(rng.normal(100, 10, 5000), rng.normal(100, 10, 50_000))
    assert not same.drifted
    labels = prediction_drift(rng.choice(["no", "yes"], 5000, p=[0.8, 0.2]),
                              rng.choice(["no", "yes"], 20_000, p=[0.5, 0.5]))
    assert labels.kind == "categorical" and labels.method == JENSEN_SHANNON and labels.drifted
    ids = prediction_drift(np.array([0, 1, 2] * 300), np.array([0, 1, 2] * 300), kind="categorical")
    assert ids.method == CHI_SQUARE and ids.score == pytest.approx(1.0) and not ids.drifted
    with pytest.raises(BadInput):
        prediction_drift([], [1.0])


def _verdict(column: str, method: str, score: float, threshold: float, drifted: bool) -> ColumnDrift:
    return ColumnDrift(column, "numeric", method, score, threshold, drifted, 100, 100)


def test_ranking_weighs_drift_by_importance() -> None:
    result = DriftResult(
        columns=(
            _verdict("important_stable", WASSERSTEIN, 0.02, 0.1, False),
            _verdict("important_drifted", WASSERSTEIN, 0.3, 0.1, True),
            _verdict("minor_drifted", WASSERSTEIN, 0.9, 0.1, True),
            _verdict("p_drifted", KS, 1e-6, 0.05, True),
            _verdict("unranked", WASSERSTEIN, 5.0, 0.1, True),
        ),
        skipped=(), share_drifted=0.8, drift_share=0.5, dataset_drifted=True, n_reference=100, n_current=100)
    ranked = rank_by_drift_and_importance(result, {"important_stable": 0.4, "important_drifted": 0.4,
                                                   "minor_drifted": 0.05, "p_drifted": 0.15, "gone": 1.0})
    assert [r.column for r in ranked] == ["important_drifted", "p_drifted", "minor_drifted",
                                          "important_stable", "unranked"]
    top = ranked[0]
    assert top.importance == pytest.approx(0.4) and top.severity == pytest.approx(3.0)
    assert ranked[1].severity == pytest.approx(np.log(1e-6) / np.log(0.05))
    assert ranked[-1].importance == 0 and ranked[-1].severity == 10.0  # capped


class _Structure(html.parser.HTMLParser):
    """Checks that every non-void element is closed in order."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.seen: set[str] = set()
        self.external: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.seen.add(tag)
        if tag == "script" and dict(attrs).get("src"):
            self.external.append(dict(attrs)["src"])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()


def test_html_report_is_valid_offline_html_naming_the_columns() -> None:
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"monthly_income_xq": rng.normal(size=8000), "home_region_xq": rng.choice(list("ab"), 8000),
                              "free_note": [f"n{i}" for i in range(8000)]})
    current = reference.assign(monthly_income_xq=reference["monthly_income_xq"] + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        page = drift_report_html(reference, current, sample_rows=2000).decode("utf-8")
    assert page.lstrip().lower().startswith("<!doctype html")
    parser = _Structure()
    parser.feed(page)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    assert {"html", "head", "body"} <= parser.seen
    assert parser.external == []  # everything inline: the file works offline
    assert "monthly_income_xq" in page and "home_region_xq" in page
    with pytest.raises(BadInput):
        drift_report_html(reference[["free_note"]], current[["free_note"]])


def test_noise_note_on_many_categories_with_few_rows() -> None:
    rng = np.random.default_rng(6)
    zips = np.array([f"z{i}" for i in range(1000)], dtype=object)
    small = detect_drift(pd.DataFrame({"zip": zips[rng.integers(0, 1000, 5000)], "x": rng.normal(size=5000)}),
                         pd.DataFrame({"zip": zips[rng.integers(0, 1000, 5000)], "x": rng.normal(size=5000)}))
    z = small.column("zip")
    # the same distribution on both sides, yet Evidently's rule says drift: the note says why
    assert z.drifted and z.expected_no_drift == pytest.approx(z.score, rel=0.1)
    assert "1,000 distinct values" in z.note and small.column("x").note == ""
    large = detect_drift(pd.DataFrame({"zip": zips[rng.integers(0, 1000, 200_000)]}),
                         pd.DataFrame({"zip": zips[rng.integers(0, 1000, 200_000)]}))
    assert not large.column("zip").drifted and large.column("zip").note == ""
