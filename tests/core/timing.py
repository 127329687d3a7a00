"""How long a fit takes on the machine running the tests, for tests whose budgets count in fits."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pandas as pd
from threadpoolctl import threadpool_limits


def warm_fit_seconds(make: Callable[[], Any], X: pd.DataFrame, y: pd.Series) -> float:
    """Seconds of ``make().fit(X, y)`` on one thread, as a trial fits; the second of two fits, as
    the first pays for imports and thread pools."""
    with threadpool_limits(limits=1):
        for _ in range(2):
            model = make()
            started = time.perf_counter()
            model.fit(X, y)
            seconds = time.perf_counter() - started
    return seconds
