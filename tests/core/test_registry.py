"""Model versions against SQLite and a real PostgreSQL: two-phase saves, hashes, aliases, exports."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import multiprocessing as mp
import pickle
import resource
import signal
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from core import registry
from core.config import Settings
from core.errors import BadInput, StorageError
from core.registry import VersionMeta
from core.store.db import make_engine, session_scope
from core.store.models import ModelVersion


@pytest.fixture
def store(store_url: str):
    engine = make_engine(store_url)
    yield engine
    engine.dispose()


def _meta(**overrides) -> VersionMeta:
    values = dict(
        dataset_hash="d" * 64,
        target="churned",
        task="classification",
        recipe_json='{"version": 1, "steps": []}',
        plan_json="{}",
        model_family="logistic_regression",
        params={"C": 1.0, "max_iter": np.int64(200)},
        metrics={"roc_auc": 0.91234, "accuracy": np.float64(0.875)},
        cv={"scheme": "stratified_kfold", "folds": 5, "seed": 42},
        training_seconds=1.25,
    )
    values.update(overrides)
    return VersionMeta(**values)


def _data(rows: int = 60) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    return frame, (frame["a"] + 0.3 * frame["b"] > 0).astype(int)


def _fitted() -> tuple[Pipeline, pd.DataFrame]:
    X, y = _data()
    pipe = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())]).fit(X, y)
    return pipe, X


def _register(engine, settings: Settings, name: str = "churn", pipeline=None) -> ModelVersion:
    pipe, X = _fitted() if pipeline is None else (pipeline, _data()[0])
    return registry.register_version(
        engine, name=name, pipeline=pipe, meta=_meta(), reference=X, settings=settings
    )


def _final_files(settings: Settings) -> list[Path]:
    folder = settings.models_dir
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


class _Evil:
    """Unpickling this creates a file: proof that a load ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# --------------------------------------------------------------------------- save and load


def test_register_saves_a_ready_version_that_predicts_the_same(store, settings: Settings) -> None:
    pipe, X = _fitted()
    version = registry.register_version(
        store, name="churn", pipeline=pipe, meta=_meta(), reference=X, settings=settings
    )
    assert (version.model_name, version.version, version.status) == ("churn", 1, "READY")
    artifact = settings.models_dir / version.artifact_file
    assert artifact.is_file() and (settings.models_dir / version.reference_file).is_file()
    assert "churn" not in version.artifact_file  # user names never reach a path
    assert hashlib.sha256(artifact.read_bytes()).hexdigest() == version.sha256
    assert artifact.stat().st_size == version.size_bytes
    assert version.created_at.tzinfo is not None
    assert json.loads(version.params_json) == {"C": 1.0, "max_iter": 200}
    libs = json.loads(version.library_versions_json)
    assert set(libs) == {"python", "sklearn", "lightgbm", "pandas", "numpy", "joblib"}

    loaded = registry.load_pipeline(registry.get_version(store, name="churn"), settings=settings)
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), pipe.predict_proba(X))

    ref = pd.read_parquet(settings.models_dir / version.reference_file)
    pd.testing.assert_frame_equal(ref, X)


def test_reference_sample_is_capped_and_reproducible(store, settings: Settings) -> None:
    big = pd.DataFrame({"x": np.arange(12_000)})
    first = registry.register_version(
        store, name="big", pipeline={"k": 1}, meta=_meta(), reference=big, settings=settings
    )
    second = registry.register_version(
        store, name="big", pipeline={"k": 1}, meta=_meta(), reference=big, settings=settings
    )
    a = pd.read_parquet(settings.models_dir / first.reference_file)
    b = pd.read_parquet(settings.models_dir / second.reference_file)
    assert len(a) == registry.REFERENCE_MAX_ROWS
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize(
    "name", ["", "   ", "a" * 101, "../etc", "name/with/slash", "semi;colon", "tab\there", "café"]
)
def test_invalid_model_names_are_refused(engine, settings: Settings, name: str) -> None:
    with pytest.raises(BadInput, match="model name"):
        _register(engine, settings, name=name)
    assert registry.list_versions(engine) == []


