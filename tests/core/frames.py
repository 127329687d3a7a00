"""Tables more than one test module reads."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.config import SAMPLES_DIR
from core.prep.recipe import prepare_training_table
from core.prep.steps import Recipe


def few_valued_rows(seed: int, rows: int = 6_000) -> pd.DataFrame:
    """Three columns of few values: the rows fall on 2 x 7 x 24 = 336 combinations, so almost
    every row equals another although no record was stored twice."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"late": rng.choice(["yes", "no"], rows), "day": rng.integers(0, 7, rows),
                         "hour": rng.integers(0, 24, rows)})


def sample_table(name: str, target: str, **read) -> tuple[pd.DataFrame, pd.Series]:
    """A sample file's features and target, as training reads them with no cleaning steps."""
    return prepare_training_table(pd.read_csv(SAMPLES_DIR / name, **read), Recipe(), target=target)
