"""Sample tables that several test modules read."""
from __future__ import annotations

import pandas as pd
import pytest

from tests.core.frames import sample_table


@pytest.fixture(scope="module")
def chicago() -> tuple[pd.DataFrame, pd.Series]:
    """The Chicago ridership sample, ordered by its ``date`` column."""
    return sample_table("chicago.csv", "ridership", parse_dates=["date"])


@pytest.fixture(scope="module")
def churn() -> tuple[pd.DataFrame, pd.Series]:
    """The telecom churn sample (binary, 5,000 rows)."""
    return sample_table("mlc_churn.csv", "churn")