def test_names_allow_spaces_dots_dashes_underscores(engine, settings: Settings) -> None:
    version = _register(engine, settings, name=" Churn model v1.2_final-B ")
    assert version.model_name == "Churn model v1.2_final-B"
    assert registry.list_model_names(engine) == ["Churn model v1.2_final-B"]


def test_tampered_file_is_refused_without_unpickling(store, settings: Settings, tmp_path: Path) -> None:
    version = _register(store, settings)
    artifact = settings.models_dir / version.artifact_file
    artifact.chmod(0o644)

    # A single flipped byte.
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with pytest.raises(BadInput, match="does not match its registry hash; refusing to load"):
        registry.load_pipeline(version, settings=settings)

    # A malicious pickle in its place: refused, and its code never ran.
    marker = tmp_path / "pwned"
    artifact.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(BadInput, match="refusing to load"):
        registry.load_pipeline(version, settings=settings)
    assert not marker.exists()
    # The payload is real: loading it unchecked would have run it.
    pickle.loads(pickle.dumps(_Evil(tmp_path / "control")))
    assert (tmp_path / "control").exists()

    artifact.unlink()
    with pytest.raises(BadInput, match="refusing to load"):
        registry.load_pipeline(version, settings=settings)


def test_failed_save_marks_failed_and_leaves_no_files(store, settings: Settings) -> None:
    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle this")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        _register(store, settings, pipeline=Unpicklable())
    [failed] = registry.list_versions(store, name="churn")
    assert failed.status == "FAILED" and "cannot pickle" in failed.error
    assert list(settings.models_dir.iterdir()) == []  # no final file and no temporary one
    with pytest.raises(BadInput, match="only READY"):
        registry.load_pipeline(failed, settings=settings)
    # The number is used up; the next save is version 2 and is the latest READY.
    assert _register(store, settings).version == 2
    assert registry.get_version(store, name="churn").version == 2


@contextlib.contextmanager
def _files_up_to_2_mb():
    """A real failed write without filling the disk: files of this process may not grow past
    2 MB (SIGXFSZ ignored, so a write past it fails with EFBIG)."""
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def _big_pipeline() -> Pipeline:
    pipeline, _ = _fitted()
    pipeline.ballast = np.random.default_rng(0).random(600_000)  # 5 MB pickled
    return pipeline


def test_a_save_the_file_system_refuses_is_failed_in_its_words(store, settings: Settings) -> None:
    with _files_up_to_2_mb(), pytest.raises(StorageError, match=r"^could not write .+\.joblib: File too large$"):
        _register(store, settings, pipeline=_big_pipeline())
    [failed] = registry.list_versions(store, name="churn")
    assert failed.status == "FAILED" and "File too large" in failed.error
    assert list(settings.models_dir.iterdir()) == []  # no final file and no temporary one


