"""Tables more than one test module profiles."""
from __future__ import annotations

import numpy as np
import pandas as pd


def few_valued_rows(seed: int, rows: int = 6_000) -> pd.DataFrame:
    """Three columns of few values: the rows fall on 2 x 7 x 24 = 336 combinations, so almost
    every row equals another although no record was stored twice."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"late": rng.choice(["yes", "no"], rows), "day": rng.integers(0, 7, rows),
                         "hour": rng.integers(0, 24, rows)})
