"""Check a boosting family's portfolio: each configuration cross-validated and test-scored.

The automatic search tries a family's portfolio configurations right after its default trial
(``core.modeling.specs``), so a configuration that rarely wins costs every search its time. For
each dataset and split seed this splits the rows as ``bench.automl`` does (80/20), then for every
portfolio configuration (and any candidates given as JSON) prints its cross-validated score on
the training rows (the report's folds; what the search sees), its score on the test rows once
fitted on all training rows, and the cross-validation's wall time, one thread::

    python -m bench.portfolio --family lightgbm --datasets deliveries,concrete --seeds 42,1
    python -m bench.portfolio --family hist_gradient_boosting --candidate '{"max_leaf_nodes": 15}'
    python -m bench.portfolio --datasets mlc_churn --candidate '{}' --encoding onehot

(``--candidate '{}'`` adds the family's defaults; ``--encoding`` sets every text column's
categorical encoding, by default ``auto``.)

Choose by the cross-validated column; the test column is there to see that it generalises. The
benchmark's tables are the ones the search is judged on, so check a change on the two tables it
never runs as well (``--datasets taxi,default``).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from bench.automl import DATASETS, Dataset, _write_predictions, score, split
from core.modeling.evaluation import cross_validate
from core.modeling.specs import get_spec
from core.modeling.tuning import TuningConfig
from core.prep.pipeline import build_pipeline
from core.prep.plan import ColumnTransform, Encoding, FeaturePlan
from core.prep.steps import Recipe
from core.training import TrainRequest, prepare


def score_configs(dataset: Dataset, family: str, candidates: list[dict], seed: int,
                  folder: Path, encoding: Encoding = "auto") -> list[tuple[dict, float, float, float]]:
    """(parameters, cross-validated score, test score, cross-validation seconds) of each of the
    family's portfolio configurations, then of each candidate."""
    split(dataset, folder, seed)
    train = pd.read_csv(folder / "train.csv")
    text = train.drop(columns=[dataset.target]).select_dtypes(include="object").columns
    plan = FeaturePlan(transforms={c: ColumnTransform(encoding=encoding) for c in text})
    config = TuningConfig(metric=dataset.metric, seed=seed)
    data = prepare(train, Recipe(), plan, TrainRequest(model_name="portfolio", target=dataset.target, config=config),
                   seed=seed)
    spec, metric = get_spec(family, data.task), data.config.metric_for(data.task)
    configs = [dict(p) for p in spec.portfolio(task=data.task)] + candidates
    X_test = pd.read_csv(folder / "test_X.csv")
    rows = []
    for params in configs:
        def make(params=params):
            estimator = spec.build(params, task=data.task, seed=seed)
            return build_pipeline(Recipe(), plan, target=dataset.target, seed=seed, estimator=estimator)

        with threadpool_limits(limits=1):  # as a trial runs
            started = time.perf_counter()
            cv = cross_validate(make, data.X, data.y, task=data.task, scheme=data.scheme, metric=metric)
            cv_s = time.perf_counter() - started
            model = make().fit(data.X, data.y)
        _write_predictions(model, X_test, folder / "pred.csv")  # scored as bench.automl scores
        rows.append((params, float(np.nanmean(cv.fold_scores[metric])), score(dataset, folder, folder / "pred.csv"), cv_s))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="lightgbm", help="a model family with a portfolio")
    parser.add_argument("--datasets", default="deliveries,concrete,mlc_churn,lending_club",
                        help=f"comma-separated, from: {', '.join(DATASETS)} (taxi and default are outside "
                             "bench.automl's default run: a portfolio chosen on its tables is checked there)")
    parser.add_argument("--seeds", default="42,1", help="split seeds, comma-separated")
    parser.add_argument("--candidate", action="append", default=[], help="extra parameters as JSON (repeatable)")
    parser.add_argument("--encoding", default="auto", choices=get_args(Encoding), help="of every text column")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # convergence and feature-name warnings of the fits
    candidates = [json.loads(c) for c in args.candidate]
    legend = False
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                rows = score_configs(DATASETS[name], args.family, candidates, seed, Path(tmp) / f"{name}-{seed}",
                                     args.encoding)
                if not legend:
                    legend = True
                    print("\n".join(f"P{i}: {json.dumps(params)}" for i, (params, *_) in enumerate(rows)))
                cells = " | ".join(f"P{i} {cv:.4f} / {test:.4f} ({s:.1f} s)" for i, (_, cv, test, s) in enumerate(rows))
                print(f"{name} seed {seed}: {cells}", flush=True)


if __name__ == "__main__":
    main()