def test_an_export_the_file_system_refuses_says_so_not_that_the_model_was_changed(
    store, settings: Settings, tmp_path: Path
) -> None:
    version = _register(store, settings, pipeline=_big_pipeline())
    with _files_up_to_2_mb(), pytest.raises(StorageError, match=r"model\.joblib: File too large$"):
        registry.export_version(version, settings=settings, out_dir=tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # nothing half-copied
    registry.load_pipeline(version, settings=settings)  # the registry's own file is untouched and loads


# --------------------------------------------------------------------------- lookups and aliases


def test_latest_ready_versions_and_aliases(store, settings: Settings) -> None:
    for _ in range(3):
        _register(store, settings)
    _register(store, settings, name="other")
    with session_scope(store) as session:  # a save in progress elsewhere
        session.add(
            ModelVersion(
                model_name="churn", version=4, status="PENDING", artifact_file="x", reference_file="y",
                dataset_hash="d", target="t", task="c", recipe_json="{}", plan_json="{}",
                model_family="f", params_json="{}", metrics_json="{}", cv_json="{}",
                library_versions_json="{}", training_seconds=0.0,
            )
        )
    assert registry.get_version(store, name="churn").version == 3  # PENDING 4 is skipped
    assert registry.get_version(store, name="churn", version=4).status == "PENDING"
    assert [v.version for v in registry.list_versions(store, name="churn")] == [4, 3, 2, 1]
    assert len(registry.list_versions(store)) == 5
    assert registry.list_model_names(store) == ["churn", "other"]

    registry.set_alias(store, name="churn", alias="champion", version=1)
    registry.set_alias(store, name="churn", alias="challenger", version=3)
    assert registry.aliases(store, name="churn") == {"challenger": 3, "champion": 1}
    registry.set_alias(store, name="churn", alias="champion", version=2)  # moves
    assert registry.aliases(store, name="churn") == {"challenger": 3, "champion": 2}
    assert registry.get_version(store, name="churn", alias="champion").version == 2
    assert registry.aliases(store, name="other") == {}

    with pytest.raises(BadInput, match="only READY"):
        registry.set_alias(store, name="churn", alias="champion", version=4)
    with pytest.raises(BadInput, match="no version 9"):
        registry.set_alias(store, name="churn", alias="champion", version=9)
    with pytest.raises(BadInput, match="lowercase slug"):
        registry.set_alias(store, name="churn", alias="Champion!", version=1)
    assert registry.aliases(store, name="churn")["champion"] == 2

    with pytest.raises(BadInput, match="no alias 'staging'"):
        registry.get_version(store, name="churn", alias="staging")
    with pytest.raises(BadInput, match="no version 7"):
        registry.get_version(store, name="churn", version=7)
    with pytest.raises(BadInput, match="no ready version"):
        registry.get_version(store, name="nope")
    with pytest.raises(BadInput, match="not both"):
        registry.get_version(store, name="churn", version=1, alias="champion")


# --------------------------------------------------------------------------- concurrency


def _register_many(url: str, workspace: str, worker: int, count: int) -> None:
    engine = make_engine(url)
    settings = Settings(workspace=Path(workspace))
    frame = pd.DataFrame({"x": [1, 2, 3]})
    for i in range(count):
        registry.register_version(
            engine, name="shared model", pipeline={"worker": worker, "i": i}, meta=_meta(),
            reference=frame, settings=settings,
        )
    engine.dispose()


def test_concurrent_registrations_get_consecutive_versions(store_url: str, settings: Settings) -> None:
    make_engine(store_url).dispose()  # create the tables once, before the race
    ctx = mp.get_context("spawn")
    workers = [
        ctx.Process(target=_register_many, args=(store_url, str(settings.workspace), w, 5))
        for w in range(4)
    ]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    engine = make_engine(store_url)
    versions = registry.list_versions(engine, name="shared model")
    engine.dispose()
    assert sorted(v.version for v in versions) == list(range(1, 21))
    assert {v.status for v in versions} == {"READY"}
    assert len({v.artifact_file for v in versions}) == 20
    assert len(_final_files(settings)) == 40  # a model and a reference sample each


# --------------------------------------------------------------------------- interrupted saves


class _SlowToPickle:
    """Signals that saving has started, then takes a long time (long enough to be killed)."""

    def __init__(self, started: str) -> None:
        self.started = started

    def __reduce__(self):
        Path(self.started).touch()
        time.sleep(60)
        return (dict, ())


def _register_slow(url: str, workspace: str, started: str) -> None:
    engine = make_engine(url)
    registry.register_version(
        engine, name="churn", pipeline=_SlowToPickle(started), meta=_meta(),
        reference=pd.DataFrame({"x": [1]}), settings=Settings(workspace=Path(workspace)),
    )


def test_killed_save_leaves_no_ready_version_and_no_final_file(
    store_url: str, settings: Settings, tmp_path: Path
) -> None:
    make_engine(store_url).dispose()
    started = tmp_path / "started"
    proc = mp.get_context("spawn").Process(
        target=_register_slow, args=(store_url, str(settings.workspace), str(started))
    )
    proc.start()
    deadline = time.monotonic() + 60
    while not started.exists() and proc.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists(), "the child never started saving"
    proc.kill()  # SIGKILL: no except/finally block runs
    proc.join(30)
    assert proc.exitcode == -9

    engine = make_engine(store_url)
    [row] = registry.list_versions(engine, name="churn")
    assert row.status == "PENDING" and row.sha256 is None
    assert _final_files(settings) == []
    assert [p.name for p in settings.models_dir.iterdir() if p.name.endswith(".tmp")]  # the debris
    with pytest.raises(BadInput, match="no ready version"):
        registry.get_version(engine, name="churn")

    assert registry.mark_stale_pending(engine, 3600, settings=settings) == 0  # too recent
    assert registry.get_version(engine, name="churn", version=1).status == "PENDING"
    assert registry.mark_stale_pending(engine, 0, settings=settings) == 1
    failed = registry.get_version(engine, name="churn", version=1)
    assert (failed.status, failed.error) == ("FAILED", "interrupted")
    assert list(settings.models_dir.iterdir()) == []  # the temporary file is gone too
    assert registry.mark_stale_pending(engine, 0) == 0
    assert _register(engine, settings).version == 2
    engine.dispose()


# --------------------------------------------------------------------------- cards and exports


def test_export_round_trip_and_tampered_export_refused(
    store, settings: Settings, tmp_path: Path
) -> None:
    pipe, X = _fitted()
    version = registry.register_version(
        store, name="churn", pipeline=pipe, meta=_meta(description="first try"), reference=X,
        settings=settings,
    )
    out = registry.export_version(version, settings=settings, out_dir=tmp_path / "export")
    assert sorted(p.name for p in out.iterdir()) == [
        "MODEL_CARD.md", "model.joblib", "model.json", "reference.parquet"
    ]
    loaded, info = registry.load_exported(out)
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))
    assert info["sha256"] == version.sha256 and info["version"] == 1 and info["name"] == "churn"
    assert info["metrics"]["roc_auc"] == pytest.approx(0.91234)
    assert info["cv"]["folds"] == 5 and info["recipe"] == {"version": 1, "steps": []}
    assert "| ROC AUC | 0.9123 |  |" in (out / "MODEL_CARD.md").read_text()
    pd.testing.assert_frame_equal(pd.read_parquet(out / "reference.parquet"), X)

    marker = tmp_path / "pwned"
    (out / "model.joblib").chmod(0o644)
    (out / "model.joblib").write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(BadInput, match="refusing to load"):
        registry.load_exported(out)
    assert not marker.exists()

    (out / "model.json").chmod(0o644)
    (out / "model.json").write_text("{not json")
    with pytest.raises(BadInput, match="model.json"):
        registry.load_exported(out)


def test_export_zip_unzips_to_a_model_folder_that_predicts(store, settings: Settings, tmp_path: Path) -> None:
    pipe, X = _fitted()
    version = registry.register_version(store, name="churn model v2", pipeline=pipe, meta=_meta(), reference=X,
                                        settings=settings)
    with zipfile.ZipFile(io.BytesIO(registry.export_zip(version, settings=settings))) as archive:
        assert sorted(archive.namelist()) == [f"churn-model-v2-v1/{name}" for name in
                                              ("MODEL_CARD.md", "model.joblib", "model.json", "reference.parquet")]
        archive.extractall(tmp_path)
    loaded, info = registry.load_exported(tmp_path / "churn-model-v2-v1")
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))
    assert info["sha256"] == version.sha256

    artifact = settings.models_dir / version.artifact_file  # a file changed on disk is never handed out
    artifact.chmod(0o644)
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    with pytest.raises(BadInput, match="refusing to load"):
        registry.export_zip(version, settings=settings)


def test_export_refuses_a_tampered_source(engine, settings: Settings, tmp_path: Path) -> None:
    version = _register(engine, settings)
    artifact = settings.models_dir / version.artifact_file
    artifact.chmod(0o644)
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    with pytest.raises(BadInput, match="refusing to load"):
        registry.export_version(version, settings=settings, out_dir=tmp_path / "export")
    assert not (tmp_path / "export" / "model.joblib").exists()
    assert [p.name for p in (tmp_path / "export").iterdir()] == []  # no temporary debris


def test_model_card_shows_each_class_and_escapes_its_name(engine, settings: Settings) -> None:
    per_class = [
        {"class": "stayed", "rows": 1_200, "share": 0.8, "predicted": 1_300, "precision": 0.9, "recall": 0.975,
         "F1": 0.936},
        {"class": "<b>left</b> | x", "rows": 300, "share": 0.2, "predicted": 0, "precision": None, "recall": 0.0,
         "F1": None},  # never predicted: no precision, no F1
    ]
    version = registry.register_version(
        engine, name="churn", pipeline={"k": 1}, meta=_meta(metrics={"roc_auc": 0.91234, "per_class": per_class}),
        reference=pd.DataFrame({"x": [1]}), settings=settings,
    )
    lines = registry.model_card(version).splitlines()
    start = lines.index("## Per class (out-of-fold)")
    assert lines[start + 2] == "| Class | Rows | Share | Predicted | Precision | Recall | F1 |"
    assert "| stayed | 1,200 | 80.0% | 1,300 | 0.9000 | 0.9750 | 0.9360 |" in lines
    assert r"| \<b\>left\</b\> \| x | 300 | 20.0% | 0 | – | 0.0000 | – |" in lines  # markup escaped
    assert lines.index("## Metrics") < start < lines.index("## Data preparation")
    assert not any("per_class" in line or "Per class" in line for line in lines[lines.index("## Metrics"):start])


def test_model_card_shows_metrics_and_escapes_user_text(engine, settings: Settings) -> None:
    evil = "| x | `y` \n# heading"
    version = registry.register_version(
        engine, name="churn_model v2", pipeline={"k": 1},
        meta=_meta(description=evil, params={"note": evil, "C": 0.5}),
        reference=pd.DataFrame({"x": [1]}), settings=settings,
    )
    registry.set_alias(engine, name="churn_model v2", alias="champion", version=1)
    card = registry.model_card(version, aliases=registry.aliases(engine, name="churn_model v2"))
    lines = card.splitlines()

    assert lines[0] == r"# Model card: churn\_model v2, version 1"
    assert "| ROC AUC | 0.9123 |  |" in lines and "| Accuracy | 0.8750 |  |" in lines  # plain numbers
    assert "| Aliases | champion |" in lines
    assert r"| Model family | Logistic regression (logistic\_regression) |" in lines  # the title, and the CLI's name
    assert "| folds | 5 |" in lines and "| Status | READY |" in lines
    assert any(line.startswith("| sklearn | ") for line in lines)
    assert "## Intended use" in lines and "## Limitations" in lines
    # The description cannot start a heading or break out of its line or a table cell.
    assert not any(line.lstrip().startswith("# heading") for line in lines)
    assert r"**Description:** \| x \| \`y\` \# heading" in lines
    assert "`" not in card.replace("\\`", "")
    table_width = 0
    for line in lines:  # every row of a table has as many cells as its header
        if not line.startswith("|"):
            table_width = 0
            continue
        table_width = table_width or line.count("|")
        assert line.replace("\\|", "").count("|") == table_width, line
    assert r"| note | \| x \| \`y\` \# heading |" in lines


def test_model_card_leads_its_metrics_with_the_one_the_search_optimised() -> None:
    summary = {"mean": 0.8, "std": 0.01, "baseline": 0.5}
    version = ModelVersion(
        model_name="m", version=1, status="READY", artifact_file="a", reference_file="r",
        dataset_hash="d" * 64, target="y", task="binary", recipe_json="{}", plan_json="{}",
        model_family="lightgbm", params_json="{}", library_versions_json="{}", training_seconds=1.0,
        metrics_json=json.dumps({"accuracy": summary, "f1": summary, "pr_auc": summary,
                                 "decision_threshold": 0.37, "positive_class": "bad|risk"}),
        cv_json=json.dumps({"tuning": {"metric": "pr_auc"}, "decision_threshold_maximises": "balanced_accuracy"}),
    )
    lines = registry.model_card(version).splitlines()
    assert "| Optimised metric | PR AUC (average precision) |" in lines
    # How it labels rows is among the facts, not the scores, and the note names the class.
    facts = lines[:lines.index("## Metrics")]
    assert "| Positive class | bad\\|risk |" in facts and "| Decision threshold | 0.3700 |" in facts
    assert any("at the decision threshold 0.37 on the probability of 'bad\\|risk'" in line for line in lines)
    first = lines.index("## Metrics") + 4  # the heading, a blank line, the table's header and rule
    assert lines[first].startswith("| PR AUC (average precision) | 0.8"), lines[first]
    assert lines[first + 1].startswith("| Accuracy |")  # then in display order, not alphabetical
    assert lines[first + 3] == ""  # three metrics, and no threshold or class among them
    assert any("chosen on the other folds" in line for line in lines)
    # Time-ordered folds: each fold's cut-off came from the earlier ones, and the note says so.
    by_time = version.model_copy(update={"cv_json": json.dumps(
        {"kind": "time", "time_column": "day", "decision_threshold_maximises": "balanced_accuracy"})})
    assert any("chosen on the earlier folds" in line for line in registry.model_card(by_time).splitlines())


def test_model_card_says_in_words_how_the_version_was_validated_and_searched_for() -> None:
    cv = {"kind": "time", "n_folds": 5, "group_column": None, "time_column": "date", "seed": 42,
          "holdout_share": 0.2, "final_fit": "all rows (training + holdout)", "tuning_n_folds": 10,
          "tuning": {"models": ["lightgbm", "ridge"], "search": "random", "budget_s": 90.0, "max_trials": 40,
                     "per_model_s": None, "metric": "r2", "class_weight": False, "seed": 7, "positive_class": None},
          "shuffle_override": True}
    version = ModelVersion(
        model_name="m", version=1, status="READY", artifact_file="a", reference_file="r", dataset_hash="d" * 64,
        target="y", task="regression", recipe_json="{}", plan_json="{}", model_family="ridge", params_json="{}",
        library_versions_json="{}", training_seconds=1.0, metrics_json="{}", cv_json=json.dumps(cv))
    lines = registry.model_card(version).splitlines()
    section = lines[lines.index("## Cross-validation and tuning"):lines.index("## Library versions")]
    assert section[2:] == [
        "| Setting | Value |", "|---|---|",
        "| Folds | 5-fold time-series split on 'date' (each fold validated on later rows) |",
        "| Folds while tuning | 10 (a small table; the winner was then cross-validated with 5) |",
        "| Holdout | 20% of the rows, kept out of tuning and scored once |",
        "| Final fit | all rows (training + holdout) |",
        "| Search | Random over LightGBM (lightgbm), Ridge regression (ridge) |",
        "| Time budget | 90 s |", "| Trial cap | 40 |", "| Time per model | shared |", "| Class weights | none |",
        "| Seed | 7 |",
        "| shuffle\\_override | True |",  # a key this ShipML does not know: as recorded
        "",
    ]
    none = {**cv, "holdout_share": 0.0, "tuning_n_folds": 5,
            "tuning": {**cv["tuning"], "models": [], "max_trials": None, "per_model_s": 20, "class_weight": True}}
    lines = registry.model_card(version.model_copy(update={"cv_json": json.dumps(none)})).splitlines()
    assert "| Holdout | none |" in lines and not any(line.startswith("| Folds while tuning") for line in lines)
    assert "| Search | Random over every model family |" in lines and "| Trial cap | none |" in lines
    assert "| Time per model | 20 s |" in lines and "| Class weights | balanced |" in lines


def test_model_card_says_how_the_data_was_prepared() -> None:
    from core.prep.plan import ColumnTransform, FeaturePlan, Interaction
    from core.prep.recipe import recipe_to_json
    from core.prep.steps import DropDuplicates, FixType, Recipe

    recipe = Recipe(steps=(DropDuplicates(reason="copies"),
                           FixType(column="date", to="datetime", reason="dates | as text")))
    plan = FeaturePlan(exclude=("id",), transforms={"income": ColumnTransform(power="log")},
                       interactions=(Interaction(left="debt", right="income"),))
    version = ModelVersion(
        model_name="m", version=1, status="READY", artifact_file="a", reference_file="r", dataset_hash="d" * 64,
        target="y", task="regression", recipe_json=recipe_to_json(recipe), plan_json=plan.model_dump_json(),
        model_family="ridge", params_json="{}", library_versions_json="{}", training_seconds=1.0,
        metrics_json="{}", cv_json="{}",
    )
    lines = registry.model_card(version).splitlines()
    section = lines[lines.index("## Data preparation"):lines.index("## Parameters")]  # what was done, then the model
    assert "| 1 | Drop duplicate rows | rows | none | copies |" in section  # in order, escaped
    assert ("| 2 | Fix a column's type | columns (in the model) | column=date, date\\_format=None, dayfirst=False, "
            "to=datetime | dates \\| as text |") in section
    assert "| left out | id |" in section and "| transform of income | power=log |" in section
    assert "| interactions | debt\\_over\\_income |" in section
    plain = version.model_copy(update={"recipe_json": recipe_to_json(Recipe()), "plan_json": FeaturePlan().model_dump_json()})
    lines = registry.model_card(plain).splitlines()
    assert "none: the table as uploaded" in lines and "Feature plan (the default):" in lines
    unreadable = version.model_copy(update={"recipe_json": '{"steps": [{"kind": "teleport"}]}'})
    assert "Recorded in a form this ShipML cannot read." in registry.model_card(unreadable)
    # One line each, for comparing versions.
    assert registry.preparation_summary(version) == {
        "cleaning": "1. Drop duplicate rows; 2. Fix a column's type: date",
        "features": "leaves out id; transforms income; adds debt_over_income"}
    assert registry.preparation_summary(plain) == {"cleaning": "none", "features": "the default"}
    assert registry.preparation_summary(unreadable)["cleaning"] == "recorded in a form this ShipML cannot read"


def test_model_card_shows_cv_summaries_as_the_trainer_records_them() -> None:
    version = ModelVersion(
        model_name="m", version=3, status="READY", artifact_file="a", reference_file="r",
        dataset_hash="d" * 64, target="y", task="regression", recipe_json="{}", plan_json="{}",
        model_family="lightgbm", params_json='{"learning_rate": 0.05}',
        metrics_json=json.dumps(  # as stored: keys sorted, so the holdout's group comes first
            {"holdout": {"mae": 0.9, "rmse": 1.3}, "mae": {"mean": 1.0, "std": 0.2, "baseline": 2.0},
             "rmse": {"mean": 1.23456, "std": 0.1, "baseline": 2.5}}, sort_keys=True,
        ),
        cv_json=json.dumps({"tuning": {"search": "bayes", "budget_s": 60.0, "models": []}}),
        library_versions_json="{}", training_seconds=3.0,
    )
    lines = registry.model_card(version).splitlines()
    assert "| Search | Bayesian (TPE) over every model family |" in lines  # in words, not JSON
    assert "| Time budget | 60 s |" in lines
    assert "| Optimised metric | R² |" in lines  # none chosen: the task's default
    table = lines[lines.index("## Metrics") + 2:][:4]
    assert table == ["| Metric | Cross-validated | Baseline | Holdout |", "|---|---|---|---|",
                     "| RMSE | 1.2346 ± 0.1000 | 2.5000 | 1.3000 |", "| MAE | 1.0000 ± 0.2000 | 2.0000 | 0.9000 |"]
    assert "| learning\\_rate | 0.05 |" in lines
    assert "## Library versions" in lines and "none recorded" in lines
